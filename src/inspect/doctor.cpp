#include "inspect/doctor.hpp"

#include <unistd.h>

#include <cstdio>

#include "base/fs.hpp"
#include "base/text.hpp"
#include "inspect/elf.hpp"
#include "oci/image_path.hpp"

namespace imgbuild {

namespace {

/// Entrypoints are read into memory to be inspected; past this size only their
/// start is, which holds the ELF headers of any real program.
constexpr size_t kMaxProgramSize = size_t(512) << 20;

/// Where Go's crypto/x509 looks for CA certificates on Linux (files, then folders).
const std::vector<std::string> kCertFiles = {"/etc/ssl/certs/ca-certificates.crt",
                                             "/etc/pki/tls/certs/ca-bundle.crt",
                                             "/etc/ssl/ca-bundle.pem",
                                             "/etc/pki/tls/cacert.pem",
                                             "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
                                             "/etc/ssl/cert.pem"};
const std::vector<std::string> kCertDirs = {"/etc/ssl/certs", "/etc/pki/tls/certs"};

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
    if (!argv) {
      warn("entrypoint", context_.image_loc, "the image has no entrypoint or cmd: it cannot run on its own");
      return findings_;
    }
    check_program(argv->front());
    return findings_;
  }

private:
  void error(const std::string& message) { findings_.push_back({true, "run", context_.entrypoint_loc, message}); }
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

  void check_program(const std::string& program) {
    std::string shown;
    auto found = locate(program, shown);
    std::string what = "entrypoint " + shown;
    if (!found) {
      error(what + (program.find('/') == std::string::npos ? ": not found in the image's PATH"
                                                           : ": no such file in the image"));
      return;
    }
    if (!found->file || found->file->type != LayerEntry::Type::File) {
      error(what + ": not a file");
      return;
    }
    if ((found->file->mode & 0111) == 0) {
      char mode[8];
      std::snprintf(mode, sizeof mode, "%04o", found->file->mode & 07777);
      error(what + ": not executable (mode " + mode + ")");
      return;
    }
    // The program itself: read whole, up to a size no real entrypoint reaches.
    std::string bytes;
    try {
      bytes = tree_.contents(*found->file, kMaxProgramSize);
    } catch (const std::runtime_error& e) {
      error(what + ": cannot be read: " + e.what());
      return;
    }
    if (bytes.starts_with("#!")) {
      check_script(what, bytes.substr(0, 256));
      return;
    }
    ElfInfo info;
    try {
      info = inspect_elf_bytes({reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size()});
    } catch (const std::runtime_error& e) {
      error("entrypoint " + shown + ": " + e.what());
      return;
    }
    if (!info.is_elf) {
      error(what + ": neither an ELF binary nor a #! script");
      return;
    }
    check_elf(what, info);
  }

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

  void check_elf(const std::string& what, const ElfInfo& info) {
    if (architecture_or_machine(info) != image_.platform.architecture) {
      error(what + ": built for " + info.machine + ", image is " + image_.platform.str());
      return;
    }
    if (info.linking == ElfInfo::Linking::Dynamic) {
      if (!info.interpreter.empty() && !exists(info.interpreter)) {
        error(what + ": needs the loader " + info.interpreter +
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
      if (!missing.empty()) error(what + ": needs " + join(missing, ", ") + ", which the image lacks");
    }
    if (info.go) check_go(what, *info.go);
  }

  void check_go(const std::string& what, const GoBuildInfo& go) {
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
