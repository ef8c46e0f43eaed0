--- imgbuild.service: a Go service in a scratch image, the way most teams ship
--- one: the static binary, CA certificates, a non-root user and the OCI labels
--- that say which commit it came from.
---
---   local service = require "imgbuild.service"
---   local api = service.image { main = "cmd/api", port = 8080 }
---   image("api", api)
---   push(api, "registry.example.com/team/api:" .. ci.short_sha)
---
--- It is written as a user's own library would be: only the recipe API, other
--- modules and the global `ci`, with mistakes reported by error(message, 2) at
--- the line that called it. Copy it next to a recipe and change it freely: a
--- file there named imgbuild/service.lua shadows this one.
local go = require "imgbuild.go"
local certs = require "imgbuild.certs"
local tzdata = require "imgbuild.tzdata"

local service = {}

-- The options and what each must be, for the messages.
local expected = {
  main = "a string",
  name = "a file name such as \"api\"",
  port = "a port number or a list of them",
  user = "a user such as \"65534\" or \"10001:10001\"",
  env = "a table of NAME = value",
  args = "a list of strings",
  tzdata = "true or false",
  labels = "a table of name = value",
  source = "a string",
  version = "a string",
  go = "a table of go.build options",
}
local option_names = {}
for k in pairs(expected) do option_names[#option_names + 1] = k end
table.sort(option_names)

local function is_list(v)
  if type(v) ~= "table" then return false end
  for k in pairs(v) do
    if math.type(k) ~= "integer" or k < 1 or k > #v then return false end
  end
  return true
end

-- Whether value v suits option k (nil always does: every option is optional).
local valid = {
  main = function(v) return type(v) == "string" and v ~= "" end,
  name = function(v) return type(v) == "string" and v:match("^[%w._-]+$") ~= nil end,
  port = function(v)
    local function port(p) return math.type(p) == "integer" and p >= 1 and p <= 65535 or type(p) == "string" end
    if port(v) then return true end
    if not is_list(v) or #v == 0 then return false end
    for _, p in ipairs(v) do if not port(p) then return false end end
    return true
  end,
  user = function(v) return (type(v) == "string" and v ~= "") or (math.type(v) == "integer" and v >= 0) end,
  env = function(v) return type(v) == "table" end,
  args = function(v)
    if not is_list(v) then return false end
    for _, a in ipairs(v) do if type(a) ~= "string" then return false end end
    return true
  end,
  tzdata = function(v) return type(v) == "boolean" end,
  labels = function(v) return type(v) == "table" end,
  source = function(v) return type(v) == "string" and v ~= "" end,
  version = function(v) return type(v) == "string" and v ~= "" end,
  go = function(v) return type(v) == "table" end,
}

local function describe(v)
  if type(v) == "string" then return "'" .. v .. "'" end
  if type(v) == "number" then return tostring(v) end
  return type(v)
end

---@class ServiceOptions
---@field main? string      Go main package, relative to the build context (default ".")
---@field name? string      binary name, /usr/local/bin/NAME (default: main's last folder, "app" for ".")
---@field port? integer|string|table  port(s) to expose
---@field user? string|integer  default "65534" (nobody): never root
---@field env? table<string,string>  environment of the service
---@field args? string[]    default arguments (the image's cmd)
---@field tzdata? boolean   copy /usr/share/zoneinfo in (default false)
---@field labels? table<string,string>  further labels; they override the ones made here
---@field source? string    org.opencontainers.image.source (default ci.repository)
---@field version? string   org.opencontainers.image.version (default ci.tag)
---@field go? table         further go.build options (ldflags, tags, flags, env, inputs, module)

--- A scratch image running a Go main package of the build context.
---@param opts? ServiceOptions
---@return image
function service.image(opts)
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then
    error("service.image: expected a table of options such as { main = \"cmd/api\" }, got " .. type(opts), 2)
  end
  local given = {}
  for k in pairs(opts) do given[#given + 1] = tostring(k) end
  table.sort(given)
  for _, k in ipairs(given) do
    if not expected[k] then
      error("service.image: unknown option '" .. k .. "' (known: " .. table.concat(option_names, ", ") .. ")", 2)
    end
  end
  for _, k in ipairs(option_names) do
    if opts[k] ~= nil and not valid[k](opts[k]) then
      error("service.image: " .. k .. ": expected " .. expected[k] .. ", got " .. describe(opts[k]), 2)
    end
  end
  if opts.go ~= nil and (opts.go.main ~= nil or opts.go.output ~= nil) then
    error("service.image: go: give main and name as options of service.image, not of go", 2)
  end

  local main = opts.main or "."
  local name = opts.name or (main == "." and "app" or main:match("([^/]+)/*$"))
  local build = { main = main, output = name }
  for k, v in pairs(opts.go or {}) do build[k] = v end
  local binary = "/usr/local/bin/" .. name

  local img = scratch
    :copy(go.build(build), binary, { static = true })
    :copy(certs.bundle, "/etc/ssl/certs/ca-certificates.crt")
  if opts.tzdata then img = img:copy(tzdata.zoneinfo, "/usr/share/zoneinfo/") end
  if opts.env then img = img:env(opts.env) end

  -- Labels from where the build runs; nil fields are left out.
  local labels = {
    ["org.opencontainers.image.title"] = name,
    ["org.opencontainers.image.revision"] = ci.sha,
    ["org.opencontainers.image.source"] = opts.source or ci.repository,
    ["org.opencontainers.image.version"] = opts.version or ci.tag,
  }
  for k, v in pairs(opts.labels or {}) do labels[k] = v end
  img = img:label(labels)

  if opts.port then
    local ports = type(opts.port) == "table" and opts.port or { opts.port }
    img = img:expose(table.unpack(ports))
  end
  img = img:user(opts.user or "65534"):entrypoint { binary }
  if opts.args then img = img:cmd(opts.args) end
  return img
end

return service
