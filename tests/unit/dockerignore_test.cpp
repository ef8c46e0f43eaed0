#include "build/dockerignore.hpp"

#include <catch2/catch.hpp>

#include <filesystem>
#include <stdexcept>
#include <string>

#include "test_support.hpp"

using imgbuild::IgnoreRules;
using namespace imgbuild::test;

namespace {

// The message parse() throws for `text`, or "" when it does not throw.
std::string parse_error(const std::string& text) {
  return error_of([&] { IgnoreRules::parse(text); });
}

}  // namespace

TEST_CASE("comments, blank lines and whitespace", "[dockerignore]") {
  SECTION("no text means no rules") {
    REQUIRE(IgnoreRules::parse("").empty());
    REQUIRE(IgnoreRules::parse("# only a comment\n\n   \n\t\n").empty());
    REQUIRE_FALSE(IgnoreRules::parse("# only a comment\n\n").excluded("anything"));
  }
  SECTION("a '#' in column 1 is a comment, not a pattern") {
    auto r = IgnoreRules::parse("#secret\nlog\n");
    REQUIRE_FALSE(r.empty());
    REQUIRE_FALSE(r.excluded("#secret"));
    REQUIRE(r.excluded("log"));
  }
  SECTION("an indented '#' is a pattern, as in Docker") {
    auto r = IgnoreRules::parse("  #secret\n");
    REQUIRE(r.excluded("#secret"));
    REQUIRE_FALSE(r.excluded("secret"));
  }
  SECTION("surrounding whitespace and CRLF endings are trimmed") {
    auto r = IgnoreRules::parse("  build \t\r\n\tdist\r\n");
    REQUIRE(r.excluded("build"));
    REQUIRE(r.excluded("dist"));
    REQUIRE_FALSE(r.excluded(" build"));
  }
  SECTION("a UTF-8 BOM before the first pattern is ignored") {
    auto r = IgnoreRules::parse("\xEF\xBB\xBFnode_modules\n");
    REQUIRE(r.excluded("node_modules"));
  }
  SECTION("whitespace after '!' is trimmed") {
    auto r = IgnoreRules::parse("*.md\n!  README.md\n");
    REQUIRE_FALSE(r.excluded("README.md"));
    REQUIRE(r.excluded("CHANGES.md"));
  }
}

TEST_CASE("exceptions and the last matching rule", "[dockerignore]") {
  SECTION("*.md with !README.md") {
    auto r = IgnoreRules::parse("*.md\n!README.md\n");
    REQUIRE(r.excluded("CHANGES.md"));
    REQUIRE_FALSE(r.excluded("README.md"));
    REQUIRE_FALSE(r.excluded("README.md.txt"));
    // '*' stops at '/': the rule only covers the root.
    REQUIRE_FALSE(r.excluded("docs/guide.md"));
  }
  SECTION("a later exclusion overrides an earlier exception") {
    auto r = IgnoreRules::parse("*.md\n!README*.md\nREADME-secret.md\n");
    REQUIRE(r.excluded("README-secret.md"));
    REQUIRE_FALSE(r.excluded("README-public.md"));
    REQUIRE(r.excluded("NOTES.md"));
  }
  SECTION("a later exception overrides an earlier exclusion") {
    auto r = IgnoreRules::parse("*.md\nREADME-secret.md\n!README*.md\n");
    REQUIRE_FALSE(r.excluded("README-secret.md"));
    REQUIRE(r.excluded("NOTES.md"));
  }
  SECTION("an exception before any exclusion has no effect") {
    auto r = IgnoreRules::parse("!keep\n*\n");
    REQUIRE(r.excluded("keep"));
  }
  SECTION("'*' then exceptions lists what to include") {
    auto r = IgnoreRules::parse("*\n!src\n!Makefile\n");
    REQUIRE(r.excluded("docs"));
    REQUIRE(r.excluded("docs/a.txt"));
    REQUIRE_FALSE(r.excluded("src"));
    REQUIRE_FALSE(r.excluded("src/main.cpp"));
    REQUIRE_FALSE(r.excluded("Makefile"));
  }
  SECTION("an exception re-includes one file inside an excluded directory") {
    auto r = IgnoreRules::parse("build\n!build/keep.txt\n");
    REQUIRE(r.excluded("build/other.txt"));
    REQUIRE_FALSE(r.excluded("build/keep.txt"));
  }
}

TEST_CASE("a rule on a directory covers everything below it", "[dockerignore]") {
  auto r = IgnoreRules::parse("build\nlib/cache\n");
  REQUIRE(r.excluded("build"));
  REQUIRE(r.excluded("build/x"));
  REQUIRE(r.excluded("build/x/y"));
  REQUIRE(r.excluded("lib/cache/a/b"));
  REQUIRE_FALSE(r.excluded("builder"));
  REQUIRE_FALSE(r.excluded("builder/x"));
  REQUIRE_FALSE(r.excluded("src/build"));
  REQUIRE_FALSE(r.excluded("lib"));
  REQUIRE_FALSE(r.excluded("lib/cache2"));

  SECTION("a wildcard rule also covers the subtree of what it matches") {
    auto w = IgnoreRules::parse("*/tmp\n");
    REQUIRE(w.excluded("a/tmp/deep/file"));
    REQUIRE_FALSE(w.excluded("tmp/file"));
  }
}

TEST_CASE("patterns are cleaned and relative to the context root", "[dockerignore]") {
  SECTION("/tmp is the same as tmp") {
    auto abs = IgnoreRules::parse("/tmp\n");
    auto rel = IgnoreRules::parse("tmp\n");
    for (const char* path : {"tmp", "tmp/x", "a/tmp", "tmpx"}) {
      INFO(path);
      REQUIRE(abs.excluded(path) == rel.excluded(path));
    }
    REQUIRE(abs.excluded("tmp/x"));
    REQUIRE_FALSE(abs.excluded("a/tmp"));
  }
  SECTION("'./', '//', trailing '/' and '..' are resolved lexically") {
    auto r = IgnoreRules::parse("./a//b/\nc/./d\ne/f/../g\n/../h\n");
    REQUIRE(r.excluded("a/b"));
    REQUIRE(r.excluded("c/d"));
    REQUIRE(r.excluded("e/g"));
    REQUIRE_FALSE(r.excluded("e/f"));
    REQUIRE(r.excluded("h"));
  }
  SECTION("a pattern climbing above the root matches nothing inside it") {
    auto r = IgnoreRules::parse("../x\n");
    REQUIRE_FALSE(r.excluded("x"));
    REQUIRE_FALSE(r.empty());
  }
  SECTION("the exception is cleaned too") {
    auto r = IgnoreRules::parse("*\n!/./src/\n");
    REQUIRE_FALSE(r.excluded("src/a"));
    REQUIRE(r.excluded("docs"));
  }
}

TEST_CASE("'*' and '?' stay within one path segment", "[dockerignore]") {
  auto r = IgnoreRules::parse("*/temp*\n*/*/deep*\ntemp?\n");
  REQUIRE(r.excluded("somedir/temporary.txt"));
  REQUIRE(r.excluded("somedir/temp"));
  REQUIRE_FALSE(r.excluded("temporary.txt"));
  REQUIRE_FALSE(r.excluded("a/b/temporary.txt"));
  REQUIRE(r.excluded("a/b/deeper"));
  REQUIRE_FALSE(r.excluded("a/deeper"));
  REQUIRE(r.excluded("tempa"));
  REQUIRE_FALSE(r.excluded("temp"));
  REQUIRE_FALSE(r.excluded("tempab"));

  auto q = IgnoreRules::parse("a?b\n");
  REQUIRE(q.excluded("axb"));
  REQUIRE_FALSE(q.excluded("a/b"));
  SECTION("'?' takes one UTF-8 character, not one byte") {
    auto u = IgnoreRules::parse("caf?\n");
    REQUIRE(u.excluded("caf\xC3\xA9"));  // café
    REQUIRE_FALSE(u.excluded("caf"));
  }
}

TEST_CASE("'**' matches any number of directories", "[dockerignore]") {
  SECTION("**/*.go") {
    auto r = IgnoreRules::parse("**/*.go\n");
    REQUIRE(r.excluded("a.go"));
    REQUIRE(r.excluded("x/a.go"));
    REQUIRE(r.excluded("x/y/a.go"));
    REQUIRE_FALSE(r.excluded("a.go.txt"));
    REQUIRE_FALSE(r.excluded("x/y/a.gox"));
  }
  SECTION("a/**/b") {
    auto r = IgnoreRules::parse("a/**/b\n");
    REQUIRE(r.excluded("a/b"));
    REQUIRE(r.excluded("a/x/b"));
    REQUIRE(r.excluded("a/x/y/b"));
    REQUIRE(r.excluded("a/x/b/c"));  // below a match
    REQUIRE_FALSE(r.excluded("a/xb"));
    REQUIRE_FALSE(r.excluded("b"));
    REQUIRE_FALSE(r.excluded("x/a/b"));
    REQUIRE_FALSE(r.excluded("a/b2"));
  }
  SECTION("a trailing ** covers the contents, not the directory itself") {
    auto r = IgnoreRules::parse("a/**\n");
    REQUIRE(r.excluded("a/x"));
    REQUIRE(r.excluded("a/x/y"));
    REQUIRE_FALSE(r.excluded("a"));
    REQUIRE_FALSE(r.excluded("ab/x"));
  }
  SECTION("** alone excludes everything") {
    auto r = IgnoreRules::parse("**\n");
    REQUIRE(r.excluded("a"));
    REQUIRE(r.excluded("a/b/c"));
  }
  SECTION("**/name matches the name at any depth and nothing ending with it") {
    auto r = IgnoreRules::parse("**/node_modules\n");
    REQUIRE(r.excluded("node_modules"));
    REQUIRE(r.excluded("web/app/node_modules/x.js"));
    REQUIRE_FALSE(r.excluded("my_node_modules"));
  }
  SECTION("a leading ** followed by literal text is a plain suffix, as in Docker") {
    auto r = IgnoreRules::parse("**.txt\n");
    REQUIRE(r.excluded("a.txt"));
    REQUIRE(r.excluded("a/b/c.txt"));
    REQUIRE_FALSE(r.excluded("a/b/c.txt2"));
  }
  SECTION("** inside a longer pattern is exponential-free on long paths") {
    auto r = IgnoreRules::parse("**/**/**/**/**/**/**/**/z\n");
    std::string deep;
    for (int i = 0; i < 200; ++i) deep += "d/";
    REQUIRE_FALSE(r.excluded(deep + "y"));
    REQUIRE(r.excluded(deep + "z"));
  }
}

TEST_CASE("character classes and escapes", "[dockerignore]") {
  SECTION("sets and ranges") {
    auto r = IgnoreRules::parse("file[abc].txt\nlog[0-9]\n");
    REQUIRE(r.excluded("filea.txt"));
    REQUIRE(r.excluded("filec.txt"));
    REQUIRE_FALSE(r.excluded("filed.txt"));
    REQUIRE_FALSE(r.excluded("file.txt"));
    REQUIRE(r.excluded("log7"));
    REQUIRE_FALSE(r.excluded("logx"));
    REQUIRE_FALSE(r.excluded("log10"));
  }
  SECTION("'^' negates a class") {
    auto r = IgnoreRules::parse("x[^a-c]\n");
    REQUIRE(r.excluded("xd"));
    REQUIRE_FALSE(r.excluded("xa"));
    REQUIRE_FALSE(r.excluded("xc"));
  }
  SECTION("'!' inside a class is a member, as in Go's filepath.Match") {
    auto r = IgnoreRules::parse("x[!a]\n");
    REQUIRE(r.excluded("x!"));
    REQUIRE(r.excluded("xa"));
    REQUIRE_FALSE(r.excluded("xb"));
  }
  SECTION("escapes inside and outside classes") {
    auto r = IgnoreRules::parse("star\\*\nbr[\\]]\n\\[lit\\]\n");
    REQUIRE(r.excluded("star*"));
    REQUIRE_FALSE(r.excluded("starx"));
    REQUIRE(r.excluded("br]"));
    REQUIRE(r.excluded("[lit]"));
    REQUIRE_FALSE(r.excluded("l"));
  }
  SECTION("'*' inside a class is a literal member") {
    auto r = IgnoreRules::parse("a[*]\n");
    REQUIRE(r.excluded("a*"));
    REQUIRE_FALSE(r.excluded("ab"));
  }
  SECTION("a class matches a whole UTF-8 character") {
    auto r = IgnoreRules::parse("[\xC3\xA9\xC3\xA8]t\xC3\xA9\n");  // [éè]té
    REQUIRE(r.excluded("\xC3\xA9t\xC3\xA9"));
    REQUIRE(r.excluded("\xC3\xA8t\xC3\xA9"));
    REQUIRE_FALSE(r.excluded("et\xC3\xA9"));
  }
  SECTION("regex metacharacters are literal") {
    auto r = IgnoreRules::parse("a.b+(c)|{d}$\n");
    REQUIRE(r.excluded("a.b+(c)|{d}$"));
    REQUIRE_FALSE(r.excluded("axb+(c)|{d}$"));
  }
}

TEST_CASE("invalid patterns name their line", "[dockerignore]") {
  REQUIRE(parse_error("# comment\n\nlog[abc\n") == "line 3: unterminated character class in \"log[abc\"");
  REQUIRE(parse_error("ok\nfoo\\\n") == "line 2: trailing backslash in \"foo\\\"");
  REQUIRE(parse_error("a\n  !  \n") == "line 2: '!' without a pattern in \"!\"");
  REQUIRE(parse_error("x[]\n") == "line 1: empty character class in \"x[]\"");
  REQUIRE(parse_error("x[^]\n") == "line 1: empty character class in \"x[^]\"");
  REQUIRE(parse_error("x[a-]\n") == "line 1: range without an end in character class in \"x[a-]\"");
  REQUIRE(parse_error("x[-a]\n") == "line 1: unescaped '-' in character class in \"x[-a]\"");
  REQUIRE(parse_error("\n\n\n!x[z-a]\n") == "line 4: backwards range 'z-a' in character class in \"!x[z-a]\"");
  REQUIRE(parse_error("[\\") == "line 1: unterminated character class in \"[\\\"");
  SECTION("valid lines around them parse") {
    REQUIRE(parse_error("[a-z]\n[\\-]\n[]a]x]") == "line 3: empty character class in \"[]a]x]\"");
    REQUIRE(parse_error("[a-z]\n[\\-]\n]\n") == "");
  }
  SECTION("the exception type is std::runtime_error") {
    REQUIRE_THROWS_AS(IgnoreRules::parse("["), std::runtime_error);
  }
}

TEST_CASE("must_descend only when an exception can reach below", "[dockerignore]") {
  SECTION("no exceptions: never") {
    auto r = IgnoreRules::parse("build\n");
    REQUIRE(r.excluded("build"));
    REQUIRE_FALSE(r.must_descend("build"));
  }
  SECTION("an exception under the directory") {
    auto r = IgnoreRules::parse("build\n!build/keep.txt\nother\n");
    REQUIRE(r.must_descend("build"));
    REQUIRE_FALSE(r.must_descend("other"));
  }
  SECTION("an exception under a nested directory reaches its ancestors") {
    auto r = IgnoreRules::parse("a\n!a/b/c/keep\n");
    REQUIRE(r.must_descend("a"));
    REQUIRE(r.must_descend("a/b"));
    REQUIRE(r.must_descend("a/b/c"));
    REQUIRE_FALSE(r.must_descend("a/x"));
  }
  SECTION("leading wildcard segments are matched against the directory") {
    auto r = IgnoreRules::parse("*\n!x*/keep\n");
    REQUIRE(r.must_descend("xa"));
    REQUIRE_FALSE(r.must_descend("ya"));
    REQUIRE_FALSE(r.must_descend("xa/deeper"));
  }
  SECTION("** in an exception") {
    auto r = IgnoreRules::parse("*\n!**/*.go\n");
    REQUIRE(r.must_descend("vendor"));
    REQUIRE(r.must_descend("vendor/a/b"));
    auto mid = IgnoreRules::parse("*\n!a/**/b\n");
    REQUIRE(mid.must_descend("a"));
    REQUIRE(mid.must_descend("a/x/y"));
    REQUIRE_FALSE(mid.must_descend("c"));
    auto suffix = IgnoreRules::parse("*\n!**.keep\n");
    REQUIRE(suffix.must_descend("anything"));
  }
  SECTION("an exception before the rule that excludes the directory cannot win") {
    auto r = IgnoreRules::parse("!keep/x\nkeep\n");
    REQUIRE(r.excluded("keep/x"));
    REQUIRE_FALSE(r.must_descend("keep"));
  }
  SECTION("a directory that is not excluded is always descended") {
    auto r = IgnoreRules::parse("*.log\n");
    REQUIRE(r.must_descend("src"));
  }
}

TEST_CASE("load reads .dockerignore from the context", "[dockerignore]") {
  ScratchDir dir(std::filesystem::temp_directory_path(), "dockerignore-test-");
  SECTION("no file means no rules") {
    auto r = IgnoreRules::load(dir.path);
    REQUIRE(r.empty());
    REQUIRE_FALSE(r.excluded("anything"));
  }
  SECTION("the file's rules apply") {
    spit(dir.path / ".dockerignore", "# build output\nbuild\n*.md\n!README.md\n");
    auto r = IgnoreRules::load(dir.path);
    REQUIRE_FALSE(r.empty());
    REQUIRE(r.excluded("build/app"));
    REQUIRE(r.excluded("NOTES.md"));
    REQUIRE_FALSE(r.excluded("README.md"));
    REQUIRE_FALSE(r.excluded("src/main.cpp"));
  }
  SECTION("parse errors are prefixed with the file name") {
    spit(dir.path / ".dockerignore", "ok\n\nbad[\n");
    try {
      IgnoreRules::load(dir.path);
      FAIL("load accepted an invalid pattern");
    } catch (const std::runtime_error& e) {
      REQUIRE(std::string(e.what()) == ".dockerignore: line 3: unterminated character class in \"bad[\"");
    }
  }
  SECTION("a .dockerignore that cannot be read is an error, not an empty rule set") {
    std::filesystem::create_directory(dir.path / ".dockerignore");
    try {
      IgnoreRules::load(dir.path);
      FAIL("load accepted a directory");
    } catch (const std::runtime_error& e) {
      const std::string msg = e.what();
      REQUIRE(msg.rfind(".dockerignore: ", 0) == 0);
      REQUIRE(msg.find("directory") != std::string::npos);
    }
  }
}
