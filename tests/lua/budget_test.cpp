// Tier 2: `:budget { size = ... }`: its options are checked at the recipe
// line, and a build whose image has more compressed layer bytes fails there,
// naming the biggest layers and the steps that made them.
#include <catch2/catch.hpp>

#include <random>

#include "recipe_harness.hpp"

using imgbuild::test::RecipeRun;

namespace {

/// `n` bytes that gzip cannot shrink, the same on every run: layers of them
/// are a little over `n` bytes compressed, whatever the compressor.
std::string incompressible(size_t n, unsigned seed) {
  std::mt19937 gen(seed);
  std::string out(n, '\0');
  for (auto& c : out) c = static_cast<char>(gen() & 0xff);
  return out;
}

/// A context with files of 2.0, 1.5 and 1.2 MB (compressed as stored) and a tiny one.
void sized_files(RecipeRun& r) {
  r.file("big", incompressible(2'000'000, 1));
  r.file("mid", incompressible(1'500'000, 2));
  r.file("more", incompressible(1'200'000, 3));
  r.file("tiny", "x");
}

}  // namespace

TEST_CASE("budget options are checked at the recipe line", "[recipe][budget]") {
  RecipeRun r;
  CHECK(r.error_of("image(\"a\", scratch\n  :budget { sise = \"1MB\" })\n") ==
        "recipe.lua:2: budget: unknown option 'sise' (did you mean 'size'?)");
  CHECK(r.error_of("image(\"a\", scratch:budget { size = \"ten\" })\n") ==
        "recipe.lua:1: budget: size 'ten' is not a size (e.g. \"10MB\", \"500kB\", \"2MiB\")");
  CHECK(r.error_of("image(\"a\", scratch:budget { size = \"10 MB\" })\n") ==
        "recipe.lua:1: budget: size '10 MB' is not a size (e.g. \"10MB\", \"500kB\", \"2MiB\")");
  CHECK(r.error_of("image(\"a\", scratch:budget { size = true })\n") ==
        "recipe.lua:1: budget: size: expected a size such as \"10MB\", got boolean");
  CHECK(r.error_of("image(\"a\", scratch:budget {})\n") ==
        "recipe.lua:1: budget: size: expected a size such as \"10MB\", got nil");
  CHECK(r.error_of("image(\"a\", scratch:budget \"10MB\")\n") ==
        "recipe.lua:1: budget: expected a table of options, got string");
  CHECK(r.error_of("image(\"a\", scratch:budget { size = -1 })\n") ==
        "recipe.lua:1: budget: size: expected a size such as \"10MB\", got number");
}

TEST_CASE("an image over its budget fails at the budget's line, naming its biggest layers", "[recipe][budget]") {
  RecipeRun r;
  sized_files(r);
  const char* recipe =
      "image(\"a\", scratch\n"
      "  :copy(\"big\", \"/big\")\n"
      "  :copy(\"tiny\", \"/tiny\")\n"
      "  :copy(\"mid\", \"/mid\")\n"
      "  :copy(\"more\", \"/more\")\n"
      "  :budget { size = \"%s\" })\n";
  char text[512];
  std::snprintf(text, sizeof text, recipe, "3MB");
  CHECK(r.error_of(text) ==
        "recipe.lua:6: budget: the image is 4.7 MB (compressed layers), over its budget of 3MB; biggest layers:\n"
        "    2.0 MB  recipe.lua:2  copy big /big\n"
        "    1.5 MB  recipe.lua:4  copy mid /mid\n"
        "    1.2 MB  recipe.lua:5  copy more /more");
  // Binary units, and the same steps now from the cache: the same report.
  std::snprintf(text, sizeof text, recipe, "4MiB");
  CHECK(r.error_of(text) ==
        "recipe.lua:6: budget: the image is 4.7 MB (compressed layers), over its budget of 4MiB; biggest layers:\n"
        "    2.0 MB  recipe.lua:2  copy big /big\n"
        "    1.5 MB  recipe.lua:4  copy mid /mid\n"
        "    1.2 MB  recipe.lua:5  copy more /more");
  std::snprintf(text, sizeof text, recipe, "5MB");
  CHECK(r.error_of(text) == "");
}

TEST_CASE("a budget holds for images built on the image; a later one replaces it", "[recipe][budget]") {
  RecipeRun r;
  sized_files(r);
  CHECK(r.error_of("local base = scratch:copy(\"mid\", \"/mid\"):budget { size = 2000000 }\n"
                   "image(\"a\", base)\n"
                   "image(\"b\", base:copy(\"big\", \"/big\"))\n") ==
        "recipe.lua:1: budget: the image is 3.5 MB (compressed layers), over its budget of 2000000 B; biggest "
        "layers:\n"
        "    2.0 MB  recipe.lua:3  copy big /big\n"
        "    1.5 MB  recipe.lua:1  copy mid /mid");
  CHECK(r.error_of("local base = scratch:copy(\"mid\", \"/mid\"):budget { size = \"2MB\" }\n"
                   "image(\"b\", base:copy(\"big\", \"/big\"):budget { size = \"4MB\" })\n") == "");
}
