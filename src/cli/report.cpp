#include "cli/report.hpp"

#include <iostream>

#include "base/text.hpp"

namespace imgbuild::cli {

void report(const std::string& message) {
  // Each line through printable_text(): a message may quote what a step or a
  // registry said, and that must not reach the terminal as control bytes.
  std::string text = "imgbuild: ";
  size_t start = 0;
  for (size_t end; (end = message.find('\n', start)) != std::string::npos; start = end + 1)
    text += printable_text(std::string_view(message).substr(start, end - start)) + "\n";
  text += printable_text(std::string_view(message).substr(start)) + "\n";
  std::cerr << text;
}

}  // namespace imgbuild::cli
