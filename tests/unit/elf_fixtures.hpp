// Real ELF fixtures for the ELF tests (elf_test.cpp, go_buildinfo_test.cpp,
// elf_report_test.cpp): Go and C programs compiled into a scratch directory at
// test time, so no binary is ever committed. Every function here is inline with
// its state in function-local statics, so the test files share one scratch
// directory, one Go build cache and one build of each fixture per test process.
#pragma once

#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include "test_support.hpp"

namespace imgbuild::test::elf {

namespace fs = std::filesystem;
using ByteVec = std::vector<unsigned char>;

/// The scratch directory of this test process.
inline const fs::path& scratch() {
  static ScratchDir dir(fs::temp_directory_path(), "imgbuild-elf-test-");
  return dir.path;
}

/// Writes `text` to `p`, creating its parent directories.
inline void write_text(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  spit(p, text);
}

inline ByteVec read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return ByteVec(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

/// Single-quoted for the shell (scratch paths hold no quote).
inline std::string quote(const fs::path& p) { return "'" + p.string() + "'"; }

struct CommandResult {
  int status = 0;
  std::string output;
};

/// Runs `cmd` through the shell, capturing stdout and stderr together.
inline CommandResult run(const std::string& cmd) {
  fs::path log = scratch() / "command.log";
  CommandResult r;
  r.status = std::system(("( " + cmd + " ) >" + quote(log) + " 2>&1").c_str());
  r.output = slurp(log);
  return r;
}

inline bool have_go() { return std::system("command -v go >/dev/null 2>&1") == 0; }

/// GOFLAGS from the developer's environment (e.g. -mod=mod) is dropped, the
/// user's go env file ignored and the network refused, so the build is the same
/// everywhere; the module uses a local replace, so it needs no download.
inline std::string go_env() {
  const fs::path& s = scratch();
  return "env -u GOFLAGS GOENV=off GOPROXY=off GOWORK=off GO111MODULE=on GOCACHE=" + quote(s / "gocache") +
         " GOPATH=" + quote(s / "gopath") + " CGO_ENABLED=0";
}

/// The module example.com/hello: "." prints a greeting from a local dependency,
/// "./web" makes an HTTPS request (crypto/x509), "./tz" loads a zone with
/// time/tzdata embedded, "./zone" loads a zone from the system's zoneinfo,
/// "./cgo" calls a tiny C function (import "C"; build it with CGO_ENABLED=1,
/// which needs a C compiler).
inline void write_go_sources() {
  const fs::path src = scratch() / "gosrc";
  if (fs::exists(src / "go.mod")) return;
  write_text(src / "go.mod", R"(module example.com/hello

go 1.19

require example.com/greet v0.0.0

replace example.com/greet => ./greet
)");
  write_text(src / "main.go", R"(package main

import (
	"fmt"

	"example.com/greet"
)

func main() { fmt.Println(greet.Hello()) }
)");
  write_text(src / "greet/go.mod", "module example.com/greet\n\ngo 1.19\n");
  write_text(src / "greet/greet.go", "package greet\n\nfunc Hello() string { return \"hello\" }\n");
  write_text(src / "web/main.go", R"(package main

import (
	"fmt"
	"net/http"
)

func main() {
	resp, err := http.Get("https://example.com/")
	fmt.Println(resp, err)
}
)");
  write_text(src / "tz/main.go", R"(package main

import (
	"fmt"
	"time"
	_ "time/tzdata"
)

func main() { fmt.Println(time.LoadLocation("Europe/Paris")) }
)");
  write_text(src / "zone/main.go", R"(package main

import (
	"fmt"
	"time"
)

func main() { fmt.Println(time.LoadLocation("Europe/Berlin")) }
)");
  write_text(src / "cgo/main.go", R"(package main

// int answer(void) { return 42; }
import "C"

import "fmt"

func main() { fmt.Println(C.answer()) }
)");
}

/// Builds (once per process) the Go fixture `name`: `env` is extra environment
/// (it comes after go_env(), so "CGO_ENABLED=1" overrides its CGO_ENABLED=0),
/// `flags` go build flags, `pkg` the package inside the module.
inline fs::path go_binary(const std::string& name, const std::string& env, const std::string& flags,
                          const std::string& pkg) {
  static std::map<std::string, fs::path> built;
  if (auto it = built.find(name); it != built.end()) return it->second;
  if (!have_go()) FAIL("`go` is not on PATH: install golang-go, the Go fixtures are compiled at test time");
  write_go_sources();
  fs::path out = scratch() / "bin" / name;
  fs::create_directories(out.parent_path());
  CommandResult r = run("cd " + quote(scratch() / "gosrc") + " && " + go_env() + " " + env + " go build " + flags +
                        " -o " + quote(out) + " " + pkg);
  INFO(r.output);
  REQUIRE(r.status == 0);
  built[name] = out;
  return out;
}

/// What `go env GOVERSION` says, e.g. "go1.19.8".
inline std::string go_version() {
  CommandResult r = run("env -u GOFLAGS GOENV=off go env GOVERSION");
  INFO(r.output);
  REQUIRE(r.status == 0);
  std::string v = r.output;
  while (!v.empty() && (v.back() == '\n' || v.back() == '\r')) v.pop_back();
  return v;
}

/// Compiles the empty C program `int main(void) { return 0; }` with `cc flags`
/// into scratch()/c/`name`; the caller decides whether failure is fatal (a
/// static libc is optional).
inline CommandResult try_c_binary(const std::string& name, const std::string& flags) {
  const fs::path dir = scratch() / "c";
  if (!fs::exists(dir / "t.c")) write_text(dir / "t.c", "int main(void) { return 0; }\n");
  return run("cc " + flags + " -o " + quote(dir / name) + " " + quote(dir / "t.c"));
}

/// try_c_binary for a fixture that must build: returns its path.
inline fs::path c_binary(const std::string& name, const std::string& flags) {
  CommandResult r = try_c_binary(name, flags);
  INFO(r.output);
  REQUIRE(r.status == 0);
  return scratch() / "c" / name;
}

}  // namespace imgbuild::test::elf
