#include "registry/www_authenticate.hpp"

#include <optional>

namespace imgbuild {

namespace {

// RFC 7230 tchar.
bool is_tchar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '.':
    case '^':
    case '_':
    case '`':
    case '|':
    case '~':
      return true;
    default:
      return false;
  }
}

// RFC 7235 token68 characters, before its trailing '='s.
bool is_token68_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
         c == '_' || c == '~' || c == '+' || c == '/';
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

/// A read position in the header. Every method moves forward or not at all,
/// which is what bounds the work.
class Cursor {
public:
  explicit Cursor(std::string_view s) : s_(s) {}

  bool at_end() const { return i_ >= s_.size(); }
  bool at(char c) const { return i_ < s_.size() && s_[i_] == c; }
  bool consume(char c) {
    if (!at(c)) return false;
    ++i_;
    return true;
  }

  void skip_ows() {
    while (at(' ') || at('\t')) ++i_;
  }
  /// Between list elements: any mix of commas and spaces (empty elements are allowed).
  void skip_separators() {
    while (at(' ') || at('\t') || at(',')) ++i_;
  }

  std::string_view token() {
    size_t start = i_;
    while (i_ < s_.size() && is_tchar(s_[i_])) ++i_;
    return s_.substr(start, i_ - start);
  }

  /// At a '"': the unescaped content, or nullopt for an unterminated string or
  /// one with a control character (a realm with a line break is an injection,
  /// not a URL). The latter is still read to its end, so that parsing goes on
  /// after it.
  std::optional<std::string> quoted_string() {
    ++i_;
    std::string out;
    bool control = false;
    while (i_ < s_.size()) {
      char c = s_[i_++];
      if (c == '"') return control ? std::nullopt : std::optional(std::move(out));
      if (c == '\\') {
        if (i_ >= s_.size()) return std::nullopt;
        c = s_[i_++];
      }
      control = control || (static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7f;
      out += c;
    }
    return std::nullopt;
  }

  /// Whether a token68 starts here and is all of its list element.
  bool token68_ahead() const {
    size_t j = i_;
    while (j < s_.size() && is_token68_char(s_[j])) ++j;
    if (j == i_) return false;
    while (j < s_.size() && s_[j] == '=') ++j;
    while (j < s_.size() && (s_[j] == ' ' || s_[j] == '\t')) ++j;
    return j == s_.size() || s_[j] == ',';
  }

  std::string_view token68() {
    size_t start = i_;
    while (i_ < s_.size() && is_token68_char(s_[i_])) ++i_;
    while (at('=')) ++i_;
    return s_.substr(start, i_ - start);
  }

  /// Whether an auth-param ("name =") starts here rather than a new challenge.
  /// "name=" with no value counts: it is a malformed parameter, not a token68,
  /// since a token68 only ever follows a scheme.
  bool param_ahead() const {
    size_t j = i_;
    while (j < s_.size() && is_tchar(s_[j])) ++j;
    if (j == i_) return false;
    while (j < s_.size() && (s_[j] == ' ' || s_[j] == '\t')) ++j;
    return j < s_.size() && s_[j] == '=';
  }

  /// Past the rest of the current list element; a comma inside a quoted string
  /// does not end it.
  void skip_element() {
    bool in_quotes = false;
    for (; i_ < s_.size(); ++i_) {
      char c = s_[i_];
      if (in_quotes && c == '\\' && i_ + 1 < s_.size())
        ++i_;
      else if (c == '"')
        in_quotes = !in_quotes;
      else if (c == ',' && !in_quotes)
        return;
    }
  }

private:
  std::string_view s_;
  size_t i_ = 0;
};

/// name BWS "=" BWS ( token / quoted-string ), added to `params`. False when
/// malformed or repeated: RFC 7235 allows each name once, and two realms would
/// leave the choice to whichever one a map keeps.
bool parse_param(Cursor& in, std::map<std::string, std::string>& params) {
  std::string name = lower(in.token());
  in.skip_ows();
  if (name.empty() || !in.consume('=')) return false;
  in.skip_ows();
  std::string value;
  if (in.at('"')) {
    std::optional<std::string> q = in.quoted_string();
    if (!q) return false;
    value = std::move(*q);
  } else {
    value = in.token();
    if (value.empty()) return false;
  }
  return params.emplace(std::move(name), std::move(value)).second;
}

/// One challenge from its scheme up to where the next one begins; false when malformed.
bool parse_challenge(Cursor& in, AuthChallenge& challenge) {
  challenge.scheme = lower(in.token());
  // A scheme glued to something else ('realm="x"' with no scheme) is no challenge.
  if (challenge.scheme.empty() || !(in.at_end() || in.at(' ') || in.at('\t') || in.at(','))) return false;
  in.skip_ows();
  if (in.token68_ahead()) {
    challenge.token68 = in.token68();
    return true;
  }
  // "Bearer , realm=x": the list of auth-params may start with empty elements.
  in.skip_separators();
  if (!in.param_ahead()) return true;  // a scheme alone ("Negotiate"), then the next challenge
  for (;;) {
    if (!parse_param(in, challenge.params)) return false;
    in.skip_ows();
    if (in.at_end()) return true;
    if (!in.at(',')) return false;
    in.skip_separators();
    if (!in.param_ahead()) return true;
  }
}

}  // namespace

std::vector<AuthChallenge> parse_www_authenticate(std::string_view header) {
  std::vector<AuthChallenge> out;
  Cursor in(header);
  for (;;) {
    in.skip_separators();
    if (in.at_end()) return out;
    AuthChallenge challenge;
    if (parse_challenge(in, challenge)) {
      out.push_back(std::move(challenge));
      continue;
    }
    // Drop the challenge together with the parameters that still belong to it,
    // so none of them is mistaken for a challenge of its own.
    in.skip_element();
    for (;;) {
      in.skip_separators();
      if (!in.param_ahead()) break;
      in.skip_element();
    }
  }
}

}  // namespace imgbuild
