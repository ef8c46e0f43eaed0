#pragma once
// A Dockerfile read as Docker's own parser reads it: parser directives (the
// escape character), comments, line continuations, heredocs, an instruction's
// --flags, and its JSON (exec) form; then the shell words of an argument, with
// their quotes removed and their $VARIABLE references kept apart, for the
// instructions Docker expands. Nothing here knows about recipes
// (recipe_writer.hpp turns the result into one).
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace imgbuild::convert {

/// A malformed Dockerfile. what() starts with "NAME:LINE: ", the file as the
/// user named it and the line of the mistake.
class DockerfileError : public std::runtime_error {
  using runtime_error::runtime_error;
};

/// An instruction's --name=value option (`--from=builder`); a bare `--link`
/// has no value.
struct Flag {
  std::string name;  ///< without the dashes
  std::optional<std::string> value;
};

/// A here-document (`RUN <<EOF` ... `EOF`): its body, the lines after the
/// instruction up to the terminator, each ending with a newline.
struct Heredoc {
  std::string name;     ///< the terminator word, without quotes
  std::string body;     ///< leading tabs already removed for <<-
  bool quoted = false;  ///< <<"EOF": no expansion in the body
};

/// One instruction, its continuation lines joined.
struct Instruction {
  int line = 0;             ///< where it starts (1-based)
  std::string keyword;      ///< upper case: "RUN"
  std::vector<Flag> flags;  ///< the leading --options
  std::string args;         ///< the rest, as written (continuations joined)
  /// args as a JSON list of strings, when they are one (for HEALTHCHECK,
  /// what follows its CMD)
  std::optional<std::vector<std::string>> exec;
  std::vector<Heredoc> heredocs;      ///< in the order the first line names them
  std::vector<std::string> comments;  ///< the comment lines just before it, without '#'
};

/// A whole Dockerfile.
struct Dockerfile {
  char escape = '\\';  ///< `# escape=` directive: '\\' or '`'
  std::vector<Instruction> instructions;
  std::vector<std::string> trailing_comments;  ///< comments after the last instruction
};

/// Parses `text`, naming it `name` in errors ("Dockerfile:7: unknown
/// instruction: RUNN"). Checks what any instruction needs (arguments, known
/// keyword, heredoc terminators, flags spelled --name), not what each means.
Dockerfile parse_dockerfile(std::string_view text, const std::string& name);

/// A piece of a shell word after quote removal: literal text, or a variable
/// reference $NAME / ${NAME} / ${NAME:-word} / ${NAME:+word} (the colon-less
/// forms too).
struct Segment {
  bool variable = false;
  std::string text;         ///< the literal, or the variable's name
  char op = 0;              ///< 0, '-' (default) or '+' (alternative)
  bool colon = false;       ///< ':-' / ':+': an empty value counts as unset
  std::string alternative;  ///< the word after the operator, literally
};

/// A shell word: its segments in order.
using Word = std::vector<Segment>;

/// The words of `text` split at unquoted blanks, quotes and escapes kept as
/// written (split_assignment and parse_word read them further).
std::vector<std::string> raw_words(std::string_view text, char escape);

/// `raw` (one word or a run of them) with quotes and escapes removed and
/// variable references apart, as Docker expands ENV, COPY, WORKDIR and the
/// like; with `expand` false, `$` is literal. Throws std::invalid_argument
/// for an unterminated quote or ${.
Word parse_word(std::string_view raw, char escape, bool expand = true);

/// A raw word split at its first unquoted '=': {"A", "b c"} for `A="b c"`;
/// nullopt when it has none.
std::optional<std::pair<std::string, std::string>> split_assignment(std::string_view raw, char escape);

}  // namespace imgbuild::convert
