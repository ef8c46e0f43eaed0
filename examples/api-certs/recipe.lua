-- examples/api-certs/recipe.lua: the ECR article's image. Its Dockerfile
-- built the API in a golang stage, then FROM scratch copied in the binary,
-- /etc/ssl/certs/ca-certificates.crt and /usr/share/zoneinfo from the builder
-- and set GIN_MODE=release; its CI script logged in to ECR and pushed. Here
-- the certificates and zones come from the build machine, and the login is
-- the registry's entry in ~/.docker/config.json (or a credential helper, such
-- as docker-credential-ecr-login):
--   imgbuild recipe.lua --set registry=123456789012.dkr.ecr.eu-west-1.amazonaws.com/team
local go = require "imgbuild.go"
local certs = require "imgbuild.certs"
local tzdata = require "imgbuild.tzdata"

local api = scratch
  :copy(go.build { main = ".", output = "api" }, "/api", { static = true })
  :copy(certs.bundle, "/etc/ssl/certs/ca-certificates.crt")  -- TLS calls
  :copy(tzdata.zoneinfo, "/usr/share/zoneinfo/")             -- time.LoadLocation
  :env { GIN_MODE = "release" }
  :user "65534"
  :expose(8080)
  :entrypoint { "/api" }

image("api-certs", api)

-- No registry given, nothing to push: a local build needs none.
local registry = param("registry", "")
if registry ~= "" then
  push(api, registry .. "/api-certs:" .. (ci.short_sha or "dev"))
end
