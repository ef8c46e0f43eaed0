-- examples/alpine-tools/recipe.lua: the seed article's alpine image with a
-- second tool in it. Its Dockerfile built `soda` (a database migration tool)
-- in a preliminary stage and the app in another, then copied both into an
-- alpine final stage that migrates the database and starts the app. Here
-- cmd/migrate plays soda.
local certs = require "imgbuild.certs"

-- Go's build cache lives in a cache folder that outlasts the step and is
-- never part of a layer, so an edit recompiles only what changed.
local function go_build(package, out)
  return from "golang:1.22-alpine"
    :workdir "/src"
    :copy({ "go.mod", "go.sum" }, "./")
    :copy(package, package .. "/")
    :run { "go", "build", "-o", out, "./" .. package, env = { CGO_ENABLED = "0" }, cache = { "/root/.cache/go-build" } }
end

-- The two stages share nothing, so they build at the same time.
local tools = go_build("cmd/migrate", "/out/migrate")
local builder = go_build("cmd/server", "/out/server")

local app = from "alpine:3.20"
  :run "echo 'service:x:10001:10001::/:/sbin/nologin' >> /etc/passwd"  -- adduser, for any base
  :copy("/out/migrate", "/usr/local/bin/migrate", { from = tools, static = true })
  :copy("/out/server", "/usr/local/bin/server", { from = builder, static = true })
  :copy("migrations", "/migrations/")
  -- alpine's `apk add ca-certificates`, from the build machine instead
  :copy(certs.bundle, "/etc/ssl/certs/ca-certificates.crt")
  :user "service"
  :expose(8080)
  :entrypoint { "/bin/sh", "-c",
    "/usr/local/bin/migrate -dir /migrations -state /tmp/schema_version up && exec /usr/local/bin/server" }

image("alpine-tools", app)
