// imgbuild login / logout: a registry credential, checked with the registry,
// saved where podman, skopeo, buildah and docker read it (credentials.hpp
// decides where), or removed from everywhere it is saved. The password is
// read from stdin or typed at the terminal, never taken from the command line,
// and never printed.
#include <fcntl.h>
#include <termios.h>
#include <unistd.h>

#include <iostream>
#include <iterator>

#include "base/fs.hpp"
#include "base/text.hpp"
#include "cli/commands.hpp"
#include "cli/options.hpp"
#include "cli/registry_access.hpp"
#include "cli/report.hpp"

namespace imgbuild::cli {
namespace {

const Syntax kLoginSyntax = {OptionSet{Opt::Username, Opt::PasswordStdin} | kRegistryOptions, Operands::NotDash};
const Syntax kLogoutSyntax = {kRegistryOptions, Operands::NotDash};

/// The one operand of login or logout: a registry host.
std::string host_operand(const std::vector<std::string>& operands, const std::string& command) {
  if (operands.size() != 1) throw UsageError(command + " takes one registry: imgbuild " + command + " HOST");
  std::optional<std::string> host = registry_host(operands[0]);
  if (!host)
    throw UsageError(command + ": '" + operands[0] + "' is not a registry host (e.g. ghcr.io, localhost:5000)");
  return *host;
}

/// A line typed at the terminal after `prompt`, not echoed when `secret`.
std::string ask_terminal(const std::string& prompt, bool secret) {
  Fd tty(::open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY));
  if (!tty) throw UsageError("login: no terminal to ask on: give --username and the password with --password-stdin");
  termios saved{};
  bool restore = secret && ::tcgetattr(tty.get(), &saved) == 0;
  if (restore) {
    termios quiet = saved;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    ::tcsetattr(tty.get(), TCSAFLUSH, &quiet);
  }
  write_all(tty.get(), prompt.data(), prompt.size(), "/dev/tty");
  std::string line;
  char c = 0;
  while (::read(tty.get(), &c, 1) == 1 && c != '\n') line += c;
  if (restore) {
    ::tcsetattr(tty.get(), TCSAFLUSH, &saved);
    write_all(tty.get(), "\n", 1, "/dev/tty");
  }
  return line;
}

/// The password: all of stdin without its final line break (as `docker login
/// --password-stdin` reads it), or typed at the terminal.
std::string read_password(bool from_stdin) {
  if (!from_stdin) return ask_terminal("Password: ", true);
  std::string password{std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>()};
  while (!password.empty() && (password.back() == '\n' || password.back() == '\r')) password.pop_back();
  return password;
}

}  // namespace

int cmd_login(const std::vector<std::string>& args) {
  Options options;
  std::string host = host_operand(parse_options(args, kLoginSyntax, options), "login");
  if (!options.username && options.password_stdin)
    throw UsageError("login: --password-stdin needs --username (stdin holds the password)");
  std::string username = options.username ? *options.username : ask_terminal("Username: ", false);
  if (username.empty() || username.find(':') != std::string::npos)
    throw UsageError("login: the user name must be non-empty and without ':'");
  Credential credential{username,
                        read_password(options.password_stdin),
                        {},
                        options.password_stdin ? "--password-stdin" : "the password typed"};
  if (credential.password.empty()) throw UsageError("login: empty password");

  // Checked before anything is saved: a typo must not replace a working login.
  RegistryAccess registry(options);
  try {
    registry.client_with(Credentials::only(host, credential))->check_login(host);
  } catch (const std::exception& e) {
    throw std::runtime_error(std::string(e.what()) + "; nothing was saved");
  }
  std::string where = Credentials::load().save(host, credential);
  report("logged in to " + host + " as " + username + " (saved in " + where + ")");
  return 0;
}

int cmd_logout(const std::vector<std::string>& args) {
  Options options;
  std::string host = host_operand(parse_options(args, kLogoutSyntax, options), "logout");
  Credentials credentials = Credentials::load();
  std::vector<std::string> removed = credentials.erase(host);
  if (removed.empty()) {
    report("not logged in to " + host + ": no saved credential in " + credentials.searched());
    return kExitError;
  }
  report("logged out of " + host + " (removed from " + join(removed, ", ") + ")");
  return 0;
}

}  // namespace imgbuild::cli
