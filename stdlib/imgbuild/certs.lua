--- imgbuild.certs: the build machine's CA bundle, for images whose programs
--- make TLS connections (the seed's `COPY --from=builder
--- /etc/ssl/certs/ca-certificates.crt` line, without a builder image).
---
---   local certs = require "imgbuild.certs"
---   img:copy(certs.bundle, "/etc/ssl/certs/ca-certificates.crt")
local _, internal = ... -- the engine's private functions (see lua/imgbuild/dsl.lua)

local certs = {}

--- The PEM bundle of trusted CAs (Debian's ca-certificates package, or the
--- places other distributions keep it).
certs.bundle = internal.host_path("imgbuild.certs bundle", {
  "/etc/ssl/certs/ca-certificates.crt",
  "/etc/pki/tls/certs/ca-bundle.crt",
  "/etc/ssl/cert.pem",
})

return certs
