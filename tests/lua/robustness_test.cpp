// Tier 2: recipes that do hostile or silly things. Each gets an error at its
// own line (or builds), never a crash, a hang or an engine broken for the rest
// of the recipe. Lua's io and os stay available: recipes are programs.
#include <catch2/catch.hpp>

#include <string>

#include "recipe_harness.hpp"

using imgbuild::test::RecipeRun;

TEST_CASE("functions and cyclic tables where values belong", "[recipe][robustness]") {
  RecipeRun r;
  CHECK(r.error_of("image(\"a\", scratch:env { A = function() end })\n") ==
        "recipe.lua:1: env: value of A is function, not a string");
  CHECK(r.error_of("image(\"a\", scratch:copy(print, \"/x\"))\n") ==
        "recipe.lua:1: copy: source must be a path, a file value or a list of them, got function");
  CHECK(r.error_of("local t = {}\nt.t = t\nimage(\"a\", scratch:env(t))\n") ==
        "recipe.lua:3: env: value of t is table, not a string");
  CHECK(r.error_of("local t = { \"/app\" }\nt[2] = t\nimage(\"a\", scratch:entrypoint(t))\n") ==
        "recipe.lua:3: entrypoint: item 2 is table, not a string");
  CHECK(r.error_of("image(\"a\", scratch.copy(\"x\", \"/y\"))\n") ==
        "recipe.lua:1: copy: called on string; call it as a method: img:copy(...)");
  CHECK(r.error_of("image(\"a\", scratch:label { [scratch] = \"x\" })\n") ==
        "recipe.lua:1: label: names must be strings, got image");
}

TEST_CASE("a chain of 100 000 steps is walked to its end", "[recipe][robustness]") {
  RecipeRun r;
  // Its history alone (a line per step) is over the 4 MiB that registries and
  // the store read of a config: refused at the step that crosses it, never a
  // crash, and the store never holds an image it cannot read.
  CHECK_THAT(
      r.error_of("local img = scratch\n"
                 "for i = 1, 100000 do img = img:env { [\"V\" .. i % 10] = tostring(i) } end\n"
                 "image(\"a\", img:entrypoint { \"/x\" })\n"),
      Catch::Matchers::StartsWith("recipe.lua:2: env: the image config") && Catch::Matchers::Contains("is too large"));
  // A chain as long as fits builds.
  CHECK(r.error_of("local img = scratch\n"
                   "for i = 1, 40000 do img = img:env { [\"V\" .. i % 10] = tostring(i) } end\n"
                   "image(\"a\", img:entrypoint { \"/x\" })\n") == "");
}

TEST_CASE("require cycles are named at the line that closes them", "[recipe][robustness]") {
  RecipeRun r;
  for (int i = 1; i <= 50; ++i)
    r.file("m" + std::to_string(i) + ".lua", "return require \"m" + std::to_string(i % 50 + 1) + "\"\n");
  std::string circle;
  for (int i = 1; i <= 50; ++i) circle += "m" + std::to_string(i) + " -> ";
  CHECK(r.error_of("local m = require \"m1\"\n") == "m50.lua:1: require: 'm1' requires itself: " + circle + "m1");
  r.file("self.lua", "local again = require \"self\"\nreturn {}\n");
  CHECK(r.error_of("require \"self\"\n") == "self.lua:1: require: 'self' requires itself: self -> self");
  // A failed load leaves nothing behind: the next require of another module works.
  CHECK(r.error_of("pcall(require, \"self\")\nlocal go = require \"imgbuild.go\"\n") == "");
}

TEST_CASE("an error inside a cached() builder is the builder's line", "[recipe][robustness]") {
  RecipeRun r;
  r.exists = [](const std::string&) { return false; };
  CHECK(r.error_of("local b = cached(\"registry.example.com/b:1\", function()\n"
                   "  error(\"no builder today\")\n"
                   "end)\n") == "recipe.lua:2: no builder today");
  CHECK(r.error_of("local b = cached(\"registry.example.com/b:1\", function()\n"
                   "  return scratch:env(42)\n"
                   "end)\n") == "recipe.lua:2: env: expected a table of NAME = value, got number");
}

TEST_CASE("a recipe cannot break the engine's own checks", "[recipe][robustness]") {
  RecipeRun r;
  CHECK(r.error_of("type, pairs, ipairs, error, tostring = nil, nil, nil, nil, nil\n"
                   "string.format, table.concat, string.sub = nil, nil, nil\n"
                   "image(\"a\", scratch:env(5))\n") ==
        "recipe.lua:3: env: expected a table of NAME = value, got number");
  // The recipe's own string methods still work, and so do the ones it adds.
  CHECK(r.error_of("function string.shout(s) return s:upper() .. \"!\" end\n"
                   "assert((\"hi\"):shout() == \"HI!\")\n") == "");
  CHECK(r.error_of("local i = require \"imgbuild.internal\"\n")
            .starts_with("recipe.lua:1: module 'imgbuild.internal' not found:"));
  CHECK(r.error_of("local go = select(2, require \"imgbuild.go\")\ngo.fail = nil\n") ==
        "recipe.lua:2: the engine's internal functions are read-only");
  CHECK(r.error_of("assert(debug.getregistry == nil and debug.getupvalue == nil and debug.sethook == nil)\n"
                   "assert(debug.traceback and debug.getinfo(1, \"l\").currentline == 2)\n") == "");
  CHECK(r.error_of("os.setlocale(\"C.UTF-8\")\n") ==
        "recipe.lua:1: os.setlocale: a recipe cannot change imgbuild's locale (it would change how numbers are "
        "written)");
  CHECK(r.error_of("assert(os.setlocale())\n") == "");
}

TEST_CASE("io and os stay available to recipes", "[recipe][robustness]") {
  RecipeRun r;
  r.file("VERSION", "1.4.2\n");
  CHECK(r.error_of("local f = assert(io.open(\"" + r.dir().string() +
                   "/VERSION\"))\n"
                   "local v = f:read(\"l\")\nf:close()\n"
                   "assert(v == \"1.4.2\" and os.getenv(\"PATH\") and os.time() > 0)\n"
                   "image(\"a\", scratch:label { version = v }:entrypoint { \"/x\" })\n") == "");
}
