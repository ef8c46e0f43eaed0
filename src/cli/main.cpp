// imgbuild: the command line. Hands the words after a command's name to that
// command (commands.hpp, a file each), or, when the first word names none, to
// `build`. Exit status: 0 success, 1 build or recipe error, 2 usage error,
// 128 + N after signal N (SIGINT, SIGTERM).
#include <malloc.h>
#include <signal.h>

#include <clocale>

#include <algorithm>
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

#include "base/interrupt.hpp"
#include "cli/commands.hpp"
#include "cli/report.hpp"

using namespace imgbuild;
using namespace imgbuild::cli;

namespace {

const char* kUsage = R"(usage: imgbuild [build] RECIPE [TARGET...] [options]
       imgbuild plan RECIPE [TARGET...] [options]
       imgbuild cache ls | prune [--keep-bytes SIZE] [--older-than AGE] [--cache-dir DIR]
       imgbuild images
       imgbuild rmi NAME... [--cache-dir DIR]
       imgbuild store verify
       imgbuild push NAME REF
       imgbuild login [--username USER] [--password-stdin] HOST
       imgbuild logout HOST
       imgbuild inspect NAME | oci:DIR[:NAME]
       imgbuild sbom NAME | oci:DIR[:NAME] [--format spdx | cyclonedx]
       imgbuild verify REF --key PUB.pem
       imgbuild check [--json] FILE...
       imgbuild convert [DOCKERFILE | DIR] [-f FILE] [--context DIR]

Build the images a Lua recipe describes (all of them when no TARGET is named)
into the local store. `plan` shows each step with its cache key and whether
it would come from the cache or run, building nothing. `cache prune` removes
every cached step (or the least recently used beyond SIZE, or those unused
for AGE such as 7d) and the store's blobs no stored image needs. `rmi`
removes images from the store (by name, or by digest as `images` shows it)
and the blobs no other image and no cached step needs. `store verify` reads
every blob of the store against its digest and every image's layers against
their diff_ids, and says what is wrong. `login` checks a password with the
registry, then saves it where podman, skopeo and docker read it
($REGISTRY_AUTH_FILE, else docker's config.json or its credential helper);
`logout` removes it.
`convert` prints the recipe equivalent to a Dockerfile (./Dockerfile,
DIR/Dockerfile or -f FILE).
`sbom` prints an image's software bill of materials (SPDX 2.3, or CycloneDX
1.6 with --format cyclonedx): its Go programs' modules, its base's packages
and the files the recipe added; every pushed image gets the SPDX one and its
build provenance attached as OCI 1.1 referrers. `verify` checks a pushed
image's cosign signatures with a public key and that its signed payload,
SBOM, provenance and other referrers are about its digest (exit 1 otherwise).

build options:
  -o, --output oci:DIR | docker-archive:FILE   also write each target there
  --set NAME=VALUE      set a recipe parameter (param("NAME", default))
  --context DIR         build context (default: the recipe's folder)
  --strict              doctor warnings are errors
  --ignore WARNING      do not report a doctor warning: cgo, entrypoint, root, tls, tzdata
  --compression gzip|zstd   how new layers are compressed (default gzip; zstd is
                        faster and smaller, for containerd, podman, docker 23+)
  --max-processes N     processes and threads each RUN step may have (default 4096)
  --isolation MODE      how RUN steps are isolated: namespaces (default), chroot (in an
                        unprivileged container: see imgbuild(1)) or auto
  --no-cache            run every step again, ignoring cached results
  --cache-dir DIR       build cache (default: $XDG_CACHE_HOME/imgbuild)
  --cache-from REF      reuse steps exported to this registry repository tag
                        (repeatable); only the layers needed are downloaded
  --cache-to REF        export this build's steps and their layers there
  --pull                resolve base image tags again (default: the digest pulled before)
  --push / --no-push    run the recipe's push() calls (default), or only say what they would push
  --platform OS/ARCH[,...]  build every image for these platforms (several: an
                        image index), in place of the recipe's platforms
  --emulate             let RUN steps of another CPU run under qemu-user-static
                        (registered in binfmt_misc); else they fail at their line
  --progress MODE       auto (default: tty on a terminal, else plain), tty (live
                        lines), plain (a line per event, for CI logs) or json (an
                        object per event and result on stdout, for tools);
                        these show a step's control characters as \xNN text;
                        raw is plain with a step's output as it wrote it,
                        escape sequences and all (only for steps you trust)
  --debug               tracebacks with recipe errors, one line per registry request
  --sign-key FILE       sign every pushed image in cosign's format with this
                        unencrypted PEM ECDSA P-256 key (build, push)

login options:
  -u, --username USER   the user name (asked at the terminal when not given)
  --password-stdin      read the password from stdin (else asked at the terminal)

registry options (build, push, login):
  --insecure-registry HOST   allow plain HTTP and unverified TLS for HOST
                             (loopback registries may use plain HTTP anyway)
  --registry-mirror REG=HOST pull REG's images from HOST first (build only;
                             e.g. docker.io=mirror.example.com)

  -h, --help            this help
  --version             imgbuild's version

Environment: SOURCE_DATE_EPOCH (image and file times; default: file times 0,
image times the commit time of the context's git checkout, else 0),
IMGBUILD_ISOLATION (as --isolation), IMGBUILD_SIGN_KEY (the PEM of a signing key, as --sign-key), IMGBUILD_PATH (where `require` looks after the recipe's folder),
XDG_DATA_HOME (the store: $XDG_DATA_HOME/imgbuild),
IMGBUILD_REGISTRY_AUTH_<NAME>=HOST=user:password (credentials for CI:
IMGBUILD_REGISTRY_AUTH_GHCR=ghcr.io=user:token),
IMGBUILD_REGISTRY_TIMEOUT, IMGBUILD_REGISTRY_TRANSFER_TIMEOUT, IMGBUILD_REGISTRY_MIN_RATE
(deadlines of registry requests), IMGBUILD_ALLOW_PRIVATE_REDIRECTS,
IMGBUILD_INSECURE_REGISTRIES (comma-separated, as --insecure-registry),
IMGBUILD_REGISTRY_MIRRORS (comma-separated REG=HOST, as --registry-mirror),
SSL_CERT_FILE (CA bundle for registries; per registry: /etc/docker/certs.d/HOST/ca.crt),
REGISTRY_AUTH_FILE, XDG_RUNTIME_DIR, XDG_CONFIG_HOME, DOCKER_CONFIG (where
auth.json, config.json and their credential helpers are found: see imgbuild(1)).
See imgbuild(1) and imgbuild-recipe(5).
)";

/// The commands by name.
struct Command {
  std::string_view name;
  int (*run)(const std::vector<std::string>& args);
};

constexpr Command kCommands[] = {
    {"build", cmd_build}, {"plan", cmd_plan},     {"cache", cmd_cache},     {"images", cmd_images},
    {"rmi", cmd_rmi},     {"push", cmd_push},     {"inspect", cmd_inspect}, {"check", cmd_check},
    {"store", cmd_store}, {"login", cmd_login},   {"logout", cmd_logout},   {"convert", cmd_convert},
    {"sbom", cmd_sbom},   {"verify", cmd_verify},
};

int run(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) {
    std::cerr << kUsage;
    return kExitUsage;
  }
  const std::string& first = args[0];
  bool wants_help =
      first == "help" || std::any_of(args.begin(), args.end(), [](auto& a) { return a == "-h" || a == "--help"; });
  if (wants_help) {
    std::cout << kUsage;
    return 0;
  }
  if (first == "--version") {
    std::cout << "imgbuild " << IMGBUILD_VERSION << "\n";
    return 0;
  }
  for (const Command& command : kCommands)
    if (first == command.name) return command.run({args.begin() + 1, args.end()});
  // `build` may be left out: the first word is then the recipe.
  return cmd_build(args);
}

/// Exit status 128 + N after signal N (130 for Ctrl-C, 143 for SIGTERM), as
/// shells report a process killed by it; the cleanup has run by then.
int interrupted() {
  int sig = interrupt_signal();
  report(std::string("interrupted by ") +
         (sig == SIGINT    ? "SIGINT"
          : sig == SIGTERM ? "SIGTERM"
                           : "a signal") +
         "; temporary files removed");
  return 128 + sig;
}

}  // namespace

int main(int argc, char** argv) {
  // libarchive writes a PAX name as UTF-8 only when the locale says names are
  // UTF-8; under "C" every non-ASCII name would become hdrcharset=BINARY, which
  // GNU tar warns about. Only the character type changes: number formatting
  // stays "C".
  std::setlocale(LC_CTYPE, "C.UTF-8");
  // Big buffers (a copy's entry list, a tree's nodes, listings) are mapped
  // and unmapped on their own, as glibc does by default until the first one
  // is freed: then it raises its threshold and later ones stay in the heap,
  // where they are kept after they are freed. A fixed threshold keeps a
  // 100 000-file copy at 48 MB instead of 87 MB (tests/faults/trees.sh).
  mallopt(M_MMAP_THRESHOLD, 128 * 1024);
  // Smaller buffers go from thread to thread (a read-ahead's batches, a
  // compressor's chunks): at glibc's default trim threshold (128 KiB), each
  // one freed gave a thread's heap back to the kernel and the next one
  // faulted its pages in again; a copy of Go's 12 000-file source tree took
  // 6% longer for that (page faults are dear in a VM). Up to 16 MB freed
  // stays in each heap for the next buffer.
  mallopt(M_TRIM_THRESHOLD, 16 << 20);
  install_interrupt_handlers();
  try {
    int status = run(argc, argv);
    return interrupt_signal() ? interrupted() : status;
  } catch (const Interrupted&) {
    return interrupted();
  } catch (const UsageError& e) {
    report(e.what());
    std::cerr << "(see imgbuild --help)\n";
    return kExitUsage;
  } catch (const std::exception& e) {
    // After a signal, an error is its consequence (an aborted transfer, a
    // killed step): the interrupt is what to report.
    if (interrupt_signal()) return interrupted();
    report(e.what());
    return kExitError;
  }
}
