#include "convert/dockerfile.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <set>

#include "base/text.hpp"

namespace imgbuild::convert {
namespace {

const std::set<std::string, std::less<>> kKeywords = {
    "ADD",   "ARG",        "CMD",     "COPY", "ENTRYPOINT", "ENV",        "EXPOSE", "FROM",   "HEALTHCHECK",
    "LABEL", "MAINTAINER", "ONBUILD", "RUN",  "SHELL",      "STOPSIGNAL", "USER",   "VOLUME", "WORKDIR",
};

/// Instructions whose arguments may be a JSON list (Docker's exec form).
const std::set<std::string, std::less<>> kExecForms = {"RUN", "CMD", "ENTRYPOINT", "SHELL", "VOLUME", "COPY", "ADD"};

/// Instructions that may take here-documents (BuildKit's list).
const std::set<std::string, std::less<>> kHeredocs = {"RUN", "COPY", "ADD"};

bool blank(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

std::string_view trim_left(std::string_view s) {
  while (!s.empty() && blank(s.front())) s.remove_prefix(1);
  return s;
}

std::string_view trim_right(std::string_view s) {
  while (!s.empty() && blank(s.back())) s.remove_suffix(1);
  return s;
}

std::string upper(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::toupper(c); });
  return out;
}

bool name_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

/// The text's lines, the '\r' of CRLF files removed.
std::vector<std::string> lines_of(std::string_view text) {
  std::vector<std::string> lines = fields(std::string(text), '\n');
  for (std::string& line : lines)
    if (line.ends_with('\r')) line.pop_back();
  return lines;
}

/// The parser directives at the top (`# escape=`` `); they end at the first
/// line that is none, as Docker's do.
size_t read_directives(const std::vector<std::string>& lines, Dockerfile& file, const std::string& name) {
  size_t i = 0;
  std::set<std::string> seen;
  for (; i < lines.size(); ++i) {
    std::string_view s = trim_left(lines[i]);
    if (!s.starts_with('#')) break;
    s = trim_left(s.substr(1));
    size_t eq = s.find('=');
    if (eq == std::string_view::npos || eq == 0) break;
    std::string key(trim_right(s.substr(0, eq)));
    if (!std::all_of(key.begin(), key.end(), name_char)) break;
    key = upper(key);
    std::string value(trim_left(trim_right(s.substr(eq + 1))));
    if (!seen.insert(key).second) break;  // a repeated directive is a comment, as Docker reads it
    if (key == "ESCAPE") {
      if (value != "\\" && value != "`")
        throw DockerfileError(name + ":" + std::to_string(i + 1) + ": invalid escape directive '" + value +
                              "': it must be \\ or `");
      file.escape = value[0];
    }
  }
  return i;
}

/// Whether a line goes on with the next one: its last non-blank character is
/// the escape character.
bool continues(std::string_view line, char escape) {
  line = trim_right(line);
  return !line.empty() && line.back() == escape;
}

std::optional<std::vector<std::string>> json_list(const std::string& args) {
  if (!args.starts_with('[')) return std::nullopt;
  nlohmann::json j = nlohmann::json::parse(args, nullptr, false);
  if (j.is_discarded() || !j.is_array()) return std::nullopt;
  std::vector<std::string> out;
  for (auto& item : j) {
    if (!item.is_string()) return std::nullopt;
    out.push_back(item.get<std::string>());
  }
  return out;
}

/// The here-documents an instruction names: `<<EOF`, `<<-EOF` (whether its
/// lines lose their leading tabs goes to `strip_tabs`), `<<"EOF"`; `<<<` (a
/// here-string) is not one.
std::vector<Heredoc> heredoc_markers(std::string_view args, std::vector<bool>& strip_tabs) {
  std::vector<Heredoc> out;
  for (size_t at = args.find("<<"); at != std::string_view::npos; at = args.find("<<", at + 2)) {
    size_t i = at + 2;
    if (i < args.size() && args[i] == '<') {
      at = i;
      continue;
    }
    bool strip = i < args.size() && args[i] == '-';
    if (strip) ++i;
    char quote = i < args.size() && (args[i] == '"' || args[i] == '\'') ? args[i] : 0;
    if (quote) ++i;
    size_t begin = i;
    while (i < args.size() && name_char(args[i])) ++i;
    if (i == begin || (quote && (i >= args.size() || args[i] != quote))) continue;
    out.push_back({std::string(args.substr(begin, i - begin)), "", quote != 0});
    strip_tabs.push_back(strip);
  }
  return out;
}

}  // namespace

Dockerfile parse_dockerfile(std::string_view text, const std::string& name) {
  Dockerfile file;
  std::vector<std::string> lines = lines_of(text);
  size_t i = read_directives(lines, file, name);
  std::vector<std::string> comments;
  auto where = [&](size_t line) { return name + ":" + std::to_string(line) + ": "; };
  while (i < lines.size()) {
    std::string_view first = trim_left(lines[i]);
    if (first.empty()) {
      ++i;
      continue;
    }
    if (first.starts_with('#')) {
      std::string_view c = first.substr(1);
      if (c.starts_with(' ')) c.remove_prefix(1);
      comments.emplace_back(trim_right(c));
      ++i;
      continue;
    }
    Instruction in;
    in.line = static_cast<int>(i + 1);
    in.comments = std::move(comments);
    comments.clear();
    // The logical line: continuation lines joined, blank and comment lines
    // between them dropped, as Docker drops them.
    std::string logical;
    while (i < lines.size()) {
      std::string_view line = lines[i++];
      if (!continues(line, file.escape)) {
        logical += line;
        break;
      }
      line = trim_right(line);
      logical += line.substr(0, line.size() - 1);
      while (i < lines.size() && (trim_left(lines[i]).empty() || trim_left(lines[i]).starts_with('#'))) ++i;
    }
    std::string_view rest = trim_left(logical);
    size_t end = 0;
    while (end < rest.size() && !blank(rest[end])) ++end;
    in.keyword = upper(rest.substr(0, end));
    if (!kKeywords.contains(in.keyword))
      throw DockerfileError(where(in.line) + "unknown instruction: " + std::string(rest.substr(0, end)));
    rest = trim_left(rest.substr(end));
    while (in.keyword != "ONBUILD" && rest.starts_with("--")) {
      size_t stop = 0;
      while (stop < rest.size() && !blank(rest[stop])) ++stop;
      std::string_view word = rest.substr(2, stop - 2);
      size_t eq = word.find('=');
      Flag flag{std::string(word.substr(0, eq)), std::nullopt};
      if (eq != std::string_view::npos) flag.value = std::string(word.substr(eq + 1));
      if (flag.name.empty())
        throw DockerfileError(where(in.line) + in.keyword + ": malformed option '" + std::string(rest.substr(0, stop)) +
                              "' (expected --name=value)");
      in.flags.push_back(std::move(flag));
      rest = trim_left(rest.substr(stop));
    }
    in.args = std::string(trim_right(rest));
    if (in.args.empty()) throw DockerfileError(where(in.line) + in.keyword + " needs at least one argument");
    if (kExecForms.contains(in.keyword)) in.exec = json_list(in.args);
    if (in.keyword == "HEALTHCHECK" && upper(in.args.substr(0, 3)) == "CMD")
      in.exec = json_list(std::string(trim_left(std::string_view(in.args).substr(3))));
    if (kHeredocs.contains(in.keyword) && !in.exec) {
      std::vector<bool> strip;
      in.heredocs = heredoc_markers(in.args, strip);
      for (size_t h = 0; h < in.heredocs.size(); ++h) {
        Heredoc& doc = in.heredocs[h];
        bool closed = false;
        while (i < lines.size() && !closed) {
          std::string_view line = lines[i++];
          if (strip[h])
            while (line.starts_with('\t')) line.remove_prefix(1);
          if (line == doc.name)
            closed = true;
          else
            doc.body.append(line).append("\n");
        }
        if (!closed)
          throw DockerfileError(where(in.line) + in.keyword + ": here-document <<" + doc.name +
                                " has no terminating line '" + doc.name + "'");
      }
    }
    file.instructions.push_back(std::move(in));
  }
  file.trailing_comments = std::move(comments);
  return file;
}

std::vector<std::string> raw_words(std::string_view text, char escape) {
  std::vector<std::string> words;
  std::string word;
  bool in_word = false;
  char quote = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (!quote && blank(c)) {
      if (in_word) words.push_back(std::move(word));
      word.clear();
      in_word = false;
      continue;
    }
    in_word = true;
    word += c;
    if (c == escape && quote != '\'' && i + 1 < text.size()) {
      word += text[++i];
    } else if (quote ? c == quote : (c == '"' || c == '\'')) {
      quote = quote ? 0 : c;
    }
  }
  if (in_word) words.push_back(std::move(word));
  return words;
}

Word parse_word(std::string_view raw, char escape, bool expand) {
  Word word;
  auto literal = [&](std::string_view s) {
    if (word.empty() || word.back().variable) word.push_back({});
    word.back().text += s;
  };
  // A $ reference starting at raw[i] == '$'; returns the index after it.
  auto variable = [&](size_t i) {
    size_t j = i + 1;
    if (j < raw.size() && raw[j] == '{') {
      size_t begin = ++j;
      while (j < raw.size() && name_char(raw[j])) ++j;
      Segment seg;
      seg.variable = true;
      seg.text = raw.substr(begin, j - begin);
      if (seg.text.empty()) throw std::invalid_argument("${...}: missing variable name");
      if (j < raw.size() && raw[j] == ':') {
        seg.colon = true;
        ++j;
      }
      if (j < raw.size() && (raw[j] == '-' || raw[j] == '+')) {
        seg.op = raw[j++];
        int depth = 0;
        while (j < raw.size() && (raw[j] != '}' || depth > 0)) {
          depth += raw[j] == '{' ? 1 : raw[j] == '}' ? -1 : 0;
          seg.alternative += raw[j++];
        }
      } else if (seg.colon || (j < raw.size() && raw[j] != '}')) {
        throw std::invalid_argument("${" + seg.text +
                                    "...}: only ${NAME}, ${NAME:-word} and ${NAME:+word} are supported");
      }
      if (j >= raw.size()) throw std::invalid_argument("${" + seg.text + ": missing '}'");
      word.push_back(std::move(seg));
      return j + 1;
    }
    size_t begin = j;
    while (j < raw.size() && name_char(raw[j])) ++j;
    if (j == begin) {
      literal("$");
      return j;
    }
    word.emplace_back().variable = true;
    word.back().text = raw.substr(begin, j - begin);
    return j;
  };
  size_t i = 0;
  while (i < raw.size()) {
    char c = raw[i];
    if (c == '\'') {
      size_t close = raw.find('\'', i + 1);
      if (close == std::string_view::npos) throw std::invalid_argument("unterminated single quote");
      literal(raw.substr(i + 1, close - i - 1));
      i = close + 1;
    } else if (c == '"') {
      ++i;
      while (true) {
        if (i >= raw.size()) throw std::invalid_argument("unterminated double quote");
        char d = raw[i];
        if (d == '"') {
          ++i;
          break;
        }
        if (d == escape && i + 1 < raw.size() && (raw[i + 1] == '"' || raw[i + 1] == '$' || raw[i + 1] == escape)) {
          literal(raw.substr(i + 1, 1));
          i += 2;
        } else if (d == '$' && expand) {
          i = variable(i);
        } else {
          literal(raw.substr(i++, 1));
        }
      }
    } else if (c == escape) {
      if (i + 1 < raw.size()) literal(raw.substr(i + 1, 1));
      i += 2;
    } else if (c == '$' && expand) {
      i = variable(i);
    } else {
      literal(raw.substr(i++, 1));
    }
  }
  return word;
}

std::optional<std::pair<std::string, std::string>> split_assignment(std::string_view raw, char escape) {
  char quote = 0;
  for (size_t i = 0; i < raw.size(); ++i) {
    char c = raw[i];
    if (c == escape && quote != '\'') {
      ++i;
    } else if (quote ? c == quote : (c == '"' || c == '\'')) {
      quote = quote ? 0 : c;
    } else if (!quote && c == '=') {
      return std::pair{std::string(raw.substr(0, i)), std::string(raw.substr(i + 1))};
    }
  }
  return std::nullopt;
}

}  // namespace imgbuild::convert
