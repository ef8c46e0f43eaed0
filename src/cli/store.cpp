// imgbuild store verify: the local store checked against what it claims.
#include <cstdio>

#include "cli/commands.hpp"
#include "cli/local_store.hpp"
#include "cli/report.hpp"
#include "store/verified.hpp"

namespace imgbuild::cli {

int cmd_store(const std::vector<std::string>& args) {
  if (args.size() != 1 || args[0] != "verify") throw UsageError("store takes one subcommand: imgbuild store verify");
  Layout store = open_store();
  StoreCheck check = verify_store(store);
  for (auto& problem : check.problems) report(problem);
  std::string summary = std::to_string(check.blobs) + " blobs and " + std::to_string(check.images) +
                        " images checked in " + store.root().string() + " (" + std::to_string(check.layers_read) +
                        " layers read for their diff_id)";
  if (check.problems.empty()) {
    std::printf("%s: nothing wrong\n", summary.c_str());
    return 0;
  }
  report(summary + ": " + std::to_string(check.problems.size()) +
         " problems. A damaged blob was removed: a build fetches a base's layers again and makes its own again "
         "(imgbuild build RECIPE; --pull to resolve a base's tag again); remove an image that lies or misses its "
         "files with imgbuild rmi NAME");
  return kExitError;
}

}  // namespace imgbuild::cli
