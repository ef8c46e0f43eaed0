#include "sandbox/cgroup.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <thread>

namespace imgbuild {

namespace fs = std::filesystem;

namespace {

constexpr const char* kRoot = "/sys/fs/cgroup";
constexpr const char* kPrefix = "imgbuild-";

/// The nodes a step may read and write: those of its own /dev. "m" for
/// every node: mknod stays allowed, as in docker, opening a node is not.
constexpr const char* kDeviceRules[] = {"c *:* m",   "b *:* m",   "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm",
                                        "c 1:8 rwm", "c 1:9 rwm", "c 5:0 rwm", "c 5:2 rwm", "c 136:* rwm"};

/// Writes `text` to the control file `file`; errno is kept on failure.
bool write_control(const std::string& file, const std::string& text) {
  int fd = ::open(file.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  int e = errno;
  ::close(fd);
  errno = e;
  return ok;
}

/// The text of `file`, or "" when it cannot be read (a cgroup just removed).
std::string read_text(const std::string& file) {
  std::ifstream in(file);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

/// imgbuild's own cgroup in the v1 hierarchy of `controller` ("pids"), from
/// /proc/self/cgroup: "/" when it is not listed.
std::string own_v1_cgroup(const std::string& controller) {
  std::istringstream lines(read_text("/proc/self/cgroup"));
  for (std::string line; std::getline(lines, line);) {
    size_t a = line.find(':'), b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    std::stringstream names(line.substr(a + 1, b - a - 1));
    for (std::string name; std::getline(names, name, ',');)
      if (name == controller) return line.substr(b + 1);
  }
  return "/";
}

/// Removes the step folders under `parent` that an imgbuild no longer
/// running left (killed with -9); rmdir refuses one still in use.
void sweep(const fs::path& parent) {
  std::error_code ec;
  for (auto& entry : fs::directory_iterator(parent, ec)) {
    std::string name = entry.path().filename().string();
    if (!name.starts_with(kPrefix)) continue;
    pid_t owner = static_cast<pid_t>(std::atol(name.c_str() + std::strlen(kPrefix)));
    if (owner > 0 && ::kill(owner, 0) != 0 && errno == ESRCH) ::rmdir(entry.path().c_str());
  }
}

/// A new step folder under `parent`: imgbuild-PID-N, N the first free.
std::string make_dir(const fs::path& parent) {
  sweep(parent);
  std::string base = (parent / kPrefix).string() + std::to_string(::getpid()) + "-";
  for (int n = 0;; ++n) {
    std::string dir = base + std::to_string(n);
    if (::mkdir(dir.c_str(), 0755) == 0) return dir;
    if (errno != EEXIST) return {};
  }
}

/// Kills every process in the cgroup `dir` and removes it. cgroup.kill (v2,
/// Linux 5.14) kills them all at once; elsewhere they are killed by pid
/// until none is left, which a fork bomb cannot outrun below its limit.
void remove_dir(const std::string& dir) {
  write_control(dir + "/cgroup.kill", "1");
  for (int tries = 0; tries < 1000; ++tries) {
    if (::rmdir(dir.c_str()) == 0 || errno == ENOENT) return;
    std::istringstream pids(read_text(dir + "/cgroup.procs"));
    for (pid_t pid; pids >> pid;) ::kill(pid, SIGKILL);
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

}  // namespace

StepCgroup::StepCgroup(long max_processes) {
  std::error_code ec;
  auto lacking = [&](const std::string& what, const std::string& where) {
    missing_ += (missing_.empty() ? "" : "; ") + what + " (cgroup " + where + ": " + strerror(errno) + ")";
  };
  // A step cgroup under `parent` whose pids.max is the limit.
  auto limit_processes = [&](const std::string& parent) {
    std::string dir = make_dir(parent);
    if (dir.empty()) return lacking("no process limit", parent);
    dirs_.push_back(dir);
    join_files_.push_back(dir + (fs::exists(dir + "/tasks", ec) ? "/tasks" : "/cgroup.procs"));
    limits_processes_ = write_control(dir + "/pids.max", std::to_string(max_processes));
    if (!limits_processes_) lacking("no process limit", dir + "/pids.max");
  };
  if (fs::exists(fs::path(kRoot) / "cgroup.controllers", ec)) {
    // cgroup v2 alone. Controllers go to a child only from a cgroup without
    // processes of its own: the root is the one such place imgbuild can use.
    write_control(std::string(kRoot) + "/cgroup.subtree_control", "+pids");
    limit_processes(kRoot);
    missing_ += std::string(missing_.empty() ? "" : "; ") + "no device policy (not made on cgroup v2)";
    return;
  }
  fs::path pids = fs::path(kRoot) / "pids", devices = fs::path(kRoot) / "devices";
  limit_processes(pids.string() + own_v1_cgroup("pids"));
  std::string devices_dir = make_dir(devices.string() + own_v1_cgroup("devices"));
  if (devices_dir.empty()) {
    lacking("no device policy", devices.string());
    return;
  }
  dirs_.push_back(devices_dir);
  bool policy = write_control(devices_dir + "/devices.deny", "a");
  for (const char* rule : kDeviceRules) policy = policy && write_control(devices_dir + "/devices.allow", rule);
  if (policy) {
    join_files_.push_back(devices_dir + "/tasks");
    return;
  }
  // Half a policy could leave the step without /dev/null.
  lacking("no device policy", devices_dir);
  remove_dir(devices_dir);
  dirs_.pop_back();
}

StepCgroup::~StepCgroup() {
  for (auto& dir : dirs_) remove_dir(dir);
}

}  // namespace imgbuild
