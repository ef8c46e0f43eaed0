#pragma once
// Unpacking image layers into a directory: the file system of a base image that
// RUN steps execute in. Layers come from registries, so every one is treated as
// hostile: whatever its entries say, nothing is written, linked, chmodded,
// chowned or deleted outside the root, and symlinks already in the root are
// followed as if the root were "/".
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "base/growing_file.hpp"
#include "oci/digest.hpp"

struct archive_entry;

namespace imgbuild {

/// A layer that is malformed or tries to reach outside the root, or a failure
/// while applying it. what() names the layer and, when there is one, the entry:
/// `layer 2: entry "../../etc/passwd": path escapes the image root`.
class UnpackError : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

struct UnpackOptions {
  /// Give entries the uid/gid of their header; without privileges they stay
  /// the caller's.
  bool preserve_owners = (::geteuid() == 0);
  /// Resolve paths with openat2(RESOLVE_IN_ROOT). When false, or when the
  /// kernel or a seccomp filter refuses openat2, paths are resolved by walking
  /// them one component at a time instead (the tests cover both this way).
  bool use_openat2 = true;
  /// Device nodes and fifos are made, as a layer's are; false refuses them
  /// (an archive `:add` extracts: a build context has no business giving
  /// devices, and Docker's ADD extracting them as root is no feature to copy).
  bool nodes = true;
  /// When set, only the entries whose name in the tar is one of these (as
  /// written there: ImageTree::File::where) are applied, their missing
  /// folders made; the rest are read past. What `:copy` from a stage needs of
  /// its builder's layer is then one file, not the whole layer unpacked.
  const std::set<std::string>* only = nullptr;
  /// When set, sees every member header read, in order, before it is
  /// applied (or read past): what lists a layer as it is unpacked.
  std::function<void(archive_entry*)> on_member{};
};

/// A layer whose uncompressed stream is not the one its image's config names
/// (its diff_id): an image that lies about its layers.
class DiffIdMismatch : public UnpackError {
public:
  DiffIdMismatch(const std::string& label, Digest expected, Digest actual);
  Digest expected, actual;
};

/// One layer of an image: its blob and how errors name it ("layer 2 (sha256:ab12…)").
struct UnpackLayer {
  std::filesystem::path blob;
  std::string label;
  /// When set, the sha256 the uncompressed stream must have (the config's
  /// diff_id), hashed as the stream is unpacked: no second read. A mismatch
  /// throws DiffIdMismatch once the stream ends.
  std::optional<Digest> diff_id{};
  /// When set, the blob is still arriving (a download in progress, written
  /// at `blob`'s temporary name): it is unpacked as it comes, and the unpack
  /// ends only once the download is whole and its digest checked. A download
  /// that fails or starts over fails the unpack (GrowingFileError's message).
  std::shared_ptr<GrowingFile> incoming{};
};

/// Blobs being downloaded, by digest, for an unpack that reads them as they come.
using IncomingBlobs = std::map<Digest, std::shared_ptr<GrowingFile>>;

/// Applies one layer (a tar, plain or gzip- or zstd-compressed) onto the
/// existing directory `root`, with OCI whiteouts. Entries and their data are
/// streamed: memory grows with the number of paths in the layer, not with its
/// size. On error the root is left as far as it got. Returns the size of
/// the layer's tar stream, read to its end.
uint64_t apply_layer(const std::filesystem::path& root, const std::filesystem::path& blob, const std::string& label,
                     const UnpackOptions& options = {});

/// The same, checking the layer's diff_id when it has one.
uint64_t apply_layer(const std::filesystem::path& root, const UnpackLayer& layer, const UnpackOptions& options = {});

/// The same for a layer held in memory (the fuzzer's input).
void apply_layer(const std::filesystem::path& root, std::span<const unsigned char> data, const std::string& label,
                 const UnpackOptions& options = {});

/// Whether `file` is a tar archive that `:add` extracts, told by its content
/// as Docker's ADD tells it: a tar, plain or compressed with gzip, bzip2, xz
/// or zstd, whose first entry reads. Anything else is copied as it is.
bool is_tar_archive(const std::filesystem::path& file);

/// Extracts the tar archive `archive` (is_tar_archive) into the existing
/// folder `root` with every defence a layer gets: nothing written outside the
/// root, hostile names and links refused with an UnpackError naming `label`
/// and the entry.
void extract_archive(const std::filesystem::path& root, const std::filesystem::path& archive, const std::string& label,
                     const UnpackOptions& options);

/// Creates `root` (its parent must exist, it must not) and applies `layers` in
/// order. On any error the partly built root is removed before rethrowing, so
/// nothing half-built remains.
void unpack_image(const std::filesystem::path& root, const std::vector<UnpackLayer>& layers,
                  const UnpackOptions& options = {});

/// The tar stream a layer blob holds (plain, gzip or zstd), uncompressed.
struct TarStream {
  uint64_t size = 0;  ///< what the layer takes unpacked (manifests give only the compressed size)
  Digest digest;      ///< its sha256: the layer's true diff_id
};

/// Measures the tar stream of a layer blob. Streams the blob; nothing is unpacked.
TarStream read_tar_stream(const std::filesystem::path& blob);

/// Makes `to` (which must not exist) a copy of the unpacked root `from` that
/// shares its files: folders are made anew (mode and owner kept), everything
/// else is hard-linked. Safe because roots are only read, and apply_layer
/// replaces a file by unlinking it, never by writing into it: applying a
/// layer onto the copy leaves `from` as it was. Symlinks are never followed.
void link_tree(const std::filesystem::path& from, const std::filesystem::path& to);

/// Makes the files of the unpacked root `tree` that a layer wrote (one link)
/// links to the same files of the root `donor`: a file there at the same
/// path with the same bytes, mode, owner and modification time, and no
/// extended attributes on either. Roots made on the same layers by different
/// builds (each with a copy of Go's build cache in its `go build` layer) then
/// take those files' disk once. As safe as link_tree, and for the same reason;
/// `donor`'s folders are entered only when they are folders there, never
/// through a symlink. Returns the bytes now shared.
uint64_t share_identical_files(const std::filesystem::path& tree, const std::filesystem::path& donor);

/// share_identical_files() for the paths `written` alone ("/usr/bin/app", as
/// a layer's listing names them): those the layers just applied wrote, so
/// that the cost is that of the change, not of the image (the other files of
/// `tree` are links to the root it was made from). A path is left alone when
/// a folder on its way, in `tree` or in `donor`, is not a folder there (a
/// symlink is never followed).
uint64_t share_identical_files(const std::filesystem::path& tree, const std::filesystem::path& donor,
                               const std::vector<std::string>& written);

/// Removes `path` and, if it is a directory, everything below it, never
/// following a symlink (a symlink is removed, not what it points to). Depth is
/// not limited by open files or stack. Nothing happens when `path` is missing.
void remove_tree(const std::filesystem::path& path);

}  // namespace imgbuild
