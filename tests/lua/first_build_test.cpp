// Tier 2: a copy whose shape (paths, types, modes, sizes) was never built is
// built while its key is computed, reading each file once; the key must be
// the very one a later build computes by reading the files first, or a
// rebuild would never find it.
#include <catch2/catch.hpp>

#include "recipe_harness.hpp"

using imgbuild::test::RecipeRun;
using Steps = std::vector<std::string>;

TEST_CASE("a first build's copy is found again by the key a rebuild computes", "[recipe][cache]") {
  RecipeRun r;
  r.file("app/main.go", "package main\n");
  r.file("app/data.txt", "forty-two\n");
  const char* recipe = "image(\"a\", scratch:copy(\"app\", \"/app\"))\n";
  CHECK(r.steps_of(recipe) == Steps{"recipe.lua:1 copy app /app: done"});
  CHECK(std::filesystem::exists(r.cache_dir() / "shapes"));

  // The first build wrote its entry under the key it computed while writing;
  // this one reads the files first (the shape is known) and must find it.
  SECTION("unchanged: cached") { CHECK(r.steps_of(recipe) == Steps{"recipe.lua:1 copy app /app: cached"}); }
  SECTION("without its shape record (a cache an older imgbuild wrote) the copy is built once more, then cached") {
    std::filesystem::remove_all(r.cache_dir() / "shapes");
    CHECK(r.steps_of(recipe) == Steps{"recipe.lua:1 copy app /app: done"});
    CHECK(r.steps_of(recipe) == Steps{"recipe.lua:1 copy app /app: cached"});
  }
  SECTION("a known shape with other bytes (same size) is built again, then cached") {
    r.file("app/data.txt", "forty-one\n");
    CHECK(r.steps_of(recipe) == Steps{"recipe.lua:1 copy app /app: done"});
    CHECK(r.steps_of(recipe) == Steps{"recipe.lua:1 copy app /app: cached"});
    r.file("app/data.txt", "forty-two\n");
    CHECK(r.steps_of(recipe) == Steps{"recipe.lua:1 copy app /app: cached"});
  }
  SECTION("a new shape is built again, then cached") {
    r.file("app/more.txt", "more\n");
    CHECK(r.steps_of(recipe) == Steps{"recipe.lua:1 copy app /app: done"});
    CHECK(r.steps_of(recipe) == Steps{"recipe.lua:1 copy app /app: cached"});
  }
}
