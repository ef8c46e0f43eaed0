-- examples/lockfile-builder/recipe.lua: the seed CI's "glide lock" flow. The
-- script it replaces hashed the lockfile, asked the registry whether
-- app:builder-<hash> existed, built and pushed that builder image only when it
-- did not, and built every commit from it. cached() is that script.
--   imgbuild recipe.lua --set registry=registry.example.com/team
local certs = require "imgbuild.certs"

local registry = param("registry", "localhost:5000")

-- go.mod and go.sum are this module's lockfile. md5, as `md5sum glide.lock`
-- named the existing builder tags: they stay valid.
local tag = hash { "go.mod", "go.sum", algorithm = "md5" }

-- Pulled when the registry has it; otherwise built, and pushed for the next build.
local builder = cached(registry .. "/lockfile-builder:builder-" .. tag, function()
  return from "golang:1.22-alpine"
    :workdir "/go/src/app"
    :copy({ "go.mod", "go.sum" }, "./")
    :run "go mod download"
    -- Pushed images meet the doctor too; a builder runs as root on purpose.
    :doctor { ignore = { "root" } }
end)

local build = builder
  :copy(".", ".")
  :run { "go", "build", "-o", "/out/app", ".", env = { CGO_ENABLED = "0" } }

local app = scratch
  :copy("/out/app", "/app", { from = build, static = true })
  :copy(certs.bundle, "/etc/ssl/certs/ca-certificates.crt")
  :user "65534"
  :expose(8080)
  :entrypoint { "/app" }

-- The seed's tag, branch_sha; outside a git checkout ci knows neither: "dev".
local version = param("version", ci.branch and ci.sha and ci.branch .. "_" .. ci.sha or "dev")

image("lockfile-app", app)
push(app, registry .. "/lockfile-app:" .. version)
