-- examples/hello/recipe.lua: no base image at all (the ko way): the host's Go
-- toolchain builds a static binary, cached by the hash of its sources
local go = require "imgbuild.go"

image("hello", scratch
  :copy(go.build { main = ".", static = true }, "/app")
  :expose(8080)
  :entrypoint { "/app" })
