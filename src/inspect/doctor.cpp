#include "inspect/doctor.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <set>
#include <string_view>

#include "base/fs.hpp"
#include "base/text.hpp"
#include "inspect/elf.hpp"
#include "oci/image_path.hpp"

namespace imgbuild {

namespace {

/// Where Go's crypto/x509 looks for CA certificates on Linux (files, then folders).
const std::vector<std::string> kCertFiles = {"/etc/ssl/certs/ca-certificates.crt",
                                             "/etc/pki/tls/certs/ca-bundle.crt",
                                             "/etc/ssl/ca-bundle.pem",
                                             "/etc/pki/tls/cacert.pem",
                                             "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
                                             "/etc/ssl/cert.pem"};
const std::vector<std::string> kCertDirs = {"/etc/ssl/certs", "/etc/pki/tls/certs"};

/// Where images keep programs, and whether their subfolders hold programs too
/// (libexec keeps each package's helpers in a folder of its own).
const std::vector<std::pair<std::string, bool>> kProgramFolders = {
    {"/bin", false},           {"/sbin", false},           {"/usr/bin", false},    {"/usr/sbin", false},
    {"/usr/local/bin", false}, {"/usr/local/sbin", false}, {"/usr/libexec", true}, {"/usr/local/libexec", true}};

/// Go modules that build without cgo into a stub that fails when used, and
/// what happens then. (A module that does not build at all without cgo never
/// reaches an image.)
const std::vector<std::pair<std::string, std::string>> kCgoOnlyModules = {
    {"github.com/mattn/go-sqlite3",
     "without cgo it is a stub whose every connection fails (\"go-sqlite3 requires cgo to work\"); build with "
     "CGO_ENABLED=1 and link statically, or use modernc.org/sqlite, which needs no cgo"},
};

std::string library_triplet(const std::string& arch) {
  if (arch == "amd64") return "x86_64-linux-gnu";
  if (arch == "arm64") return "aarch64-linux-gnu";
  if (arch == "arm") return "arm-linux-gnueabihf";
  if (arch == "386") return "i386-linux-gnu";
  if (arch == "ppc64le") return "powerpc64le-linux-gnu";
  if (arch == "s390x") return "s390x-linux-gnu";
  if (arch == "riscv64") return "riscv64-linux-gnu";
  return arch + "-linux-gnu";
}

class Examination {
public:
  Examination(const Image& image, const ImageTree& tree, const DoctorContext& context)
      : image_(image), tree_(tree), context_(context) {}

  std::vector<Finding> run() {
    check_user();
    const auto& cfg = image_.config;
    const std::vector<std::string>* argv = nullptr;
    if (cfg.entrypoint && !cfg.entrypoint->empty())
      argv = &*cfg.entrypoint;
    else if (cfg.cmd && !cfg.cmd->empty())
      argv = &*cfg.cmd;
    std::optional<std::string> entrypoint;
    if (argv)
      entrypoint = check_entrypoint(argv->front());
    else
      warn("entrypoint", context_.image_loc, "the image has no entrypoint or cmd: it cannot run on its own");
    check_added_programs(entrypoint);
    return findings_;
  }

private:
  void error(const std::string& message) { error_at(context_.entrypoint_loc, message); }
  void error_at(const std::string& loc, const std::string& message) {
    findings_.push_back({true, "run", loc, message});
  }
  void warn(const std::string& check, const std::string& loc, const std::string& message) {
    if (!context_.ignore.count(check)) findings_.push_back({false, check, loc, message});
  }

  bool exists(const std::string& path) const { return tree_.resolve(path).has_value(); }

  std::optional<std::string> env(const std::string& name) const { return image_.config.get_env(name); }

  /// Finds `program` as the runtime would: a path with a '/' from the workdir,
  /// a bare name through the image's PATH.
  std::optional<ImageTree::Resolved> locate(const std::string& program, std::string& shown) const {
    if (program.find('/') != std::string::npos) {
      shown = ImagePath::from(image_.config.workdir, program).str();
      return tree_.resolve(shown);
    }
    shown = program;
    for (auto& dir : split(env("PATH").value_or(kDefaultPath), ':')) {
      auto r = tree_.resolve(dir + "/" + program);
      if (r && r->file && r->file->type == LayerEntry::Type::File) {
        shown = dir + "/" + program;
        return r;
      }
    }
    return std::nullopt;
  }

  /// Examines the program the image runs; returns where it stands when it is a file.
  std::optional<std::string> check_entrypoint(const std::string& program) {
    std::string shown;
    auto found = locate(program, shown);
    std::string what = "entrypoint " + shown;
    if (!found) {
      error(what + (program.find('/') == std::string::npos ? ": not found in the image's PATH"
                                                           : ": no such file in the image"));
      return std::nullopt;
    }
    if (!found->file || found->file->type != LayerEntry::Type::File) {
      error(what + ": not a file");
      return std::nullopt;
    }
    if ((found->file->mode & 0111) == 0) {
      char mode[8];
      std::snprintf(mode, sizeof mode, "%04o", found->file->mode & 07777);
      error(what + ": not executable (mode " + mode + ")");
      return found->path;
    }
    // The program itself: read whole, up to a size no real entrypoint reaches.
    std::string bytes;
    try {
      bytes = tree_.contents(*found->file, kMaxProgramSize);
    } catch (const std::runtime_error& e) {
      error(what + ": cannot be read: " + e.what());
      return found->path;
    }
    if (bytes.starts_with("#!")) {
      check_script(what, bytes.substr(0, 256));
      return found->path;
    }
    ElfInfo info;
    try {
      info = inspect_elf_bytes({reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size()});
    } catch (const std::runtime_error& e) {
      error("entrypoint " + shown + ": " + e.what());
      return found->path;
    }
    if (!info.is_elf) {
      error(what + ": neither an ELF binary nor a #! script");
      return found->path;
    }
    check_elf(what, info, context_.entrypoint_loc);
    if (info.go) check_go_files(what, *info.go);
    return found->path;
  }

  /// The other ELF programs the recipe's steps put where images keep them:
  /// a tool copied in beside the entrypoint (a migration tool, a health
  /// probe) fails as the entrypoint would, only later. Each finding points at
  /// the step that added the file.
  void check_added_programs(const std::optional<std::string>& entrypoint) {
    std::vector<std::pair<std::string, bool>> folders = kProgramFolders;
    std::set<std::string> seen;
    if (entrypoint) {
      seen.insert(*entrypoint);
      folders.emplace_back(entrypoint->substr(0, entrypoint->rfind('/') + 1), false);
    }
    AddedPrograms programs(*this);
    for (auto& [folder, recursive] : folders)
      for (const ImageTree::Resolved& found : tree_.files_in(folder, recursive)) {
        const ImageTree::File& file = *found.file;
        if ((file.mode & 0111) == 0 || file.layer < context_.base_layers || !seen.insert(found.path).second) continue;
        programs.add(found.path, file,
                     file.layer < context_.layer_locs.size() ? context_.layer_locs[file.layer] : context_.image_loc);
      }
    // One pass over each layer that holds any, not one per program.
    try {
      tree_.stream_contents(programs.files(), programs);
    } catch (const std::runtime_error& e) {
      error_at(context_.image_loc, e.what());
    }
  }

  /// The programs check_added_programs examines, each as its bytes end.
  class AddedPrograms : public ImageTree::ContentSink {
  public:
    explicit AddedPrograms(Examination& doctor) : doctor_(doctor) {}
    void add(const std::string& path, const ImageTree::File& file, const std::string& loc) {
      files_.push_back(&file);
      paths_.push_back({path, loc});
    }
    const std::vector<const ImageTree::File*>& files() const { return files_; }

    void begin(size_t i, uint64_t size) override { active_.insert_or_assign(i, ElfCandidate(size)); }
    void chunk(size_t i, std::string_view bytes) override { active_.at(i).add(bytes); }
    void end(size_t i) override {
      const auto& [path, loc] = paths_[i];
      try {
        if (std::optional<ElfInfo> info = active_.at(i).inspect()) {
          doctor_.check_elf(path, *info, loc);
          if (info->go) doctor_.check_cgo(path, *info->go, loc);
        }
      } catch (const std::runtime_error& e) {
        doctor_.error_at(loc, path + ": " + e.what());
      }
      active_.erase(i);
    }

  private:
    Examination& doctor_;
    std::vector<const ImageTree::File*> files_;
    std::vector<std::pair<std::string, std::string>> paths_;  ///< path in the image, line that added it
    std::map<size_t, ElfCandidate> active_;
  };

  void check_script(const std::string& what, const std::string& head) {
    std::string line = head.substr(2, head.find('\n') - 2);
    std::vector<std::string> words = split(line, ' ');
    if (words.empty()) {
      error(what + ": a #! line without an interpreter");
      return;
    }
    if (!exists(words[0])) {
      error(what + ": its interpreter " + words[0] + " is not in the image");
      return;
    }
    // "#!/usr/bin/env sh": the program env runs must be there too.
    if (words[0].ends_with("/env") && words.size() > 1 && !words[1].starts_with("-")) {
      std::string shown;
      if (!locate(words[1], shown)) error(what + ": its interpreter " + words[1] + " is not in the image's PATH");
    }
  }

  void check_elf(const std::string& what, const ElfInfo& info, const std::string& loc) {
    if (architecture_or_machine(info) != image_.platform.architecture) {
      error_at(loc, what + ": built for " + info.machine + ", image is " + image_.platform.str());
      return;
    }
    if (info.linking == ElfInfo::Linking::Dynamic) {
      if (!info.interpreter.empty() && !exists(info.interpreter)) {
        error_at(loc, what + ": needs the loader " + info.interpreter +
                          ", which the image lacks (build it static, or copy the loader and libraries in)");
        return;
      }
      std::vector<std::string> dirs = {"/lib", "/usr/lib", "/lib64", "/usr/lib64", "/usr/local/lib"};
      std::string triplet = library_triplet(image_.platform.architecture);
      dirs.push_back("/lib/" + triplet);
      dirs.push_back("/usr/lib/" + triplet);
      for (auto& d : split(env("LD_LIBRARY_PATH").value_or(""), ':')) dirs.push_back(d);
      std::vector<std::string> missing;
      for (auto& lib : info.needed) {
        bool found = false;
        for (auto& d : dirs) found = found || exists(d + "/" + lib);
        if (!found) missing.push_back(lib);
      }
      if (!missing.empty()) error_at(loc, what + ": needs " + join(missing, ", ") + ", which the image lacks");
    }
  }

  /// A Go binary built without cgo that links a module which is only a stub then.
  void check_cgo(const std::string& what, const GoBuildInfo& go, const std::string& loc) {
    if (go.setting("CGO_ENABLED") != "0") return;
    for (auto& [module, why] : kCgoOnlyModules)
      if (go.depends_on(module))
        warn("cgo", loc, what + " was built with CGO_ENABLED=0 and links " + module + ": " + why);
  }

  /// What the program the image runs needs from the image's other files.
  void check_go_files(const std::string& what, const GoBuildInfo& go) {
    check_cgo(what, go, context_.entrypoint_loc);
    if (go.uses_x509 && !has_ca_certificates())
      warn("tls", context_.entrypoint_loc,
           what +
               " links crypto/x509 but the image has no CA certificates, so TLS connections will fail "
               "(copy in require(\"imgbuild.certs\").bundle)");
    if (go.loads_zoneinfo && !go.embeds_tzdata && !exists("/usr/share/zoneinfo") && !env("ZONEINFO"))
      warn("tzdata", context_.entrypoint_loc,
           what +
               " loads time zones but the image has no /usr/share/zoneinfo and the binary embeds no tzdata "
               "(copy in require(\"imgbuild.tzdata\").zoneinfo, or import _ \"time/tzdata\")");
  }

  bool has_ca_certificates() const {
    if (env("SSL_CERT_FILE") || env("SSL_CERT_DIR")) return true;
    for (auto& f : kCertFiles) {
      auto r = tree_.resolve(f);
      if (r && r->file && r->file->type == LayerEntry::Type::File) return true;
    }
    for (auto& d : kCertDirs) {
      auto r = tree_.resolve(d);
      if (r && tree_.has_children(r->path)) return true;
    }
    return false;
  }

  void check_user() {
    const std::string& user = image_.config.user;
    std::string name = user.substr(0, user.find(':'));
    if (name.empty() || name == "0" || name == "root")
      warn("root", context_.image_loc, "the image runs as root: set :user (for example \"65534\", nobody)");
  }

  const Image& image_;
  const ImageTree& tree_;
  const DoctorContext& context_;
  std::vector<Finding> findings_;
};

}  // namespace

std::vector<Finding> examine_image(const Image& image, const ImageTree& tree, const DoctorContext& context) {
  return Examination(image, tree, context).run();
}

}  // namespace imgbuild
