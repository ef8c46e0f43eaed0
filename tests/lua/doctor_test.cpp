// Tier 2: the scratch doctor and `:copy{ static = true }` on real binaries,
// compiled at test time with the machine's Go and C toolchains.
#include <catch2/catch.hpp>

#include <cstdlib>

#include "recipe_harness.hpp"

using imgbuild::test::RecipeRun;
using Lines = std::vector<std::string>;

namespace {

const char* kGoMod = "module example.com/svc\n\ngo 1.19\n";

/// A Go service that makes TLS connections (net/http links crypto/x509).
const char* kTlsClient = "package main\n\nimport \"net/http\"\n\nfunc main() { http.Get(\"https://example.com\") }\n";

/// A Go program that loads a time zone by name.
const char* kZoneUser =
    "package main\n\nimport (\"fmt\"; \"time\")\n\nfunc main() { l, _ := time.LoadLocation(\"Europe/Berlin\"); "
    "fmt.Println(l) }\n";

/// A Go program that calls a tiny C function: built with CGO_ENABLED=1 it links
/// libc dynamically.
const char* kCgoProgram =
    "package main\n\n// int answer(void) { return 42; }\nimport \"C\"\n\nimport \"fmt\"\n\n"
    "func main() { fmt.Println(C.answer()) }\n";

/// A CPU other than this host's, for the "built for another CPU" cases: its Go
/// name (GOARCH) and the ELF machine name the doctor reports.
struct ForeignCpu {
  std::string goarch, machine;
};
ForeignCpu foreign_cpu() {
  return imgbuild::Platform::host().architecture == "arm64" ? ForeignCpu{"amd64", "x86_64"}
                                                            : ForeignCpu{"arm64", "aarch64"};
}

/// The platform of an image built here.
const std::string kHostPlatform = imgbuild::Platform::host().str();

/// Compiles a dynamic C program into the context as `name`.
void c_program(RecipeRun& r, const std::string& name, const std::string& flags = "") {
  r.file(name + ".c", "int main(void) { return 0; }\n");
  std::string cmd =
      "cc " + flags + " -o '" + (r.dir() / name).string() + "' '" + (r.dir() / (name + ".c")).string() + "'";
  REQUIRE(std::system(cmd.c_str()) == 0);
}

/// Copies a host file into the context (loaders and libraries for the "with
/// its libraries" case).
void host_file(RecipeRun& r, const std::string& from, const std::string& name) {
  std::filesystem::copy_file(std::filesystem::canonical(from), r.dir() / name);
}

}  // namespace

TEST_CASE("the doctor rejects a dynamic binary in scratch and accepts it with its loader and libraries",
          "[recipe][doctor][x86_64]") {
  RecipeRun r;
  c_program(r, "app");
  CHECK(r.findings_of("image(\"a\", scratch:copy(\"app\", \"/app\"):user \"65534\"\n"
                      "  :entrypoint { \"/app\" })\n") ==
        Lines{"error recipe.lua:2: entrypoint /app: needs the loader /lib64/ld-linux-x86-64.so.2, which the image "
              "lacks (build it static, or copy the loader and libraries in)"});

  host_file(r, "/lib64/ld-linux-x86-64.so.2", "ld-linux-x86-64.so.2");
  CHECK(r.findings_of("image(\"a\", scratch:copy(\"app\", \"/app\"):user \"65534\"\n"
                      "  :copy(\"ld-linux-x86-64.so.2\", \"/lib64/\")\n"
                      "  :entrypoint { \"/app\" })\n") ==
        Lines{"error recipe.lua:3: entrypoint /app: needs libc.so.6, which the image lacks"});

  host_file(r, "/lib/x86_64-linux-gnu/libc.so.6", "libc.so.6");
  CHECK(r.findings_of("image(\"a\", scratch:copy(\"app\", \"/app\"):user \"65534\"\n"
                      "  :copy(\"ld-linux-x86-64.so.2\", \"/lib64/\")\n"
                      "  :copy(\"libc.so.6\", \"/lib/x86_64-linux-gnu/\")\n"
                      "  :entrypoint { \"/app\" })\n")
            .empty());
}

TEST_CASE("the doctor follows the image's own symlinks to the loader", "[recipe][doctor][x86_64]") {
  RecipeRun r;
  c_program(r, "app");
  host_file(r, "/lib64/ld-linux-x86-64.so.2", "ld.so");
  host_file(r, "/lib/x86_64-linux-gnu/libc.so.6", "libc.so.6");
  std::filesystem::create_directories(r.dir() / "root/lib64");
  std::filesystem::create_symlink("../lib/ld.so", r.dir() / "root/lib64/ld-linux-x86-64.so.2");
  CHECK(r.findings_of("image(\"a\", scratch:user \"1\":copy(\"app\", \"/app\")\n"
                      "  :copy({ \"ld.so\", \"libc.so.6\" }, \"/lib/\")\n"
                      "  :copy(\"root\", \"/\")\n"
                      "  :entrypoint { \"/app\" })\n")
            .empty());
}

TEST_CASE("the doctor rejects a binary built for another CPU", "[recipe][doctor]") {
  RecipeRun r;
  r.file("go.mod", kGoMod);
  r.file("main.go", "package main\n\nfunc main() {}\n");
  const ForeignCpu foreign = foreign_cpu();
  CHECK(r.findings_of("local go = require \"imgbuild.go\"\n"
                      "image(\"a\", scratch:user \"1\"\n"
                      "  :copy(go.build { env = { GOARCH = \"" +
                      foreign.goarch +
                      "\" } }, \"/app\")\n"
                      "  :entrypoint { \"/app\" })\n") ==
        Lines{"error recipe.lua:4: entrypoint /app: built for " + foreign.machine + ", image is " + kHostPlatform});
}

TEST_CASE("the doctor rejects a missing or unusable entrypoint", "[recipe][doctor]") {
  RecipeRun r;
  r.file("run.sh", "#!/bin/sh\necho hi\n");
  std::filesystem::permissions(r.dir() / "run.sh", std::filesystem::perms::owner_exec,
                               std::filesystem::perm_options::add);
  r.file("data.txt", "x\n");
  CHECK(r.findings_of("image(\"a\", scratch:user \"1\"\n  :entrypoint { \"/app\" })\n") ==
        Lines{"error recipe.lua:2: entrypoint /app: no such file in the image"});
  CHECK(r.findings_of("image(\"a\", scratch:user \"1\":cmd { \"server\" })\n") ==
        Lines{"error recipe.lua:1: entrypoint server: not found in the image's PATH"});
  CHECK(r.findings_of("image(\"a\", scratch:user \"1\":copy(\"data.txt\", \"/data.txt\")\n"
                      "  :entrypoint { \"/data.txt\" })\n") ==
        Lines{"error recipe.lua:2: entrypoint /data.txt: not executable (mode 0644)"});
  CHECK(r.findings_of("image(\"a\", scratch:user \"1\":copy(\"run.sh\", \"/run.sh\")\n"
                      "  :entrypoint { \"/run.sh\" })\n") ==
        Lines{"error recipe.lua:2: entrypoint /run.sh: its interpreter /bin/sh is not in the image"});
  CHECK(r.findings_of("image(\"data\", scratch:user \"1\":copy(\"data.txt\", \"/data.txt\"))\n") ==
        Lines{"warning[entrypoint] recipe.lua:1: the image has no entrypoint or cmd: it cannot run on its own"});
}

TEST_CASE("the doctor warns about TLS without CA certificates, and not after imgbuild.certs", "[recipe][doctor]") {
  RecipeRun r;
  r.file("go.mod", kGoMod);
  r.file("main.go", kTlsClient);
  CHECK(r.findings_of("local go = require \"imgbuild.go\"\n"
                      "image(\"a\", scratch:copy(go.build {}, \"/app\")\n"
                      "  :entrypoint { \"/app\" })\n") ==
        Lines{"warning[root] recipe.lua:2: the image runs as root: set :user (for example \"65534\", nobody)",
              "warning[tls] recipe.lua:3: entrypoint /app links crypto/x509 but the image has no CA certificates, "
              "so TLS connections will fail (copy in require(\"imgbuild.certs\").bundle)"});
  CHECK(r.findings_of("local go = require \"imgbuild.go\"\nlocal certs = require \"imgbuild.certs\"\n"
                      "image(\"a\", scratch:copy(go.build {}, \"/app\"):user \"65534\"\n"
                      "  :copy(certs.bundle, \"/etc/ssl/certs/ca-certificates.crt\")\n"
                      "  :entrypoint { \"/app\" })\n")
            .empty());
  CHECK(r.findings_of("local go = require \"imgbuild.go\"\n"
                      "image(\"a\", scratch:copy(go.build {}, \"/app\"):doctor { ignore = { \"tls\", \"root\" } }\n"
                      "  :entrypoint { \"/app\" })\n")
            .empty());
}

TEST_CASE("the doctor warns about time zones without zoneinfo, and not after imgbuild.tzdata", "[recipe][doctor]") {
  RecipeRun r;
  r.file("go.mod", kGoMod);
  r.file("main.go", kZoneUser);
  CHECK(r.findings_of("local go = require \"imgbuild.go\"\n"
                      "image(\"a\", scratch:copy(go.build {}, \"/app\"):user \"1\"\n"
                      "  :entrypoint { \"/app\" })\n") ==
        Lines{"warning[tzdata] recipe.lua:3: entrypoint /app loads time zones but the image has no "
              "/usr/share/zoneinfo and the binary embeds no tzdata (copy in require(\"imgbuild.tzdata\").zoneinfo, "
              "or import _ \"time/tzdata\")"});
  CHECK(r.findings_of("local go = require \"imgbuild.go\"\nlocal tzdata = require \"imgbuild.tzdata\"\n"
                      "image(\"a\", scratch:copy(go.build {}, \"/app\"):user \"1\"\n"
                      "  :copy(tzdata.zoneinfo, \"/usr/share/zoneinfo/\")\n"
                      "  :entrypoint { \"/app\" })\n")
            .empty());
}

TEST_CASE("copy { static = true } refuses dynamic binaries and other CPUs at the copy's line",
          "[recipe][doctor][x86_64]") {
  RecipeRun r;
  c_program(r, "dyn");
  c_program(r, "stat", "-static");
  CHECK(r.error_of("image(\"a\", scratch\n  :copy(\"dyn\", \"/app\", { static = true }))\n") ==
        "recipe.lua:2: copy: /app: not a static ELF binary (interpreter /lib64/ld-linux-x86-64.so.2)");
  CHECK(r.error_of("image(\"a\", scratch:copy(\"stat\", \"/app\", { static = true }))\n") == "");
  r.file("go.mod", kGoMod);
  r.file("main.go", "package main\n\nfunc main() {}\n");
  const ForeignCpu foreign = foreign_cpu();
  CHECK(r.error_of("local go = require \"imgbuild.go\"\n"
                   "image(\"a\", scratch:copy(go.build { env = { GOARCH = \"" +
                   foreign.goarch + "\" } }, \"/app\", { static = true }))\n") ==
        "recipe.lua:2: copy: /app: built for " + foreign.machine + ", image is " + kHostPlatform);
  CHECK(r.error_of("image(\"a\", scratch:copy(\"dyn\", \"/app\", { static = 1 }))\n") ==
        "recipe.lua:1: copy: static: expected true or false, got number");
}

TEST_CASE("inspect() gives a recipe the ELF facts of a context file", "[recipe][doctor][x86_64]") {
  RecipeRun r;
  c_program(r, "dyn");
  CHECK(r.error_of("local f = inspect(\"dyn\")\n"
                   "assert(f.elf and f.linking == \"dynamic\" and not f.static, \"linking\")\n"
                   "assert(f.interpreter == \"/lib64/ld-linux-x86-64.so.2\", \"interpreter\")\n"
                   "assert(f.needed[1] == \"libc.so.6\" and f.architecture == \"" +
                   imgbuild::Platform::host().architecture +
                   "\", \"needed\")\n"
                   "assert(f.go == nil, \"go\")\n") == "");
  CHECK(r.error_of("local f = inspect(\"nope\")\n") ==
        "recipe.lua:1: inspect: no such file in the build context: nope");
  CHECK(r.error_of("image(\"a\", scratch:doctor { ignore = { \"tsl\" } })\n") ==
        "recipe.lua:1: doctor: unknown warning 'tsl' (did you mean 'tls'?) (known: cgo, entrypoint, root, tls, "
        "tzdata)");
}

TEST_CASE("cgo binaries: copy { static = true } names CGO_ENABLED=1, the doctor the missing loader",
          "[recipe][doctor][x86_64]") {
  RecipeRun r;
  r.file("go.mod", kGoMod);
  r.file("main.go", kCgoProgram);
  CHECK(r.error_of("local go = require \"imgbuild.go\"\n"
                   "local app = go.build { static = false, env = { CGO_ENABLED = \"1\" } }\n"
                   "image(\"a\", scratch\n"
                   "  :copy(app, \"/app\", { static = true }))\n") ==
        "recipe.lua:4: copy: /app: not a static ELF binary (interpreter /lib64/ld-linux-x86-64.so.2, "
        "CGO_ENABLED=1)");
  CHECK(r.findings_of("local go = require \"imgbuild.go\"\n"
                      "local app = go.build { static = false, env = { CGO_ENABLED = \"1\" } }\n"
                      "image(\"a\", scratch:copy(app, \"/app\"):user \"65534\"\n"
                      "  :entrypoint { \"/app\" })\n") ==
        Lines{"error recipe.lua:4: entrypoint /app: needs the loader /lib64/ld-linux-x86-64.so.2, which the image "
              "lacks (build it static, or copy the loader and libraries in)"});
}

TEST_CASE("a malformed ELF program is a located error, named by its image path", "[recipe][doctor]") {
  RecipeRun r;
  r.file("app", std::string("\x7f"
                            "ELF\x02\x01\x01",
                            7));
  std::filesystem::permissions(r.dir() / "app", std::filesystem::perms::owner_exec, std::filesystem::perm_options::add);
  CHECK(r.findings_of("image(\"a\", scratch:user \"1\":workdir \"/srv\":copy(\"app\", \"app\")\n"
                      "  :entrypoint { \"./app\" })\n") ==
        Lines{"error recipe.lua:2: entrypoint /srv/app: truncated ELF header"});
  CHECK(r.error_of("image(\"b\", scratch:copy(\"app\", \"/app\", { static = true }))\n") ==
        "recipe.lua:1: copy: /app: truncated ELF header");
}

TEST_CASE("the doctor examines every program a step put where programs go, at that step's line",
          "[recipe][doctor][x86_64]") {
  RecipeRun r;
  c_program(r, "dyn");
  c_program(r, "stat", "-static");
  const std::string loader_missing =
      ": needs the loader /lib64/ld-linux-x86-64.so.2, which the image lacks (build it static, or copy the loader "
      "and libraries in)";
  // A tool in a bin folder, and one beside the entrypoint (the seed's migration tool).
  CHECK(r.findings_of("image(\"a\", scratch:user \"1\":copy(\"stat\", \"/app/server\")\n"
                      "  :copy(\"dyn\", \"/usr/local/bin/tool\")\n"
                      "  :copy(\"dyn\", \"/app/migrate\")\n"
                      "  :entrypoint { \"/app/server\" })\n") ==
        Lines{"error recipe.lua:2: /usr/local/bin/tool" + loader_missing,
              "error recipe.lua:3: /app/migrate" + loader_missing});
  // Not executable, or not where programs are kept: data, not a program.
  CHECK(r.findings_of("image(\"a\", scratch:user \"1\":copy(\"stat\", \"/app\")\n"
                      "  :copy(\"dyn\", \"/usr/bin/tool\", { chmod = \"0644\" })\n"
                      "  :copy(\"dyn\", \"/srv/data/tool\")\n"
                      "  :entrypoint { \"/app\" })\n")
            .empty());
  // An image with no entrypoint still has its programs examined.
  CHECK(r.findings_of(
            "image(\"a\", scratch:user \"1\":copy(\"dyn\", \"/bin/\"):doctor { ignore = { \"entrypoint\" } })\n") ==
        Lines{"error recipe.lua:1: /bin/dyn" + loader_missing});
  // A program for another CPU.
  r.file("go.mod", kGoMod);
  r.file("main.go", "package main\n\nfunc main() {}\n");
  const ForeignCpu foreign = foreign_cpu();
  CHECK(
      r.findings_of("local go = require \"imgbuild.go\"\n"
                    "image(\"a\", scratch:user \"1\":copy(\"stat\", \"/app\")\n"
                    "  :copy(go.build { env = { GOARCH = \"" +
                    foreign.goarch +
                    "\" } }, \"/usr/local/bin/helper\")\n"
                    "  :entrypoint { \"/app\" })\n") ==
      Lines{"error recipe.lua:3: /usr/local/bin/helper: built for " + foreign.machine + ", image is " + kHostPlatform});
}

TEST_CASE("the doctor warns about a Go binary built without cgo that links a cgo-only module", "[recipe][doctor]") {
  RecipeRun r;
  // A stand-in for go-sqlite3 under its module path, through a local replace.
  r.file("sqlite3/go.mod", "module github.com/mattn/go-sqlite3\n\ngo 1.19\n");
  r.file("sqlite3/sqlite3.go", "package sqlite3\n\nfunc Open() {}\n");
  r.file("go.mod",
         "module example.com/svc\n\ngo 1.19\n\nrequire github.com/mattn/go-sqlite3 v1.14.22\n\n"
         "replace github.com/mattn/go-sqlite3 => ./sqlite3\n");
  r.file("main.go", "package main\n\nimport \"github.com/mattn/go-sqlite3\"\n\nfunc main() { sqlite3.Open() }\n");
  const std::string stub =
      " was built with CGO_ENABLED=0 and links github.com/mattn/go-sqlite3: without cgo it is a stub whose every "
      "connection fails (\"go-sqlite3 requires cgo to work\"); build with CGO_ENABLED=1 and link statically, or use "
      "modernc.org/sqlite, which needs no cgo";
  CHECK(r.findings_of("local go = require \"imgbuild.go\"\n"
                      "local app = go.build {}\n"
                      "image(\"a\", scratch:user \"1\":copy(app, \"/app\")\n"
                      "  :copy(app, \"/usr/local/bin/migrate\")\n"
                      "  :entrypoint { \"/app\" })\n") ==
        Lines{"warning[cgo] recipe.lua:5: entrypoint /app" + stub,
              "warning[cgo] recipe.lua:4: /usr/local/bin/migrate" + stub});
  CHECK(r.findings_of("local go = require \"imgbuild.go\"\n"
                      "image(\"a\", scratch:user \"1\":copy(go.build {}, \"/app\"):doctor { ignore = { \"cgo\" } }\n"
                      "  :entrypoint { \"/app\" })\n")
            .empty());
}
