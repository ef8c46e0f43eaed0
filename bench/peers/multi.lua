-- bench/peers/multi.lua: the seed's scratch-122x/Dockerfile.multi (a Go builder
-- stage, then FROM alpine) as bench/peers/Dockerfile.multi builds it, step for step.
-- bench/peers.sh sets the parameters: the loopback registry of the golang and
-- alpine look-alikes, the loopback module proxy, whether the go build mounts
-- the Go build and module caches (Dockerfile.multi.cache), and the push target.
local registry = param("registry", "127.0.0.1:5000")
local caches = param("cache_mounts", "no") == "yes" and { "/root/.cache/go-build", "/root/go/pkg/mod" } or nil

local builder = from(registry .. "/library/golang:1.22-alpine")
  :env { GOPROXY = param("goproxy", "off"), GOSUMDB = "off" }
  :workdir "/go/src/app"
  :copy(".", ".")
  :run("CGO_ENABLED=0 go build -o app .", { network = "host", cache = caches })

local app = from(registry .. "/library/alpine:3")
  :expose(8080)
  :copy("/go/src/app/app", "/app", { from = builder })
  :entrypoint { "./app" }

image("peers-multi", app)
push(app, param("push", registry .. "/bench/peers-multi:imgbuild"))
