-- examples/static-site/recipe.lua: a Go file server and its content in a
-- scratch image, running as a non-root user. Build a release with
--   imgbuild recipe.lua --set VERSION=1.2.3
local go = require "imgbuild.go"

local version = param("VERSION", "dev")
local uid = "10001"

local site = scratch
  :copy(go.build { main = ".", output = "server" }, "/usr/local/bin/")
  :workdir "/srv"
  :copy("www", "www/", { chown = uid .. ":" .. uid })   -- www/drafts is in .dockerignore
  :env { LISTEN = ":8081", ROOT = "/srv/www" }
  :user(uid .. ":" .. uid)
  :label {
    ["org.opencontainers.image.version"] = version,
    ["org.opencontainers.image.title"] = "static-site",
  }
  :expose(8081)
  :volume "/srv/cache"
  :stopsignal "SIGINT"
  :entrypoint { "/usr/local/bin/server" }
  :cmd { "-quiet" }
  -- net/http links crypto/x509, but this server makes no TLS connections of
  -- its own: it needs no CA bundle, so the doctor's warning is silenced.
  :doctor { ignore = { "tls" } }

image("static-site", site)
