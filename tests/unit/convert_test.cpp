#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <string>

#include "convert/dockerfile.hpp"
#include "convert/recipe_writer.hpp"
#include "test_support.hpp"

using namespace imgbuild::convert;
using namespace imgbuild::test;

namespace {

std::string parse_error(const std::string& text) {
  return error_of([&] { parse_dockerfile(text, "Dockerfile"); });
}

std::string convert_error(const std::string& text) {
  return error_of([&] { dockerfile_to_recipe(text, {}); });
}

/// The recipe without its three header lines, so that each case shows only
/// what its instructions became.
std::string body_of(const std::string& text, ConvertOptions options = {}) {
  std::string recipe = dockerfile_to_recipe(text, options);
  for (int i = 0; i < 3; ++i) recipe.erase(0, recipe.find('\n') + 1);
  return recipe;
}

/// A word as "text" and "${NAME op alt}" pieces, to compare in one string.
std::string show(const Word& word) {
  std::string out;
  for (const Segment& s : word)
    out += s.variable ? "${" + s.text + (s.colon ? ":" : "") + (s.op ? std::string(1, s.op) : "") + s.alternative + "}"
                      : "<" + s.text + ">";
  return out;
}

}  // namespace

TEST_CASE("lines: continuations, comments, directives, CRLF", "[convert]") {
  SECTION("a continued line joins its parts; blank and comment lines inside are dropped") {
    auto f = parse_dockerfile("FROM a\nRUN echo one \\\n\n  # note\n  two \\  \n  three\nUSER x\n", "Dockerfile");
    REQUIRE(f.instructions.size() == 3);
    CHECK(f.instructions[1].args == "echo one   two   three");
    CHECK(f.instructions[1].line == 2);
    CHECK(f.instructions[2].line == 7);
  }
  SECTION("the escape directive makes ` the continuation and escape character") {
    auto f = parse_dockerfile("# escape=`\nFROM a\nRUN dir c:\\ `\n  && echo ok\n", "Dockerfile");
    CHECK(f.escape == '`');
    CHECK(f.instructions[1].args == "dir c:\\   && echo ok");
  }
  SECTION("a directive after a comment or instruction is a comment") {
    auto f = parse_dockerfile("# hello\n# escape=`\nFROM a\n", "Dockerfile");
    CHECK(f.escape == '\\');
    CHECK(f.instructions[0].comments == std::vector<std::string>{"hello", "escape=`"});
  }
  SECTION("CRLF endings and lower-case keywords") {
    auto f = parse_dockerfile("from a as b\r\nrun true\r\n", "Dockerfile");
    CHECK(f.instructions[0].keyword == "FROM");
    CHECK(f.instructions[0].args == "a as b");
    CHECK(f.instructions[1].args == "true");
  }
  SECTION("flags, exec forms, and a list that is not JSON stays a shell form") {
    auto f = parse_dockerfile("FROM a\nCOPY --from=b --link x y\nCMD [\"a\", \"b c\"]\nCMD [not json]\n", "Dockerfile");
    auto& copy = f.instructions[1];
    REQUIRE(copy.flags.size() == 2);
    CHECK(copy.flags[0].name == "from");
    CHECK(copy.flags[0].value == "b");
    CHECK_FALSE(copy.flags[1].value);
    CHECK(copy.args == "x y");
    CHECK(f.instructions[2].exec == std::vector<std::string>{"a", "b c"});
    CHECK_FALSE(f.instructions[3].exec);
  }
  SECTION("here-documents, <<- removing leading tabs") {
    auto f = parse_dockerfile("FROM a\nRUN <<EOF\necho 1\necho 2\nEOF\nRUN cat <<-\"END\" >/x\n\tline\n\tEND\nUSER u\n",
                              "Dockerfile");
    REQUIRE(f.instructions.size() == 4);
    CHECK(f.instructions[1].heredocs[0].body == "echo 1\necho 2\n");
    CHECK(f.instructions[2].heredocs[0].name == "END");
    CHECK(f.instructions[2].heredocs[0].quoted);
    CHECK(f.instructions[2].heredocs[0].body == "line\n");
    CHECK(f.instructions[3].line == 9);
  }
}

TEST_CASE("malformed Dockerfiles name their line", "[convert]") {
  CHECK(parse_error("FROM a\n\nRUNN true\n") == "Dockerfile:3: unknown instruction: RUNN");
  CHECK(parse_error("FROM a\nRUN <<EOF\necho\n") ==
        "Dockerfile:2: RUN: here-document <<EOF has no terminating line 'EOF'");
  CHECK(parse_error("FROM a\nWORKDIR\n") == "Dockerfile:2: WORKDIR needs at least one argument");
  CHECK(parse_error("# escape=x\nFROM a\n") == "Dockerfile:1: invalid escape directive 'x': it must be \\ or `");
  CHECK(parse_error("FROM a\nCOPY -- x y\n") == "Dockerfile:2: COPY: malformed option '--' (expected --name=value)");
  CHECK(convert_error("RUN true\n") == "Dockerfile:1: RUN before the first FROM (only ARG may come before it)");
  CHECK(convert_error("# only\n") == "Dockerfile: no FROM: a Dockerfile needs at least one stage");
  CHECK(convert_error("FROM a b\n") == "Dockerfile:1: FROM: expected FROM IMAGE [AS NAME], got 'FROM a b'");
  CHECK(convert_error("FROM $NOPE\n") == "Dockerfile:1: $NOPE is not an ARG declared before the first FROM");
  CHECK(convert_error("FROM a\nENV A=\"b\n") == "Dockerfile:2: unterminated double quote");
  CHECK(convert_error("FROM a\nENV A=${B?x}\n") ==
        "Dockerfile:2: ${B...}: only ${NAME}, ${NAME:-word} and ${NAME:+word} are supported");
  CHECK(convert_error("FROM a\nCOPY x\n") == "Dockerfile:2: COPY needs a source and a destination");
  CHECK(convert_error("FROM a\nCOPY --from=1 x y\n") == "Dockerfile:2: COPY --from=1: no earlier stage has that index");
}

TEST_CASE("shell words: quotes, escapes, variables", "[convert]") {
  CHECK(raw_words("a \"b c\" 'd e'\\ f  g\\ h", '\\') ==
        std::vector<std::string>{"a", "\"b c\"", "'d e'\\ f", "g\\ h"});
  CHECK(show(parse_word("\"a $X\"'$Y'\\$Z", '\\')) == "<a >${X}<$Y$Z>");
  CHECK(show(parse_word("${A:-x y}${B+z}$", '\\')) == "${A:-x y}${B+z}<$>");
  CHECK(show(parse_word("\"q\\\"\\n\"", '\\')) == "<q\"\\n>");
  CHECK(show(parse_word("a`$b", '`')) == "<a$b>");
  CHECK(show(parse_word("$X", '\\', false)) == "<$X>");
  auto kv = split_assignment("\"A=B\"=c=d", '\\');
  REQUIRE(kv);
  CHECK(kv->first == "\"A=B\"");
  CHECK(kv->second == "c=d");
  CHECK_FALSE(split_assignment("'a=b'", '\\'));
}

TEST_CASE("a multi-stage Dockerfile becomes a recipe", "[convert]") {
  std::string dockerfile = R"(# build it
FROM golang:1.12-alpine as builder
RUN apk add -U --no-cache git ca-certificates
COPY . /app
WORKDIR /app
RUN CGO_ENABLED=0 go build -o server server.go

FROM scratch as final
ENV GIN_MODE=release
COPY --from=builder /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/
COPY --from=0 /app/server /opt/server
EXPOSE 8080 53/udp
ENTRYPOINT ["/opt/server"]
)";
  ConvertOptions options;
  options.target = "micro";
  CHECK(body_of(dockerfile, options) == R"(-- build it

local builder = from "golang:1.12-alpine"
  :run "apk add -U --no-cache git ca-certificates"
  :copy(".", "/app")
  :workdir "/app"
  :run "CGO_ENABLED=0 go build -o server server.go"

local final = scratch
  :env { PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" }  -- Docker's default, set in a stage from scratch
  :env { GIN_MODE = "release" }
  :copy("/etc/ssl/certs/ca-certificates.crt", "/etc/ssl/certs/", { from = builder })
  :copy("/app/server", "/opt/server", { from = builder })
  :expose(8080, "53/udp")
  :entrypoint { "/opt/server" }

image("micro", final)
)");
}

TEST_CASE("ARG becomes param, ENV is expanded where Docker expands it", "[convert]") {
  std::string dockerfile = R"(ARG GO=1.22
FROM golang:${GO} AS build
ARG GO
ARG MODE=fast
ENV APP=/src/app DIR=$APP
ENV LEGACY a  value
WORKDIR $APP/${MODE}
RUN echo $APP
ENV PATH=/go/bin:$PATH
USER ${UID:-1000}
FROM build
WORKDIR ${APP:+/set}
)";
  CHECK(body_of(dockerfile) == R"(
local GO = param("GO", "1.22")  -- ARG GO at Dockerfile:1
local MODE = param("MODE", "fast")  -- ARG MODE at Dockerfile:4
local APP = param("APP", "")  -- $APP at Dockerfile:5 comes from the base image's environment in Docker; a recipe cannot read it: set it with --set APP=VALUE
local PATH = param("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")  -- $PATH at Dockerfile:9 comes from the base image's environment in Docker; a recipe cannot read it: set it with --set PATH=VALUE
local UID = param("UID", "")  -- $UID at Dockerfile:10 comes from the base image's environment in Docker; a recipe cannot read it: set it with --set UID=VALUE

local build = from("golang:" .. GO)
  :env { APP = "/src/app", DIR = APP }
  :env { LEGACY = "a  value" }
  :workdir("/src/app/" .. MODE)
  :run("echo $APP", { env = { GO = GO, MODE = MODE } })
  :env { PATH = "/go/bin:" .. PATH }
  :user((UID ~= "" and UID or "1000"))

local stage1 = build
  :workdir "/set"

image("app", stage1)
)");
}

TEST_CASE("RUN options, COPY and ADD options, and what a recipe cannot say", "[convert]") {
  namespace fs = std::filesystem;
  ScratchDir ctx;
  std::ofstream(ctx.path / "vendor.tar.gz") << "\x1f\x8b rest";
  std::ofstream(ctx.path / "notes.gz") << "\x1f\x8b rest";
  std::ofstream(ctx.path / ".dockerignore") << "*.log\n";
  std::string dockerfile = R"(FROM alpine
RUN --mount=type=cache,target=/root/.cache/go-build --mount=type=secret,id=npmrc --network=none make
RUN --mount=type=bind,source=x,target=/x ["make", "all"]
COPY --chown=1000:1000 --chmod=0755 a b /dst/
COPY --chown=app:app a /a
ADD vendor.tar.gz notes.gz /opt/
ADD --checksum=sha256:abc https://example.com/x.tgz /x.tgz
ADD /bin/tool /usr/bin/tool
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN set -x; make
CMD make run
HEALTHCHECK --interval=30s --retries=3 CMD wget -q -O- http://localhost/ || exit 1
VOLUME ["/data", "/logs"]
LABEL org.opencontainers.image.title="my app" maintainer=me
STOPSIGNAL SIGINT
ONBUILD RUN true
)";
  ConvertOptions options;
  options.context = ctx.path;
  CHECK(body_of(dockerfile, options) ==
        R"(-- The context's .dockerignore is kept as it is: imgbuild reads it as Docker does.

local stage0 = from "alpine"
  -- imgbuild convert: secret npmrc is read from the file npmrc in the build context (docker build --secret id=npmrc,src=FILE): name that file in secrets
  :run("make", { network = "none", cache = { "/root/.cache/go-build" }, secrets = { npmrc = "npmrc" } })
  -- imgbuild convert: cannot express RUN --mount=type=bind,source=x,target=/x
  :run { "make", "all" }
  :copy({ "a", "b" }, "/dst/", { chown = "1000:1000", chmod = "0755" })
  -- imgbuild convert: cannot express COPY --chown=app:app: give numeric ids such as "1000:1000" (names need the image's /etc/passwd)
  :copy("a", "/a")
  :add({ "vendor.tar.gz", "notes.gz" }, "/opt/")
  :add("https://example.com/x.tgz", "/x.tgz", { checksum = "sha256:abc" })
  :copy("bin/tool", "/usr/bin/tool")
  -- imgbuild convert: SHELL ["/bin/bash", "-o", "pipefail", "-c"]: the shell forms below run with it (exec form)
  :run { "/bin/bash", "-o", "pipefail", "-c", "set -x; make" }
  :cmd { "/bin/bash", "-o", "pipefail", "-c", "make run" }
  :healthcheck("wget -q -O- http://localhost/ || exit 1", { interval = "30s", retries = 3 })
  :volume("/data", "/logs")
  :label { ["org.opencontainers.image.title"] = "my app", maintainer = "me" }
  :stopsignal "SIGINT"
  -- imgbuild convert: cannot express ONBUILD RUN true

image("app", stage0)
)");
}

TEST_CASE("heredocs, exec-form healthchecks and the empty healthcheck", "[convert]") {
  std::string dockerfile =
      "FROM a\nRUN <<EOF\nset -e\necho ]]done\nEOF\nRUN python3 - <<PY\nprint(1)\nPY\n"
      "HEALTHCHECK --timeout=3s CMD [\"/app\", \"-check\"]\nHEALTHCHECK --start-interval=1s CMD  true\nHEALTHCHECK "
      "NONE\nCOPY <<EOF /x\nhi\nEOF\n";
  CHECK(body_of(dockerfile) == R"(
local stage0 = from "a"
  :run [=[
set -e
echo ]]done
]=]
  :run [[
python3 - <<PY
print(1)
PY
]]
  :healthcheck { "/app", "-check", timeout = "3s" }
  -- imgbuild convert: cannot express HEALTHCHECK --start-interval=1s
  :healthcheck "true"
  :healthcheck(false)
  -- imgbuild convert: cannot express COPY from a here-document: <<EOF /x

image("app", stage0)
)");
}

TEST_CASE("target names come from folder names", "[convert]") {
  CHECK(target_name("scratch-122x") == "scratch-122x");
  CHECK(target_name("My App") == "my-app");
  CHECK(target_name("..") == "app");
  CHECK(target_name("_x") == "x");
}
