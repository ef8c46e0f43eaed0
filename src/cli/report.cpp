#include "cli/report.hpp"

#include <iostream>

namespace imgbuild::cli {

void report(const std::string& message) { std::cerr << "imgbuild: " + message + "\n"; }

}  // namespace imgbuild::cli
