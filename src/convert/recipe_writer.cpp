#include "convert/recipe_writer.hpp"

#include <cctype>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <vector>

#include "base/text.hpp"

namespace imgbuild::convert {
namespace {

namespace fs = std::filesystem;

/// Docker's PATH when an image sets none: what a stage from scratch gets in
/// its configuration, and the default of a PATH read from a base image.
constexpr const char* kDefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The build arguments Docker fills in itself from the build's platforms.
const std::set<std::string, std::less<>> kPlatformArgs = {
    "TARGETPLATFORM", "TARGETOS", "TARGETARCH", "TARGETVARIANT",
    "BUILDPLATFORM",  "BUILDOS",  "BUILDARCH",  "BUILDVARIANT",
};

/// Names a converted recipe cannot take for its locals: Lua's keywords and
/// the globals a recipe uses.
const std::set<std::string, std::less<>> kReserved = {
    "and",   "break", "do",      "else",     "elseif",   "end",    "false",  "for",    "function", "goto",
    "if",    "in",    "local",   "nil",      "not",      "or",     "repeat", "return", "then",     "true",
    "until", "while", "from",    "scratch",  "image",    "param",  "push",   "hash",   "exists",   "cached",
    "ci",    "env",   "inspect", "require",  "print",    "string", "table",  "math",   "os",       "io",
    "type",  "pairs", "ipairs",  "tostring", "tonumber", "error",  "select", "next",   "assert",   "pcall",
};

bool identifier(std::string_view s) {
  if (s.empty() || std::isdigit(static_cast<unsigned char>(s[0]))) return false;
  for (char c : s)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') return false;
  return true;
}

/// `s` as a Lua string literal: quoted with escapes, or a long bracket when
/// it spans lines (a script reads better as it was written).
std::string lua_string(std::string_view s) {
  if (s.find('\n') != std::string_view::npos) {
    std::string eq;
    while (s.find("]" + eq + "]") != std::string_view::npos || s.ends_with("]" + eq)) eq += '=';
    // A newline right after the opening bracket is skipped by Lua: add one so
    // that a leading newline of `s` stays.
    return "[" + eq + "[\n" + std::string(s) + "]" + eq + "]";
  }
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        if (c < 0x20 || c == 0x7f) {
          out += "\\" + std::to_string(c);
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

/// A table key: `NAME` or `["org.example.key"]`.
std::string lua_key(std::string_view key) {
  return identifier(key) && !kReserved.contains(key) ? std::string(key) : "[" + lua_string(key) + "]";
}

/// A Lua string expression made of literal text and Lua code (param values).
class Expr {
public:
  Expr() = default;
  explicit Expr(std::string literal) { add_literal(literal); }

  void add_literal(std::string_view s) {
    if (s.empty()) return;
    if (parts_.empty() || parts_.back().code) parts_.push_back({false, ""});
    parts_.back().text += s;
  }
  void add_code(std::string code) { parts_.push_back({true, std::move(code)}); }
  void append(const Expr& other) {
    for (auto& p : other.parts_) p.code ? add_code(p.text) : add_literal(p.text);
  }
  /// The literal text, when no part is code.
  std::optional<std::string> literal() const {
    if (parts_.empty()) return std::string();
    if (parts_.size() == 1 && !parts_[0].code) return parts_[0].text;
    return std::nullopt;
  }
  std::string lua() const {
    if (parts_.empty()) return "\"\"";
    std::string out;
    for (auto& p : parts_) {
      if (!out.empty()) out += " .. ";
      out += p.code ? p.text : lua_string(p.text);
    }
    return out;
  }
  /// As the single argument of a method: `:workdir "/app"` or `:workdir(A .. "/b")`.
  std::string argument() const { return literal() ? " " + lua() : "(" + lua() + ")"; }

private:
  struct Part {
    bool code;
    std::string text;
  };
  std::vector<Part> parts_;
};

/// What is known of a stage while it is written.
struct Stage {
  std::string var;                          ///< its Lua local
  std::map<std::string, Expr> env;          ///< ENV set in this stage (and the stages it is built on)
  std::map<std::string, std::string> args;  ///< ARGs declared in it: name -> Lua local
  std::vector<std::string> arg_order;       ///< the same, in declaration order
  std::vector<std::string> shell = {"/bin/sh", "-c"};
};

/// One RUN --mount or ADD/COPY option set, `a=b,c=d`.
std::map<std::string, std::string> options_of(const std::string& text) {
  std::map<std::string, std::string> out;
  for (const std::string& item : split(text, ',')) {
    size_t eq = item.find('=');
    out[item.substr(0, eq)] = eq == std::string::npos ? "" : item.substr(eq + 1);
  }
  return out;
}

bool looks_like_tar_name(std::string_view name) {
  for (std::string_view ext : {".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tbz", ".tar.xz", ".txz"})
    if (name.ends_with(ext)) return true;
  return false;
}

/// What a file holds, by its first bytes, as Docker's ADD decides whether to extract it.
enum class Content { Tar, Compressed, Other };

Content sniff(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::string head(512, '\0');
  in.read(head.data(), static_cast<std::streamsize>(head.size()));
  head.resize(static_cast<size_t>(in.gcount()));
  if (head.size() > 262 && head.compare(257, 5, "ustar") == 0) return Content::Tar;
  bool compressed = head.starts_with("\x1f\x8b") || head.starts_with("BZh") ||
                    head.starts_with(
                        "\xfd"
                        "7zXZ");
  return compressed ? Content::Compressed : Content::Other;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  return s;
}

bool is_url(std::string_view s) { return s.starts_with("http://") || s.starts_with("https://"); }

bool is_git(std::string_view s) { return s.starts_with("git@") || s.starts_with("git://") || s.ends_with(".git"); }

class Writer {
public:
  Writer(const Dockerfile& file, const ConvertOptions& options) : file_(file), options_(options) {}

  std::string write() {
    for (const Instruction& in : file_.instructions) {
      line_ = in.line;
      for (const std::string& c : in.comments) out("-- " + c);
      if (in.keyword == "FROM")
        from(in);
      else if (stage_ == nullptr && in.keyword == "ARG")
        arg(in);
      else if (stage_ == nullptr)
        fail(in.keyword + " before the first FROM (only ARG may come before it)");
      else
        instruction(in);
    }
    for (const std::string& c : file_.trailing_comments) out("-- " + c);
    if (stages_.empty()) throw DockerfileError(options_.name + ": no FROM: a Dockerfile needs at least one stage");
    body_ << "\nimage(" << lua_string(options_.target) << ", " << stages_.back().var << ")\n";
    return header() + body_.str();
  }

private:
  [[noreturn]] void fail(const std::string& what) const {
    throw DockerfileError(options_.name + ":" + std::to_string(line_) + ": " + what);
  }

  /// A line of the recipe, indented under its stage's chain.
  void out(const std::string& text) { body_ << (stage_ ? "  " : "") << text << "\n"; }
  void cannot(const std::string& what) { out("-- imgbuild convert: cannot express " + what); }

  std::string header() const {
    std::ostringstream h;
    h << "-- Converted by `imgbuild convert` from " << options_.name << ".\n"
      << "-- Build it with `imgbuild recipe.lua` with this file in the build context\n"
      << "-- (a recipe's build context is its folder; --context DIR names another).\n";
    if (options_.context && fs::exists(*options_.context / ".dockerignore"))
      h << "-- The context's .dockerignore is kept as it is: imgbuild reads it as Docker does.\n";
    if (!params_.empty()) h << "\n";
    for (const std::string& p : params_) h << p << "\n";
    return h.str();
  }

  /// A fresh Lua local named after `want`.
  std::string local_name(std::string_view want) {
    std::string name;
    for (char c : want) name += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
    if (name.empty() || std::isdigit(static_cast<unsigned char>(name[0]))) name = "stage_" + name;
    if (kReserved.contains(name)) name += "_";
    std::string unique = name;
    for (int n = 2; !locals_.insert(unique).second; ++n) unique = name + "_" + std::to_string(n);
    return unique;
  }

  /// A param() for build argument `name` with default `value`, declared once
  /// per (name, default).
  std::string param(const std::string& name, const Expr& value, const std::string& why) {
    std::string key = name + "\n" + value.lua();
    if (auto it = param_by_key_.find(key); it != param_by_key_.end()) return it->second;
    std::string var = local_name(name);
    params_.push_back("local " + var + " = param(" + lua_string(name) + ", " + value.lua() + ")  -- " + why);
    param_by_key_[key] = var;
    return var;
  }

  /// The value of $NAME where it is expanded: the stage's ENV, its ARGs,
  /// before any stage the global ARGs; else the base image's environment,
  /// which a recipe cannot read: a param() the user sets.
  Expr lookup(const std::string& name) {
    if (stage_) {
      if (auto it = stage_->env.find(name); it != stage_->env.end()) return it->second;
      if (auto it = stage_->args.find(name); it != stage_->args.end()) {
        Expr e;
        e.add_code(it->second);
        return e;
      }
      Expr fallback(name == "PATH" ? kDefaultPath : "");
      Expr e;
      e.add_code(param(name, fallback,
                       "$" + name + " at " + options_.name + ":" + std::to_string(line_) +
                           " comes from the base image's environment in Docker; a recipe cannot read it: "
                           "set it with --set " +
                           name + "=VALUE"));
      return e;
    }
    if (auto it = global_args_.find(name); it != global_args_.end()) {
      Expr e;
      e.add_code(it->second);
      return e;
    }
    fail("$" + name + " is not an ARG declared before the first FROM");
  }

  Expr resolve(const Word& word) {
    Expr e;
    for (const Segment& s : word) {
      if (!s.variable) {
        e.add_literal(s.text);
        continue;
      }
      Expr value = lookup(s.text);
      if (s.op == 0) {
        e.append(value);
        continue;
      }
      Expr alt(s.alternative);
      if (auto v = value.literal()) {
        // Known here: a set variable, so only ':' makes an empty one count as unset.
        bool unset = s.colon && v->empty();
        e.append(s.op == '-' ? (unset ? alt : value) : (unset ? Expr() : alt));
      } else {
        std::string v_lua = value.lua();
        e.add_code("(" + v_lua + " ~= \"\" and " + (s.op == '-' ? v_lua : alt.lua()) + " or " +
                   (s.op == '-' ? alt.lua() : "\"\"") + ")");
      }
    }
    return e;
  }

  Expr expand(std::string_view raw) {
    try {
      return resolve(parse_word(raw, file_.escape));
    } catch (const std::invalid_argument& e) {
      fail(e.what());
    }
  }

  std::vector<Expr> expand_words(const Instruction& in) {
    std::vector<Expr> words;
    if (in.exec) {
      for (const std::string& w : *in.exec) words.push_back(expand_json(w));
    } else {
      for (const std::string& w : raw_words(in.args, file_.escape)) words.push_back(expand(w));
    }
    return words;
  }

  /// An item of a JSON list: Docker expands its variables, with no quotes to remove.
  Expr expand_json(const std::string& item) {
    try {
      return resolve(parse_word(item, '\0'));
    } catch (const std::invalid_argument& e) {
      fail(e.what());
    }
  }

  static std::string lua_list(const std::vector<std::string>& items) {
    std::string out = "{ ";
    for (size_t i = 0; i < items.size(); ++i) out += (i ? ", " : "") + lua_string(items[i]);
    return out + " }";
  }

  void from(const Instruction& in) {
    stage_ = nullptr;  // FROM sees the global ARGs only
    std::vector<std::string> words = raw_words(in.args, file_.escape);
    if (words.size() != 1 && !(words.size() == 3 && lower(words[1]) == "as"))
      fail("FROM: expected FROM IMAGE [AS NAME], got 'FROM " + in.args + "'");
    Expr ref = expand(words[0]);
    std::optional<std::string> platform;
    std::vector<std::string> notes;
    for (const Flag& f : in.flags) {
      if (f.name == "platform" && f.value && f.value->find('$') == std::string::npos)
        platform = *f.value;
      else
        notes.push_back("--" + f.name + (f.value ? "=" + *f.value : "") +
                        " (a recipe builds for --platform, its from() for a fixed platform)");
    }
    Stage stage;
    std::string base;
    auto lit = ref.literal();
    std::string lower = lit ? *lit : "";
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (auto it = stage_by_name_.find(lower); lit && it != stage_by_name_.end()) {
      const Stage& parent = stages_[it->second];
      base = parent.var;
      stage.env = parent.env;
      stage.shell = parent.shell;
    } else if (lit && *lit == "scratch") {
      base = "scratch";
    } else if (platform) {
      base = "from(" + ref.lua() + ", { platform = " + lua_string(*platform) + " })";
    } else {
      base = "from" + ref.argument();
    }
    std::string name = words.size() == 3 ? words[2] : "";
    stage.var = local_name(name.empty() ? "stage" + std::to_string(stages_.size()) : name);
    body_ << "\n";
    for (const std::string& n : notes) body_ << "-- imgbuild convert: cannot express FROM " << n << "\n";
    body_ << "local " << stage.var << " = " << base << "\n";
    if (base == "scratch") {
      // Docker gives an image without an environment its default PATH.
      body_ << "  :env { PATH = " << lua_string(kDefaultPath)
            << " }  -- Docker's default, set in a stage from scratch\n";
      stage.env["PATH"] = Expr(kDefaultPath);
    }
    stages_.push_back(std::move(stage));
    stage_ = &stages_.back();
    if (!name.empty()) {
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      stage_by_name_[name] = stages_.size() - 1;
    }
  }

  void arg(const Instruction& in) {
    for (const std::string& w : raw_words(in.args, file_.escape)) {
      auto kv = split_assignment(w, file_.escape);
      std::string name = kv ? kv->first : w;
      if (!identifier(name)) fail("ARG: invalid name '" + name + "'");
      std::string where = "ARG " + name + " at " + options_.name + ":" + std::to_string(line_);
      std::string var;
      if (kPlatformArgs.contains(name)) {
        cannot("ARG " + name + ": Docker sets it from the build's platform; here it is a param, --set " + name +
               "=VALUE");
        var = param(name, Expr(""), where);
      } else if (kv) {
        var = param(name, expand(kv->second), where);
      } else if (auto g = global_args_.find(name); stage_ && g != global_args_.end()) {
        var = g->second;  // ARG NAME in a stage takes the global ARG's value
      } else {
        var = param(name, Expr(""), where);
      }
      if (stage_) {
        if (!stage_->args.count(name)) stage_->arg_order.push_back(name);
        stage_->args[name] = var;
      } else {
        global_args_[name] = var;
      }
    }
  }

  void instruction(const Instruction& in) {
    const std::string& k = in.keyword;
    if (k == "RUN") return run(in);
    if (k == "COPY" || k == "ADD") return copy(in);
    if (k == "ENV") return env(in);
    if (k == "ARG") return arg(in);
    if (k == "LABEL") return label(in);
    if (k == "WORKDIR") return out(":workdir" + single(in).argument());
    if (k == "USER") return out(":user" + single(in).argument());
    if (k == "STOPSIGNAL") return out(":stopsignal" + single(in).argument());
    if (k == "EXPOSE") return expose(in);
    if (k == "VOLUME") return volume(in);
    if (k == "CMD" || k == "ENTRYPOINT") return out(":" + lower(k) + " " + lua_list(command(in)));
    if (k == "SHELL") return shell(in);
    if (k == "HEALTHCHECK") return healthcheck(in);
    if (k == "MAINTAINER") return cannot("MAINTAINER " + in.args + " (the image's author field; a :label says it)");
    cannot(k + " " + in.args);  // ONBUILD
  }

  static std::string lower(std::string s) {
    for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
  }

  /// The one expanded argument of WORKDIR, USER, STOPSIGNAL (spaces kept, as Docker keeps them).
  Expr single(const Instruction& in) { return expand(in.args); }

  /// CMD, ENTRYPOINT and a shell-form RUN as argv: the exec form as is, the
  /// shell form after the stage's SHELL.
  std::vector<std::string> command(const Instruction& in) {
    if (in.exec) return *in.exec;
    std::vector<std::string> argv = stage_->shell;
    argv.push_back(in.args);
    return argv;
  }

  void run(const Instruction& in) {
    std::vector<std::string> options;
    std::vector<std::string> caches;
    std::vector<std::string> secrets;
    for (const Flag& f : in.flags) {
      std::string value = f.value.value_or("");
      if (f.name == "network" && (value == "host" || value == "none" || value == "default")) {
        options.push_back("network = " + lua_string(value));
      } else if (f.name == "mount") {
        mount(value, caches, secrets);
      } else {
        cannot("RUN --" + f.name + (f.value ? "=" + value : ""));
      }
    }
    if (!caches.empty()) options.push_back("cache = " + lua_list(caches));
    if (!secrets.empty()) {
      std::string s = "secrets = { ";
      for (size_t i = 0; i < secrets.size(); ++i)
        s += (i ? ", " : "") + lua_key(secrets[i]) + " = " + lua_string(secrets[i]);
      options.push_back(s + " }");
    }
    if (!stage_->arg_order.empty()) {
      // Docker gives RUN steps the stage's build arguments as environment variables.
      std::string e = "env = { ";
      for (size_t i = 0; i < stage_->arg_order.size(); ++i) {
        const std::string& name = stage_->arg_order[i];
        e += (i ? ", " : "") + lua_key(name) + " = " + stage_->args[name];
      }
      options.push_back(e + " }");
    }
    std::optional<std::string> script;
    if (!in.exec && !in.heredocs.empty()) script = heredoc_script(in);
    std::string opts;
    for (size_t i = 0; i < options.size(); ++i) opts += (i ? ", " : "") + options[i];
    bool shell_default = stage_->shell == std::vector<std::string>{"/bin/sh", "-c"};
    if (!in.exec && shell_default) {
      std::string cmd = lua_string(script ? *script : in.args);
      out(options.empty() ? ":run " + cmd : ":run(" + cmd + ", { " + opts + " })");
      return;
    }
    std::vector<std::string> argv = in.exec ? *in.exec : stage_->shell;
    if (!in.exec) argv.push_back(script ? *script : in.args);
    std::string list = lua_list(argv);
    if (!options.empty()) list = list.substr(0, list.size() - 2) + ", " + opts + " }";
    out(":run " + list);
  }

  /// The shell script of a RUN with here-documents: a lone `<<EOF` is the
  /// script itself, as BuildKit runs it; otherwise the command and its
  /// here-documents are one shell script, which sh reads the same way.
  std::string heredoc_script(const Instruction& in) {
    std::string args = in.args;
    if (in.heredocs.size() == 1 && args.find(' ') == std::string::npos && args.starts_with("<<")) {
      const std::string& body = in.heredocs[0].body;
      if (body.starts_with("#!"))
        cannot("the #! line of the here-document at this RUN: the script runs with the stage's shell");
      return body;
    }
    std::string script = args + "\n";
    for (const Heredoc& h : in.heredocs) script += h.body + h.name + "\n";
    return script;
  }

  void mount(const std::string& spec, std::vector<std::string>& caches, std::vector<std::string>& secrets) {
    auto o = options_of(spec);
    std::string type = o.count("type") ? o["type"] : "bind";
    std::string target = o.count("target") ? o["target"] : o.count("dst") ? o["dst"] : o["destination"];
    if (type == "cache" && !target.empty()) {
      caches.push_back(target);
      for (auto& [key, value] : o)
        if (key != "type" && key != "target" && key != "dst" && key != "destination")
          cannot("RUN --mount=type=cache option " + key + (value.empty() ? "" : "=" + value) +
                 " (a recipe's caches are shared by path)");
    } else if (type == "secret") {
      std::string id = o.count("id") ? o["id"] : fs::path(target).filename().string();
      if (id.empty()) fail("RUN --mount=type=secret needs an id or a target");
      if (!target.empty() && target != "/run/secrets/" + id)
        cannot("RUN --mount=type=secret,target=" + target + ": imgbuild mounts secret " + id + " at /run/secrets/" +
               id);
      if (o.count("env"))
        cannot("RUN --mount=type=secret,env=" + o["env"] + ": the secret is a file at /run/secrets/" + id);
      out("-- imgbuild convert: secret " + id + " is read from the file " + id +
          " in the build context (docker build --secret id=" + id + ",src=FILE): name that file in secrets");
      secrets.push_back(id);
    } else {
      cannot("RUN --mount=" + spec);
    }
  }

  void copy(const Instruction& in) {
    std::string k = in.keyword;
    if (!in.heredocs.empty()) return cannot(k + " from a here-document: " + in.args);
    std::vector<std::string> opts;
    bool from_image = false;
    std::optional<std::string> checksum;
    for (const Flag& f : in.flags) {
      std::string value = f.value.value_or("");
      if (f.name == "from" && k == "COPY") {
        opts.push_back("from = " + source_image(value));
        from_image = true;
      } else if (f.name == "chown") {
        if (value.find_first_not_of("0123456789:") == std::string::npos && !value.empty() && value.front() != ':')
          opts.push_back("chown = " + lua_string(value));
        else
          cannot(k + " --chown=" + value +
                 ": give numeric ids such as \"1000:1000\" (names need the image's /etc/passwd)");
      } else if (f.name == "chmod") {
        opts.push_back("chmod = " + lua_string(value));
      } else if (f.name == "checksum" && k == "ADD") {
        checksum = value;
      } else if (f.name != "link") {  // --link changes how the layer is made, not what it holds
        cannot(k + " --" + f.name + (f.value ? "=" + value : ""));
      }
    }
    std::vector<Expr> words = expand_words(in);
    if (words.size() < 2) fail(k + " needs a source and a destination");
    Expr dst = words.back();
    words.pop_back();
    bool add = false;
    for (Expr& src : words) {
      auto lit = src.literal();
      if (k == "ADD" && lit && is_git(*lit)) return cannot("ADD of a git repository " + *lit);
      if (k == "ADD" && (lit ? (is_url(*lit) || archive(*lit)) : false)) add = true;
      // Docker reads a context source from the context's root, whatever its leading '/'.
      if (!from_image && lit && lit->starts_with('/') && !is_url(*lit)) {
        std::string s = *lit;
        s.erase(0, s.find_first_not_of('/'));
        src = Expr(s.empty() ? "." : s);
      }
    }
    if (checksum) {
      if (add)
        opts.push_back("checksum = " + lua_string(*checksum));
      else
        cannot("ADD --checksum=" + *checksum + " of a local file");
    } else if (add) {
      for (const Expr& src : words)
        if (auto lit = src.literal(); lit && is_url(*lit))
          out("-- imgbuild convert: ADD of a URL needs its checksum in a recipe: add checksum = \"sha256:...\"");
    }
    std::string srcs;
    if (words.size() == 1) {
      srcs = words[0].lua();
    } else {
      srcs = "{ ";
      for (size_t i = 0; i < words.size(); ++i) srcs += (i ? ", " : "") + words[i].lua();
      srcs += " }";
    }
    std::string call = std::string(add ? ":add(" : ":copy(") + srcs + ", " + dst.lua();
    if (!opts.empty()) {
      call += ", { ";
      for (size_t i = 0; i < opts.size(); ++i) call += (i ? ", " : "") + opts[i];
      call += " }";
    }
    out(call + ")");
  }

  /// A local ADD source Docker would extract: a tar archive, compressed or
  /// not. Docker decompresses to look for tar inside; here a compressed file
  /// counts when its name says tar.
  bool archive(const std::string& src) const {
    if (options_.context) {
      std::error_code ec;
      fs::path file = *options_.context / src;
      if (fs::is_regular_file(file, ec)) {
        Content c = sniff(file);
        return c == Content::Tar || (c == Content::Compressed && looks_like_tar_name(src));
      }
    }
    return looks_like_tar_name(src);
  }

  /// COPY --from=: a stage by name or index, else an image.
  std::string source_image(const std::string& value) {
    if (auto it = stage_by_name_.find(lower(value)); it != stage_by_name_.end()) return stages_[it->second].var;
    if (!value.empty() && value.find_first_not_of("0123456789") == std::string::npos) {
      size_t index = std::stoul(value);
      if (index + 1 >= stages_.size()) fail("COPY --from=" + value + ": no earlier stage has that index");
      return stages_[index].var;
    }
    return "from " + lua_string(value);
  }

  /// ENV and LABEL's NAME=VALUE pairs (or the old `NAME VALUE` form), all
  /// expanded with the variables as they were before the instruction.
  std::vector<std::pair<std::string, Expr>> assignments(const Instruction& in) {
    std::vector<std::pair<std::string, Expr>> pairs;
    std::vector<std::string> words = raw_words(in.args, file_.escape);
    if (!split_assignment(words[0], file_.escape)) {
      size_t space = in.args.find_first_of(" \t");
      if (space == std::string::npos) fail(in.keyword + " " + words[0] + ": expected NAME=VALUE or NAME VALUE");
      std::string value = in.args.substr(in.args.find_first_not_of(" \t", space));
      pairs.emplace_back(words[0], expand(value));
      return pairs;
    }
    for (const std::string& w : words) {
      auto kv = split_assignment(w, file_.escape);
      if (!kv) fail(in.keyword + ": expected NAME=VALUE, got '" + w + "'");
      Word key = parse_word(kv->first, file_.escape, false);
      pairs.emplace_back(key.empty() ? "" : key[0].text, expand(kv->second));
    }
    return pairs;
  }

  static std::string table(const std::vector<std::pair<std::string, Expr>>& pairs) {
    std::map<std::string, std::string> last;
    std::vector<std::string> order;
    for (auto& [name, value] : pairs) {
      if (!last.count(name)) order.push_back(name);
      last[name] = value.lua();
    }
    std::string t = "{ ";
    for (size_t i = 0; i < order.size(); ++i) t += (i ? ", " : "") + lua_key(order[i]) + " = " + last[order[i]];
    return t + " }";
  }

  void env(const Instruction& in) {
    auto pairs = assignments(in);
    for (auto& [name, value] : pairs) stage_->env[name] = value;
    out(":env " + table(pairs));
  }

  void label(const Instruction& in) { out(":label " + table(assignments(in))); }

  void expose(const Instruction& in) {
    std::string ports;
    for (const Expr& w : expand_words(in)) {
      auto lit = w.literal();
      std::string port;
      if (lit && !lit->empty() && lit->find_first_not_of("0123456789") == std::string::npos)
        port = *lit;
      else if (lit && lit->find('-') != std::string::npos)
        cannot("EXPOSE " + *lit + " (a range of ports: name each)");
      else
        port = w.lua();
      if (!port.empty()) ports += (ports.empty() ? "" : ", ") + port;
    }
    if (!ports.empty()) out(":expose(" + ports + ")");
  }

  void volume(const Instruction& in) {
    std::vector<Expr> paths = expand_words(in);
    if (paths.empty()) return;
    if (paths.size() == 1) return out(":volume" + paths[0].argument());
    std::string list;
    for (size_t i = 0; i < paths.size(); ++i) list += (i ? ", " : "") + paths[i].lua();
    out(":volume(" + list + ")");
  }

  void shell(const Instruction& in) {
    if (!in.exec || in.exec->empty()) fail("SHELL needs a JSON list, such as SHELL [\"/bin/bash\", \"-c\"]");
    stage_->shell = *in.exec;
    out("-- imgbuild convert: SHELL " + in.args + ": the shell forms below run with it (exec form)");
  }

  /// HEALTHCHECK as imgbuild-recipe(5)'s :healthcheck: a shell command
  /// string (CMD-SHELL), an argv table (CMD) or false (NONE), with Docker's
  /// options by the names it gives them.
  void healthcheck(const Instruction& in) {
    if (lower(in.args) == "none") return out(":healthcheck(false)");
    if (lower(in.args.substr(0, 4)) != "cmd " && lower(in.args.substr(0, 4)) != "cmd[")
      fail("HEALTHCHECK: expected NONE or [OPTIONS] CMD command");
    std::vector<std::string> options;
    for (const Flag& f : in.flags) {
      std::string key = f.name;
      for (char& c : key)
        if (c == '-') c = '_';
      if (key == "retries")
        options.push_back("retries = " + f.value.value_or("0"));
      else if (key == "interval" || key == "timeout" || key == "start_period")
        options.push_back(key + " = " + lua_string(f.value.value_or("")));
      else
        cannot("HEALTHCHECK --" + f.name + (f.value ? "=" + *f.value : ""));
    }
    std::string opts;
    for (size_t i = 0; i < options.size(); ++i) opts += (i ? ", " : "") + options[i];
    if (in.exec) {
      std::string list = lua_list(*in.exec);
      if (!options.empty()) list = list.substr(0, list.size() - 2) + ", " + opts + " }";
      return out(":healthcheck " + list);
    }
    std::string command(trim(in.args.substr(3)));
    out(options.empty() ? ":healthcheck " + lua_string(command)
                        : ":healthcheck(" + lua_string(command) + ", { " + opts + " })");
  }

  const Dockerfile& file_;
  const ConvertOptions& options_;
  int line_ = 0;
  std::ostringstream body_;
  std::vector<std::string> params_;
  std::map<std::string, std::string> param_by_key_;
  std::set<std::string> locals_;
  std::map<std::string, std::string> global_args_;
  std::vector<Stage> stages_;
  std::map<std::string, size_t> stage_by_name_;
  Stage* stage_ = nullptr;
};

}  // namespace

std::string dockerfile_to_recipe(std::string_view text, const ConvertOptions& options) {
  Dockerfile file = parse_dockerfile(text, options.name);
  return Writer(file, options).write();
}

std::string target_name(std::string_view text) {
  std::string name;
  for (char c : text) {
    unsigned char u = static_cast<unsigned char>(c);
    name += std::isalnum(u) ? static_cast<char>(std::tolower(u)) : (c == '.' || c == '_') ? c : '-';
  }
  size_t start = name.find_first_not_of("-._");
  return start == std::string::npos ? "app" : name.substr(start);
}

}  // namespace imgbuild::convert
