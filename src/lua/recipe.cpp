// The Lua binding. Debian's Lua is compiled as C, so lua_error is a longjmp:
// it must never cross a live C++ object, and no C++ exception may reach Lua.
// Two rules keep that true:
//  - every native runs through trampoline<>, which catches, copies the message
//    into a plain buffer, leaves the catch block and only then raises;
//  - host code that owns C++ objects calls into Lua only through lua_pcall and
//    API functions that cannot raise except when memory runs out.
#include "lua/recipe.hpp"

#include <lua.hpp>

#include <cstdio>
#include <map>
#include <memory>

#include "base/interrupt.hpp"
#include "build/builder.hpp"
#include "build/context.hpp"
#include "inspect/doctor.hpp"
#include "inspect/elf.hpp"
#include "inspect/elf_report.hpp"
#include "lua/embedded.hpp"
#include "oci/digest.hpp"
#include "oci/reference.hpp"

namespace imgbuild {

using json = nlohmann::json;

namespace {

struct StateCloser {
  void operator()(lua_State* L) const { lua_close(L); }
};

template <int (*Native)(lua_State*)>
int trampoline(lua_State* L) {
  char message[2048];
  try {
    return Native(L);
  } catch (const std::exception& e) {
    std::snprintf(message, sizeof message, "%s", e.what());
  } catch (const Interrupted&) {
    std::snprintf(message, sizeof message, "interrupted");
  } catch (...) {
    std::snprintf(message, sizeof message, "unexpected internal error");
  }
  lua_pushstring(L, message);
  return lua_error(L);
}

const lua::EmbeddedModule* find_embedded(std::string_view name) {
  for (auto& m : lua::embedded_modules())
    if (name == m.name) return &m;
  return nullptr;
}

/// embedded(name) -> source, chunkname | nil. Serves the public stdlib only:
/// the engine's own Lua cannot be loaded a second time by a recipe.
int native_embedded(lua_State* L) {
  size_t len = 0;
  const char* name = lua_tolstring(L, 1, &len);
  if (!name) throw std::runtime_error("embedded: expected a module name");
  const lua::EmbeddedModule* m = find_embedded(std::string_view(name, len));
  if (!m || !std::string_view(m->path).starts_with("stdlib/")) {
    lua_pushnil(L);
    return 1;
  }
  lua_pushlstring(L, m->source.data(), m->source.size());
  lua_pushfstring(L, "=%s", m->path);
  return 2;
}

/// Copies a Lua value of the description into JSON. The description is plain
/// data made by the DSL: strings, numbers, booleans and tables of them.
json to_json(lua_State* L, int index, int depth) {
  index = lua_absindex(L, index);
  switch (lua_type(L, index)) {
    case LUA_TNIL:
      return nullptr;
    case LUA_TBOOLEAN:
      return lua_toboolean(L, index) != 0;
    case LUA_TNUMBER:
      if (lua_isinteger(L, index)) return static_cast<int64_t>(lua_tointeger(L, index));
      return lua_tonumber(L, index);
    case LUA_TSTRING: {
      size_t n = 0;
      const char* s = lua_tolstring(L, index, &n);
      return std::string(s, n);
    }
    case LUA_TTABLE:
      break;
    default:
      throw std::runtime_error(std::string("cannot describe a ") + luaL_typename(L, index));
  }
  if (depth > 64) throw std::runtime_error("description nested too deeply");
  if (!lua_checkstack(L, 3)) throw std::runtime_error("Lua stack exhausted");
  json object = json::object();
  std::map<int64_t, json> items;
  lua_pushnil(L);
  while (lua_next(L, index) != 0) {
    json value = to_json(L, -1, depth + 1);
    if (lua_type(L, -2) == LUA_TSTRING) {
      size_t n = 0;
      const char* k = lua_tolstring(L, -2, &n);
      object[std::string(k, n)] = std::move(value);
    } else if (lua_isinteger(L, -2)) {
      items[lua_tointeger(L, -2)] = std::move(value);
    } else {
      throw std::runtime_error("description has a key that is neither a string nor an integer");
    }
    lua_pop(L, 1);
  }
  if (items.empty()) return object.empty() ? json::array() : object;
  if (!object.empty()) throw std::runtime_error("description mixes list and record keys");
  json array = json::array();
  int64_t expected = 1;
  for (auto& [k, v] : items) {
    if (k != expected++) throw std::runtime_error("description has a list with holes");
    array.push_back(std::move(v));
  }
  return array;
}

/// Pushes a JSON value as the Lua value a recipe expects: objects and arrays
/// become tables, null becomes nil.
void push_json(lua_State* L, const json& v, int depth) {
  if (depth > 64 || !lua_checkstack(L, 3)) throw std::runtime_error("value nested too deeply");
  switch (v.type()) {
    case json::value_t::null:
      lua_pushnil(L);
      break;
    case json::value_t::boolean:
      lua_pushboolean(L, v.get<bool>());
      break;
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
      lua_pushinteger(L, v.get<lua_Integer>());
      break;
    case json::value_t::number_float:
      lua_pushnumber(L, v.get<double>());
      break;
    case json::value_t::string: {
      const auto& str = v.get_ref<const std::string&>();
      lua_pushlstring(L, str.data(), str.size());
      break;
    }
    case json::value_t::array: {
      lua_createtable(L, static_cast<int>(v.size()), 0);
      lua_Integer i = 1;
      for (auto& item : v) {
        push_json(L, item, depth + 1);
        lua_rawseti(L, -2, i++);
      }
      break;
    }
    case json::value_t::object: {
      lua_createtable(L, 0, static_cast<int>(v.size()));
      for (auto& [k, item] : v.items()) {
        push_json(L, item, depth + 1);
        lua_setfield(L, -2, k.c_str());
      }
      break;
    }
    default:
      throw std::runtime_error("cannot hand this value to Lua");
  }
}

/// inspect(path) -> facts: the ELF report of a build-context file. The context
/// root is the closure's upvalue.
int native_inspect(lua_State* L) {
  size_t n = 0;
  const char* path = lua_tolstring(L, 1, &n);
  if (!path) throw std::runtime_error("expected a path");
  json facts;
  {
    BuildContext context(lua_tostring(L, lua_upvalueindex(1)));
    std::vector<CopyItem> items = context.resolve(std::string(path, n));
    if (items.size() != 1 || std::filesystem::is_directory(items[0].host_path))
      throw std::runtime_error(std::string(path, n) + ": not a single file");
    facts = elf_json(inspect_elf(items[0].host_path));
  }
  push_json(L, facts, 0);
  return 1;
}

/// hash(algorithm, path...) -> the hex digest of build-context files, their
/// contents concatenated in order. The context root is the closure's upvalue.
int native_hash(lua_State* L) {
  std::string digest;
  {
    size_t n = 0;
    const char* algorithm = lua_tolstring(L, 1, &n);
    if (!algorithm) throw std::runtime_error("expected an algorithm name");
    Hasher hasher(std::string_view(algorithm, n));
    BuildContext context(lua_tostring(L, lua_upvalueindex(1)));
    for (int i = 2, top = lua_gettop(L); i <= top; ++i) {
      const char* path = lua_tolstring(L, i, &n);
      if (!path) throw std::runtime_error("expected a path");
      std::string name(path, n);
      std::vector<CopyItem> items = context.resolve(name);
      if (items.size() != 1)
        throw std::runtime_error(name + ": matches " + std::to_string(items.size()) + " files; name each one");
      if (std::filesystem::is_directory(items[0].host_path))
        throw std::runtime_error(name + ": is a directory, not a file");
      hasher.update_file(items[0].host_path.string());
    }
    digest = hasher.finish_hex();
  }
  lua_pushlstring(L, digest.data(), digest.size());
  return 1;
}

/// exists(normalised_ref) -> whether the registry has it. The upvalue is the
/// RecipeOptions::exists callback, alive for the whole evaluation.
int native_exists(lua_State* L) {
  size_t n = 0;
  const char* ref = lua_tolstring(L, 1, &n);
  if (!ref) throw std::runtime_error("expected a reference");
  const auto& exists =
      *static_cast<const std::function<bool(const std::string&)>*>(lua_touserdata(L, lua_upvalueindex(1)));
  lua_pushboolean(L, exists(std::string(ref, n)));
  return 1;
}

/// reference(text) -> the normalised reference ("docker.io/library/alpine:3.20").
int native_reference(lua_State* L) {
  size_t n = 0;
  const char* text = lua_tolstring(L, 1, &n);
  if (!text) throw std::runtime_error("expected a string");
  std::string normal = Reference::parse(std::string_view(text, n)).str();
  lua_pushlstring(L, normal.data(), normal.size());
  return 1;
}

/// size(text) -> bytes, or nil when `text` is not a size ("10MB", "2MiB").
int native_size(lua_State* L) {
  size_t n = 0;
  const char* text = lua_tolstring(L, 1, &n);
  std::optional<uint64_t> bytes = text ? parse_size(std::string(text, n)) : std::nullopt;
  if (bytes && *bytes <= static_cast<uint64_t>(LUA_MAXINTEGER))
    lua_pushinteger(L, static_cast<lua_Integer>(*bytes));
  else
    lua_pushnil(L);
  return 1;
}

/// describe(table, out): converts the DSL's description into *out.
int native_describe(lua_State* L) {
  auto* out = static_cast<json*>(lua_touserdata(L, 2));
  *out = to_json(L, 1, 0);
  return 0;
}

/// The message handler of every pcall: keeps the message as Lua made it
/// ("recipe.lua:7: ..."), adding a traceback only in --debug mode.
int message_handler(lua_State* L) {
  const char* msg = lua_tostring(L, 1);
  if (!msg) {
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
      msg = lua_tostring(L, -1);
    else
      msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  }
  if (lua_toboolean(L, lua_upvalueindex(1)))
    luaL_traceback(L, L, msg, 1);
  else
    lua_pushstring(L, msg);
  return 1;
}

/// Ctrl-C while the recipe runs: raised in the recipe, so even one that loops
/// for ever stops. One that keeps catching it with pcall is ended by a second signal.
void interrupt_hook(lua_State* L, lua_Debug*) {
  if (interrupt_signal()) luaL_error(L, "interrupted");
}

/// The message of a failed pcall; Interrupted instead when a signal caused it.
std::string pop_message(lua_State* L) {
  check_interrupt();
  size_t n = 0;
  const char* s = lua_tolstring(L, -1, &n);
  std::string msg = s ? std::string(s, n) : "(error object is not a string)";
  lua_pop(L, 1);
  return msg;
}

/// {os, arch, variant} of `p`, as the DSL's `platform` reads it.
void push_platform(lua_State* L, const Platform& p) {
  lua_createtable(L, 0, 3);
  lua_pushstring(L, p.os.c_str());
  lua_setfield(L, -2, "os");
  lua_pushstring(L, p.architecture.c_str());
  lua_setfield(L, -2, "arch");
  lua_pushstring(L, p.variant.c_str());
  lua_setfield(L, -2, "variant");
}

void push_settings(lua_State* L, const RecipeOptions& o) {
  lua_createtable(L, 0, 4);
  push_platform(L, o.platform);
  lua_setfield(L, -2, "platform");
  push_platform(L, Platform::host());
  lua_setfield(L, -2, "build_platform");
  lua_createtable(L, 0, static_cast<int>(o.params.size()));
  for (auto& [k, v] : o.params) {
    lua_pushlstring(L, v.data(), v.size());
    lua_setfield(L, -2, k.c_str());
  }
  lua_setfield(L, -2, "params");
  std::string dir = o.recipe.parent_path().string();
  lua_pushstring(L, dir.empty() ? "." : dir.c_str());
  lua_setfield(L, -2, "recipe_dir");
  std::string context = std::filesystem::absolute(o.context).lexically_normal().string();
  if (context.size() > 1 && context.back() == '/') context.pop_back();
  lua_pushstring(L, context.c_str());
  lua_setfield(L, -2, "context");
  lua_createtable(L, static_cast<int>(o.search_path.size()), 0);
  for (size_t i = 0; i < o.search_path.size(); ++i) {
    lua_pushstring(L, o.search_path[i].c_str());
    lua_rawseti(L, -2, static_cast<lua_Integer>(i + 1));
  }
  lua_setfield(L, -2, "search_path");
  lua_pushcfunction(L, trampoline<native_embedded>);
  lua_setfield(L, -2, "embedded");
  lua_pushstring(L, o.context.c_str());
  lua_pushcclosure(L, trampoline<native_inspect>, 1);
  lua_setfield(L, -2, "inspect");
  lua_pushstring(L, o.context.c_str());
  lua_pushcclosure(L, trampoline<native_hash>, 1);
  lua_setfield(L, -2, "hash");
  if (o.exists) {
    // The options outlive the Lua state: evaluate_recipe closes it before returning.
    lua_pushlightuserdata(L, const_cast<std::function<bool(const std::string&)>*>(&o.exists));
    lua_pushcclosure(L, trampoline<native_exists>, 1);
    lua_setfield(L, -2, "exists");
  }
  lua_pushcfunction(L, trampoline<native_reference>);
  lua_setfield(L, -2, "reference");
  lua_pushcfunction(L, trampoline<native_size>);
  lua_setfield(L, -2, "size");
  lua_createtable(L, static_cast<int>(kDoctorWarnings.size()), 0);
  lua_Integer i = 1;
  for (auto& name : kDoctorWarnings) {
    lua_pushstring(L, name.c_str());
    lua_rawseti(L, -2, i++);
  }
  lua_setfield(L, -2, "doctor_warnings");
}

}  // namespace

Evaluation evaluate_recipe(const RecipeOptions& options) {
  std::unique_ptr<lua_State, StateCloser> state(luaL_newstate());
  if (!state) throw std::runtime_error("cannot create a Lua state");
  lua_State* L = state.get();
  luaL_openlibs(L);
  lua_sethook(L, interrupt_hook, LUA_MASKCOUNT, 10000);

  lua_pushboolean(L, options.debug);
  lua_pushcclosure(L, message_handler, 1);
  const int handler = lua_gettop(L);

  const lua::EmbeddedModule* dsl = find_embedded("imgbuild.dsl");
  if (!dsl) throw std::logic_error("the DSL is not embedded");
  std::string dsl_chunk = std::string("=") + dsl->path;
  if (luaL_loadbufferx(L, dsl->source.data(), dsl->source.size(), dsl_chunk.c_str(), "t") != LUA_OK)
    throw std::logic_error(pop_message(L));
  push_settings(L, options);
  if (lua_pcall(L, 1, 1, handler) != LUA_OK) throw std::logic_error(pop_message(L));
  const int dsl_table = lua_gettop(L);

  // Text only: a precompiled chunk could bypass every check the parser makes.
  if (luaL_loadfilex(L, options.recipe.c_str(), "t") != LUA_OK) throw RecipeError(pop_message(L));
  if (lua_pcall(L, 0, 0, handler) != LUA_OK) throw RecipeError(pop_message(L));

  lua_getfield(L, dsl_table, "collect");
  if (lua_pcall(L, 0, 1, handler) != LUA_OK) throw RecipeError(pop_message(L));
  json description;
  lua_pushcfunction(L, trampoline<native_describe>);
  lua_insert(L, -2);
  lua_pushlightuserdata(L, &description);
  if (lua_pcall(L, 2, 0, handler) != LUA_OK) throw std::logic_error(pop_message(L));

  Evaluation ev{Graph::from_json(description), {}, {}};
  if (auto used = description.find("params_used"); used != description.end())
    for (auto& p : *used) ev.params_used.push_back(p.get<std::string>());
  // The release being built, as the recipe sees it (`ci` reads the
  // environment only now when the recipe never asked).
  if (luaL_loadstring(L, "local tag = ci.tag; return type(tag) == 'string' and tag or nil") != LUA_OK)
    throw std::logic_error(pop_message(L));
  if (lua_pcall(L, 0, 1, handler) != LUA_OK) throw RecipeError(pop_message(L));
  if (const char* tag = lua_tostring(L, -1)) ev.ci_tag = tag;
  lua_pop(L, 1);
  return ev;
}

}  // namespace imgbuild
