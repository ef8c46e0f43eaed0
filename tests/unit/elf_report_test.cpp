// Tests for the JSON and text forms of an ELF inspection, over real fixtures
// compiled at test time (elf_fixtures.hpp, shared with elf_test.cpp) and a few
// hand-made ElfInfo values for what real files do not show.
#include "inspect/elf_report.hpp"

#include <catch2/catch.hpp>

#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "elf_fixtures.hpp"
#include "inspect/elf.hpp"
#include "oci/image.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
using imgbuild::elf_json;
using imgbuild::elf_text_report;
using imgbuild::ElfInfo;
using imgbuild::GoBuildInfo;
using imgbuild::inspect_elf;
using nlohmann::json;
using namespace imgbuild::test::elf;

namespace {

// The host's names, which the Go fixtures (built for the host) carry; the
// exact reports are written for the 64-bit little-endian hosts whose glibc
// loader is known here: the cases that use them are tagged with those CPUs.
const std::string kMachine = imgbuild::test::host_machine(), kArch = imgbuild::Platform::host().architecture,
                  kInterp = kMachine == "x86_64" ? "/lib64/ld-linux-x86-64.so.2" : "/lib/ld-linux-aarch64.so.1";

}  // namespace

TEST_CASE("report: static Go binary", "[elf][x86_64][aarch64]") {
  const std::string go = go_version();
  ElfInfo info = inspect_elf(go_binary("hello-trimpath", "", "-trimpath", "."));
  json j = elf_json(info);

  CHECK(j.size() == 11);
  CHECK(j["elf"] == true);
  CHECK(j["class"] == 64);
  CHECK(j["endian"] == "little");
  CHECK(j["machine"] == kMachine);
  CHECK(j["architecture"] == kArch);
  CHECK(j["linking"] == "static");
  CHECK(j["static"] == true);
  CHECK(j["interpreter"].is_null());
  CHECK(j["needed"] == json::array());
  CHECK(j["stripped"] == false);
  const json& g = j["go"];
  REQUIRE(g.is_object());
  CHECK(g.size() == 8);
  CHECK(g["version"] == go);
  CHECK(g["path"] == "example.com/hello");
  CHECK(g["main_version"] == "(devel)");
  CHECK(g["deps"] == json::array({"example.com/greet"}));
  CHECK(g["uses_x509"] == false);
  CHECK(g["embeds_tzdata"] == false);
  CHECK(g["loads_zoneinfo"] == false);
  const json& s = g["settings"];
  REQUIRE(s.is_object());
  CHECK(s["-compiler"] == "gc");
  CHECK(s["-trimpath"] == "true");
  CHECK(s["CGO_ENABLED"] == "0");
  CHECK(s["GOOS"] == "linux");
  CHECK(s["GOARCH"] == kArch);
  CHECK(s.size() == info.go->settings.size());
  CHECK_NOTHROW(j.dump());

  CHECK(elf_text_report("build/app", info) ==
        "build/app: ELF 64-bit little-endian " + kMachine + " (linux/" + kArch +
            "), static, not stripped\n"
            "  " +
            go + " example.com/hello (devel); CGO_ENABLED=0 GOOS=linux GOARCH=" + kArch +
            " -trimpath=true\n"
            "  crypto/x509: not linked\n"
            "  time zones: not loaded by name\n");
}

TEST_CASE("report: Go binaries that need CA certificates or zoneinfo", "[elf][x86_64][aarch64]") {
  const std::string go = go_version();
  const std::string head = "ELF 64-bit little-endian " + kMachine + " (linux/" + kArch + "), static";

  ElfInfo stripped = inspect_elf(go_binary("hello-stripped", "", "-ldflags='-s -w'", "."));
  CHECK(elf_json(stripped)["stripped"] == true);
  CHECK(elf_json(stripped)["go"]["settings"]["-ldflags"] == "-s -w");
  CHECK(elf_text_report("app", stripped) == "app: " + head +
                                                ", stripped\n"
                                                "  " +
                                                go +
                                                " example.com/hello (devel); CGO_ENABLED=0 GOOS=linux GOARCH=" + kArch +
                                                " -ldflags=\"-s -w\"\n"
                                                "  crypto/x509: not linked\n"
                                                "  time zones: not loaded by name\n");

  ElfInfo web = inspect_elf(go_binary("web", "", "", "./web"));
  CHECK(elf_json(web)["go"]["uses_x509"] == true);
  CHECK(elf_json(web)["go"]["deps"] == json::array());
  CHECK(elf_text_report("web", web) == "web: " + head +
                                           ", not stripped\n"
                                           "  " +
                                           go +
                                           " example.com/hello/web (devel); CGO_ENABLED=0 GOOS=linux GOARCH=" + kArch +
                                           "\n"
                                           "  crypto/x509: linked (needs CA certificates in the image)\n"
                                           "  time zones: not loaded by name\n");

  ElfInfo zone = inspect_elf(go_binary("zone", "", "", "./zone"));
  CHECK(elf_json(zone)["go"]["loads_zoneinfo"] == true);
  CHECK(elf_json(zone)["go"]["embeds_tzdata"] == false);
  CHECK(elf_text_report("zone", zone)
            .ends_with("  crypto/x509: not linked\n"
                       "  time zones: loaded by name (needs /usr/share/zoneinfo in the image)\n"));

  ElfInfo tz = inspect_elf(go_binary("tz", "", "", "./tz"));
  CHECK(elf_json(tz)["go"]["loads_zoneinfo"] == true);
  CHECK(elf_json(tz)["go"]["embeds_tzdata"] == true);
  CHECK(elf_text_report("tz", tz).ends_with(
      "  time zones: loaded by name, tzdata embedded (needs no zoneinfo in the image)\n"));
}

TEST_CASE("report: dynamic C binary", "[elf][x86_64][aarch64]") {
  ElfInfo info = inspect_elf(c_binary("dyn", ""));
  json j = elf_json(info);

  CHECK(j.size() == 11);
  CHECK(j["elf"] == true);
  CHECK(j["class"] == 64);
  CHECK(j["endian"] == "little");
  CHECK(j["machine"] == kMachine);
  CHECK(j["architecture"] == kArch);
  CHECK(j["linking"] == "dynamic");
  CHECK(j["static"] == false);
  CHECK(j["interpreter"] == kInterp);
  CHECK(j["needed"] == json::array({"libc.so.6"}));
  CHECK(j["stripped"] == false);
  CHECK(j["go"].is_null());

  CHECK(elf_text_report("build/dyn", info) == "build/dyn: ELF 64-bit little-endian " + kMachine + " (linux/" + kArch +
                                                  "), dynamic, not stripped\n"
                                                  "  interpreter " +
                                                  kInterp +
                                                  ", needs libc.so.6\n"
                                                  "  the image must contain this interpreter and this library\n");
}

TEST_CASE("report: non-ELF file", "[elf]") {
  write_text(scratch() / "notes.txt", "remember the milk\n");
  ElfInfo info = inspect_elf(scratch() / "notes.txt");
  CHECK(elf_json(info) == json{{"elf", false}});
  CHECK(elf_text_report("notes.txt", info) == "notes.txt: not an ELF file\n");

  // A shell script is an executable, but not an ELF one.
  write_text(scratch() / "run.sh", "#!/bin/sh\nexec /app \"$@\"\n");
  ElfInfo script = inspect_elf(scratch() / "run.sh");
  CHECK_FALSE(script.is_elf);
  CHECK(elf_json(script) == json{{"elf", false}});
  CHECK(elf_text_report("bin/run.sh", script) == "bin/run.sh: not an ELF file\n");
}

TEST_CASE("report: values real fixtures do not show", "[elf]") {
  ElfInfo info;
  info.is_elf = true;
  info.elf_class = 32;
  info.big_endian = true;
  info.machine = "unknown(8)";
  info.linking = ElfInfo::Linking::Dynamic;
  info.needed = {"libm.so.6", "libz.so.1", "libc.so.6"};
  info.stripped = true;

  SECTION("no OCI architecture, no interpreter, several libraries") {
    json j = elf_json(info);
    CHECK(j["class"] == 32);
    CHECK(j["endian"] == "big");
    CHECK(j["architecture"].is_null());
    CHECK(j["interpreter"].is_null());
    CHECK(j["needed"] == json::array({"libm.so.6", "libz.so.1", "libc.so.6"}));
    CHECK(elf_text_report("lib", info) ==
          "lib: ELF 32-bit big-endian unknown(8) (no OCI architecture), dynamic, stripped\n"
          "  no interpreter, needs libm.so.6, libz.so.1 and libc.so.6\n"
          "  the image must contain these libraries\n");
  }
  SECTION("static-pie; GOOS from the Go build info; repeated settings") {
    info.machine = "aarch64";
    info.elf_class = 64;
    info.big_endian = false;
    info.linking = ElfInfo::Linking::StaticPie;
    info.needed.clear();
    GoBuildInfo go;
    go.go_version = "go1.21.0";
    go.settings = {{"GOOS", "freebsd"}, {"-tags", "netgo,osusergo"}, {"GOOS", "plan9"}, {"GOARCH", "arm64"}};
    go.embeds_tzdata = true;
    info.go = go;
    json j = elf_json(info);
    CHECK(j["linking"] == "static-pie");
    CHECK(j["static"] == true);
    CHECK(j["architecture"] == "arm64");
    CHECK(j["go"]["settings"] == json{{"GOOS", "freebsd"}, {"-tags", "netgo,osusergo"}, {"GOARCH", "arm64"}});
    CHECK(j["go"]["path"] == "");
    CHECK(j["go"]["main_version"] == "");
    CHECK(elf_text_report("app", info) ==
          "app: ELF 64-bit little-endian aarch64 (freebsd/arm64), static-pie, stripped\n"
          "  go1.21.0; GOOS=freebsd GOARCH=arm64 -tags=netgo,osusergo\n"
          "  crypto/x509: not linked\n"
          "  time zones: not loaded by name, tzdata embedded\n");
  }
  SECTION("hostile strings: invalid UTF-8 in JSON, control characters in text") {
    info.interpreter = "/lib/ld\n\x1b[31m.so";
    info.needed = {"lib\xff\xc0\x80\xed\xa0\x80x.so", "libc.so.6"};
    GoBuildInfo go;
    go.go_version = "go1\tx";
    go.main_path = "caf\xc3\xa9";
    go.settings = {{"-ldflags", "-X \"a=b\""}};
    info.go = go;
    json j = elf_json(info);
    CHECK(j["interpreter"] == "/lib/ld\n\x1b[31m.so");
    // Each byte of the bad sequences (a lone 0xff, an overlong NUL, a UTF-16
    // surrogate) becomes U+FFFD; valid UTF-8 is kept.
    CHECK(j["needed"][0] == "lib\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbdx.so");
    CHECK(j["go"]["path"] == "caf\xc3\xa9");
    CHECK_NOTHROW(j.dump());
    CHECK(elf_text_report("bad\nname", info) ==
          "bad\\x0aname: ELF 32-bit big-endian unknown(8) (no OCI architecture), dynamic, stripped\n"
          "  interpreter /lib/ld\\x0a\\x1b[31m.so, needs lib\xff\xc0\x80\xed\xa0\x80x.so and libc.so.6\n"
          "  the image must contain this interpreter and these libraries\n"
          "  go1\\x09x caf\xc3\xa9; -ldflags=\"-X \\\"a=b\\\"\"\n"
          "  crypto/x509: not linked\n"
          "  time zones: not loaded by name\n");
  }
}
