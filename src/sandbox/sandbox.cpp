#include "sandbox/sandbox.hpp"

#include <cstring>

#include "base/fs.hpp"
#include "sandbox/launch.hpp"
#include "sandbox/rootless.hpp"
#include "sandbox/snapshot.hpp"

namespace imgbuild {

namespace fs = std::filesystem;

namespace {

/// Host device nodes bind-mounted into the step's /dev.
constexpr const char* kDevices[] = {"null", "zero", "full", "random", "urandom", "tty"};

std::string absolute_in(const std::string& path) { return path.starts_with("/") ? path : "/" + path; }

std::string describe(const SetupFailure& f) { return std::string(f.what) + ": " + strerror(f.error); }

}  // namespace

SandboxResult run_in_sandbox(const SandboxSpec& spec) {
  if (spec.argv.empty()) throw SandboxError("nothing to run");
  ChildPlan p;
  p.ids = resolve_user(spec.lower, spec.user);
  p.network = spec.network;
  p.user_namespace = rootless();

  TempDir scratch(spec.work.parent_path(), "sandbox-");
  fs::path merged = scratch.path() / "root";
  fs::create_directory(merged);
  p.merged = merged.string();
  auto in_root = [&](const std::string& image_path) { return p.merged + absolute_in(image_path); };
  p.proc = in_root("/proc");
  p.dev = in_root("/dev");
  p.dev_shm = in_root("/dev/shm");
  p.dev_pts = in_root("/dev/pts");
  p.dirs_to_make = {p.proc, p.dev, in_root("/etc")};
  for (const char* d : kDevices) p.device_binds.emplace_back(std::string("/dev/") + d, p.dev + "/" + d);
  p.dev_links = {{"/proc/self/fd", p.dev + "/fd"},
                 {"/proc/self/fd/0", p.dev + "/stdin"},
                 {"/proc/self/fd/1", p.dev + "/stdout"},
                 {"/proc/self/fd/2", p.dev + "/stderr"},
                 {"pts/ptmx", p.dev + "/ptmx"}};
  // /etc/hosts names the step's host; resolv.conf is the host's, so the
  // network (when there is one) resolves as the build machine's does.
  fs::path hosts = scratch.path() / "hosts";
  write_file_atomic(hosts, "127.0.0.1\tlocalhost imgbuild\n::1\tlocalhost ip6-localhost ip6-loopback\n");
  p.binds.push_back({hosts.string(), in_root("/etc/hosts"), true, true});
  if (spec.network && fs::exists("/etc/resolv.conf"))
    p.binds.push_back({fs::canonical("/etc/resolv.conf").string(), in_root("/etc/resolv.conf"), true, true});
  for (auto& m : spec.mounts) {
    std::error_code ec;
    bool is_file = fs::is_regular_file(m.source, ec);
    // Parents of a mount target are made by the step's root before it runs.
    std::string parent = fs::path(absolute_in(m.target)).parent_path().string();
    for (size_t i = 1; i <= parent.size(); ++i)
      if (i == parent.size() || parent[i] == '/') p.dirs_to_make.push_back(p.merged + parent.substr(0, i));
    p.binds.push_back({m.source.string(), in_root(m.target), m.read_only, is_file});
  }
  p.workdir_path = absolute_in(spec.workdir.empty() ? "/" : spec.workdir);
  for (size_t i = 1; i <= p.workdir_path.size(); ++i)
    if (i == p.workdir_path.size() || p.workdir_path[i] == '/')
      p.workdir_parents.push_back(p.workdir_path.substr(0, i));
  p.groups.assign(p.ids.groups.begin(), p.ids.groups.end());
  for (auto& a : spec.argv) p.strings.push_back(a);
  size_t argc = p.strings.size();
  for (auto& e : spec.env) p.strings.push_back(e);
  for (size_t i = 0; i < p.strings.size(); ++i) (i < argc ? p.argv : p.envp).push_back(p.strings[i].data());
  p.argv.push_back(nullptr);
  p.envp.push_back(nullptr);

  SandboxResult result;
  if (!spec.force_snapshot) {
    for (auto& dir : {spec.lower, spec.upper, spec.work})
      if (result.overlay_error.empty() && dir.string().find_first_of(",:\\") != std::string::npos)
        result.overlay_error =
            "the build folder " + dir.string() + " has a ',', ':' or '\\', which overlay options cannot take";
    if (result.overlay_error.empty()) {
      // The upper folder must hold whole files and whole folders, as
      // overlay_diff reads it: no data left in the lower file (metacopy), no
      // renamed folder that only points at the lower one (redirect_dir). A
      // kernel that does not know these options is one to take a snapshot on.
      // userxattr (rootless) rules both out itself, and refuses them spelled out.
      p.overlay_options = "lowerdir=" + spec.lower.string() + ",upperdir=" + spec.upper.string() +
                          ",workdir=" + spec.work.string() +
                          (p.user_namespace ? ",userxattr" : ",redirect_dir=off,metacopy=off");
      std::optional<SetupFailure> failure = launch(p, spec, result);
      if (!failure) return result;
      if (!failure->overlay) throw SandboxError(describe(*failure));
      result.overlay_error = describe(*failure);
    }
  }
  copy_image(spec.lower, spec.upper);
  p.overlay_options.clear();
  p.snapshot = spec.upper.string();
  result.snapshot = true;
  if (std::optional<SetupFailure> failure = launch(p, spec, result)) throw SandboxError(describe(*failure));
  return result;
}

}  // namespace imgbuild
