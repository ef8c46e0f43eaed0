#include "sandbox/sandbox.hpp"

#include <algorithm>
#include <sstream>

#include "base/text.hpp"

namespace imgbuild {

namespace fs = std::filesystem;

namespace {

/// Lines of /etc/passwd or /etc/group: name:x:id:... Read inside the image's
/// root: a symlink there names a file of the image, never one of the host.
std::vector<std::vector<std::string>> read_db(const RootStack& root, const char* file) {
  std::vector<std::vector<std::string>> rows;
  std::istringstream in(root.read(file).value_or(""));
  for (std::string line; std::getline(in, line);)
    if (!line.empty() && line[0] != '#') rows.push_back(fields(line, ':'));
  return rows;
}

std::optional<uint32_t> number(const std::string& s) {
  if (s.empty() || s.size() > 10 || !std::all_of(s.begin(), s.end(), ::isdigit)) return std::nullopt;
  unsigned long v = std::stoul(s);
  if (v > 0xffffffffUL) return std::nullopt;
  return static_cast<uint32_t>(v);
}

}  // namespace

UserIds resolve_user(const RootStack& image, const std::string& user) {
  UserIds ids;
  auto passwd = read_db(image, "/etc/passwd");
  // The home folder as runc sets HOME: the user's passwd entry, "/" without one.
  auto take_home = [&](const std::vector<std::string>& row) {
    if (row.size() > 5 && !row[5].empty()) ids.home = row[5];
  };
  if (user.empty()) {
    for (auto& row : passwd)
      if (row.size() > 3 && number(row[2]) == 0u) {
        take_home(row);
        break;
      }
    return ids;
  }
  std::string name = user.substr(0, user.find(':'));
  std::optional<std::string> group;
  if (user.find(':') != std::string::npos) group = user.substr(user.find(':') + 1);
  auto groups = read_db(image, "/etc/group");
  std::string user_name;
  if (auto uid = number(name)) {
    ids.uid = *uid;
    for (auto& row : passwd)
      if (row.size() > 3 && number(row[2]) == *uid) {
        user_name = row[0];
        ids.gid = number(row[3]).value_or(0);
        take_home(row);
        break;
      }
  } else {
    bool found = false;
    for (auto& row : passwd)
      if (row.size() > 3 && row[0] == name) {
        ids.uid = number(row[2]).value_or(0);
        ids.gid = number(row[3]).value_or(0);
        user_name = name;
        take_home(row);
        found = true;
        break;
      }
    if (!found) throw SandboxError("user '" + name + "' is not in the image's /etc/passwd");
  }
  if (group) {
    if (auto gid = number(*group)) {
      ids.gid = *gid;
    } else {
      bool found = false;
      for (auto& row : groups)
        if (row.size() > 2 && row[0] == *group) {
          ids.gid = number(row[2]).value_or(0);
          found = true;
          break;
        }
      if (!found) throw SandboxError("group '" + *group + "' is not in the image's /etc/group");
    }
  }
  ids.groups.push_back(ids.gid);
  if (!user_name.empty())
    for (auto& row : groups)
      if (row.size() > 3) {
        auto members = split(row[3], ',');
        if (std::find(members.begin(), members.end(), user_name) != members.end())
          if (auto gid = number(row[2]); gid && *gid != ids.gid) ids.groups.push_back(*gid);
      }
  return ids;
}

}  // namespace imgbuild
