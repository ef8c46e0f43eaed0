--- imgbuild.go: Go services built with the host's Go toolchain (the ko way: no
--- builder image). The result is a file value for `:copy`; it is compiled when
--- the build needs it, for the platform of the image it is copied into, and
--- reused until a Go source, go.mod or go.sum changes.
local _, internal = ... -- the engine's private functions (see lua/imgbuild/dsl.lua)

local go = {}

local build_options = {
  main = true, module = true, static = true, output = true, ldflags = true,
  trimpath = true, tags = true, flags = true, env = true, inputs = true,
}

-- What `go build` reads from a module: its sources and module files, and a
-- vendor tree when there is one. Files pulled in by //go:embed are not Go
-- sources: name them with `inputs` so that changing them rebuilds.
local go_inputs = { "**/*.go", "**/*.s", "**/go.mod", "**/go.sum", "go.work", "go.work.sum", "**/vendor/modules.txt" }

local function env_name_ok(k) return k:match("^[%a_][%w_]*$") ~= nil end

---@class GoBuildOptions
---@field main? string      main package directory, relative to the build context (default ".")
---@field module? string    module root (the folder with go.mod), relative to the context (default ".")
---@field static? boolean   CGO_ENABLED=0, so the binary needs no libc (default true)
---@field output? string    binary name (default: the main package's folder name)
---@field ldflags? string   default "-s -w" (no symbol table or DWARF: a smaller image)
---@field trimpath? boolean default true (no build-machine paths in the binary)
---@field tags? string[]    build tags
---@field flags? string[]   further `go build` flags
---@field env? table<string,string> further environment for the compiler
---@field inputs? string[]  further input patterns (.dockerignore syntax), e.g. files used by //go:embed

--- Compiles a Go main package into a static binary.
---@param opts? GoBuildOptions
---@return file
function go.build(opts)
  opts = internal.check_options("go.build", opts, build_options)
  local main = internal.check_context_dir("go.build: main", opts.main or ".")
  local module = internal.check_context_dir("go.build: module", opts.module or ".")
  local static = opts.static
  if static == nil then static = true end
  if type(static) ~= "boolean" then internal.fail("go.build: static: expected true or false, got %s", internal.typename(static)) end
  local trimpath = opts.trimpath
  if trimpath == nil then trimpath = true end
  if type(trimpath) ~= "boolean" then internal.fail("go.build: trimpath: expected true or false, got %s", internal.typename(trimpath)) end
  local ldflags = opts.ldflags or "-s -w"
  if type(ldflags) ~= "string" then internal.fail("go.build: ldflags: expected a string, got %s", internal.typename(ldflags)) end

  -- -buildvcs=false keeps the binary a function of its sources alone: stamping
  -- the git revision would make every commit a new binary and a new image.
  local argv = { "go", "build", "-buildvcs=false", "-ldflags=" .. ldflags }
  if trimpath then argv[#argv + 1] = "-trimpath" end
  if opts.tags then
    argv[#argv + 1] = "-tags=" .. table.concat(internal.check_string_list("go.build: tags", opts.tags, '{ "netgo" }'), ",")
  end
  if opts.flags then
    for _, f in ipairs(internal.check_string_list("go.build: flags", opts.flags, '{ "-race" }')) do argv[#argv + 1] = f end
  end
  argv[#argv + 1] = "-o"
  argv[#argv + 1] = "${OUT}"
  argv[#argv + 1] = "."

  local env = { GOOS = "${TARGETOS}", GOARCH = "${TARGETARCH}" }
  -- linux/arm/v7 is GOARM=7: the variant of the platform this evaluation describes.
  if platform.arch == "arm" and platform.variant ~= "" then env.GOARM = (platform.variant:gsub("^v", "")) end
  if static then env.CGO_ENABLED = "0" end
  if opts.env then
    for k, v in pairs(internal.check_string_map("go.build: env", opts.env, env_name_ok, "letters, digits and _")) do
      env[k] = v
    end
  end

  local inputs = {}
  for _, p in ipairs(go_inputs) do inputs[#inputs + 1] = p end
  if opts.inputs then
    for _, p in ipairs(internal.check_string_list("go.build: inputs", opts.inputs, '{ "static/**" }')) do
      inputs[#inputs + 1] = p
    end
  end

  local output = opts.output
  if output ~= nil and (type(output) ~= "string" or not output:match("^[%w._-]+$")) then
    internal.fail("go.build: output: expected a file name such as \"server\", got %s",
      type(output) == "string" and ("'" .. output .. "'") or internal.typename(output))
  end

  return internal.host_file {
    description = "go build " .. main,
    argv = argv,
    env = env,
    dir = main,
    input_root = module,
    inputs = inputs,
    host_env = { "GO", "CGO_" },
    output_name = output or "",
    tools = { "go" },
  }
end

--- Where the official golang images keep Go's caches: HOME is /root, GOPATH /go.
local cache_defaults = { GOCACHE = "/root/.cache/go-build", GOMODCACHE = "/go/pkg/mod" }

--- Options for a `:run` of the go command in a builder stage (`from "golang"`):
--- Go's build cache (GOCACHE) and module cache (GOMODCACHE) on `:run` cache
--- mounts, so that an edit recompiles only what changed and modules are
--- downloaded once per machine, or once per CI pipeline with `--cache-to` and
--- `--cache-from`, which carry cache mounts. `opts` are further `:run`
--- options, kept; its `env` may move either cache (GOCACHE = "/cache/go"),
--- and the mount follows; its `cache` paths are mounted too.
---@param opts? table  `:run` options: env, workdir, user, network, cache, secrets, emulate
---@return table       the options for `:run`
function go.caches(opts)
  if opts == nil then opts = {} end
  if type(opts) ~= "table" or getmetatable(opts) ~= nil then
    internal.fail("go.caches: expected a table of :run options, got %s", internal.typename(opts))
  end
  local out = {}
  for k, v in pairs(opts) do out[k] = v end
  local env = {}
  for k, v in pairs(cache_defaults) do env[k] = v end
  if opts.env ~= nil then
    for k, v in pairs(internal.check_string_map("go.caches: env", opts.env, env_name_ok, "letters, digits and _")) do
      env[k] = v
    end
  end
  local cache = {}
  for _, name in ipairs { "GOCACHE", "GOMODCACHE" } do
    if env[name]:sub(1, 1) ~= "/" then
      internal.fail("go.caches: env.%s: '%s' must be an absolute path in the image", name, env[name])
    end
    cache[#cache + 1] = env[name]
  end
  if opts.cache ~= nil then
    for _, dir in ipairs(internal.check_string_list("go.caches: cache", opts.cache, '{ "/root/.npm" }')) do
      if dir ~= env.GOCACHE and dir ~= env.GOMODCACHE then cache[#cache + 1] = dir end
    end
  end
  out.env, out.cache = env, cache
  return out
end

return go
