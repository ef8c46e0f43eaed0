// imgbuild plan: the steps a build would take, without taking them.
#include <algorithm>
#include <cstdio>
#include <map>
#include <set>

#include "base/text.hpp"
#include "cli/commands.hpp"
#include "cli/session.hpp"

namespace imgbuild::cli {

namespace {

using Outcome = PlannedStep::Outcome;

/// "cached", "registry", "run", or nothing (a config step, a base).
const char* outcome_name(Outcome outcome) {
  return outcome == Outcome::Local                                 ? "cached"
         : outcome == Outcome::Registry                            ? "registry"
         : outcome == Outcome::Run || outcome == Outcome::AfterRun ? "run"
                                                                   : "";
}

/// "linux/amd64, linux/arm64": the platforms an image is built for (the
/// machine's when the recipe and the command line name none).
std::string platform_list(const Session& s, const std::vector<Platform>& recipe_platforms) {
  std::vector<std::string> names;
  for (const Platform& p : s.platforms_of(recipe_platforms)) names.push_back(p.str());
  return names.empty() ? Platform::host().str() : join(names, ", ");
}

}  // namespace

int cmd_plan(const std::vector<std::string>& args) {
  Session s(parse_build_args(args), true);
  // A step per line; with several platforms each line names its platform.
  struct Line {
    std::string platform;
    PlannedStep step;
  };
  std::vector<Session::PlatformNodes> platforms = s.by_platform();
  const bool several = platforms.size() > 1;
  std::vector<Line> lines;
  for (Session::PlatformNodes& p : platforms)
    for (PlannedStep& st : p.builder->plan(p.nodes)) lines.push_back({several ? p.platform.str() : "", std::move(st)});

  size_t loc_w = 0, platform_w = 0;
  for (auto& l : lines) {
    loc_w = std::max(loc_w, l.step.loc.size());
    platform_w = std::max(platform_w, l.platform.size());
  }
  // A step whose key is the same on several platforms is done once for all
  // of them (its key does not hold the platform): counted once.
  std::map<Outcome, size_t> counts;
  std::set<Digest> counted;
  bool shared = false;
  for (auto& [platform, st] : lines) {
    if (!st.key || counted.insert(*st.key).second)
      ++counts[st.outcome];
    else
      shared = true;
    std::string key = st.key ? std::string(st.key->short_hex()) : st.outcome == Outcome::AfterRun ? "?" : "";
    std::string where = several ? std::string(platform_w - platform.size(), ' ') : "";
    std::printf("%-*s  %s%s%-8s  %-12s  %s\n", static_cast<int>(loc_w), st.loc.c_str(), platform.c_str(),
                several ? (where + "  ").c_str() : "", outcome_name(st.outcome), key.c_str(), st.description.c_str());
  }
  for (const Target* t : s.chosen)
    std::printf("image %s (%s)%s\n", t->name.c_str(), t->loc.c_str(),
                several ? (" for " + platform_list(s, t->platforms)).c_str() : "");
  for (const Push* p : s.pushes)
    std::printf("push %s (%s)%s\n", p->reference.c_str(), p->loc.c_str(),
                several ? (" for " + platform_list(s, p->platforms)).c_str() : "");
  size_t runs = counts[Outcome::Run] + counts[Outcome::AfterRun];
  std::printf("%zu cached, %zu from the registry cache, %zu to run", counts[Outcome::Local], counts[Outcome::Registry],
              runs);
  if (several) std::printf(" for %zu platforms", platforms.size());
  std::printf("\n");
  if (shared) std::printf("a key on several platforms is one step, done once for all of them\n");
  return 0;
}

}  // namespace imgbuild::cli
