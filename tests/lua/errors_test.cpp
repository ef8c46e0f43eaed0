// Tier 2: recipes that are wrong in the ways users get them wrong. Each error
// is one line naming the recipe file and line; these assert the exact text.
#include <catch2/catch.hpp>

#include <sys/stat.h>

#include "recipe_harness.hpp"

using imgbuild::test::RecipeRun;

TEST_CASE("a syntax error names its line", "[recipe][errors]") {
  RecipeRun r;
  CHECK(r.error_of("local x = 1\nimage(\"a\", scratch:env { A = })\n") == "recipe.lua:2: unexpected symbol near '}'");
}

TEST_CASE("a wrong argument type names the method and the line", "[recipe][errors]") {
  RecipeRun r;
  CHECK(r.error_of("image(\"a\",\n  scratch:env(5))\n") ==
        "recipe.lua:2: env: expected a table of NAME = value, got number");
  CHECK(r.error_of("image(\"a\", scratch:entrypoint \"/app\")\n") ==
        "recipe.lua:1: entrypoint: expected a list of strings such as { \"/app\" }, got string");
  CHECK(r.error_of("image(\"a\", scratch:expose(70000))\n") ==
        "recipe.lua:1: expose: invalid port 70000 (expected 1-65535, optionally /tcp, /udp or /sctp)");
  CHECK(r.error_of("image(\"a\", scratch:env { PATH = true })\n") ==
        "recipe.lua:1: env: value of PATH is boolean, not a string");
  CHECK(r.error_of("image(\"a\", scratch:copy(\"f\", \"/f\", { chmod = 755 }))\n") ==
        "recipe.lua:1: copy: chmod: give the mode as an octal string such as \"0755\" (the number 755 would be "
        "read as decimal)");
  CHECK(r.error_of("image(\"a\", scratch:copy(\"f\", \"/f\", { chown = \"app\" }))\n") ==
        "recipe.lua:1: copy: chown 'app': user names need the image's /etc/passwd; give numeric ids such as "
        "\"1000:1000\"");
  CHECK(r.error_of("image(\"a\", 42)\n") == "recipe.lua:1: image: expected an image as second argument, got number");
  CHECK(r.error_of("image(\"A b\", scratch)\n") ==
        "recipe.lua:1: image: invalid name 'A b' (use lowercase letters, digits, '.', '_', '-' and '/')");
}

TEST_CASE("an unknown option key is rejected with a hint", "[recipe][errors]") {
  RecipeRun r;
  r.file("f", "x");
  CHECK(r.error_of("image(\"a\", scratch:copy(\"f\", \"/f\", { chwon = \"1:1\" }))\n") ==
        "recipe.lua:1: copy: unknown option 'chwon' (did you mean 'chown'?)");
  CHECK(r.error_of("image(\"a\", scratch:copy(\"f\", \"/f\", { form = 1 }))\n") ==
        "recipe.lua:1: copy: unknown option 'form' (did you mean 'from'?)");
  CHECK(r.error_of("image(\"a\", scratch:copy(\"f\", \"/f\", { from = \"builder\" }))\n") ==
        "recipe.lua:1: copy: from: expected an image, got string");
  CHECK(r.error_of("image(\"a\", scratch:copy(\"f\", \"/f\", { from = scratch }))\n") ==
        "recipe.lua:1: copy: no such file in the source image: f");
  CHECK(r.error_of("local go = require \"imgbuild.go\"\n"
                   "image(\"a\", scratch:copy(go.build { mian = \".\" }, \"/app\"))\n") ==
        "recipe.lua:2: go.build: unknown option 'mian' (did you mean 'main'?)");
}

TEST_CASE("a missing source file is reported at the copy's line", "[recipe][errors]") {
  RecipeRun r;
  r.file("go.mod", "module x\n");
  CHECK(r.error_of("image(\"a\", scratch\n"
                   "  :workdir \"/src\"\n"
                   "  :copy({ \"go.mod\", \"go.sm\" }, \"./\"))\n") ==
        "recipe.lua:3: copy: no such file in the build context: go.sm");
  CHECK(r.error_of("image(\"a\", scratch:copy(\"../etc/passwd\", \"/x\"))\n") ==
        "recipe.lua:1: copy: ../etc/passwd: outside the build context");
  CHECK(r.error_of("image(\"a\", scratch:copy({ \"go.mod\", \"recipe.lua\" }, \"/src\"))\n") ==
        "recipe.lua:1: copy: copying 2 sources to /src: the destination must be a directory ending in /");
}

TEST_CASE("files excluded by .dockerignore are not in the context", "[recipe][errors]") {
  RecipeRun r;
  r.file(".dockerignore", "secrets/\n*.key\n");
  r.file("secrets/token", "s3cr3t");
  r.file("tls.key", "k");
  CHECK(r.error_of("image(\"a\", scratch:copy(\"tls.key\", \"/k\"))\n") ==
        "recipe.lua:1: copy: no such file in the build context: tls.key");
  CHECK(r.error_of("image(\"a\", scratch:copy(\"secrets/token\", \"/t\"))\n") ==
        "recipe.lua:1: copy: no such file in the build context: secrets/token");
}

TEST_CASE("a named pipe in the context is refused at once, at the line of the hash or the copy", "[recipe][errors]") {
  RecipeRun r;
  r.file("examples/x/file", "data\n");
  REQUIRE(::mkfifo((r.dir() / "examples/x/pipe").c_str(), 0644) == 0);
  const std::string pipe = "examples/x/pipe is a named pipe: a build context holds only files, folders and symlinks";
  // No pipe is opened: were one, this test would wait for a writer for ever.
  CHECK(r.error_of("local a = hash \"examples/x/file\"\nlocal b = hash \"examples/x/pipe\"\n") ==
        "recipe.lua:2: hash: " + pipe);
  CHECK(r.error_of("local facts = inspect \"examples/x/pipe\"\n") == "recipe.lua:1: inspect: " + pipe);
  CHECK(r.error_of("image(\"a\", scratch\n  :copy(\"examples/x/pipe\", \"/p\"))\n") == "recipe.lua:2: copy: " + pipe);
  CHECK(r.error_of("image(\"a\", scratch\n  :copy(\"examples/*/p*\", \"/p/\"))\n") == "recipe.lua:2: copy: " + pipe);
  CHECK(r.error_of("image(\"a\", scratch\n  :copy(\"examples\", \"/e/\"))\n") == "recipe.lua:2: copy: " + pipe);
  CHECK(r.error_of("image(\"a\", scratch\n\n  :copy(\".\", \"/all/\"))\n") == "recipe.lua:3: copy: " + pipe);
  // Excluded by .dockerignore, it is not in the context: no error.
  r.file(".dockerignore", "examples/x/pipe\n");
  CHECK(r.error_of("image(\"a\", scratch:copy(\"examples\", \"/e/\"))\n").empty());
  CHECK(r.error_of("local b = hash \"examples/x/pipe\"\n") ==
        "recipe.lua:1: hash: no such file in the build context: examples/x/pipe");
}

TEST_CASE("a context file whose name is not UTF-8 is reported at the copy's line", "[recipe][errors]") {
  RecipeRun r;
  r.file("site/caf\xe9.html", "<p>");
  CHECK(r.error_of("image(\"a\", scratch\n  :copy(\"site\", \"/www/\"))\n") ==
        "recipe.lua:2: copy: /www/caf\xef\xbf\xbd.html: the name is not valid UTF-8");
}

TEST_CASE("a typo in a method or global name gets a suggestion", "[recipe][errors]") {
  RecipeRun r;
  CHECK(r.error_of("image(\"a\", scratch\n  :cpy(\"f\", \"/f\"))\n") ==
        "recipe.lua:2: image has no method 'cpy' (did you mean 'copy'?)");
  CHECK(r.error_of("image(\"a\", scrach)\n") == "recipe.lua:1: unknown name 'scrach' (did you mean 'scratch'?)");
  CHECK(r.error_of("imgae(\"a\", scratch)\n") == "recipe.lua:1: unknown name 'imgae' (did you mean 'image'?)");
  CHECK(r.error_of("local b = exsts \"golang:1.22\"\n") ==
        "recipe.lua:1: unknown name 'exsts' (did you mean 'exists'?)");
}

TEST_CASE("from and push check references and options at the recipe line", "[recipe][errors]") {
  RecipeRun r;
  CHECK(r.error_of("image(\"a\", from \"Alpine:3.20\")\n")
            .starts_with("recipe.lua:1: from: invalid image reference \"Alpine:3.20\": "));
  CHECK(r.error_of("image(\"a\", from(\"alpine\", { platfrom = \"linux/arm64\" }))\n") ==
        "recipe.lua:1: from: unknown option 'platfrom' (did you mean 'platform'?)");
  CHECK(r.error_of("image(\"a\", from(\"alpine\", { platform = \"arm64\" }))\n") ==
        "recipe.lua:1: from: invalid platform 'arm64' (expected os/arch[/variant], e.g. linux/arm64)");
  CHECK(r.error_of("image(\"a\", from(nil))\n") == "recipe.lua:1: from: expected a non-empty string, got nil");
  CHECK(r.error_of("\npush(\"alpine\", \"localhost:5000/a:1\")\n") ==
        "recipe.lua:2: push: expected an image as first argument, got string");
  CHECK(r.error_of("push(scratch, \"localhost:5000/a@sha256:" + std::string(64, 'a') + "\")\n") ==
        "recipe.lua:1: push: 'localhost:5000/a@sha256:" + std::string(64, 'a') + "' names a digest; push to a tag");
  CHECK(r.error_of("push(scratch, \"localhost:5000/A:1\")\n")
            .starts_with("recipe.lua:1: push: invalid image reference \"localhost:5000/A:1\": "));
  CHECK(r.error_of("push(scratch, {})\n") == "recipe.lua:1: push: the list of references is empty");
  CHECK(r.error_of("push(scratch, { \"localhost:5000/a:1\", 2 })\n") ==
        "recipe.lua:1: push: item 2 is number, not a string");
  CHECK(r.error_of("push(scratch, { \"localhost:5000/a:1\", \"localhost:5000/a@sha256:" + std::string(64, 'a') +
                   "\" })\n") == "recipe.lua:1: push: reference 2: 'localhost:5000/a@sha256:" + std::string(64, 'a') +
                                     "' names a digest; push to a tag");
  CHECK(r.error_of("push(scratch, { \"localhost:5000/a:1\", \"localhost:5000/A:1\" })\n")
            .starts_with("recipe.lua:1: push: reference 2: invalid image reference \"localhost:5000/A:1\": "));
}

TEST_CASE("run checks its command and options at the recipe line", "[recipe][errors]") {
  RecipeRun r;
  CHECK(r.error_of("image(\"a\", scratch:run \"\")\n") == "recipe.lua:1: run: the command is empty");
  CHECK(r.error_of("image(\"a\", scratch:run {})\n") == "recipe.lua:1: run: the argv list is empty");
  CHECK(r.error_of("image(\"a\", scratch:run { \"go\", 1 })\n") ==
        "recipe.lua:1: run: argv[2]: expected a string, got number");
  CHECK(r.error_of("image(\"a\", scratch:run { \"go\", netwrok = \"none\" })\n") ==
        "recipe.lua:1: run: unknown option 'netwrok' (did you mean 'network'?)");
  CHECK(r.error_of("image(\"a\", scratch:run(\"make\", { network = \"bridge\" }))\n") ==
        "recipe.lua:1: run: network: expected \"default\", \"host\" or \"none\", got 'bridge'");
  CHECK(r.error_of("image(\"a\", scratch:run(\"make\", { cache = { \"go-build\" } }))\n") ==
        "recipe.lua:1: run: cache: 'go-build' must be an absolute path in the image");
  CHECK(r.error_of("image(\"a\", scratch:run(\"make\", { secrets = { [\"a b\"] = \"f\" } }))\n") ==
        "recipe.lua:1: run: secrets: invalid name 'a b' (letters, digits, '.', '_' or '-')");
  CHECK(r.error_of("image(\"a\", scratch:run({ \"make\" }, { env = {} }))\n") ==
        "recipe.lua:1: run: give options inside the argv table, or use run(\"command\", { ... })");
  CHECK(r.error_of("image(\"a\", scratch:copy(\"/x\", \"/x\", { from = scratch:run \"true\", static = 1 }))\n") ==
        "recipe.lua:1: copy: static: expected true or false, got number");
}

TEST_CASE("methods check what they are called on", "[recipe][errors]") {
  RecipeRun r;
  CHECK(r.error_of("local x = 1\nimage(\"a\", scratch.env({ A = \"1\" }))\n") ==
        "recipe.lua:2: env: called on table; call it as a method: img:env(...)");
  CHECK(r.error_of("scratch.x = 1\n") == "recipe.lua:1: images are immutable: every method returns a new image");
}

TEST_CASE("params need a value or a default", "[recipe][errors]") {
  RecipeRun r;
  CHECK(r.error_of("local v = param(\"VERSION\")\n") ==
        "recipe.lua:1: param 'VERSION' has no default; pass --set VERSION=VALUE");
  CHECK(r.error_of("local v = param(\"VERSION\")\nimage(\"a\", scratch:label { v = v })\n", {{"VERSION", "1.2"}}) ==
        "");
}

TEST_CASE("an image name can be defined once", "[recipe][errors]") {
  RecipeRun r;
  CHECK(r.error_of("image(\"a\", scratch)\n\nimage(\"a\", scratch:user \"1\")\n") ==
        "recipe.lua:3: image: 'a' is already defined at recipe.lua:1");
}

TEST_CASE("errors raised by the recipe's own code keep Lua's location", "[recipe][errors]") {
  RecipeRun r;
  CHECK(r.error_of("local t = nil\nlocal x = t.field\n") == "recipe.lua:2: attempt to index a nil value (local 't')");
  CHECK(r.error_of("error(\"stop here\")\n") == "recipe.lua:1: stop here");
  CHECK(r.error_of("error({})\n") == "(error object is a table value)");
  CHECK(r.error_of("os.exit(3)\n") ==
        "recipe.lua:1: os.exit: a recipe cannot exit imgbuild; call error(\"...\") to stop the build");
}

TEST_CASE("errors inside a user's module point into that module", "[recipe][errors]") {
  RecipeRun r;
  r.file("lib/service.lua",
         "local M = {}\n"
         "function M.with_port(img, port)\n"
         "  return img:expose(port)\n"
         "end\n"
         "return M\n");
  CHECK(r.error_of("local svc = require \"lib.service\"\nimage(\"a\", svc.with_port(scratch, \"http\"))\n") ==
        "lib/service.lua:3: expose: invalid port 'http' (expected 1-65535, optionally /tcp, /udp or /sctp)");
  CHECK(r.error_of("local m = require \"nope\"\n").starts_with("recipe.lua:1: module 'nope' not found:"));
}

TEST_CASE("go.build stays inside the build context", "[recipe][errors]") {
  RecipeRun r;
  CHECK(r.error_of("local go = require \"imgbuild.go\"\nlocal f = go.build { main = \"cmd/../../x\" }\n") ==
        "recipe.lua:2: go.build: main: 'cmd/../../x' is outside the build context");
  CHECK(r.error_of("local go = require \"imgbuild.go\"\nlocal f = go.build { module = \"/src\" }\n") ==
        "recipe.lua:2: go.build: module: '/src' must be relative to the build context");
  std::filesystem::create_symlink("/tmp", r.dir() / "escape");
  CHECK(r.error_of("local go = require \"imgbuild.go\"\n"
                   "image(\"a\", scratch:copy(go.build { main = \"escape\" }, \"/app\"))\n") ==
        "recipe.lua:2: go build escape: escape: outside the build context");
}

TEST_CASE("param values take the type of their default", "[recipe][errors]") {
  RecipeRun r;
  CHECK(r.error_of("local n = param(\"REPLICAS\", 3)\nassert(n == 5, type(n))\n", {{"REPLICAS", "5"}}) == "");
  CHECK(r.error_of("local n = param(\"REPLICAS\", 3)\n", {{"REPLICAS", "five"}}) ==
        "recipe.lua:1: param 'REPLICAS': --set REPLICAS=five is not an integer");
  CHECK(r.error_of("local b = param(\"DEBUG\", false)\nassert(b == true)\n", {{"DEBUG", "true"}}) == "");
}

TEST_CASE("recipes load text chunks only", "[recipe][errors]") {
  RecipeRun r;
  CHECK(r.error_of("local f, err = load(string.dump(function() end))\nassert(f == nil)\nerror(err)\n") ==
        "recipe.lua:3: attempt to load a binary chunk (mode is 't')");
}

TEST_CASE("a copy's destination through a file of the image fails at the copy's line", "[recipe][errors]") {
  RecipeRun r;
  r.file("passwd", "root\n");
  CHECK(r.error_of("image(\"a\", scratch\n"
                   "  :copy(\"passwd\", \"/etc/passwd\")\n"
                   "  :copy(\"passwd\", \"/etc/passwd/x\"))\n") ==
        "recipe.lua:3: copy: copying to /etc/passwd/x: /etc/passwd: a file in the image stands on the way");
}

TEST_CASE(":add of a URL needs https (or loopback http) and a checksum, at the line", "[recipe][errors]") {
  RecipeRun r;
  const std::string sum = "sha256:" + std::string(64, 'a');
  CHECK(r.error_of("image(\"a\", scratch\n"
                   "  :add(\"https://example.com/tool.tar.gz\", \"/opt/\"))\n") ==
        "recipe.lua:2: add: https://example.com/tool.tar.gz: a URL needs its checksum, as in { checksum = "
        "\"sha256:...\" }: the file is checked against it");
  CHECK(
      r.error_of("image(\"a\", scratch:add(\"http://example.com/x\", \"/x\", { checksum = \"" + sum + "\" }))\n") ==
      "recipe.lua:1: add: http://example.com/x: only https URLs are fetched (http only from this machine's loopback)");
  CHECK(r.error_of("image(\"a\", scratch:add(\"ftp://127.0.0.1/x\", \"/x\", { checksum = \"" + sum + "\" }))\n") ==
        "recipe.lua:1: add: ftp://127.0.0.1/x: only https URLs are fetched (http only from this machine's loopback)");
  CHECK(r.error_of("image(\"a\", scratch:add(\"https://h/x\", \"/x\", { checksum = \"md5:00\" }))\n") ==
        "recipe.lua:1: add: checksum: expected \"sha256:\" and 64 lower-case hex digits, got 'md5:00'");
  CHECK(r.error_of("image(\"a\", scratch:add({ \"https://h/x\", \"b\" }, \"/x/\", { checksum = \"" + sum +
                   "\" }))\n") == "recipe.lua:1: add: https://h/x: a URL is added on its own: one :add per URL");
  r.file("a.txt", "a");
  CHECK(r.error_of("image(\"a\", scratch:add(\"a.txt\", \"/x\", { checksum = \"" + sum + "\" }))\n") ==
        "recipe.lua:1: add: checksum is for a URL source: a local file is known by its content");
  CHECK(r.error_of("image(\"a\", scratch:add({ \"a.txt\", \"a.txt\" }, \"/x\"))\n") ==
        "recipe.lua:1: add: copying 2 sources to /x: the destination must be a directory ending in /");
}
