// Tier 2: an image whose documents would be over the limit every reader
// applies (kMaxDocumentSize) fails at the recipe line that makes it so, and
// nothing of it enters the store.
#include <catch2/catch.hpp>

#include <string>

#include "oci/image.hpp"
#include "recipe_harness.hpp"

using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;
using imgbuild::test::RecipeRun;

namespace {
const std::string kLimit = "over the limit of " + std::to_string(imgbuild::kMaxDocumentSize) + " bytes (4 MiB)";
}

TEST_CASE("one value too big for the config fails at its line", "[recipe][limits]") {
  RecipeRun r;
  std::string error = r.error_of(
      "local img = scratch:env { A = \"1\" }\n"
      "img = img:label { big = string.rep(\"x\", 5 * 1024 * 1024) }\n"
      "image(\"a\", img:entrypoint { \"/x\" })\n");
  CHECK_THAT(error, StartsWith("recipe.lua:2: label: the image config (its env, labels and a history line per step) "
                               "is too large: "));
  CHECK_THAT(error, Contains(kLimit));
  CHECK_THAT(r.error_of("image(\"a\", scratch:entrypoint { \"/x\", string.rep(\"y\", 4 * 1024 * 1024) })\n"),
             StartsWith("recipe.lua:1: entrypoint: the image config"));
}

TEST_CASE("values that add up fail at the step that crosses the limit", "[recipe][limits]") {
  RecipeRun r;
  // Each label is in the config twice (its history line and the labels): the
  // 42nd of 100 kB crosses 4 MiB.
  std::string error = r.error_of(
      "local img = scratch\n"
      "for i = 1, 100 do\n"
      "  img = img:label { [\"l\" .. i] = string.rep(\"x\", 50000) }\n"
      "end\n"
      "image(\"a\", img)\n");
  CHECK_THAT(error, StartsWith("recipe.lua:3: label: the image config"));
  CHECK_THAT(error, Contains(kLimit));
  // Under the limit, the same recipe builds.
  CHECK(r.error_of("local img = scratch\n"
                   "for i = 1, 40 do\n"
                   "  img = img:label { [\"l\" .. i] = string.rep(\"x\", 50000) }\n"
                   "end\n"
                   "image(\"a\", img:entrypoint { \"/x\" })\n") == "");
}
