-- The recipe language. Evaluating a recipe only describes: every call builds an
-- immutable value and records the recipe line it came from; nothing is read or
-- built until the engine walks the description that collect() returns.
--
-- The host runs this chunk once per engine with a settings table:
--   params         --set NAME=VALUE pairs
--   recipe_dir     folder of the recipe (first place `require` looks)
--   context        the build context, absolute (imgbuild.ci reads its git repository)
--   search_path    IMGBUILD_PATH entries
--   embedded       function(name) -> source, chunkname of a shipped module, or nil
--   inspect        function(path) -> ELF facts of a build-context file (raises a message)
--   hash           function(algorithm, path...) -> hex digest of build-context files (raises a message)
--   exists         function(normalised_ref) -> whether the registry has it (raises a
--                  message); nil when the evaluation has no registry access
--   doctor_warnings  names of the doctor's warnings (what :doctor may ignore)
--   size           function(text) -> bytes of a size such as "10MB", or nil
--   platform       { os, arch, variant } of the platform this evaluation describes
--   build_platform { os, arch, variant } of the machine imgbuild runs on

local settings = ...

-- The engine's own globals: a snapshot of the standard ones with private copies
-- of the library tables, taken before any recipe code runs. A recipe that sets
-- `type = nil` or empties `string.format` breaks its own code, as any Lua
-- program would, but not the engine's checks and error messages. `_G` (the
-- recipe's globals) and `package` (one module system) stay shared.
local _ENV = (function(globals)
  local env = {}
  for name, value in pairs(globals) do
    if type(value) == "table" and name ~= "_G" and name ~= "package" then
      local copy = {}
      for k, v in pairs(value) do copy[k] = v end
      value = copy
    end
    env[name] = value
  end
  return env
end)(_G)

-- Methods on strings ("x":sub(1)) go through the shared `string` table; a
-- function a recipe removes from it is still found in the engine's copy.
setmetatable(_G.string, { __index = string })

local M = {}

---------------------------------------------------------------------------
-- Errors at the user's line

--- The "file:line" of the innermost call made from user code: recipe files and
--- the user's own modules. The engine's Lua and the shipped stdlib are loaded
--- under "=imgbuild/..." chunk names and are skipped, so a mistake in a call to
--- a stdlib function is reported where the user made it.
local method_loc -- set while an image method runs: see ImageMT.__index

local function caller_loc()
  if method_loc then return method_loc end
  for level = 2, math.huge do
    local info = debug.getinfo(level, "Sl")
    if not info then return "?" end
    local src = info.source
    if info.currentline > 0 then
      if src:sub(1, 1) == "@" then return src:sub(2) .. ":" .. info.currentline end
      if src:sub(1, 1) ~= "=" then return info.short_src .. ":" .. info.currentline end
    end
  end
end

local function fail(fmt, ...)
  error(caller_loc() .. ": " .. string.format(fmt, ...), 0)
end

--- Edit distance with adjacent transpositions (optimal string alignment), for
--- "did you mean" hints: "form" is one step from "from".
local function distance(a, b)
  local d = {}
  for i = 0, #a do d[i] = { [0] = i } end
  for j = 0, #b do d[0][j] = j end
  for i = 1, #a do
    for j = 1, #b do
      local cost = a:byte(i) == b:byte(j) and 0 or 1
      d[i][j] = math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
      if i > 1 and j > 1 and a:byte(i) == b:byte(j - 1) and a:byte(i - 1) == b:byte(j) then
        d[i][j] = math.min(d[i][j], d[i - 2][j - 2] + 1)
      end
    end
  end
  return d[#a][#b]
end

--- " (did you mean 'copy'?)" when a known name is close to `name`, else "".
local function suggest(name, known)
  if type(name) ~= "string" then return "" end
  local best, best_d
  for _, k in ipairs(known) do
    local d = distance(name, k)
    if d <= math.max(1, #k // 3) and (not best_d or d < best_d) then best, best_d = k, d end
  end
  return best and (" (did you mean '" .. best .. "'?)") or ""
end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  return keys
end

local function typename(v)
  local mt = getmetatable(v)
  if type(mt) == "string" then return mt end -- image / file values
  return type(v)
end

--- Rejects option keys that `allowed` (a set) does not hold, with a hint drawn
--- from `allowed` and the optional set `also_known`.
local function check_options(what, opts, allowed, also_known)
  if opts == nil then return {} end
  if type(opts) ~= "table" or getmetatable(opts) ~= nil then
    fail("%s: expected a table of options, got %s", what, typename(opts))
  end
  local names = sorted_keys(allowed)
  for k in pairs(also_known or {}) do names[#names + 1] = k end
  for _, k in ipairs(sorted_keys(opts)) do
    if type(k) ~= "string" or not allowed[k] then
      fail("%s: unknown option '%s'%s", what, tostring(k), suggest(k, names))
    end
  end
  return opts
end

local function check_string(what, v)
  if type(v) ~= "string" or v == "" then fail("%s: expected a non-empty string, got %s", what, typename(v)) end
  return v
end

--- A list of strings (a table with 1..n), as argv-like values need.
local function check_string_list(what, v, example)
  if type(v) ~= "table" or getmetatable(v) ~= nil then
    fail("%s: expected a list of strings such as %s, got %s", what, example, typename(v))
  end
  local n = 0
  for k in pairs(v) do
    if math.type(k) ~= "integer" or k < 1 then fail("%s: expected a list of strings such as %s", what, example) end
    n = math.max(n, k)
  end
  local out = {}
  for i = 1, n do
    if type(v[i]) ~= "string" then fail("%s: item %d is %s, not a string", what, i, typename(v[i])) end
    out[i] = v[i]
  end
  return out
end

--- A NAME = value table; numbers become strings, other types are errors.
local function check_string_map(what, v, key_ok, key_rule, strings_only)
  if type(v) ~= "table" or getmetatable(v) ~= nil then
    fail("%s: expected a table of NAME = value, got %s", what, typename(v))
  end
  local out = {}
  for _, k in ipairs(sorted_keys(v)) do
    if type(k) ~= "string" then fail("%s: names must be strings, got %s", what, typename(k)) end
    if not key_ok(k) then fail("%s: invalid name '%s' (%s)", what, k, key_rule) end
    local val = v[k]
    if math.type(val) == "integer" and not strings_only then val = tostring(val) end
    if type(val) ~= "string" then fail("%s: value of %s is %s, not a string", what, k, typename(val)) end
    out[k] = val
  end
  return out
end

---------------------------------------------------------------------------
-- Values: images and files. Their state lives in these weak tables, keyed by
-- the value, so a recipe can neither change nor forge it.

local nodes = setmetatable({}, { __mode = "k" })
local Image = {}
local ImageMT
local FileMT = {
  __metatable = "file",
  __newindex = function() fail("files are immutable values") end,
  __tostring = function(self) return "file (" .. nodes[self].description .. ")" end,
}
FileMT.__index = function(_, key)
  fail("a file value has no field '%s': use it as a :copy source", tostring(key))
end

local function new_image(node)
  local img = setmetatable({}, ImageMT)
  nodes[img] = node
  return img
end

local function is_image(v) return getmetatable(v) == "image" end
local function is_file(v) return getmetatable(v) == "file" end

local function check_self(self, method)
  if not is_image(self) then
    fail("%s: called on %s; call it as a method: img:%s(...)", method, typename(self), method)
  end
  return nodes[self]
end

--- A new image: `self` plus one step.
local function derive(self, method, node)
  node.parent = check_self(self, method)
  node.loc = caller_loc()
  return new_image(node)
end

local function config_step(self, key, value)
  return derive(self, key, { kind = "config", key = key, value = value })
end

---------------------------------------------------------------------------
-- Image methods

local copy_options = { chown = true, chmod = true, static = true, from = true }

local function parse_chown(v)
  if math.type(v) == "integer" and v >= 0 then return { uid = v, gid = v } end
  if type(v) == "string" then
    local uid, gid = v:match("^(%d+):(%d+)$")
    if not uid then uid = v:match("^(%d+)$"); gid = uid end
    if uid then return { uid = tonumber(uid), gid = tonumber(gid) } end
    if v:match("^[%a_][%w_.-]*") then
      fail("copy: chown '%s': user names need the image's /etc/passwd; give numeric ids such as \"1000:1000\"", v)
    end
  end
  fail("copy: chown: expected \"uid[:gid]\" such as \"1000:1000\", got %s", type(v) == "string" and ("'" .. v .. "'") or typename(v))
end

local function parse_chmod(v)
  if type(v) == "string" and v:match("^0?[0-7][0-7][0-7][0-7]?$") and #v <= 4 then return tonumber(v, 8) end
  if type(v) == "number" then
    fail("copy: chmod: give the mode as an octal string such as \"0755\" (the number %s would be read as decimal)", tostring(v))
  end
  fail("copy: chmod: expected an octal mode such as \"0755\", got %s", type(v) == "string" and ("'" .. v .. "'") or typename(v))
end

--- Calls `add` with each source of a :copy or :add: `src` itself, or each
--- item of a plain list (which must not be empty).
local function each_source(method, src, add)
  if type(src) == "table" and getmetatable(src) == nil then
    if #src == 0 then fail("%s: the source list is empty", method) end
    for i = 1, #src do add(src[i]) end
  else
    add(src)
  end
end

---@param src string|file|table a build-context path or glob, a file value, or a list of them;
---with `from`, paths in that image
---@param dst string destination in the image; relative paths start at the workdir
---@param opts? { chown?: string|integer, chmod?: string, static?: boolean, from?: image }
function Image:copy(src, dst, opts)
  check_self(self, "copy")
  local from = type(opts) == "table" and getmetatable(opts) == nil and opts.from or nil
  if from ~= nil and not is_image(from) then fail("copy: from: expected an image, got %s", typename(from)) end
  local sources = {}
  local function add(v)
    if type(v) == "string" and v ~= "" then sources[#sources + 1] = v
    elseif is_file(v) and not from then sources[#sources + 1] = nodes[v]
    elseif is_file(v) then fail("copy: with from, sources are paths in that image, not file values")
    else fail("copy: source must be a path, a file value or a list of them, got %s", typename(v)) end
  end
  each_source("copy", src, add)
  check_string("copy: destination", dst)
  opts = check_options("copy", opts, copy_options)
  if opts.static ~= nil and type(opts.static) ~= "boolean" then
    fail("copy: static: expected true or false, got %s", typename(opts.static))
  end
  return derive(self, "copy", {
    kind = "copy", sources = sources, dest = dst,
    chown = opts.chown ~= nil and parse_chown(opts.chown) or nil,
    chmod = opts.chmod ~= nil and parse_chmod(opts.chmod) or nil,
    static = opts.static or nil,
    from = from and nodes[from] or nil,
  })
end

local add_options = { chown = true, chmod = true, checksum = true }

--- The host of a URL ("127.0.0.1", "[::1]", "example.com"), lower-cased.
local function url_host(url)
  local authority = url:match("^%a[%w+.-]*://([^/?#]*)") or ""
  authority = authority:gsub("^.*@", "")
  local host = authority:match("^(%[[^%]]*%])") or authority:gsub(":%d*$", "")
  return host:lower()
end

local function is_loopback(host)
  return host == "localhost" or host == "[::1]" or host:match("^127%.%d+%.%d+%.%d+$") ~= nil
end

---@param src string|table a build-context path or glob (a tar archive among the files is extracted at `dst`),
---a list of them, or an https URL (fetched, checked against `checksum`, never extracted)
---@param dst string destination in the image; relative paths start at the workdir
---@param opts? { chown?: string|integer, chmod?: string, checksum?: string }
function Image:add(src, dst, opts)
  check_self(self, "add")
  local sources, url = {}, nil
  local function add(v)
    if type(v) ~= "string" or v == "" then
      fail("add: source must be a path, a list of paths or a URL, got %s", typename(v))
    end
    if v:match("^%a[%w+.-]*://") then url = v end
    sources[#sources + 1] = v
  end
  each_source("add", src, add)
  check_string("add: destination", dst)
  opts = check_options("add", opts, add_options)
  if url then
    if #sources > 1 then fail("add: %s: a URL is added on its own: one :add per URL", url) end
    local scheme = url:match("^(%a[%w+.-]*)://"):lower()
    if scheme ~= "https" and not (scheme == "http" and is_loopback(url_host(url))) then
      fail("add: %s: only https URLs are fetched (http only from this machine's loopback)", url)
    end
    if opts.checksum == nil then
      fail("add: %s: a URL needs its checksum, as in { checksum = \"sha256:...\" }: the file is checked against it", url)
    end
    if type(opts.checksum) ~= "string" or not opts.checksum:match("^sha256:" .. string.rep("[0-9a-f]", 64) .. "$") then
      fail("add: checksum: expected \"sha256:\" and 64 lower-case hex digits, got %s",
        type(opts.checksum) == "string" and ("'" .. opts.checksum .. "'") or typename(opts.checksum))
    end
  elseif opts.checksum ~= nil then
    fail("add: checksum is for a URL source: a local file is known by its content")
  end
  return derive(self, "add", {
    kind = "copy", add = true, dest = dst,
    sources = not url and sources or nil,
    url = url, checksum = url and opts.checksum or nil,
    chown = opts.chown ~= nil and parse_chown(opts.chown) or nil,
    chmod = opts.chmod ~= nil and parse_chmod(opts.chmod) or nil,
  })
end

local function env_name_ok(k) return k:match("^[%a_][%w_]*$") ~= nil end

--- The items and the options of an argv table such as
--- `{ "go", "build", ".", env = {...} }`, as :run and :healthcheck take one.
local function argv_and_options(what, cmd, opts)
  if opts ~= nil then fail("%s: give options inside the argv table, or use %s(\"command\", { ... })", what, what) end
  local argv, options = {}, {}
  for k, v in pairs(cmd) do
    if math.type(k) == "integer" then
      if type(v) ~= "string" then fail("%s: argv[%d]: expected a string, got %s", what, k, typename(v)) end
    else
      options[k] = v
    end
  end
  for i = 1, #cmd do argv[i] = cmd[i] end
  if #argv == 0 then fail("%s: the argv list is empty", what) end
  return argv, options
end

local run_options = { env = true, workdir = true, user = true, network = true, cache = true, secrets = true,
  emulate = true }

---@param cmd string|table a shell command ("go mod download"), or an argv list with options
---@param opts? { env?: table, workdir?: string, user?: string, network?: "default"|"host"|"none", cache?: string[], secrets?: table<string, string>, emulate?: boolean }
function Image:run(cmd, opts)
  check_self(self, "run")
  local argv, shown = {}, nil
  if type(cmd) == "string" then
    if cmd == "" then fail("run: the command is empty") end
    argv, shown = { "/bin/sh", "-c", cmd }, cmd
  elseif type(cmd) == "table" and getmetatable(cmd) == nil then
    argv, opts = argv_and_options("run", cmd, opts)
  else
    fail("run: expected a shell command string or an argv table, got %s", typename(cmd))
  end
  opts = check_options("run", opts, run_options)
  local env
  if opts.env ~= nil then env = check_string_map("run: env", opts.env, env_name_ok, "a letter or '_', then letters, digits or '_'") end
  if opts.workdir ~= nil then check_string("run: workdir", opts.workdir) end
  if opts.user ~= nil then check_string("run: user", opts.user) end
  if opts.network ~= nil and opts.network ~= "default" and opts.network ~= "host" and opts.network ~= "none" then
    fail("run: network: expected \"default\", \"host\" or \"none\", got %s", type(opts.network) == "string" and ("'" .. opts.network .. "'") or typename(opts.network))
  end
  local cache
  if opts.cache ~= nil then
    cache = check_string_list("run: cache", opts.cache, "{ \"/root/.cache/go-build\" }")
    for _, dir in ipairs(cache) do
      if dir:sub(1, 1) ~= "/" then fail("run: cache: '%s' must be an absolute path in the image", dir) end
    end
  end
  if opts.emulate ~= nil and type(opts.emulate) ~= "boolean" then
    fail("run: emulate: expected true or false, got %s", typename(opts.emulate))
  end
  local secrets
  if opts.secrets ~= nil then
    secrets = check_string_map("run: secrets", opts.secrets, function(k) return k:match("^[%w_.-]+$") ~= nil end,
      "letters, digits, '.', '_' or '-'")
  end
  return derive(self, "run", {
    kind = "run", argv = argv, shell = shown, env = env, workdir = opts.workdir, user = opts.user,
    network = opts.network, cache = cache, secrets = secrets, emulate = opts.emulate,
  })
end

---@param vars table<string, string|integer> variables to set
function Image:env(vars)
  check_self(self, "env")
  return config_step(self, "env", check_string_map("env", vars, env_name_ok, "letters, digits and _"))
end

---@param dir string working directory; a relative one is taken from the current one
function Image:workdir(dir)
  check_self(self, "workdir")
  return config_step(self, "workdir", check_string("workdir", dir))
end

---@param user string|integer "name", "uid" or "uid:gid"
function Image:user(user)
  check_self(self, "user")
  if math.type(user) == "integer" and user >= 0 then user = tostring(user) end
  return config_step(self, "user", check_string("user", user))
end

---@param argv string[] the program and its arguments (exec form)
function Image:entrypoint(argv)
  check_self(self, "entrypoint")
  return config_step(self, "entrypoint", check_string_list("entrypoint", argv, '{ "/app" }'))
end

---@param argv string[] default arguments (exec form)
function Image:cmd(argv)
  check_self(self, "cmd")
  return config_step(self, "cmd", check_string_list("cmd", argv, '{ "--port", "8080" }'))
end

---@param ... integer|string ports: 8080, "8080/tcp", "53/udp"
function Image:expose(...)
  check_self(self, "expose")
  local ports = {}
  for i = 1, select("#", ...) do
    local p = select(i, ...)
    local port, proto
    if math.type(p) == "integer" then port, proto = p, "tcp"
    elseif type(p) == "string" then
      local n, pr = p:match("^(%d+)/(%a+)$")
      if not n then n, pr = p:match("^(%d+)$"), "tcp" end
      port, proto = tonumber(n), pr
    end
    if not port or port < 1 or port > 65535 or not (proto == "tcp" or proto == "udp" or proto == "sctp") then
      fail("expose: invalid port %s (expected 1-65535, optionally /tcp, /udp or /sctp)",
        type(p) == "string" and ("'" .. p .. "'") or tostring(p))
    end
    ports[#ports + 1] = port .. "/" .. proto
  end
  if #ports == 0 then fail("expose: expected at least one port") end
  return config_step(self, "expose", ports)
end

---@param labels table<string, string>
function Image:label(labels)
  check_self(self, "label")
  return config_step(self, "label", check_string_map("label", labels,
    function(k) return k ~= "" end, "labels need a non-empty name"))
end

---@param ... string absolute paths of volumes
function Image:volume(...)
  check_self(self, "volume")
  local paths = {}
  for i = 1, select("#", ...) do
    local p = select(i, ...)
    if type(p) ~= "string" or p:sub(1, 1) ~= "/" then
      fail("volume: expected an absolute path, got %s", type(p) == "string" and ("'" .. p .. "'") or typename(p))
    end
    paths[#paths + 1] = p
  end
  if #paths == 0 then fail("volume: expected at least one path") end
  return config_step(self, "volume", paths)
end

---@param signal string|integer "SIGTERM" or a signal number
function Image:stopsignal(signal)
  check_self(self, "stopsignal")
  if math.type(signal) == "integer" and signal > 0 then signal = tostring(signal) end
  if type(signal) ~= "string" or not (signal:match("^SIG%u+%d*$") or signal:match("^%d+$")) then
    fail("stopsignal: expected a signal name such as \"SIGTERM\" or a number, got %s",
      type(signal) == "string" and ("'" .. signal .. "'") or typename(signal))
  end
  return config_step(self, "stopsignal", signal)
end

-- Go's duration units, as docker reads HEALTHCHECK's options, in nanoseconds.
local duration_units = { ns = 1, us = 1000, ["µs"] = 1000, ms = 1000000, s = 1000000000, m = 60000000000, h = 3600000000000 }

--- A duration such as "30s" or "1m30s" in nanoseconds, at least 1ms as docker
--- requires of HEALTHCHECK's options; nil for zero, which docker takes as
--- the runtime's default and leaves out of the config.
local function parse_duration(what, v)
  local shown = type(v) == "string" and ("'" .. v .. "'") or typename(v)
  if type(v) ~= "string" then
    fail("%s: expected a duration such as \"30s\" or \"1m30s\", got %s", what, shown)
  end
  local total, rest = 0, v
  repeat
    local number, unit, after = rest:match("^(%d+%.?%d*)(%a+)(.*)$")
    if not number then number, unit, after = rest:match("^(%d+%.?%d*)(µs)(.*)$") end
    local scale = unit and duration_units[unit]
    if not scale then
      fail("%s: %s is not a duration (a number and a unit of ns, us, ms, s, m, h, such as \"30s\" or \"1m30s\")", what, shown)
    end
    -- In floats: "1000000000h" in integers would wrap around.
    total = total + math.floor(tonumber(number) * 1.0 * scale + 0.5)
    rest = after
  until rest == ""
  if total > 100 * 365 * 24 * duration_units.h then fail("%s: %s is longer than a hundred years", what, shown) end
  if total == 0 then return nil end
  if total < duration_units.ms then fail("%s: %s is shorter than 1ms, which docker refuses", what, shown) end
  return math.tointeger(total)
end

local healthcheck_options = { interval = true, timeout = true, start_period = true, retries = true }

---@param check string|table|false a shell command ("curl -f http://localhost/ || exit 1"), an argv
---list with options ({ "/app", "health", interval = "30s" }), or false to disable the base's check
---@param opts? { interval?: string, timeout?: string, start_period?: string, retries?: integer }
function Image:healthcheck(check, opts)
  check_self(self, "healthcheck")
  local test
  if check == false then
    if opts ~= nil then fail("healthcheck: false (no check) takes no options") end
    return config_step(self, "healthcheck", { test = { "NONE" } })
  elseif type(check) == "string" then
    if check == "" then fail("healthcheck: the command is empty") end
    test = { "CMD-SHELL", check }
  elseif type(check) == "table" and getmetatable(check) == nil then
    local argv
    argv, opts = argv_and_options("healthcheck", check, opts)
    test = { "CMD", table.unpack(argv) }
  else
    fail("healthcheck: expected a shell command string, an argv table or false, got %s", typename(check))
  end
  opts = check_options("healthcheck", opts, healthcheck_options)
  local value = { test = test }
  for _, name in ipairs({ "interval", "timeout", "start_period" }) do
    if opts[name] ~= nil then value[name] = parse_duration("healthcheck: " .. name, opts[name]) end
  end
  if opts.retries ~= nil then
    if math.type(opts.retries) ~= "integer" or opts.retries < 0 or opts.retries > 0x7fffffff then
      fail("healthcheck: retries: expected a whole number of 0 or more, got %s", tostring(opts.retries))
    end
    value.retries = opts.retries
  end
  return config_step(self, "healthcheck", value)
end

-- The doctor's warnings, as the engine names them.
local doctor_warnings = {}
for _, name in ipairs(settings.doctor_warnings) do doctor_warnings[name] = true end

---@param opts { ignore: string[] } warnings not to report for this image: "cgo", "entrypoint", "root", "tls", "tzdata"
function Image:doctor(opts)
  check_self(self, "doctor")
  opts = check_options("doctor", opts, { ignore = true })
  local names = sorted_keys(doctor_warnings)
  local ignore = check_string_list("doctor: ignore", opts.ignore or {}, '{ "tls" }')
  for _, name in ipairs(ignore) do
    if not doctor_warnings[name] then
      fail("doctor: unknown warning '%s'%s (known: %s)", name, suggest(name, names), table.concat(names, ", "))
    end
  end
  return derive(self, "doctor", { kind = "doctor", ignore = ignore })
end

---@param opts { size: string|integer } the most compressed layer bytes the image may have when it is
---stored, written or pushed: "10MB", "500kB", "2MiB", or a number of bytes
function Image:budget(opts)
  check_self(self, "budget")
  opts = check_options("budget", opts, { size = true })
  local size, bytes = opts.size, nil
  if math.type(size) == "integer" and size >= 0 then
    bytes, size = size, size .. " B"
  elseif type(size) == "string" then
    bytes = settings.size(size)
    if not bytes then fail("budget: size '%s' is not a size (e.g. \"10MB\", \"500kB\", \"2MiB\")", size) end
  else
    fail("budget: size: expected a size such as \"10MB\", got %s", typename(size))
  end
  return derive(self, "budget", { kind = "budget", bytes = bytes, size = size })
end

local method_names = sorted_keys(Image)

-- Lua gives every call of a method chain the line where the chain starts, so in
--   scratch
--     :copy(...)
--     :expose(8080)
-- both calls would report the `scratch` line. The method lookup, though, runs
-- at the line of its `:name`, so __index takes the location there and the
-- method runs with it as `method_loc`: steps and their errors get their own line.
ImageMT = {
  __metatable = "image",
  __index = function(_, key)
    local method = Image[key]
    if not method then fail("image has no method '%s'%s", tostring(key), suggest(key, method_names)) end
    local loc = caller_loc()
    return function(...)
      local outer = method_loc
      method_loc = loc
      local ok, result = pcall(method, ...)
      method_loc = outer
      if not ok then error(result, 0) end
      return result
    end
  end,
  __newindex = function() fail("images are immutable: every method returns a new image") end,
  __tostring = function(self) return "image (" .. nodes[self].loc .. ")" end,
}

---------------------------------------------------------------------------
-- The recipe API

local api = {}
local targets, target_by_name = {}, {}
local pushes = {}
local params_used = {}

api.scratch = new_image({ kind = "scratch", loc = "scratch" })

--- "os/arch[/variant]", as OCI writes a platform; anything else fails at the caller's line.
local function check_platform(what, p)
  if not (p:match("^%w+/[%w_]+$") or p:match("^%w+/[%w_]+/%w+$")) then
    fail("%s: invalid platform '%s' (expected os/arch[/variant], e.g. linux/arm64)", what, p)
  end
  return p
end

--- The options of image() and push(): `platforms`, a list of distinct
--- platforms, and `annotations`, a map of strings put on the manifest (and
--- index) without touching the config; each nil when not given.
local function check_image_options(what, opts)
  opts = check_options(what, opts, { platforms = true, annotations = true })
  local list, annotations
  if opts.platforms ~= nil then
    list = check_string_list(what .. ": platforms", opts.platforms, '{ "linux/amd64", "linux/arm64" }')
    local seen = {}
    for _, p in ipairs(list) do
      check_platform(what .. ": platforms", p)
      if seen[p] then fail("%s: platforms: '%s' is listed twice", what, p) end
      seen[p] = true
    end
  end
  if opts.annotations ~= nil then
    -- Strings only: a number's text would be one Lua chose, not the recipe.
    annotations = check_string_map(what .. ": annotations", opts.annotations,
      function(k) return k ~= "" end, "annotations need a non-empty name", true)
    if next(annotations) == nil then annotations = nil end
  end
  return list, annotations
end

--- The platform this evaluation describes: the recipe is evaluated once per
--- platform an image is built for, so reading it varies what each builds.
--- `build` is the machine's own platform (where `go.build` runs).
local function platform_value(p, build)
  local fields = { os = p.os, arch = p.arch, variant = p.variant, build = build }
  local text = p.os .. "/" .. p.arch .. (p.variant ~= "" and ("/" .. p.variant) or "")
  -- An empty proxy: every assignment, to a field that exists too, is refused.
  return setmetatable({}, {
    __index = fields,
    __tostring = function() return text end,
    __newindex = function() fail("platform is read-only: it is the platform being built") end,
    __metatable = "platform",
  })
end
api.platform = platform_value(settings.platform, platform_value(settings.build_platform))

---@param name string the image's name in the store ("hello", "team/api")
---@param img image
---@param opts? table { platforms = { "linux/amd64", "linux/arm64" } }: one image per platform, stored as an index;
---{ annotations = { ["org.opencontainers.image.url"] = "https://..." } }: set on the manifest (and index), "" drops one
function api.image(name, img, opts)
  if type(name) ~= "string" or not name:match("^[a-z0-9][a-z0-9._/-]*$") then
    fail("image: invalid name %s (use lowercase letters, digits, '.', '_', '-' and '/')",
      type(name) == "string" and ("'" .. name .. "'") or typename(name))
  end
  if not is_image(img) then fail("image: expected an image as second argument, got %s", typename(img)) end
  local loc = caller_loc()
  if target_by_name[name] then fail("image: '%s' is already defined at %s", name, target_by_name[name].loc) end
  local platforms, annotations = check_image_options("image", opts)
  local t = { name = name, node = nodes[img], loc = loc, platforms = platforms, annotations = annotations }
  targets[#targets + 1] = t
  target_by_name[name] = t
  return img
end

--- A registry reference, normalised as docker does ("alpine" is
--- "docker.io/library/alpine:latest"); a malformed one fails at the caller's line.
local function check_reference(what, ref)
  check_string(what, ref)
  local ok, normal = pcall(settings.reference, ref)
  if not ok then fail("%s: %s", what, normal) end
  return normal
end

---@param ref string image reference: "alpine:3.20", "ghcr.io/o/r@sha256:..."
---@param opts? table { platform = "linux/arm64" } (default: the build's platform)
function api.from(ref, opts)
  local normal = check_reference("from", ref)
  opts = check_options("from", opts, { platform = true })
  if opts.platform ~= nil then check_platform("from", check_string("from: platform", opts.platform)) end
  return new_image({ kind = "from", loc = caller_loc(), ref = normal, platform = opts.platform })
end

--- A reference to push to: normalised, and a tag rather than a digest.
local function check_push_reference(what, ref)
  local normal = check_reference(what, ref)
  if normal:find("@", 1, true) then fail("%s: '%s' names a digest; push to a tag", what, ref) end
  return normal
end

---@param img image
---@param ref string|string[] where to push it: "registry.example.com/team/app:tag", or a list of
---such references (each blob is sent once per registry, then the manifest goes under every tag)
---@param opts? table { platforms = { "linux/amd64", "linux/arm64" } }: one image per platform, pushed as an index;
---{ annotations = { ... } }: as image()'s
function api.push(img, ref, opts)
  if not is_image(img) then fail("push: expected an image as first argument, got %s", typename(img)) end
  local refs = { ref }
  if type(ref) == "table" then
    refs = check_string_list("push", ref, '{ "reg/app:latest", "reg/app:v1" }')
    if #refs == 0 then fail("push: the list of references is empty") end
  end
  local loc, seen = caller_loc(), {}
  local platforms, annotations = check_image_options("push", opts)
  for i, r in ipairs(refs) do
    local normal = check_push_reference(#refs > 1 and ("push: reference " .. i) or "push", r)
    -- A tag named twice gets the manifest once.
    if not seen[normal] then
      seen[normal] = true
      pushes[#pushes + 1] = {
        node = nodes[img], ref = normal, loc = loc, platforms = platforms, annotations = annotations,
      }
    end
  end
  return img
end

---@param name string parameter name, set with --set NAME=VALUE
---@param default? string|number|boolean value when --set does not give one
function api.param(name, default)
  check_string("param: name", name)
  params_used[name] = true
  local v = settings.params[name]
  if v == nil then
    if default == nil then fail("param '%s' has no default; pass --set %s=VALUE", name, name) end
    return default
  end
  -- A --set value takes the type of the default, so `param("replicas", 3)`
  -- is a number whether or not it was set.
  if math.type(default) == "integer" then
    local n = math.tointeger(tonumber(v))
    if not n then fail("param '%s': --set %s=%s is not an integer", name, name, v) end
    return n
  elseif type(default) == "number" then
    local n = tonumber(v)
    if not n then fail("param '%s': --set %s=%s is not a number", name, name, v) end
    return n
  elseif type(default) == "boolean" then
    if v == "true" then return true elseif v == "false" then return false end
    fail("param '%s': --set %s=%s is not true or false", name, name, v)
  end
  return v
end

---@param name string environment variable of the build
---@param default? string value when it is unset
function api.env(name, default)
  check_string("env: name", name)
  local v = os.getenv(name)
  if v == nil then return default end
  return v
end

---@param path string a file in the build context
---@return table facts about it: elf, machine, architecture, linking, static, interpreter, needed, stripped, go
function api.inspect(path)
  check_string("inspect", path)
  local ok, facts = pcall(settings.inspect, path)
  if not ok then fail("inspect: %s", facts) end
  return facts
end

--- A path in the build context, given relative to it; never outside it. This
--- is the lexical check: the host refuses symlinks that lead out.
local function check_context_dir(what, path)
  check_string(what, path)
  if path:sub(1, 1) == "/" then fail("%s: '%s' must be relative to the build context", what, path) end
  local depth = 0
  for seg in path:gmatch("[^/]+") do
    if seg == ".." then depth = depth - 1 elseif seg ~= "." then depth = depth + 1 end
    if depth < 0 then fail("%s: '%s' is outside the build context", what, path) end
  end
  return path
end

---@param ... string|table build-context files, or one list of them with an option:
---`hash{ "glide.lock", algorithm = "md5" }` ("sha256" by default)
---@return string the hex digest of the files' contents, concatenated in order
function api.hash(...)
  local paths, algorithm = table.pack(...), "sha256"
  paths.n = nil
  if select("#", ...) == 1 and type(paths[1]) == "table" and getmetatable(paths[1]) == nil then
    local list, opts = {}, {}
    for k, v in pairs(paths[1]) do
      if math.type(k) == "integer" then list[k] = v else opts[k] = v end
    end
    opts = check_options("hash", opts, { algorithm = true })
    if opts.algorithm ~= nil then algorithm = check_string("hash: algorithm", opts.algorithm) end
    paths = list
  end
  paths = check_string_list("hash", paths, '{ "glide.lock", algorithm = "md5" }')
  if #paths == 0 then fail("hash: expected at least one file") end
  for _, path in ipairs(paths) do check_context_dir("hash", path) end
  local ok, digest = pcall(settings.hash, algorithm, table.unpack(paths))
  if not ok then fail("hash: %s", digest) end
  return digest
end

--- Whether the registry has the normalised reference, asked with one HEAD
--- request; `what` names the API function in errors.
local function registry_has(what, normal)
  if not settings.exists then fail("%s: this evaluation has no registry access", what) end
  local ok, found = pcall(settings.exists, normal)
  if not ok then fail("%s: %s", what, found) end
  return found
end

---@param ref string image reference: "registry.example.com/team/app:builder-1f2e"
---@return boolean whether its registry has it (mirrors are not asked)
function api.exists(ref)
  return registry_has("exists", check_reference("exists", ref))
end

--- Marks as asked the --set parameters that `fn`, a function cached() skips,
--- names: without it every build that finds its image would warn that the
--- recipe never asks for them. Nothing of `fn` runs; a name counts when it is
--- a constant of `fn`, of a function it reaches through its upvalues, or of a
--- function it names in a table it reaches (a global, a module's field).
local function count_params_named(fn)
  local wanted = {}
  for name in pairs(settings.params) do
    if not params_used[name] then wanted[#wanted + 1] = name end
  end
  local seen = {}
  local function scan(f)
    -- The engine's and the stdlib's own functions ("=imgbuild/...") ask no user's params.
    if #wanted == 0 or seen[f] or debug.getinfo(f, "S").source:sub(1, 1) == "=" then return end
    seen[f] = true
    local ok, code = pcall(string.dump, f, true)
    if not ok then return end -- a C function
    for i = #wanted, 1, -1 do
      if code:find(wanted[i], 1, true) then
        params_used[wanted[i]] = true
        table.remove(wanted, i)
      end
    end
    for i = 1, math.huge do
      local name, value = debug.getupvalue(f, i)
      if not name then break end
      if type(value) == "function" then
        scan(value)
      elseif type(value) == "table" then
        for key, field in pairs(value) do
          if type(key) == "string" and type(field) == "function" and code:find(key, 1, true) then scan(field) end
        end
      end
    end
  end
  scan(fn)
end

---@param ref string where the image lives: "registry.example.com/team/app:builder-" .. hash "go.sum"
---@param build fun(): image makes the image when the registry lacks `ref`
---@return image `from(ref)` when the registry has it; otherwise build()'s image, pushed to `ref`
function api.cached(ref, build)
  local normal = check_push_reference("cached", ref)
  if type(build) ~= "function" then
    fail("cached: expected a function returning the image as second argument, got %s", typename(build))
  end
  local loc = caller_loc()
  if registry_has("cached", normal) then
    count_params_named(build)
    return new_image({ kind = "from", loc = loc, ref = normal })
  end
  local img = build()
  if not is_image(img) then fail("cached: the function returned %s, not an image", typename(img)) end
  -- always: the next build finds it only if this one pushes it, whichever
  -- targets it was asked for (see Push::always in src/build/graph.hpp).
  pushes[#pushes + 1] = { node = nodes[img], ref = normal, loc = loc, always = true }
  return img
end

---------------------------------------------------------------------------
-- The private interface the shipped stdlib builds on.

local internal_functions = {
  context_dir = settings.context,
  check_context_dir = check_context_dir,
  fail = fail,
  check_options = check_options,
  check_string = check_string,
  check_string_list = check_string_list,
  check_string_map = check_string_map,
  typename = typename,
}

--- A file produced by a command on the host when the build needs it (see
--- HostBuildOp in src/build/graph.hpp for the fields).
function internal_functions.host_file(spec)
  local node = {
    kind = "host", loc = caller_loc(), description = spec.description, argv = spec.argv, env = spec.env,
    dir = spec.dir, input_root = spec.input_root, inputs = spec.inputs, host_env = spec.host_env,
    output_name = spec.output_name, tools = spec.tools,
  }
  local f = setmetatable({}, FileMT)
  nodes[f] = node
  return f
end

--- A file or folder of the build machine offered as a copy source: the first
--- of `candidates` (absolute host paths) that exists when the build needs it.
function internal_functions.host_path(description, candidates)
  local f = setmetatable({}, FileMT)
  nodes[f] = { kind = "host_path", loc = caller_loc(), description = description, candidates = candidates }
  return f
end

--- The engine's functions for the shipped stdlib (see embedded_searcher),
--- read-only, so no module can change what the others rely on.
local internal = setmetatable({}, {
  __index = internal_functions,
  __newindex = function() fail("the engine's internal functions are read-only") end,
  __metatable = false,
})

---------------------------------------------------------------------------
-- require: next to the recipe, then IMGBUILD_PATH, then the shipped stdlib.

-- The modules being loaded, innermost last. A module that requires itself,
-- directly or through others, would recurse until the C stack overflows; the
-- first searcher names the circle at the line that closes it instead.
local loading = {}

local function cycle_searcher(name)
  for i, other in ipairs(loading) do
    if other == name then
      local circle = table.move(loading, i, #loading, 1, {})
      circle[#circle + 1] = name
      fail("require: '%s' requires itself: %s", name, table.concat(circle, " -> "))
    end
  end
end

--- `chunk` as a loader that keeps `loading` up to date, errors included.
local function tracked(name, chunk)
  return function(...)
    loading[#loading + 1] = name
    local _ <close> = setmetatable({}, { __close = function() loading[#loading] = nil end })
    return chunk(...)
  end
end

local function file_searcher(dirs)
  return function(name)
    local rel = name:gsub("%.", "/")
    local tried = {}
    for _, dir in ipairs(dirs) do
      for _, pattern in ipairs({ "%s/%s.lua", "%s/%s/init.lua" }) do
        local path = pattern:format(dir, rel)
        local f = io.open(path, "r")
        if f then
          f:close()
          local chunk, err = loadfile(path, "t")
          if not chunk then error(err, 0) end
          return tracked(name, chunk), path
        end
        tried[#tried + 1] = "no file '" .. path .. "'"
      end
    end
    -- Lua joins searchers' messages with "\n\t"; nil adds nothing.
    return #tried > 0 and table.concat(tried, "\n\t") or nil
  end
end

--- The stdlib's modules get the engine's private functions as require's
--- loader data (`local _, internal = ...`), not through package.loaded, where
--- a recipe could replace them.
local function embedded_searcher(name)
  local source, chunkname = settings.embedded(name)
  if not source then return "no module '" .. name .. "' in imgbuild's stdlib" end
  local chunk, err = load(source, chunkname, "t")
  if not chunk then error(err, 0) end
  return tracked(name, chunk), internal
end

package.path, package.cpath = "", ""
package.searchers = {
  cycle_searcher,
  package.searchers[1], -- package.preload
  file_searcher({ settings.recipe_dir }),
  file_searcher(settings.search_path),
  embedded_searcher,
}

---------------------------------------------------------------------------
-- The recipe's globals: Lua's standard library plus the API. Reading a name
-- that does not exist is an error with a hint, so a typo such as `scrach`
-- fails at its line instead of as "attempt to index a nil value".

for k, v in pairs(api) do _G[k] = v end

-- Precompiled chunks can crash the Lua VM; recipes and their modules are text.
-- (An env argument is passed on only when given: an explicit nil would become
-- the chunk's _ENV.)
_G.load = function(chunk, name, _, ...)
  if select("#", ...) > 0 then return load(chunk, name, "t", ...) end
  return load(chunk, name, "t")
end
_G.loadfile = function(path, _, ...)
  if select("#", ...) > 0 then return loadfile(path, "t", ...) end
  return loadfile(path, "t")
end
_G.dofile = function(path)
  local chunk, err = loadfile(path, "t")
  if not chunk then error(err, 2) end
  return chunk()
end

-- stdout carries the build's results (one line per image) for scripts to read;
-- what a recipe prints goes to stderr beside the build's progress.
_G.print = function(...)
  local parts = table.pack(...)
  for i = 1, parts.n do parts[i] = tostring(parts[i]) end
  io.stderr:write(table.concat(parts, "\t", 1, parts.n), "\n")
end

_G.os.exit = function()
  fail("os.exit: a recipe cannot exit imgbuild; call error(\"...\") to stop the build")
end

-- The locale is the whole process's: a recipe that changed it would change how
-- the engine writes and reads numbers. Asking for it is fine.
_G.os.setlocale = function(locale, ...)
  if locale ~= nil then
    fail("os.setlocale: a recipe cannot change imgbuild's locale (it would change how numbers are written)")
  end
  return os.setlocale(nil, ...)
end

-- The debug library could reach into the engine's private state (upvalues,
-- the registry, metatables); recipes keep what serves debugging.
_G.debug = { traceback = debug.traceback, getinfo = debug.getinfo }

local global_names = {}
for k in pairs(_G) do global_names[#global_names + 1] = k end
global_names[#global_names + 1] = "ci"
table.sort(global_names)

setmetatable(_G, {
  __index = function(_, name)
    -- `ci` reads the environment and the git repository only when used.
    if name == "ci" then
      local ci = require "imgbuild.ci"
      rawset(_G, "ci", ci)
      return ci
    end
    fail("unknown name '%s'%s", tostring(name), suggest(name, global_names))
  end,
})

---------------------------------------------------------------------------
-- The description handed to the engine.

--- Numbers the nodes the targets need, dependencies first, and flattens them
--- into plain tables (parents and file sources become node numbers). Iterative,
--- so a chain of 100 000 steps needs no deep recursion.
function M.collect()
  local ids, list = {}, {}
  local function number(root)
    local stack = { root }
    while #stack > 0 do
      local node = stack[#stack]
      if ids[node] then
        stack[#stack] = nil
      else
        local pending = false
        local deps = { node.parent, node.from }
        for _, s in ipairs(node.sources or {}) do
          if type(s) == "table" then deps[#deps + 1] = s end
        end
        for _, d in ipairs(deps) do
          if not ids[d] then stack[#stack + 1] = d; pending = true end
        end
        if not pending then
          stack[#stack] = nil
          local out = {}
          for k, v in pairs(node) do out[k] = v end
          out.parent = node.parent and ids[node.parent] or nil
          out.from = node.from and ids[node.from] or nil
          if node.sources then
            out.sources = {}
            for i, s in ipairs(node.sources) do out.sources[i] = type(s) == "table" and ids[s] or s end
          end
          list[#list + 1] = out
          ids[node] = #list
        end
      end
    end
  end
  local out_targets = {}
  for _, t in ipairs(targets) do
    number(t.node)
    out_targets[#out_targets + 1] = {
      name = t.name, node = ids[t.node], loc = t.loc, platforms = t.platforms, annotations = t.annotations,
    }
  end
  local out_pushes = {}
  for _, p in ipairs(pushes) do
    number(p.node)
    out_pushes[#out_pushes + 1] = {
      node = ids[p.node], ref = p.ref, loc = p.loc, always = p.always, platforms = p.platforms,
      annotations = p.annotations,
    }
  end
  local used = {}
  for _, k in ipairs(sorted_keys(params_used)) do used[#used + 1] = k end
  return { nodes = list, targets = out_targets, pushes = out_pushes, params_used = used }
end

return M
