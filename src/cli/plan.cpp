// imgbuild plan: the steps a build would take, without taking them.
#include <algorithm>
#include <cstdio>
#include <map>

#include "cli/commands.hpp"
#include "cli/session.hpp"

namespace imgbuild::cli {

int cmd_plan(const std::vector<std::string>& args) {
  Session s(parse_build_args(args), true);
  std::vector<PlannedStep> steps = s.builder->plan(s.needed());
  using Outcome = PlannedStep::Outcome;
  size_t loc_w = 0;
  for (auto& st : steps) loc_w = std::max(loc_w, st.loc.size());
  std::map<Outcome, size_t> counts;
  for (auto& st : steps) {
    ++counts[st.outcome];
    const char* outcome = st.outcome == Outcome::Local      ? "cached"
                          : st.outcome == Outcome::Registry ? "registry"
                          : st.outcome == Outcome::Run      ? "run"
                          : st.outcome == Outcome::AfterRun ? "run"
                                                            : "";
    std::string key = st.key ? std::string(st.key->short_hex()) : st.outcome == Outcome::AfterRun ? "?" : "";
    std::printf("%-*s  %-8s  %-12s  %s\n", static_cast<int>(loc_w), st.loc.c_str(), outcome, key.c_str(),
                st.description.c_str());
  }
  for (const Target* t : s.chosen) std::printf("image %s (%s)\n", t->name.c_str(), t->loc.c_str());
  for (const Push* p : s.pushes) std::printf("push %s (%s)\n", p->reference.c_str(), p->loc.c_str());
  size_t runs = counts[Outcome::Run] + counts[Outcome::AfterRun];
  std::printf("%zu cached, %zu from the registry cache, %zu to run\n", counts[Outcome::Local],
              counts[Outcome::Registry], runs);
  return 0;
}

}  // namespace imgbuild::cli
