#include "build/dockerignore.hpp"

#include <sstream>
#include <stdexcept>
#include <system_error>

#include "base/fs.hpp"

namespace imgbuild {

namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

// Go's filepath.Clean on a '/'-separated path. Docker cleans every pattern,
// so "./a//b/../c/" must mean "a/c" here too. Not ImagePath: this cleans the
// text of a pattern, not a path, and must match Docker's byte for byte, so a
// leading ".." stays (a pattern that can never match, not an error), "" is ".",
// and a rooted pattern keeps its "/" for the caller to strip.
std::string go_clean(std::string_view p) {
  const bool rooted = !p.empty() && p.front() == '/';
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i <= p.size()) {
    size_t j = p.find('/', i);
    if (j == std::string_view::npos) j = p.size();
    std::string_view seg = p.substr(i, j - i);
    i = j + 1;
    if (seg.empty() || seg == ".") continue;
    if (seg == "..") {
      if (!out.empty() && out.back() != "..") {
        out.pop_back();
      } else if (!rooted) {
        out.push_back(seg);
      }  // "/.." is "/": nothing is above the root
      continue;
    }
    out.push_back(seg);
  }
  std::string r = rooted ? "/" : "";
  for (size_t k = 0; k < out.size(); ++k) {
    if (k > 0) r += '/';
    r += out[k];
  }
  if (r.empty()) r = ".";
  return r;
}

// One UTF-8 code point; an invalid byte decodes as U+FFFD of width 1, as in Go,
// so '?' and classes treat a stray byte as one character.
struct Decoded {
  char32_t cp;
  size_t width;
  bool valid;
};

Decoded decode_utf8(std::string_view s, size_t i) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) return {b0, 1, true};
  size_t len;
  char32_t cp, min;
  if ((b0 & 0xE0) == 0xC0) {
    len = 2, cp = b0 & 0x1F, min = 0x80;
  } else if ((b0 & 0xF0) == 0xE0) {
    len = 3, cp = b0 & 0x0F, min = 0x800;
  } else if ((b0 & 0xF8) == 0xF0) {
    len = 4, cp = b0 & 0x07, min = 0x10000;
  } else {
    return {0xFFFD, 1, false};
  }
  if (i + len > s.size()) return {0xFFFD, 1, false};
  for (size_t k = 1; k < len; ++k) {
    const auto b = static_cast<unsigned char>(s[i + k]);
    if ((b & 0xC0) != 0x80) return {0xFFFD, 1, false};
    cp = (cp << 6) | (b & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return {0xFFFD, 1, false};
  return {cp, len, true};
}

[[noreturn]] void bad_line(size_t line_no, const std::string& what, std::string_view line) {
  std::ostringstream m;
  m << "line " << line_no << ": " << what << " in \"" << line << '"';
  throw std::runtime_error(m.str());
}

}  // namespace

IgnoreRules IgnoreRules::parse(std::string_view text) {
  IgnoreRules result;
  size_t line_no = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string_view::npos) eol = text.size();
    std::string_view raw = text.substr(pos, eol - pos);
    pos = eol + 1;
    ++line_no;
    if (!raw.empty() && raw.back() == '\r') raw.remove_suffix(1);
    // Editors on Windows prepend a BOM; Docker strips it from the first line.
    if (line_no == 1 && raw.substr(0, 3) == "\xEF\xBB\xBF") raw.remove_prefix(3);
    // Docker tests for '#' before trimming: only column 1 starts a comment, so
    // "  #x" is a pattern for a file named "#x".
    if (!raw.empty() && raw.front() == '#') continue;
    const std::string_view line = trim(raw);
    if (line.empty()) continue;

    Rule rule;
    std::string_view pat = line;
    if (pat.front() == '!') {
      rule.exception = true;
      pat = trim(pat.substr(1));
      if (pat.empty()) bad_line(line_no, "'!' without a pattern", line);
    }
    std::string cleaned = go_clean(pat);
    // Patterns are relative to the context root, which is also "/".
    if (cleaned.size() > 1 && cleaned.front() == '/') cleaned.erase(0, 1);

    const std::string_view p = cleaned;
    const size_t n = p.size();
    size_t i = 0;
    while (i < n) {
      const char c = p[i];
      if (c == '*') {
        if (i + 1 < n && p[i + 1] == '*') {
          i += 2;
          if (i < n && p[i] == '/') ++i;
          rule.tokens.emplace_back(i == n ? Token::Kind::AnyRest : Token::Kind::AnyDirs);
        } else {
          rule.tokens.emplace_back(Token::Kind::Star);
          ++i;
        }
      } else if (c == '?') {
        rule.tokens.emplace_back(Token::Kind::AnyChar);
        ++i;
      } else if (c == '\\') {
        if (i + 1 == n) bad_line(line_no, "trailing backslash", line);
        rule.tokens.emplace_back(Token::Kind::Literal, p[i + 1]);
        i += 2;
      } else if (c == '[') {
        // Go's filepath.Match class grammar: '^' negates ('!' is an ordinary
        // member), ranges lo-hi, '\' escapes; an unescaped ']' first or '-'
        // at either end of a range is an error rather than a literal.
        Token tok(Token::Kind::Class);
        size_t j = i + 1;
        if (j < n && p[j] == '^') {
          tok.negated = true;
          ++j;
        }
        auto endpoint = [&](size_t& k, bool range_end) -> char32_t {
          if (k >= n) bad_line(line_no, "unterminated character class", line);
          if (p[k] == ']') {
            bad_line(line_no, range_end ? "range without an end in character class" : "empty character class", line);
          }
          if (p[k] == '-') bad_line(line_no, "unescaped '-' in character class", line);
          if (p[k] == '\\' && ++k >= n) bad_line(line_no, "unterminated character class", line);
          const Decoded d = decode_utf8(p, k);
          if (!d.valid) bad_line(line_no, "invalid UTF-8 in character class", line);
          k += d.width;
          if (k >= n) bad_line(line_no, "unterminated character class", line);
          return d.cp;
        };
        for (;;) {
          if (j < n && p[j] == ']' && !tok.ranges.empty()) {
            ++j;
            break;
          }
          const size_t lo_at = j;
          const char32_t lo = endpoint(j, false);
          char32_t hi = lo;
          if (p[j] == '-') {
            ++j;
            hi = endpoint(j, true);
          }
          // Go's Match accepts a backwards range that matches nothing, but
          // Docker's regex translation then fails at match time: refuse it now.
          if (hi < lo) {
            bad_line(line_no, "backwards range '" + std::string(p.substr(lo_at, j - lo_at)) + "' in character class",
                     line);
          }
          tok.ranges.emplace_back(lo, hi);
        }
        rule.tokens.push_back(std::move(tok));
        i = j;
      } else {
        rule.tokens.emplace_back(Token::Kind::Literal, c);
        ++i;
      }
    }

    if (p.substr(0, 2) == "**" && p.find_first_of("*?[]\\", 2) == std::string_view::npos) {
      rule.suffix_mode = true;
      rule.suffix = std::string(p.substr(2));
    }
    result.rules_.push_back(std::move(rule));
  }
  return result;
}

IgnoreRules IgnoreRules::load(const std::filesystem::path& context_dir) {
  const std::filesystem::path file = context_dir / ".dockerignore";
  std::string text;
  try {
    // read_file: a .dockerignore that is a named pipe or a device is refused
    // rather than waited on.
    text = read_file(file);
  } catch (const std::system_error& e) {
    if (e.code() == std::errc::no_such_file_or_directory) return {};
    throw std::runtime_error(std::string(".dockerignore: ") + e.what());
  } catch (const std::runtime_error& e) {
    throw std::runtime_error(std::string(".dockerignore: ") + e.what());
  }
  try {
    return parse(text);
  } catch (const std::runtime_error& e) {
    throw std::runtime_error(std::string(".dockerignore: ") + e.what());
  }
}

bool IgnoreRules::tokens_match(const std::vector<Token>& tokens, std::string_view s, bool prefix_only) {
  // reach[k]: the tokens seen so far can consume exactly s[0, k). One pass per
  // token keeps "**" from backtracking exponentially on long paths.
  const size_t n = s.size();
  std::vector<char> reach(n + 1, 0), next(n + 1, 0);
  reach[0] = 1;
  for (const Token& tok : tokens) {
    if (prefix_only && reach[n]) return true;
    std::fill(next.begin(), next.end(), 0);
    switch (tok.kind) {
      case Token::Kind::Literal:
        for (size_t k = 0; k < n; ++k) {
          if (reach[k] && s[k] == tok.byte) next[k + 1] = 1;
        }
        break;
      case Token::Kind::AnyChar:
      case Token::Kind::Class:
        for (size_t k = 0; k < n; ++k) {
          if (!reach[k]) continue;
          const Decoded d = decode_utf8(s, k);
          bool ok;
          if (tok.kind == Token::Kind::AnyChar) {
            ok = d.cp != U'/';
          } else {
            bool in = false;
            for (const auto& [lo, hi] : tok.ranges) in = in || (lo <= d.cp && d.cp <= hi);
            ok = in != tok.negated;
          }
          if (ok) next[k + d.width] = 1;
        }
        break;
      case Token::Kind::Star: {
        bool carry = false;
        for (size_t k = 0; k <= n; ++k) {
          carry = reach[k] || (carry && s[k - 1] != '/');
          next[k] = carry;
        }
        break;
      }
      case Token::Kind::AnyDirs: {
        bool seen = false;
        for (size_t k = 0; k <= n; ++k) {
          next[k] = reach[k] || (seen && s[k - 1] == '/');
          seen = seen || reach[k];
        }
        break;
      }
      case Token::Kind::AnyRest: {
        bool seen = false;
        for (size_t k = 0; k <= n; ++k) {
          seen = seen || reach[k];
          next[k] = seen;
        }
        break;
      }
    }
    reach.swap(next);
  }
  return reach[n] != 0;
}

bool IgnoreRules::rule_matches(const Rule& rule, std::string_view path) {
  const auto one = [&](std::string_view p) {
    if (rule.suffix_mode) {
      return p.ends_with(rule.suffix) ||
             (!rule.suffix.empty() && rule.suffix.front() == '/' && p == rule.suffix.substr(1));
    }
    return tokens_match(rule.tokens, p, false);
  };
  if (one(path)) return true;
  for (size_t k = path.find('/'); k != std::string_view::npos; k = path.find('/', k + 1)) {
    if (one(path.substr(0, k))) return true;
  }
  return false;
}

bool IgnoreRules::excluded(std::string_view path) const {
  bool ex = false;
  for (const Rule& rule : rules_) {
    // A rule that cannot flip the current verdict need not be matched.
    if (rule.exception != ex) continue;
    if (rule_matches(rule, path)) ex = !rule.exception;
  }
  return ex;
}

bool IgnoreRules::must_descend(std::string_view dir) const {
  // The last rule matching `dir` (or a parent) also matches everything below
  // it, so only exceptions after that rule can re-include anything there.
  size_t start = 0;
  bool ex = false;
  for (size_t i = 0; i < rules_.size(); ++i) {
    if (rule_matches(rules_[i], dir)) {
      start = i + 1;
      ex = !rules_[i].exception;
    }
  }
  if (!ex) return true;  // not excluded: the walk descends anyway

  const std::string below = std::string(dir) + '/';
  for (size_t i = start; i < rules_.size(); ++i) {
    const Rule& rule = rules_[i];
    if (!rule.exception) continue;
    // A suffix can be the tail of some name anywhere: assume it can match.
    if (rule.suffix_mode) return true;
    if (tokens_match(rule.tokens, below, true)) return true;
  }
  return false;
}

}  // namespace imgbuild
