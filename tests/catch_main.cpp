// The main of unit_tests and recipe_tests: Catch2's, plus the host
// requirements that Catch2 v2 (which has no SKIP) cannot express. A case
// tagged [root] needs root; one tagged with CPUs ([x86_64], [aarch64]) holds
// those CPUs' names and loader paths. When a selected case cannot run on this
// host, nothing runs and the process exits 77, which ctest (SKIP_RETURN_CODE)
// reports as skipped: a case that cannot run is never counted as passed.
// tests/CMakeLists.txt runs each such tag as an entry of its own (unit_root,
// recipe_x86_64, ...) and leaves them out of the plain ones.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <unistd.h>

#include <algorithm>
#include <iostream>
#include <string>
#include <vector>

#include "unit/test_support.hpp"

using imgbuild::test::host_machine;

namespace {

/// The exit status ctest's SKIP_RETURN_CODE reads as "skipped".
constexpr int kSkipped = 77;

/// The CPU tags: the machine names uname(2) gives.
const std::vector<std::string> kCpus = {"x86_64", "aarch64"};

/// Why this host cannot run `test`, or "" when it can. A case with CPU tags
/// runs on any of those CPUs, so that one case can hold the names of several.
std::string unmet(const Catch::TestCase& test) {
  const auto tagged = [&](const std::string& tag) {
    return std::find(test.tags.begin(), test.tags.end(), tag) != test.tags.end();
  };
  if (tagged("root") && ::geteuid() != 0) return "needs root";
  std::string cpus;
  for (const std::string& cpu : kCpus) {
    if (!tagged(cpu)) continue;
    if (cpu == host_machine()) return "";
    cpus += (cpus.empty() ? "" : " or ") + cpu;
  }
  return cpus.empty() ? "" : "holds the names and paths of " + cpus + " (this host is " + host_machine() + ")";
}

/// Why this host cannot run what `filters` asks for as a whole, or "" when it
/// can: a filter that is one CPU's tag asks for that CPU's cases on that CPU,
/// so unit_aarch64 is skipped on x86_64 even where its cases also name x86_64
/// (unit_x86_64 runs them there).
std::string unmet(const std::vector<std::string>& filters) {
  for (const std::string& cpu : kCpus)
    if (filters == std::vector<std::string>{"[" + cpu + "]"} && cpu != host_machine())
      return "the " + filters[0] + " cases are checked on an " + cpu + " host (this host is " + host_machine() + ")";
  return "";
}

}  // namespace

int main(int argc, char* argv[]) {
  Catch::Session session;
  if (int status = session.applyCommandLine(argc, argv); status != 0) return status;
  const Catch::Config& config = session.config();
  if (!config.listTests() && !config.listTestNamesOnly() && !config.listTags() && !config.listReporters()) {
    std::vector<std::string> unrunnable;
    if (std::string why = unmet(session.configData().testsOrTags); !why.empty()) unrunnable.push_back(why);
    for (const Catch::TestCase& test :
         Catch::filterTests(Catch::getAllTestCasesSorted(config), config.testSpec(), config))
      if (std::string why = unmet(test); !why.empty()) unrunnable.push_back(test.name + ": " + why);
    if (!unrunnable.empty()) {
      std::cout << "SKIPPED: this host cannot run what was selected:\n";
      for (const std::string& line : unrunnable) std::cout << "  " << line << "\n";
      return kSkipped;
    }
  }
  int status = session.run();
  // Catch2 returns the number of failed assertions: 77 of them must not read as skipped.
  return status == kSkipped ? 1 : status;
}
