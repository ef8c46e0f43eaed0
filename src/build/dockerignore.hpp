#pragma once
// The build context filter. It follows Docker (moby/patternmatcher and its
// ignorefile reader) rather than .gitignore, so a context that builds the same
// way under `docker build` builds the same way here.
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace imgbuild {

/// The build context's exclusion rules, with Docker's .dockerignore semantics.
/// Immutable once parsed, so one instance can be shared by parallel walks.
class IgnoreRules {
public:
  /// Parses .dockerignore text. Throws std::runtime_error("line N: <what is
  /// wrong>") for a pattern Docker would refuse (a bare '!', an unterminated
  /// '[' class, an empty class, a backwards range, a trailing backslash), so a
  /// broken file fails before the walk instead of silently excluding nothing.
  static IgnoreRules parse(std::string_view text);

  /// Reads DIR/.dockerignore; no file means no rules, as in Docker. Errors are
  /// prefixed ".dockerignore: " because the caller reports them against the
  /// context, not against a recipe line.
  static IgnoreRules load(const std::filesystem::path& context_dir);

  /// path: relative to the context, '/'-separated, no leading "./" or "/".
  /// True when the path is excluded. A rule matching a parent directory also
  /// matches the path, so excluding a directory excludes its whole subtree
  /// unless a later '!' rule re-includes part of it.
  bool excluded(std::string_view path) const;

  /// True when a walk must still descend into the excluded directory `dir`
  /// because an exception ('!' rule) could re-include something under it.
  /// Errs towards true: a false answer lets the walk skip a whole subtree.
  bool must_descend(std::string_view dir) const;

  /// True when there is nothing to filter, so a walk can skip all matching.
  bool empty() const { return rules_.empty(); }

private:
  /// One element of a compiled pattern. Kept as tokens rather than a regex so
  /// matching is linear-time and needs nothing beyond the standard library.
  struct Token {
    enum class Kind : std::uint8_t {
      Literal,  // one byte, compared exactly (UTF-8 bytes match themselves)
      AnyChar,  // '?': one code point other than '/'
      Star,     // '*': any run of non-'/' bytes
      Class,    // '[...]': one code point, '/' included as Go allows
      AnyDirs,  // '**' not at the end: empty, or anything ending in '/'
      AnyRest,  // '**' at the end: anything at all
    };
    explicit Token(Kind k, char b = 0) : kind(k), byte(b) {}
    Kind kind;
    char byte;
    bool negated = false;
    std::vector<std::pair<char32_t, char32_t>> ranges;
  };

  /// One non-comment line of the file.
  struct Rule {
    bool exception = false;
    /// Docker matches "**" followed by only literal text by string suffix
    /// (so "**.txt" matches "a/b.txt"); kept so contexts filter identically.
    bool suffix_mode = false;
    std::string suffix;
    std::vector<Token> tokens;
  };

  static bool rule_matches(const Rule& rule, std::string_view path);
  static bool tokens_match(const std::vector<Token>& tokens, std::string_view s, bool prefix_only);

  std::vector<Rule> rules_;
};

}  // namespace imgbuild
