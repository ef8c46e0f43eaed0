-- examples/multistage/recipe.lua: the seed articles' multi-stage build
local certs = require "imgbuild.certs"            -- stdlib module

local builder = from "golang:1.22-alpine"         -- pulled from a registry
  :workdir "/go/src/app"
  :copy({ "go.mod", "go.sum" }, "./")             -- from the build context
  :run "go mod download"                          -- cached while go.sum is unchanged
  :copy(".", ".")
  :run { "go", "build", "-o", "/out/app", ".", env = { CGO_ENABLED = "0" } }

local app = scratch
  :copy("/out/app", "/app", { from = builder, static = true })  -- fails unless static
  :copy(certs.bundle, "/etc/ssl/certs/ca-certificates.crt")
  :env { GIN_MODE = "release" }
  :expose(8080)
  :entrypoint { "/app" }

image("hello", app)                               -- a named target
-- ci.branch and ci.sha are nil outside a checkout (and on a detached HEAD):
-- tagged detached_unknown there; '/' in a branch name cannot be in a tag.
push(app, "localhost:5000/hello:" .. (ci.branch or "detached"):gsub("[^%w_.-]", "-") .. "_" .. (ci.sha or "unknown"))
