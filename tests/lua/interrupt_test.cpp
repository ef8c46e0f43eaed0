// Ctrl-C while a recipe is evaluated: the evaluation ends with Interrupted
// (exit 130 or 143 from the command line), not with a recipe error, even when
// the recipe loops for ever or a native was what noticed the signal.
#include <catch2/catch.hpp>

#include <signal.h>

#include "base/interrupt.hpp"
#include "recipe_harness.hpp"

using imgbuild::Interrupted;
using imgbuild::set_interrupt_for_testing;
using imgbuild::test::RecipeRun;

namespace {

/// The signal the evaluation of `recipe` was interrupted by; 0 when it ended
/// otherwise. The signal is forgotten afterwards.
int interrupted_by(RecipeRun& r, const std::string& recipe) {
  int signal = 0;
  try {
    r.evaluate(recipe);
  } catch (const Interrupted& i) {
    signal = i.signal;
  } catch (const std::exception&) {
  }
  set_interrupt_for_testing(0);
  return signal;
}

}  // namespace

TEST_CASE("a recipe that loops for ever stops on a signal", "[recipe][interrupt]") {
  RecipeRun r;
  // exists() is where the signal "arrives"; the loop after it never ends by itself.
  r.exists = [](const std::string&) {
    set_interrupt_for_testing(SIGINT);
    return true;
  };
  CHECK(interrupted_by(r, "exists(\"localhost:5000/a:1\")\nwhile true do end\n") == SIGINT);
  // Catching the error does not keep the recipe running.
  CHECK(interrupted_by(r,
                       "exists(\"localhost:5000/a:1\")\nlocal ok = pcall(function() while true do end end)\n"
                       "while true do end\n") == SIGINT);
  // Nor does looping in a coroutine.
  CHECK(interrupted_by(r, "exists(\"localhost:5000/a:1\")\ncoroutine.wrap(function() while true do end end)()\n") ==
        SIGINT);
}

TEST_CASE("a native interrupted inside a recipe ends the evaluation as an interrupt", "[recipe][interrupt]") {
  RecipeRun r;
  r.exists = [](const std::string&) -> bool {
    set_interrupt_for_testing(SIGTERM);
    throw Interrupted{SIGTERM};
  };
  CHECK(interrupted_by(r, "local ok = exists(\"localhost:5000/a:1\")\nimage(\"a\", scratch)\n") == SIGTERM);
}
