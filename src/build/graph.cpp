#include "build/graph.hpp"

#include <stdexcept>

namespace imgbuild {

using json = nlohmann::json;

namespace {

[[noreturn]] void malformed(size_t index, const std::string& what) {
  throw std::runtime_error("malformed build graph: node " + std::to_string(index + 1) + ": " + what);
}

std::string str(const json& n, const char* key, size_t index, bool required = true) {
  auto it = n.find(key);
  if (it == n.end() || it->is_null()) {
    if (required) malformed(index, std::string("missing ") + key);
    return {};
  }
  if (!it->is_string()) malformed(index, std::string(key) + " is not a string");
  return it->get<std::string>();
}

std::vector<std::string> strings(const json& n, const char* key, size_t index) {
  std::vector<std::string> out;
  auto it = n.find(key);
  if (it == n.end() || it->is_null()) return out;
  if (!it->is_array()) malformed(index, std::string(key) + " is not a list");
  for (auto& v : *it) {
    if (!v.is_string()) malformed(index, std::string(key) + " holds a non-string");
    out.push_back(v.get<std::string>());
  }
  return out;
}

/// NAME = value pairs. Lua cannot tell an empty table from an empty list, so
/// an empty map may come as [].
std::map<std::string, std::string> string_map(const json& n, const char* key, size_t index) {
  std::map<std::string, std::string> out;
  auto it = n.find(key);
  if (it == n.end() || it->is_null() || (it->is_array() && it->empty())) return out;
  if (!it->is_object()) malformed(index, std::string(key) + " is not a map");
  for (auto& [k, v] : it->items()) {
    if (!v.is_string()) malformed(index, std::string(key) + " holds a non-string");
    out[k] = v.get<std::string>();
  }
  return out;
}

/// Node references are 1-based in the description and must point backwards,
/// which also rules out cycles.
size_t node_ref(const json& v, size_t index) {
  if (!v.is_number_integer() || v.get<int64_t>() < 1 || static_cast<size_t>(v.get<int64_t>()) > index)
    malformed(index, "bad node reference");
  return static_cast<size_t>(v.get<int64_t>()) - 1;
}

CopyOp parse_copy(const json& n, size_t index) {
  CopyOp op;
  if (auto url = n.find("url"); url != n.end() && !url->is_null())
    op.remote = CopyOp::Remote{str(n, "url", index), str(n, "checksum", index)};
  op.extract_archives = n.value("add", false);
  auto sources = n.find("sources");
  const bool listed = sources != n.end() && sources->is_array() && !sources->empty();
  if (listed == op.remote.has_value())
    malformed(index, op.remote ? "add of a URL with other sources" : "copy without sources");
  if (listed)
    for (auto& s : *sources) {
      if (s.is_string())
        op.sources.push_back({s.get<std::string>(), std::nullopt});
      else
        op.sources.push_back({"", node_ref(s, index)});
    }
  op.dest = str(n, "dest", index);
  if (auto it = n.find("chown"); it != n.end() && !it->is_null())
    op.chown = Owner{it->at("uid").get<uint32_t>(), it->at("gid").get<uint32_t>()};
  if (auto it = n.find("chmod"); it != n.end() && !it->is_null()) op.chmod = it->get<uint32_t>();
  op.static_only = n.value("static", false);
  if (auto it = n.find("from"); it != n.end() && !it->is_null()) op.from_node = node_ref(*it, index);
  return op;
}

RunOp parse_run(const json& n, size_t index) {
  RunOp op;
  op.argv = strings(n, "argv", index);
  if (op.argv.empty()) malformed(index, "run without argv");
  if (auto it = n.find("shell"); it != n.end() && !it->is_null()) op.shell = str(n, "shell", index);
  op.env = string_map(n, "env", index);
  if (auto it = n.find("workdir"); it != n.end() && !it->is_null()) op.workdir = str(n, "workdir", index);
  if (auto it = n.find("user"); it != n.end() && !it->is_null()) op.user = str(n, "user", index);
  std::string network = n.value("network", std::string("default"));
  if (network == "host")
    op.network = StepNetwork::host;
  else if (network == "none")
    op.network = StepNetwork::none;
  else if (network != "default")
    malformed(index, "run with network '" + network + "'");
  op.cache = strings(n, "cache", index);
  op.secrets = string_map(n, "secrets", index);
  op.emulate = n.value("emulate", false);
  return op;
}

HostBuildOp parse_host(const json& n, size_t index) {
  HostBuildOp op;
  op.description = str(n, "description", index);
  op.argv = strings(n, "argv", index);
  if (op.argv.empty()) malformed(index, "host build without argv");
  op.env = string_map(n, "env", index);
  op.dir = str(n, "dir", index);
  op.input_root = str(n, "input_root", index);
  op.inputs = strings(n, "inputs", index);
  op.host_env = strings(n, "host_env", index);
  op.output_name = str(n, "output_name", index);
  op.tools = strings(n, "tools", index);
  return op;
}

/// The value of a config change, in the shape its type holds.
void read_value(const json& n, size_t index, std::string& value) { value = str(n, "value", index); }
void read_value(const json& n, size_t index, std::vector<std::string>& value) { value = strings(n, "value", index); }
void read_value(const json& n, size_t index, std::map<std::string, std::string>& value) {
  value = string_map(n, "value", index);
}

void read_value(const json& n, size_t index, HealthConfig& value) {
  auto it = n.find("value");
  if (!it->is_object()) malformed(index, "healthcheck is not a table");
  value.test = strings(*it, "test", index);
  if (value.test.empty()) malformed(index, "healthcheck without a test");
  for (auto [key, field] : {std::pair{"interval", &value.interval},
                            {"timeout", &value.timeout},
                            {"start_period", &value.start_period},
                            {"retries", &value.retries}}) {
    auto v = it->find(key);
    if (v == it->end() || v->is_null()) continue;
    if (!v->is_number_integer() || v->get<int64_t>() < 0) malformed(index, std::string("healthcheck ") + key);
    *field = v->get<int64_t>();
  }
}

/// The config change named `key`, tried against ConfigOp's alternatives from
/// the I-th on: the one place a config key is looked up.
template <size_t I = 0>
ConfigOp read_config(const std::string& key, const json& n, size_t index) {
  if constexpr (I == std::variant_size_v<ConfigOp>) {
    malformed(index, "unknown config key '" + key + "'");
  } else {
    using Change = std::variant_alternative_t<I, ConfigOp>;
    if (key != Change::name) return read_config<I + 1>(key, n, index);
    Change change;
    read_value(n, index, change.value);
    return change;
  }
}

/// A target's or a push's `platforms`, checked by the DSL.
std::vector<Platform> platforms(const json& entry) {
  std::vector<Platform> out;
  if (auto it = entry.find("platforms"); it != entry.end() && it->is_array())
    for (auto& p : *it) out.push_back(Platform::parse(p.get<std::string>()));
  return out;
}

/// A target's or a push's `annotations`, checked by the DSL (strings only).
std::map<std::string, std::string> annotations(const json& entry) {
  std::map<std::string, std::string> out;
  if (auto it = entry.find("annotations"); it != entry.end() && it->is_object())
    for (auto& [k, v] : it->items()) out[k] = v.get<std::string>();
  return out;
}

ConfigOp parse_config(const json& n, size_t index) {
  std::string key = str(n, "key", index);
  if (!n.contains("value") || n["value"].is_null()) malformed(index, "missing value");
  return read_config(key, n, index);
}

}  // namespace

Graph Graph::from_json(const json& d) {
  Graph g;
  if (!d.is_object() || !d.contains("nodes") || !d["nodes"].is_array())
    throw std::runtime_error("malformed build graph: no node list");
  const json& nodes = d["nodes"];
  for (size_t i = 0; i < nodes.size(); ++i) try {
      const json& n = nodes[i];
      if (!n.is_object()) malformed(i, "not an object");
      Node node;
      node.loc = str(n, "loc", i);
      std::string kind = str(n, "kind", i);
      if (auto p = n.find("parent"); p != n.end() && !p->is_null()) node.parent = node_ref(*p, i);
      if (kind == "scratch")
        node.op = ScratchOp{};
      else if (kind == "from")
        node.op =
            PullOp{str(n, "ref", i), n.contains("platform") ? std::optional(str(n, "platform", i)) : std::nullopt};
      else if (kind == "copy")
        node.op = parse_copy(n, i);
      else if (kind == "run")
        node.op = parse_run(n, i);
      else if (kind == "config")
        node.op = parse_config(n, i);
      else if (kind == "host")
        node.op = parse_host(n, i);
      else if (kind == "host_path")
        node.op = HostPathOp{str(n, "description", i), strings(n, "candidates", i)};
      else if (kind == "doctor")
        node.op = DoctorOp{strings(n, "ignore", i)};
      else if (kind == "budget")
        node.op = BudgetOp{n.at("bytes").get<uint64_t>(), str(n, "size", i)};
      else
        malformed(i, "unknown kind '" + kind + "'");
      bool needs_parent =
          !std::holds_alternative<ScratchOp>(node.op) && !std::holds_alternative<PullOp>(node.op) && !node.is_file();
      if (needs_parent != node.parent.has_value()) malformed(i, needs_parent ? "missing parent" : "unexpected parent");
      if (node.parent && g.nodes[*node.parent].is_file()) malformed(i, "parent is a file, not an image");
      if (auto* copy = std::get_if<CopyOp>(&node.op)) {
        for (auto& s : copy->sources)
          if (s.file_node && !g.nodes[*s.file_node].is_file()) malformed(i, "copy source is not a file");
        if (copy->from_node && g.nodes[*copy->from_node].is_file()) malformed(i, "copy from a file, not an image");
      }
      g.nodes.push_back(std::move(node));
    } catch (const json::exception& e) {
      malformed(i, e.what());  // a value of the wrong type
    }
  if (auto t = d.find("targets"); t != d.end() && t->is_array())
    for (auto& target : *t) try {
        Target tg{target.at("name").get<std::string>(), node_ref(target.at("node"), g.nodes.size()),
                  target.value("loc", ""), platforms(target), annotations(target)};
        if (g.nodes[tg.node].is_file()) throw std::runtime_error("malformed build graph: target is a file");
        g.targets.push_back(std::move(tg));
      } catch (const json::exception& e) {
        throw std::runtime_error(std::string("malformed build graph: target: ") + e.what());
      }
  if (auto p = d.find("pushes"); p != d.end() && p->is_array())
    for (auto& push : *p) try {
        Push ps{node_ref(push.at("node"), g.nodes.size()),
                push.at("ref").get<std::string>(),
                push.value("loc", ""),
                push.value("always", false),
                platforms(push),
                annotations(push)};
        if (g.nodes[ps.node].is_file()) throw std::runtime_error("malformed build graph: pushed node is a file");
        g.pushes.push_back(std::move(ps));
      } catch (const json::exception& e) {
        throw std::runtime_error(std::string("malformed build graph: push: ") + e.what());
      }
  return g;
}

bool Graph::needs(size_t node, size_t ancestor) const {
  // Nodes point only backwards, so one sweep down from `node` marks all it needs.
  if (ancestor > node) return false;
  std::vector<bool> reached(node + 1);
  reached[node] = true;
  for (size_t i = node; i > ancestor; --i) {
    if (!reached[i]) continue;
    if (nodes[i].parent) reached[*nodes[i].parent] = true;
    if (auto* copy = std::get_if<CopyOp>(&nodes[i].op); copy && copy->from_node) reached[*copy->from_node] = true;
  }
  return reached[ancestor];
}

std::optional<size_t> Graph::target_node(const std::string& name) const {
  for (const Target& t : targets)
    if (t.name == name) return t.node;
  return std::nullopt;
}

std::optional<size_t> Graph::push_node(const std::string& reference) const {
  for (const Push& p : pushes)
    if (p.reference == reference) return p.node;
  return std::nullopt;
}

}  // namespace imgbuild
