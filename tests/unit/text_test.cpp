// Tests for printable_text(): whatever a step or a registry writes, what
// imgbuild prints of it holds no control byte, says what was there, and
// keeps readable text readable. And for the two ways text is cut into pieces.
#include "base/text.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

using imgbuild::fields;
using imgbuild::printable_text;
using imgbuild::split;
using Pieces = std::vector<std::string>;
using namespace std::string_literals;

namespace {

/// True when `text` has a byte a terminal could obey: a C0 control but tab,
/// DEL, or a C1 control as UTF-8 (0xc2 0x80..0x9f).
bool has_control(const std::string& text) {
  for (size_t i = 0; i < text.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    if ((c < 0x20 && c != '\t') || c == 0x7f) return true;
    if (c == 0xc2 && i + 1 < text.size() && (static_cast<unsigned char>(text[i + 1]) & 0xe0) == 0x80) return true;
  }
  return false;
}

}  // namespace

TEST_CASE("printable_text keeps printable ASCII, tabs and UTF-8 letters", "[text]") {
  CHECK(printable_text("building 12 files: ok") == "building 12 files: ok");
  CHECK(printable_text("a\tb") == "a\tb");
  CHECK(printable_text("grüße, 東京, 🙂, ünïcödé") == "grüße, 東京, 🙂, ünïcödé");
  CHECK(printable_text("path\\with\\backslashes \"quoted\"") == "path\\with\\backslashes \"quoted\"");
  CHECK(printable_text("") == "");
}

TEST_CASE("printable_text shows escape sequences as text", "[text]") {
  // A clipboard write, a window title, a screen clear, colours.
  CHECK(printable_text("\x1b]52;c;cHduZWQ=\a") == "\\x1b]52;c;cHduZWQ=\\x07");
  CHECK(printable_text("\x1b]0;pwned\x1b\\") == "\\x1b]0;pwned\\x1b\\");
  CHECK(printable_text("\x1b[2J\x1b[31merror\x1b[0m") == "\\x1b[2J\\x1b[31merror\\x1b[0m");
}

TEST_CASE("printable_text shows overwrites and other controls as text", "[text]") {
  CHECK(printable_text("10%\r100%") == "10%\\x0d100%");
  CHECK(printable_text("rm -rf /\b\b\b\b\b\b\b\bls     ") == "rm -rf /\\x08\\x08\\x08\\x08\\x08\\x08\\x08\\x08ls     ");
  CHECK(printable_text("one\ntwo") == "one\\x0atwo");
  CHECK(printable_text("nul\0del\x7f"s) == "nul\\x00del\\x7f");
  // C1 controls: CSI (U+009B) and OSC (U+009D), as UTF-8 and as raw bytes.
  CHECK(printable_text("\xc2\x9b"
                       "2J \xc2\x9d"
                       "0;t") == "\\xc2\\x9b2J \\xc2\\x9d0;t");
  CHECK(printable_text("\x9b"
                       "2J") == "\\x9b2J");
}

TEST_CASE("printable_text shows invalid UTF-8 byte by byte", "[text]") {
  CHECK(printable_text("bad \xff\xfe end") == "bad \\xff\\xfe end");
  CHECK(printable_text("cut \xe2\x82") == "cut \\xe2\\x82");            // a sequence cut short
  CHECK(printable_text("\xc0\xaf") == "\\xc0\\xaf");                    // overlong '/'
  CHECK(printable_text("\xe0\x80\xaf") == "\\xe0\\x80\\xaf");           // overlong, three bytes
  CHECK(printable_text("\xed\xa0\x80") == "\\xed\\xa0\\x80");           // a surrogate
  CHECK(printable_text("\xf4\x90\x80\x80") == "\\xf4\\x90\\x80\\x80");  // past U+10FFFF
  CHECK(printable_text("\x80x") == "\\x80x");                           // a lone continuation byte
  CHECK(printable_text("\xe2\x82\xac\xe2") == "\xe2\x82\xac\\xe2");     // a good euro sign, then a cut one
}

TEST_CASE("printable_text shows the controls that reorder text", "[text]") {
  // RIGHT-TO-LEFT OVERRIDE, LEFT-TO-RIGHT ISOLATE, RIGHT-TO-LEFT MARK.
  CHECK(printable_text("file\xe2\x80\xaetxt.exe") == "file\\xe2\\x80\\xaetxt.exe");
  CHECK(printable_text("\xe2\x81\xa6x") == "\\xe2\\x81\\xa6x");
  CHECK(printable_text("\xe2\x80\x8fx") == "\\xe2\\x80\\x8fx");
}

TEST_CASE("printable_text: no control survives, and a second pass changes nothing", "[text]") {
  std::string all;
  for (int c = 0; c < 256; ++c) all += static_cast<char>(c);
  all += "\xc2\x85\xc2\x9f\xe2\x80\xae grüße";
  std::string once = printable_text(all);
  CHECK_FALSE(has_control(once));
  CHECK(once.find('\x1b') == std::string::npos);
  CHECK(once.find('\a') == std::string::npos);
  CHECK(printable_text(once) == once);
  CHECK(once.ends_with(" grüße"));
}

TEST_CASE("split drops empty pieces, fields keeps them in their places", "[text]") {
  CHECK(split("a::b:", ':') == Pieces{"a", "b"});
  CHECK(split("", ':').empty());
  CHECK(fields("app::1000:1000::/home/app:/bin/sh", ':') ==
        Pieces{"app", "", "1000", "1000", "", "/home/app", "/bin/sh"});
  CHECK(fields("a:", ':') == Pieces{"a", ""});
  CHECK(fields("", ':') == Pieces{""});
}

TEST_CASE("base64 both ways, as RFC 4648's test vectors and Go's StdEncoding", "[text]") {
  const std::pair<const char*, const char*> vectors[] = {{"", ""},
                                                         {"f", "Zg=="},
                                                         {"fo", "Zm8="},
                                                         {"foo", "Zm9v"},
                                                         {"foob", "Zm9vYg=="},
                                                         {"fooba", "Zm9vYmE="},
                                                         {"foobar", "Zm9vYmFy"}};
  for (auto [plain, encoded] : vectors) {
    CHECK(imgbuild::base64_encode(plain) == encoded);
    CHECK(imgbuild::base64_decode(encoded) == std::optional<std::string>(plain));
  }
  CHECK(imgbuild::base64_encode("\xff\xfe\x00"s) == "//4A");
  CHECK(imgbuild::base64_decode("Zm9v\nYmFy") == std::optional<std::string>("foobar"));  // line breaks skipped
  CHECK_FALSE(imgbuild::base64_decode("Zm9"));                                           // not a multiple of 4
  CHECK_FALSE(imgbuild::base64_decode("Zm9-"));                                          // base64url is not base64
}
