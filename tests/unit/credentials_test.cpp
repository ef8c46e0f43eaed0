// Tests for credential lookup: config.json entries and their key forms, CI
// environment variables, credential helpers run from the injected PATH, and
// messages that never carry a secret.
#include "registry/credentials.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <csignal>
#include <fstream>

#include "base/interrupt.hpp"
#include "base/text.hpp"
#include "test_support.hpp"

using imgbuild::Credential;
using imgbuild::CredentialError;
using imgbuild::Credentials;
using imgbuild::legacy_env_readings;
using namespace imgbuild::test;
namespace fs = std::filesystem;

namespace {

// Every secret in these tests contains it, so a message can be checked for leaks.
constexpr const char* kCanary = "CANARY";

using Env = std::map<std::string, std::string>;

// base64("user:CANARY-pw:with-colon")
constexpr const char* kUserAuth = "dXNlcjpDQU5BUlktcHc6d2l0aC1jb2xvbg==";

/// A DOCKER_CONFIG directory holding `config_json`, and the env that points at it.
struct Config {
  ScratchDir dir;
  Env env;
  explicit Config(const std::string& config_json) {
    spit(dir.path / "config.json", config_json);
    env = {{"DOCKER_CONFIG", dir.path.string()}, {"PATH", "/usr/bin:/bin"}};
  }
  Credentials load() const { return Credentials::load(env); }
};

Credential user_pass(std::string u, std::string p) { return Credential{std::move(u), std::move(p), {}}; }

// The message `f` throws as a CredentialError, checked to hold no secret.
template <class F>
std::string credential_error(F&& f) {
  try {
    f();
  } catch (const CredentialError& e) {
    std::string message = e.what();
    CHECK(message.find(kCanary) == std::string::npos);
    return message;
  }
  return "";
}

// A fake docker-credential-fake: it logs each request to $FAKE_LOG (which it
// only sees when it runs with the injected environment) and answers by host.
constexpr const char* kFakeHelper = R"(#!/bin/sh
[ "$1" = get ] || exit 9
url=$(cat)
printf '%s\n' "$url" >>"$FAKE_LOG"
case "$url" in
  ghcr.io) printf '{"ServerURL":"%s","Username":"u","Secret":"CANARY-secret"}\n' "$url" ;;
  https://index.docker.io/v1/) printf '{"ServerURL":"%s","Username":"<token>","Secret":"CANARY-identity"}' "$url" ;;
  localhost:5000) printf '{"ServerURL":"%s","Username":"","Secret":""}' "$url" ;;
  missing.example) echo "credentials not found in native keychain"; exit 1 ;;
  fail.example) echo "CANARY on stdout"; printf 'keychain locked\001\nsecond line CANARY\n' >&2; exit 3 ;;
  quiet.example) echo "CANARY on stdout"; exit 4 ;;
  garbage.example) echo "not json CANARY" ;;
  nosecret.example) echo '{"Username":"u"}' ;;
  slow.example) exec sleep 30 ;;
  big.example) head -c 100000 /dev/zero | tr '\0' a ;;
  signal.example) kill -TERM $$ ;;
  group.example) sleep 3019 & echo $! >"$FAKE_LOG.child"; exec sleep 30 ;;
esac
)";

/// A config using the fake helper, with the helper first in the env's PATH.
struct HelperSetup {
  ScratchDir dir;
  Env env;
  fs::path log;
  explicit HelperSetup(const std::string& config_json) {
    fs::create_directory(dir.path / "bin");
    fs::path helper = dir.path / "bin" / "docker-credential-fake";
    spit(helper, kFakeHelper);
    fs::permissions(helper, fs::perms::owner_all);
    spit(dir.path / "config.json", config_json);
    log = dir.path / "calls.log";
    env = {{"DOCKER_CONFIG", dir.path.string()},
           {"PATH", (dir.path / "bin").string() + ":/usr/bin:/bin"},
           {"FAKE_LOG", log.string()}};
  }
  std::vector<std::string> calls() const { return imgbuild::split(slurp(log), '\n'); }
};

}  // namespace

TEST_CASE("no config file means no credentials", "[credentials]") {
  ScratchDir dir;
  Credentials c = Credentials::load({{"DOCKER_CONFIG", dir.path.string()}});
  CHECK_FALSE(c.lookup("docker.io"));
  CHECK_FALSE(c.lookup("ghcr.io"));
  CHECK_FALSE(Credentials().lookup("ghcr.io"));
  CHECK_FALSE(Credentials::load(Env{}).lookup("ghcr.io"));
}

TEST_CASE("config.json is found under DOCKER_CONFIG, else HOME/.docker", "[credentials]") {
  ScratchDir home;
  fs::create_directory(home.path / ".docker");
  spit(home.path / ".docker" / "config.json", R"({"auths": {"ghcr.io": {"auth": "aG9tZTpwdw=="}}})");
  CHECK(Credentials::load({{"HOME", home.path.string()}}).lookup("ghcr.io") == user_pass("home", "pw"));

  Config other(R"({"auths": {"ghcr.io": {"auth": "ZGM6cHc="}}})");
  CHECK(
      Credentials::load({{"HOME", home.path.string()}, {"DOCKER_CONFIG", other.dir.path.string()}}).lookup("ghcr.io") ==
      user_pass("dc", "pw"));
  // An empty DOCKER_CONFIG is unset, as in docker.
  CHECK(Credentials::load({{"HOME", home.path.string()}, {"DOCKER_CONFIG", ""}}).lookup("ghcr.io") ==
        user_pass("home", "pw"));
}

TEST_CASE("auths entries and their key forms", "[credentials]") {
  Config config(std::string(R"({
    "auths": {
      "https://index.docker.io/v1/": {"auth": ")") +
                kUserAuth + R"("},
      "ghcr.io": {"username": "fields", "password": "CANARY-p"},
      "http://localhost:5000/v2/": {"auth": "bG9jYWw6cHc="},
      "https://registry.example.com/some/path": {"auth": "ZXg6cHc=", "identitytoken": "CANARY-refresh"},
      "quay.io": {},
      "[::1]:5000": {"auth": ""}
    }
  })");
  Credentials c = config.load();
  CHECK(c.lookup("docker.io") == user_pass("user", "CANARY-pw:with-colon"));
  CHECK(c.lookup("registry-1.docker.io") == user_pass("user", "CANARY-pw:with-colon"));
  CHECK(c.lookup("index.docker.io") == user_pass("user", "CANARY-pw:with-colon"));
  CHECK(c.lookup("ghcr.io") == user_pass("fields", "CANARY-p"));
  CHECK(c.lookup("localhost:5000") == user_pass("local", "pw"));
  CHECK(c.lookup("registry.example.com") == Credential{"ex", "pw", "CANARY-refresh"});
  // `docker login` with a credsStore leaves empty placeholders.
  CHECK_FALSE(c.lookup("quay.io"));
  CHECK_FALSE(c.lookup("[::1]:5000"));
  CHECK_FALSE(c.lookup("localhost:5001"));
  CHECK_FALSE(c.lookup("ghcr.io:443"));
}

TEST_CASE("of several keys for one host, docker's own key wins", "[credentials]") {
  // "docker.io" sorts first, but docker writes https://index.docker.io/v1/.
  Config hub(R"({"auths": {"docker.io": {"auth": "YTpi"}, "https://index.docker.io/v1/": {"auth": "Yzpk"},
                           "index.docker.io": {"auth": "ZTpm"}}})");
  CHECK(hub.load().lookup("docker.io") == user_pass("c", "d"));
  // For other hosts the bare host is docker's key; without it, the first key in order.
  Config other(R"({"auths": {"https://ghcr.io": {"auth": "YTpi"}, "ghcr.io": {"auth": "Yzpk"}}})");
  CHECK(other.load().lookup("ghcr.io") == user_pass("c", "d"));
  Config no_bare(R"({"auths": {"https://ghcr.io/v2/": {"auth": "YTpi"}, "http://ghcr.io": {"auth": "Yzpk"}}})");
  CHECK(no_bare.load().lookup("ghcr.io") == user_pass("c", "d"));
}

TEST_CASE("IMGBUILD_REGISTRY_AUTH_<HOST> comes first", "[credentials]") {
  Config config(R"({"auths": {"ghcr.io": {"auth": "ZmlsZTpwdw=="}}})");
  config.env["IMGBUILD_REGISTRY_AUTH_GHCR_IO"] = "ci:CANARY:pw";
  config.env["IMGBUILD_REGISTRY_AUTH_LOCALHOST_5000"] = "l:p";
  config.env["IMGBUILD_REGISTRY_AUTH_DOCKER_IO"] = "hub:p";
  config.env["IMGBUILD_REGISTRY_AUTH____1__5000"] = "v6:p";
  Credentials c = config.load();
  CHECK(c.lookup("ghcr.io") == user_pass("ci", "CANARY:pw"));
  CHECK(c.lookup("localhost:5000") == user_pass("l", "p"));
  CHECK(c.lookup("docker.io") == user_pass("hub", "p"));
  CHECK(c.lookup("[::1]:5000") == user_pass("v6", "p"));
  CHECK_FALSE(c.lookup("quay.io"));

  for (const char* bad : {"", "CANARY", ":CANARY", "CANARY:"}) {
    INFO("value: " << bad);
    Config broken("{}");
    broken.env["IMGBUILD_REGISTRY_AUTH_QUAY_IO"] = bad;
    Credentials b = broken.load();
    CHECK(credential_error([&] { b.lookup("quay.io"); }) ==
          "IMGBUILD_REGISTRY_AUTH_QUAY_IO must be \"user:password\" with neither part empty");
  }
}

TEST_CASE("malformed config.json: the file and place are named, nothing quoted", "[credentials]") {
  auto load_error = [](const std::string& json) {
    Config config(json);
    std::string file = (config.dir.path / "config.json").string();
    std::string message = credential_error([&] { config.load(); });
    REQUIRE(message.starts_with(file + ": "));
    return message.substr(file.size() + 2);
  };
  CHECK(load_error("{\n  \"auths\": {\"ghcr.io\": {\"auth\": \"CANARY\"}},\n  CANARY\n}") ==
        "invalid JSON at line 3, column 3");
  CHECK(load_error("{\"auths\": {\"ghcr.io\": {\"auth\": \"CANARY") == "invalid JSON at line 1, column 39");
  // nlohmann raises out_of_range, not parse_error, for this (the fuzzer's find).
  CHECK(load_error(R"({"auths": {}, "x": 1e999})") == "invalid JSON: a number is out of range");
  CHECK(load_error("[\"CANARY\"]") == "expected a JSON object at the top level");
  CHECK(load_error(R"({"auths": ["CANARY"]})") == "\"auths\" must be an object");
  CHECK(load_error(R"({"auths": {"ghcr.io": "CANARY"}})") == "auths[\"ghcr.io\"] must be an object");
  CHECK(load_error(R"({"auths": {"ghcr.io": {"auth": 7}}})") == "auths[\"ghcr.io\"].auth must be a string");
  CHECK(load_error(R"({"auths": {"ghcr.io": {"password": ["CANARY"]}}})") ==
        "auths[\"ghcr.io\"].password must be a string");
  CHECK(load_error(R"({"auths": {"ghcr.io": {"auth": "CANARY*not-base64"}}})") ==
        "auths[\"ghcr.io\"].auth is not valid base64");
  // Padding is required, as in Go's StdEncoding.
  CHECK(load_error(R"({"auths": {"ghcr.io": {"auth": "YTpi="}}})") == "auths[\"ghcr.io\"].auth is not valid base64");
  CHECK(load_error(R"({"auths": {"ghcr.io": {"auth": "Q0FOQVJZ"}}})") ==
        "auths[\"ghcr.io\"].auth does not decode to \"user:password\"");
  CHECK(load_error(R"({"auths": {"ghcr.io": {"auth": "OkNBTkFSWQ=="}}})") ==
        "auths[\"ghcr.io\"].auth does not decode to \"user:password\"");
  CHECK(load_error(R"({"credHelpers": {"ghcr.io": 1}})") == "credHelpers[\"ghcr.io\"] must be a string");
  CHECK(load_error(R"({"credHelpers": {"ghcr.io": "../../bin/sh"}})") ==
        "credHelpers[\"ghcr.io\"] is not a credential helper name: \"../../bin/sh\"");
  CHECK(load_error(R"({"credsStore": true})") == "\"credsStore\" must be a string");
  CHECK(load_error(R"({"credsStore": "/bin/sh"})") == "credsStore is not a credential helper name: \"/bin/sh\"");
}

TEST_CASE("config.json edge cases docker accepts", "[credentials]") {
  // Empty file, nulls, unknown keys, base64 with a line break (Go skips them).
  CHECK_FALSE(Config("").load().lookup("ghcr.io"));
  CHECK_FALSE(Config(" \n").load().lookup("ghcr.io"));
  CHECK_FALSE(Config(R"({"auths": null, "credsStore": null, "psFormat": "x"})").load().lookup("ghcr.io"));
  CHECK(Config(R"({"auths": {"ghcr.io": {"auth": "YT\npi"}}})").load().lookup("ghcr.io") == user_pass("a", "b"));
  CHECK(Config(R"({"auths": {"ghcr.io": {"auth": "YTo="}}})").load().lookup("ghcr.io") == user_pass("a", ""));
}

TEST_CASE("unreadable config.json is an error", "[credentials]") {
  ScratchDir dir;
  fs::create_directory(dir.path / "config.json");
  std::string message = credential_error([&] { Credentials::load({{"DOCKER_CONFIG", dir.path.string()}}); });
  CHECK(message == "cannot read Docker config " + (dir.path / "config.json").string() + ": Is a directory");
}

TEST_CASE("parse_config has no environment", "[credentials]") {
  Credentials c = Credentials::parse_config(R"({"auths": {"ghcr.io": {"auth": "YTpi"}}, "credsStore": "fake"})", "x");
  // No PATH, so the helper cannot be found, and nothing is run.
  CHECK(credential_error([&] { c.lookup("ghcr.io"); }) ==
        "credential helper docker-credential-fake for ghcr.io: not found in PATH");
  CHECK(credential_error([] { Credentials::parse_config("{", "somewhere"); }) ==
        "somewhere: invalid JSON at line 1, column 2");
}

TEST_CASE("credential helpers", "[credentials]") {
  SECTION("credsStore answers for every host, with the server URL docker sends") {
    HelperSetup setup(R"({"credsStore": "fake"})");
    Credentials c = Credentials::load(setup.env);
    CHECK(c.lookup("ghcr.io") == user_pass("u", "CANARY-secret"));
    // Username "<token>": the secret is an identity token.
    CHECK(c.lookup("docker.io") == Credential{{}, {}, "CANARY-identity"});
    // An empty answer is no credential.
    CHECK_FALSE(c.lookup("localhost:5000"));
    CHECK(setup.calls() == std::vector<std::string>{"ghcr.io", "https://index.docker.io/v1/", "localhost:5000"});
  }
  SECTION("answers are cached per host, including 'not found'") {
    HelperSetup setup(R"({"credsStore": "fake"})");
    Credentials c = Credentials::load(setup.env);
    CHECK(c.lookup("ghcr.io") == user_pass("u", "CANARY-secret"));
    CHECK(c.lookup("ghcr.io") == user_pass("u", "CANARY-secret"));
    CHECK_FALSE(c.lookup("missing.example"));
    CHECK_FALSE(c.lookup("missing.example"));
    CHECK(setup.calls() == std::vector<std::string>{"ghcr.io", "missing.example"});
  }
  SECTION("concurrent lookups run the helper once") {
    HelperSetup setup(R"({"credsStore": "fake"})");
    Credentials c = Credentials::load(setup.env);
    std::vector<std::thread> threads;
    std::vector<std::optional<Credential>> got(8);
    for (size_t i = 0; i < got.size(); ++i) threads.emplace_back([&, i] { got[i] = c.lookup("ghcr.io"); });
    for (auto& t : threads) t.join();
    for (auto& g : got) CHECK(g == user_pass("u", "CANARY-secret"));
    CHECK(setup.calls() == std::vector<std::string>{"ghcr.io"});
  }
  SECTION("'not found' passes on to auths") {
    HelperSetup setup(R"({"credsStore": "fake", "auths": {"missing.example": {"auth": "YTpi"}}})");
    CHECK(Credentials::load(setup.env).lookup("missing.example") == user_pass("a", "b"));
  }
  SECTION("credHelpers takes precedence over credsStore") {
    HelperSetup setup(R"({"credsStore": "absent", "credHelpers": {"https://ghcr.io": "fake"}})");
    Credentials c = Credentials::load(setup.env);
    CHECK(c.lookup("ghcr.io") == user_pass("u", "CANARY-secret"));
    CHECK(credential_error([&] { c.lookup("quay.io"); }) ==
          "credential helper docker-credential-absent for quay.io: not found in PATH");
  }
  SECTION("the environment variable comes before the helper") {
    HelperSetup setup(R"({"credsStore": "fake"})");
    setup.env["IMGBUILD_REGISTRY_AUTH_GHCR_IO"] = "ci:pw";
    CHECK(Credentials::load(setup.env).lookup("ghcr.io") == user_pass("ci", "pw"));
    CHECK(setup.calls().empty());
  }
  SECTION("the helper is searched only in the injected PATH") {
    HelperSetup setup(R"({"credsStore": "fake"})");
    setup.env["PATH"] = "/usr/bin:/bin";
    Credentials c = Credentials::load(setup.env);
    CHECK(credential_error([&] { c.lookup("ghcr.io"); }) ==
          "credential helper docker-credential-fake for ghcr.io: not found in PATH");
    // A relative entry could mean any directory: skipped, as Go does.
    fs::path cwd = fs::current_path();
    fs::current_path(setup.dir.path);
    setup.env["PATH"] = "bin:/usr/bin:/bin";
    Credentials relative = Credentials::load(setup.env);
    std::string message = credential_error([&] { relative.lookup("ghcr.io"); });
    fs::current_path(cwd);
    CHECK(message == "credential helper docker-credential-fake for ghcr.io: not found in PATH");
  }
}

TEST_CASE("failing credential helpers: what failed, never what they printed", "[credentials]") {
  HelperSetup setup(R"({"credsStore": "fake"})");
  Credentials c = Credentials::load(setup.env, std::chrono::milliseconds(500));
  const std::string helper = "credential helper docker-credential-fake for ";
  CHECK(credential_error([&] { c.lookup("fail.example"); }) ==
        helper + "fail.example exited with status 3: keychain locked?");
  CHECK(credential_error([&] { c.lookup("quiet.example"); }) == helper + "quiet.example exited with status 4");
  CHECK(credential_error([&] { c.lookup("garbage.example"); }) ==
        helper + "garbage.example printed no JSON object with a Username and a Secret");
  CHECK(credential_error([&] { c.lookup("nosecret.example"); }) ==
        helper + "nosecret.example printed no JSON object with a Username and a Secret");
  CHECK(credential_error([&] { c.lookup("big.example"); }) == helper + "big.example printed more than 65536 bytes");
  CHECK(credential_error([&] { c.lookup("signal.example"); }) == helper + "signal.example was killed by signal 15");
  auto start = std::chrono::steady_clock::now();
  CHECK(credential_error([&] { c.lookup("slow.example"); }) ==
        helper + "slow.example did not answer within 500 ms and was killed");
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(5));
  // Failures are not cached: the next lookup asks again.
  CHECK_THROWS_AS(c.lookup("quiet.example"), CredentialError);
  std::vector<std::string> calls = setup.calls();
  CHECK(std::count(calls.begin(), calls.end(), "quiet.example") == 2);
}

namespace {

using Readings = std::vector<std::string>;

/// Whether process `pid` has ended (gone, or a zombie waiting for init).
bool ended(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return true;
  size_t paren = line.rfind(')');
  return paren != std::string::npos && line.size() > paren + 2 && line[paren + 2] == 'Z';
}

/// Whether the background child that the fake helper started for
/// group.example (its pid in LOG.child) has ended, or ends within a second.
bool helper_child_ended(const fs::path& log) {
  std::string text = slurp(log.string() + ".child");
  REQUIRE((!text.empty() && text.back() == '\n'));
  pid_t child = std::stoi(text);
  for (int i = 0; i < 100 && !ended(child); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  return ended(child);
}

}  // namespace

TEST_CASE("the old variable form: the hosts each name can stand for", "[credentials]") {
  CHECK(legacy_env_readings("GHCR_IO") == Readings{"ghcr.io"});
  CHECK(legacy_env_readings("DOCKER_IO") == Readings{"docker.io"});
  CHECK(legacy_env_readings("LOCALHOST_5000") == Readings{"localhost:5000"});
  CHECK(legacy_env_readings("127_0_0_1_5000") == Readings{"127.0.0.1:5000"});
  CHECK(legacy_env_readings("___1__5000") == Readings{"[::1]:5000"});
  CHECK(legacy_env_readings("___1_") == Readings{"[::1]"});
  // A single-label name resolves nowhere someone else could claim: not a reading.
  CHECK(legacy_env_readings("REGISTRY_5000").empty());
  CHECK(legacy_env_readings("TEAM_REGISTRY_TEST") == Readings{"team.registry.test", "team-registry.test"});
  CHECK(legacy_env_readings("GHCR_IO_443").size() == 1);
  CHECK(legacy_env_readings("REGISTRY_GITLAB_COM").size() == 2);
  CHECK(legacy_env_readings("XN__BCHER_KVA_EXAMPLE").size() == 2);
  CHECK(legacy_env_readings("A_B_C_D_E_F_G_H_I_J_K_L_M_N_O_P_Q_R_S_T_U_V", 3).size() == 3);
  // A '-' in the last label makes it no top-level domain: two readings, not four.
  CHECK(legacy_env_readings("TEAM_REGISTRY_TEST", 5).size() == 2);
}

TEST_CASE("credentials by exact host: a variable never reaches a host it was not meant for", "[credentials]") {
  SECTION("the old form of a name with two readings is refused for both, naming both hosts") {
    Config config("{}");
    config.env["IMGBUILD_REGISTRY_AUTH_TEAM_REGISTRY_TEST"] = "u:CANARY-pw";
    Credentials c = config.load();
    CHECK(credential_error([&] { c.lookup("team-registry.test"); }) ==
          "IMGBUILD_REGISTRY_AUTH_TEAM_REGISTRY_TEST could be meant for team.registry.test as well as "
          "team-registry.test, so it is not used: name the host in its value instead "
          "(IMGBUILD_REGISTRY_AUTH_TEAM_REGISTRY_TEST=team-registry.test=user:password)");
    CHECK(credential_error([&] { c.lookup("team.registry.test"); }) ==
          "IMGBUILD_REGISTRY_AUTH_TEAM_REGISTRY_TEST could be meant for team-registry.test as well as "
          "team.registry.test, so it is not used: name the host in its value instead "
          "(IMGBUILD_REGISTRY_AUTH_TEAM_REGISTRY_TEST=team.registry.test=user:password)");
    // A host its name cannot stand for never sees it.
    CHECK_FALSE(c.lookup("team.registry.test:443"));
  }
  SECTION("a value that names its host is for that host only, whatever the variable is called") {
    Config config("{}");
    config.env["IMGBUILD_REGISTRY_AUTH_TEAM_REGISTRY_TEST"] = "team-registry.test=ci:CANARY-1";
    config.env["IMGBUILD_REGISTRY_AUTH_MAIN"] = "Team.Registry.Test=main:CANARY-2";
    config.env["IMGBUILD_REGISTRY_AUTH_PORT"] = "team.registry.test:5000=port:CANARY-3";
    config.env["IMGBUILD_REGISTRY_AUTH_HUB"] = "index.docker.io=hub:CANARY=4";
    config.env["IMGBUILD_REGISTRY_AUTH_V6"] = "[::1]:5000=v6:p";
    Credentials c = config.load();
    CHECK(c.lookup("team-registry.test") == user_pass("ci", "CANARY-1"));
    CHECK(c.lookup("team.registry.test") == user_pass("main", "CANARY-2"));
    CHECK(c.lookup("TEAM.registry.test") == user_pass("main", "CANARY-2"));
    CHECK(c.lookup("team.registry.test:5000") == user_pass("port", "CANARY-3"));
    CHECK(c.lookup("docker.io") == user_pass("hub", "CANARY=4"));
    CHECK(c.lookup("[::1]:5000") == user_pass("v6", "p"));
    CHECK_FALSE(c.lookup("team.registry.test:5001"));
    CHECK_FALSE(c.lookup("registry.test"));
    CHECK(c.lookup("team.registry.test")->source == "IMGBUILD_REGISTRY_AUTH_MAIN");
  }
  SECTION("two variables with different credentials for one host are refused") {
    Config config("{}");
    config.env["IMGBUILD_REGISTRY_AUTH_A"] = "ghcr.io=a:CANARY-a";
    config.env["IMGBUILD_REGISTRY_AUTH_B"] = "GHCR.IO=b:CANARY-b";
    config.env["IMGBUILD_REGISTRY_AUTH_C"] = "ghcr.io=a:CANARY-a";
    Credentials c = config.load();
    CHECK(credential_error([&] { c.lookup("ghcr.io"); }) ==
          "IMGBUILD_REGISTRY_AUTH_A and IMGBUILD_REGISTRY_AUTH_B both give credentials for ghcr.io: keep one");
  }
  SECTION("a malformed value naming a host is an error for that host only") {
    Config config("{}");
    config.env["IMGBUILD_REGISTRY_AUTH_X"] = "quay.io=CANARY";
    config.env["IMGBUILD_REGISTRY_AUTH_Y"] = "no host here";
    Credentials c = config.load();
    CHECK(credential_error([&] { c.lookup("quay.io"); }) ==
          "IMGBUILD_REGISTRY_AUTH_X must be \"HOST=user:password\" with neither part empty");
    CHECK_FALSE(c.lookup("ghcr.io"));
  }
  SECTION("config.json keys match by exact host and port, whatever their case") {
    Config config(R"({"auths": {"https://GHCR.io/v2/": {"auth": "YTpi"}, "ghcr.io:5000": {"auth": "Yzpk"}},
                      "credHelpers": {"team.registry.test": "absent"}})");
    Credentials c = config.load();
    CHECK(c.lookup("ghcr.io") == user_pass("a", "b"));
    CHECK(c.lookup("ghcr.io:5000") == user_pass("c", "d"));
    CHECK_FALSE(c.lookup("ghcr.io:5001"));
    CHECK_FALSE(c.lookup("team-registry.test"));
    CHECK(credential_error([&] { c.lookup("Team.Registry.Test"); }) ==
          "credential helper docker-credential-absent for team.registry.test: not found in PATH");
  }
}

TEST_CASE("credentials say where they came from, never what they are", "[credentials]") {
  HelperSetup setup(R"({"credsStore": "fake", "auths": {"https://missing.example/": {"auth": "YTpi"}}})");
  setup.env["IMGBUILD_REGISTRY_AUTH_GHCR"] = "quay.io=u:CANARY";
  Credentials c = Credentials::load(setup.env);
  CHECK(c.lookup("quay.io")->source == "IMGBUILD_REGISTRY_AUTH_GHCR");
  CHECK(c.lookup("ghcr.io")->source == "credential helper docker-credential-fake");
  CHECK(c.lookup("missing.example")->source ==
        (setup.dir.path / "config.json").string() + " auths[\"https://missing.example/\"]");
  for (auto host : {"quay.io", "ghcr.io", "missing.example"})
    CHECK(c.lookup(host)->source.find(kCanary) == std::string::npos);
}

TEST_CASE("a credential helper that times out is killed with everything it started", "[credentials]") {
  HelperSetup setup(R"({"credsStore": "fake"})");
  Credentials c = Credentials::load(setup.env, std::chrono::milliseconds(700));
  CHECK(credential_error([&] { c.lookup("group.example"); }) ==
        "credential helper docker-credential-fake for group.example did not answer within 700 ms and was killed");
  CHECK(helper_child_ended(setup.log));
}

TEST_CASE("the first interrupt stops a credential helper and what it started", "[credentials]") {
  HelperSetup setup(R"({"credsStore": "fake"})");
  Credentials c = Credentials::load(setup.env, std::chrono::seconds(20));
  // Once the helper has started its child, as a Ctrl-C would come.
  std::thread interrupter([&setup] {
    for (int i = 0; i < 500 && slurp(setup.log.string() + ".child").empty(); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    imgbuild::set_interrupt_for_testing(SIGINT);
  });
  auto start = std::chrono::steady_clock::now();
  bool interrupted = false;
  try {
    c.lookup("group.example");
  } catch (const imgbuild::Interrupted&) {
    interrupted = true;
  }
  interrupter.join();
  imgbuild::set_interrupt_for_testing(0);
  CHECK(interrupted);
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(8));
  CHECK(helper_child_ended(setup.log));
}
