// imgbuild check [--json] FILE...: what an image must contain to run each
// file. Exit 1 when a file cannot be read or is a malformed ELF file.
#include <iostream>

#include "cli/commands.hpp"
#include "cli/options.hpp"
#include "cli/report.hpp"
#include "inspect/elf.hpp"
#include "inspect/elf_report.hpp"

namespace imgbuild::cli {
namespace {

const Syntax kCheckSyntax = {{Opt::Json}, Operands::NotDash};

}  // namespace

int cmd_check(const std::vector<std::string>& args) {
  Options options;
  std::vector<std::string> files = parse_options(args, kCheckSyntax, options);
  if (files.empty()) throw UsageError("check needs at least one file");
  int status = 0;
  nlohmann::json reports = nlohmann::json::array();
  for (auto& f : files) {
    try {
      ElfInfo info = inspect_elf(f);
      if (options.json) {
        nlohmann::json r = elf_json(info);
        r["file"] = f;
        reports.push_back(r);
      } else {
        std::cout << elf_text_report(f, info);
      }
    } catch (const std::exception& e) {
      report(e.what());
      if (options.json) reports.push_back({{"file", f}, {"error", e.what()}});
      status = kExitError;
    }
  }
  if (options.json) std::cout << reports.dump(2) << "\n";
  return status;
}

}  // namespace imgbuild::cli
