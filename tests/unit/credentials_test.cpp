// Tests for credential lookup: config.json entries and their key forms, CI
// environment variables, credential helpers run from the injected PATH, and
// messages that never carry a secret; then the credentials files podman,
// skopeo, buildah and docker share: which are read and in what order, how
// auth.json keys match hosts, and what `imgbuild login` / `logout` write there.
#include "registry/credentials.hpp"

#include <sys/stat.h>
#include <unistd.h>

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

#include <nlohmann/json.hpp>

#include "base/interrupt.hpp"
#include "base/text.hpp"
#include "test_support.hpp"

using imgbuild::ConfigFormat;
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

namespace {

/// A home with a runtime folder: the three default files and their env.
struct Home {
  ScratchDir dir;
  fs::path runtime_file = dir.path / "run/containers/auth.json";
  fs::path config_file = dir.path / "home/.config/containers/auth.json";
  fs::path docker_file = dir.path / "home/.docker/config.json";
  Env env{{"HOME", (dir.path / "home").string()},
          {"XDG_RUNTIME_DIR", (dir.path / "run").string()},
          {"PATH", (dir.path / "bin").string() + ":/usr/bin:/bin"}};

  Home() {
    fs::create_directories(dir.path / "run");
    fs::create_directories(dir.path / "home");
    fs::create_directories(dir.path / "bin");
  }
  static void write(const fs::path& file, const std::string& text) {
    fs::create_directories(file.parent_path());
    spit(file, text);
  }
  Credentials load() const { return Credentials::load(env); }
};

/// `{"auths": {KEY: {"auth": base64(USER:PASSWORD)}}}`.
std::string auths(const std::string& key, const std::string& user, const std::string& password) {
  return nlohmann::json{{"auths", {{key, {{"auth", imgbuild::base64_encode(user + ":" + password)}}}}}}.dump();
}

std::vector<std::string> paths(const std::vector<imgbuild::CredentialFile>& files) {
  std::vector<std::string> out;
  for (auto& f : files) out.push_back(f.path.string());
  return out;
}

mode_t mode_of(const fs::path& p) {
  struct stat st {};
  REQUIRE(::stat(p.c_str(), &st) == 0);
  return st.st_mode & 07777;
}

// Logs each call's action and stdin to $FAKE_LOG; answers `get` from the
// file `store` wrote, as a keychain would.
constexpr const char* kStoreHelper = R"(#!/bin/sh
input=$(cat)
printf '%s %s\n' "$1" "$input" >>"$FAKE_LOG"
case "$1" in
  store) printf '%s' "$input" >"$FAKE_LOG.kept" ;;
  erase) [ -e "$FAKE_LOG.kept" ] || { echo "credentials not found in native keychain"; exit 1; }; rm "$FAKE_LOG.kept" ;;
  get) [ -e "$FAKE_LOG.kept" ] || { echo "credentials not found in native keychain"; exit 1; }; cat "$FAKE_LOG.kept" ;;
esac
)";

}  // namespace

TEST_CASE("credential files: the order of containers-auth.json(5), then docker's", "[credentials]") {
  std::string uid = std::to_string(::getuid());
  CHECK(
      paths(imgbuild::credential_files({{"HOME", "/h"}, {"XDG_RUNTIME_DIR", "/r"}})) ==
      std::vector<std::string>{"/r/containers/auth.json", "/h/.config/containers/auth.json", "/h/.docker/config.json"});
  CHECK(paths(imgbuild::credential_files({{"HOME", "/h"}, {"XDG_CONFIG_HOME", "/c"}, {"DOCKER_CONFIG", "/d"}})) ==
        std::vector<std::string>{"/run/containers/" + uid + "/auth.json", "/c/containers/auth.json", "/d/config.json"});
  // A file the user names is the only one, as in podman and skopeo.
  auto named = imgbuild::credential_files({{"HOME", "/h"}, {"REGISTRY_AUTH_FILE", "/a.json"}});
  CHECK(paths(named) == std::vector<std::string>{"/a.json"});
  CHECK(named[0].format == ConfigFormat::Containers);
}

TEST_CASE("credential files: the first file with an entry for the host wins", "[credentials]") {
  Home h;
  h.write(h.runtime_file, auths("ghcr.io", "runtime", "p1"));
  h.write(h.config_file, auths("ghcr.io", "config", "p2"));
  h.write(h.docker_file, auths("ghcr.io", "docker", "p3"));
  CHECK(h.load().lookup("ghcr.io") == user_pass("runtime", "p1"));
  CHECK(h.load().lookup("ghcr.io")->source == h.runtime_file.string() + " auths[\"ghcr.io\"]");
  h.write(h.runtime_file, auths("quay.io", "runtime", "p1"));
  CHECK(h.load().lookup("ghcr.io") == user_pass("config", "p2"));
  CHECK(h.load().lookup("quay.io") == user_pass("runtime", "p1"));
  fs::remove(h.config_file);
  CHECK(h.load().lookup("ghcr.io") == user_pass("docker", "p3"));
  CHECK(h.load().searched() == "IMGBUILD_REGISTRY_AUTH_*, " + h.runtime_file.string() + ", " + h.config_file.string() +
                                   ", " + h.docker_file.string());

  // The environment still comes first.
  Env env = h.env;
  env["IMGBUILD_REGISTRY_AUTH_CI"] = "ghcr.io=ci:p4";
  CHECK(Credentials::load(env).lookup("ghcr.io") == user_pass("ci", "p4"));

  // $REGISTRY_AUTH_FILE replaces every other file.
  fs::path named = h.dir.path / "named.json";
  h.write(named, auths("quay.io", "named", "p5"));
  env = h.env;
  env["REGISTRY_AUTH_FILE"] = named.string();
  CHECK(Credentials::load(env).lookup("quay.io") == user_pass("named", "p5"));
  CHECK_FALSE(Credentials::load(env).lookup("ghcr.io"));
}

TEST_CASE("auth.json keys match hosts exactly; namespace keys are not for the whole registry", "[credentials]") {
  Credentials c = Credentials::parse_config(R"({"auths": {
      "127.0.0.1:5000": {"auth": "YTpi"},
      "Quay.IO/team": {"auth": "dGVhbTpDQU5BUlk="},
      "https://registry.example/v1/": {"auth": "Yzpk"},
      "index.docker.io": {"auth": "ZTpm"}}})",
                                            "/x/auth.json", ConfigFormat::Containers);
  CHECK(c.lookup("127.0.0.1:5000") == user_pass("a", "b"));
  CHECK_FALSE(c.lookup("127.0.0.1:5001"));
  CHECK_FALSE(c.lookup("127.0.0.1"));
  CHECK_FALSE(c.lookup("quay.io"));
  CHECK(c.lookup("registry.example") == user_pass("c", "d"));
  CHECK(c.lookup("docker.io") == user_pass("e", "f"));
  // In docker's config.json a path is ignored, as docker ignores it.
  CHECK(Credentials::parse_config(R"({"auths": {"quay.io/team": {"auth": "YTpi"}}})", "c.json").lookup("quay.io") ==
        user_pass("a", "b"));
  CHECK(credential_error([&] {
          Credentials::parse_config(R"({"auths": {"ghcr.io": {"auth": "CANARY!"}}})", "/x/auth.json",
                                    ConfigFormat::Containers);
        }) == "/x/auth.json: auths[\"ghcr.io\"].auth is not valid base64");
  Home h;
  h.write(h.config_file, "{\"auths\": {\"ghcr.io\": CANARY");
  CHECK(credential_error([&] { h.load(); }) == h.config_file.string() + ": invalid JSON at line 1, column 23");
  fs::remove(h.config_file);
  fs::create_directories(h.config_file);
  CHECK(credential_error([&] { h.load(); }) ==
        "cannot read containers auth file " + h.config_file.string() + ": Is a directory");
}

TEST_CASE("login saves in docker's config.json, mode 0600, keeping everything else", "[credentials]") {
  Home h;
  h.write(h.docker_file, R"({"auths": {"quay.io": {"auth": "cTpx"}, "http://GHCR.io/v2/": {"auth": "b2xkOm9sZA=="}},
                             "psFormat": "table {{.ID}}", "proxies": {"default": {"httpProxy": "x"}}})");
  CHECK(h.load().save("ghcr.io", user_pass("alice", "CANARY-pw")) == h.docker_file.string());
  CHECK(mode_of(h.docker_file) == 0600);
  nlohmann::json doc = nlohmann::json::parse(slurp(h.docker_file));
  CHECK(doc["psFormat"] == "table {{.ID}}");
  CHECK(doc["proxies"]["default"]["httpProxy"] == "x");
  CHECK(doc["auths"]["quay.io"]["auth"] == "cTpx");
  // The host's other key is gone: no stale password stays beside the new one.
  CHECK(doc["auths"].size() == 2);
  CHECK(doc["auths"]["ghcr.io"]["auth"] == imgbuild::base64_encode("alice:CANARY-pw"));
  CHECK(h.load().lookup("ghcr.io") == user_pass("alice", "CANARY-pw"));

  // Docker Hub under docker's own key in config.json.
  h.load().save("index.docker.io", user_pass("bob", "CANARY-2"));
  CHECK(nlohmann::json::parse(slurp(h.docker_file))["auths"].contains("https://index.docker.io/v1/"));
  CHECK(h.load().lookup("docker.io") == user_pass("bob", "CANARY-2"));

  // A file nobody has written yet is made, in a private folder.
  Home fresh;
  fresh.load().save("ghcr.io", user_pass("alice", "CANARY-pw"));
  CHECK(mode_of(fresh.docker_file) == 0600);
  CHECK(mode_of(fresh.docker_file.parent_path()) == 0700);
  CHECK(fresh.load().lookup("ghcr.io") == user_pass("alice", "CANARY-pw"));
}

TEST_CASE("login replaces the entry in use, and writes $REGISTRY_AUTH_FILE when set", "[credentials]") {
  Home h;
  h.write(h.config_file, auths("ghcr.io", "old", "CANARY-old"));
  h.write(h.docker_file, auths("quay.io", "q", "q"));
  CHECK(h.load().save("ghcr.io", user_pass("alice", "CANARY-new")) == h.config_file.string());
  CHECK(nlohmann::json::parse(slurp(h.config_file))["auths"]["ghcr.io"]["auth"] ==
        imgbuild::base64_encode("alice:CANARY-new"));
  CHECK(nlohmann::json::parse(slurp(h.docker_file))["auths"].size() == 1);

  Env env = h.env;
  fs::path named = h.dir.path / "ci/auth.json";
  env["REGISTRY_AUTH_FILE"] = named.string();
  CHECK(Credentials::load(env).save("docker.io", user_pass("ci", "CANARY-ci")) == named.string());
  // podman's key for Docker Hub in auth.json.
  CHECK(nlohmann::json::parse(slurp(named))["auths"]["docker.io"]["auth"] == imgbuild::base64_encode("ci:CANARY-ci"));
  CHECK(Credentials::load(env).lookup("docker.io") == user_pass("ci", "CANARY-ci"));

  // A symlinked config stays a link; the file it points at is rewritten.
  Home linked;
  fs::path real = linked.dir.path / "dotfiles/config.json";
  Home::write(real, "{}");
  fs::create_directories(linked.docker_file.parent_path());
  fs::create_symlink(real, linked.docker_file);
  linked.load().save("ghcr.io", user_pass("alice", "CANARY-pw"));
  CHECK(fs::is_symlink(linked.docker_file));
  CHECK(linked.load().lookup("ghcr.io") == user_pass("alice", "CANARY-pw"));

  CHECK(credential_error([] { Credentials::load(Env{{"XDG_RUNTIME_DIR", "/nonexistent"}}); }).empty());
  CHECK(credential_error([] { Credentials().save("ghcr.io", user_pass("a", "CANARY")); }) ==
        "nowhere to save credentials: set HOME, DOCKER_CONFIG or REGISTRY_AUTH_FILE");
}

TEST_CASE("login and logout through the credential helper the config names", "[credentials]") {
  Home h;
  fs::path helper = h.dir.path / "bin/docker-credential-fake";
  spit(helper, kStoreHelper);
  fs::permissions(helper, fs::perms::owner_all);
  fs::path log = h.dir.path / "calls.log";
  h.env["FAKE_LOG"] = log.string();
  std::string config = R"({"credsStore": "fake", "auths": {"quay.io": {"auth": "cTpx"}}})";
  h.write(h.docker_file, config);

  CHECK(h.load().save("ghcr.io", user_pass("alice", "CANARY-pw")) ==
        "credential helper docker-credential-fake (named in " + h.docker_file.string() + ")");
  CHECK(slurp(log) == "store {\"Secret\":\"CANARY-pw\",\"ServerURL\":\"ghcr.io\",\"Username\":\"alice\"}\n");
  CHECK(slurp(h.docker_file) == config);  // the secret went to the helper only
  CHECK(h.load().lookup("ghcr.io") == Credential{"alice", "CANARY-pw", {}});

  CHECK(h.load().erase("ghcr.io") == std::vector<std::string>{"credential helper docker-credential-fake"});
  CHECK_FALSE(h.load().lookup("ghcr.io"));
  CHECK(h.load().erase("ghcr.io").empty());
}

TEST_CASE("logout removes the host from every file, and only that host", "[credentials]") {
  Home h;
  h.write(h.runtime_file, auths("ghcr.io", "a", "CANARY-1"));
  h.write(h.config_file, R"({"auths": {"quay.io": {"auth": "cTpx"}}, "future": 1})");
  h.write(h.docker_file, R"({"auths": {"https://ghcr.io/": {"auth": "YTpi"}, "ghcr.io:5000": {"auth": "YTpi"}}})");
  std::string config_before = slurp(h.config_file);
  CHECK(h.load().erase("GHCR.io") == std::vector<std::string>{h.runtime_file.string(), h.docker_file.string()});
  CHECK_FALSE(h.load().lookup("ghcr.io"));
  CHECK(h.load().lookup("ghcr.io:5000") == user_pass("a", "b"));
  CHECK(h.load().lookup("quay.io") == user_pass("q", "q"));
  CHECK(slurp(h.config_file) == config_before);
  CHECK(h.load().erase("ghcr.io").empty());
}

TEST_CASE("registry hosts as login takes them", "[credentials]") {
  CHECK(imgbuild::registry_host("https://index.docker.io/v1/") == "docker.io");
  CHECK(imgbuild::registry_host("LOCALHOST:5000") == "localhost:5000");
  CHECK(imgbuild::registry_host("127.0.0.1:5000/") == "127.0.0.1:5000");
  CHECK_FALSE(imgbuild::registry_host("not a host"));
  CHECK_FALSE(imgbuild::registry_host(""));
  CHECK(Credential{"alice", "CANARY", {}}.who() == "user alice");
  CHECK(Credential{{}, {}, "CANARY"}.who() == "an identity token");
}
