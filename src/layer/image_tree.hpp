#pragma once
// The file tree of an image as its layers build it, known without unpacking
// anything: what the doctor checks entrypoints, loaders and libraries against.
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "layer/layer.hpp"

struct archive_entry;

namespace imgbuild {

class LayerListings;
class ListingMaker;

class ImageTree {
public:
  /// One path of the image. Small on purpose: a context of a million files
  /// puts a million of these in the tree, and the tree lives until the build
  /// ends.
  struct File {
    LayerEntry::Type type = LayerEntry::Type::File;
    uint32_t mode = 0;
    /// A symlink's target, or a file's member name in the layer blob `layer`.
    std::string where;
    uint32_t layer = 0;  ///< which of the tree's layer blobs holds a file's bytes
  };
  /// An absolute path and what stands there.
  using Node = std::pair<std::string, File>;
  /// What one layer blob does to the tree: the paths it adds (sorted, each
  /// once; File::layer 0, set when applied), those its whiteouts remove and
  /// the folders its opaque markers empty (sorted), and its hard links (path,
  /// target). Shared by every tree the layer is in: read once per blob.
  struct Listing {
    std::vector<Node> added;
    std::vector<std::string> removed, emptied;
    std::vector<std::pair<std::string, std::string>> hardlinks;
  };
  struct Resolved {
    std::string path;  ///< absolute, symlinks resolved
    const File* file;  ///< nullptr for the root and a folder that only exists as a parent
  };

  /// A tree whose layers' listings come from `listings`, shared with the
  /// other trees of a build so that each blob is listed once.
  explicit ImageTree(std::shared_ptr<LayerListings> listings = std::make_shared<LayerListings>());
  /// A copy of a tree another thread may be settling (the stages built on
  /// one stage share its tree): taken whole, under its lock.
  ImageTree(const ImageTree& other);
  ImageTree& operator=(const ImageTree&) = delete;

  /// Applies a layer blob (a tar, compressed or not: a pulled image's or one
  /// this build wrote), honouring OCI whiteouts. The listing is taken from
  /// the tree's LayerListings only when the tree is first asked something,
  /// so building on a large base costs nothing until a question needs it;
  /// file bytes stay in the blob until contents() asks. A blob that is not a
  /// readable tar throws std::runtime_error then.
  void apply_layer_blob(const std::filesystem::path& blob);

  /// The LayerListings this tree reads its layers' listings from.
  LayerListings& listings() const { return *listings_; }

  /// The bytes of a file (at most `max` of them), read from its layer. With
  /// `magic`, reading stops with what was read as soon as the file is seen
  /// not to start with it: one read tells whether a file is a program and
  /// gives its bytes when it is.
  std::string contents(const File& file, size_t max, std::string_view magic = {}) const;
  /// What stream_contents() hands the bytes of each file to, `i` its index.
  struct ContentSink {
    virtual ~ContentSink() = default;
    /// files[i] starts: again at the second occurrence of a member a tar
    /// names twice, which is the one the tree holds. `size`: the bytes its
    /// tar header announces, which chunk() then hands over (libarchive
    /// fails a member that ends sooner).
    virtual void begin(size_t i, uint64_t size) = 0;
    /// The next bytes of files[i], in order (none for an empty file).
    virtual void chunk(size_t i, std::string_view bytes) = 0;
    /// files[i] is whole: what was kept of it can be examined and let go.
    virtual void end(size_t i) = 0;
  };
  /// Streams the bytes of many regular files with one pass over each layer
  /// blob that holds any of them (contents() per file would read a layer once
  /// per file), one file at a time. Throws std::runtime_error naming the blob
  /// when a file is missing from its layer or its bytes cannot be read.
  void stream_contents(const std::vector<const File*>& files, ContentSink& sink) const;

  /// The layer blob that holds the bytes of `file`, a regular file of this
  /// tree (as resolve() or files_in() gave it), under the name `file.where`.
  const std::filesystem::path& blob_of(const File& file) const { return blobs_.at(file.layer); }

  /// Resolves an absolute path inside the image, following the image's own
  /// symlinks in every component (relative ones from the link's folder,
  /// absolute ones from the image root, never the host's), by the same rules
  /// as an unpacked root on disk (RootWalk). nullopt when it does not exist,
  /// loops, or goes through a file.
  std::optional<Resolved> resolve(const std::string& path) const;

  /// Where a write to the absolute `path` lands, as a copy into the image
  /// finds it: symlinks followed in every existing component (a last one
  /// only when it leads to a folder), missing folders taken as made. nullopt
  /// when a component is a file, a link loops or dangles; `error` says which.
  std::optional<std::string> place(const std::string& path, std::string& error) const;

  /// Whether a folder stands at the resolved `path`, and its mode (0755
  /// for one that only exists as a parent).
  std::optional<uint32_t> folder_mode(const std::string& path) const;

  /// Whether anything stands below the resolved folder `path` (a folder can
  /// exist only as the parent of its entries).
  bool has_children(const std::string& path) const;

  /// The regular files directly in the folder `path` (also those further
  /// below when `recursive`), in path order. `path` is resolved first (a
  /// /bin that links to /usr/bin lists /usr/bin); nothing below is followed.
  std::vector<Resolved> files_in(const std::string& path, bool recursive) const;

private:
  /// Paths in sorted order. Shared, and never changed while shared: copying
  /// a tree (every step that adds a layer does) costs a pointer, not a
  /// million paths.
  using Nodes = std::shared_ptr<std::vector<Node>>;
  /// Applies the layers not read yet, in order.
  void settle() const;
  void apply_listing(const Listing& listing, const std::filesystem::path& blob) const;
  /// Makes the tree of one more layer: `added` (sorted, unique paths)
  /// replace what stood at their paths, and drop everything below those
  /// that are not folders; paths in `removed` (sorted) go with everything
  /// below them, and everything below the folders in `emptied` (sorted).
  void merge(std::vector<Node> added, const std::vector<std::string>& removed,
             const std::vector<std::string>& emptied) const;
  const Node* find(std::string_view path) const;

  std::shared_ptr<LayerListings> listings_;
  mutable Nodes files_ = std::make_shared<std::vector<Node>>();
  mutable std::vector<std::filesystem::path> pending_;  ///< layer blobs not read yet
  /// The layer blobs files are read from; File::layer indexes it.
  mutable std::vector<std::filesystem::path> blobs_;
  /// Held while the pending layers are applied, and while the tree is
  /// copied: the first thread to ask settles it, the others wait for that.
  mutable std::mutex settling_;
};

/// The listings of the layer blobs a build knows, each made once: handed over
/// by the layer writer for a layer just written, recorded by the unpacker as
/// it unpacks a blob, or read from the blob the first time a tree needs it.
/// With a folder, they are also kept there, one small file per blob digest,
/// so that the next build reads no blob at all for them. A listing says what
/// its blob holds, and is trusted as far as the blob it was made from: it is
/// named by that blob's digest, and made only from a blob the store has
/// checked against it or from the entries that blob was written from.
class LayerListings {
public:
  /// `dir`: where listings are kept between builds; empty for nowhere.
  explicit LayerListings(std::filesystem::path dir = {});

  /// The listing of `blob` (a file named by its digest's hex): known, kept in
  /// the folder, or read from the blob now (then kept). Throws
  /// std::runtime_error for a blob that is missing or not a readable tar.
  std::shared_ptr<const ImageTree::Listing> of(const std::filesystem::path& blob);

  /// Whether the listing of `blob` is known without reading the blob.
  bool known(const std::filesystem::path& blob);

  /// The hand-over of the layer writer: `entries` are exactly what `blob`
  /// was just written from, so its listing costs no read.
  void put(const std::filesystem::path& blob, const std::vector<LayerEntry>& entries);

  /// The listing of `blob` is that of `tar`: the same tar stream, compressed
  /// (compress_layer), so its listing costs no read either.
  void same_as(const std::filesystem::path& blob, const std::filesystem::path& tar);

  /// The listing of `blob` made on the way by another reader of its tar
  /// stream (the unpacker): no read of its own. `member` takes every header
  /// that reader reads, in order; `keep` once it read the stream whole and
  /// found it what the store says (a read cut short keeps nothing).
  class Recording {
  public:
    Recording(LayerListings& listings, std::filesystem::path blob);
    ~Recording();
    Recording(Recording&&) noexcept;
    void member(archive_entry* header);
    void keep();

  private:
    LayerListings* listings_;
    std::filesystem::path blob_;
    std::unique_ptr<ListingMaker> maker_;
  };

  /// Called by of() for a blob whose listing is not known yet, before it
  /// reads the blob itself: a reader that is about to go through that blob
  /// anyway (the builder, unpacking a base image it will run steps in) can
  /// record the listing then (Recording), and of() reads nothing.
  void before_reading(std::function<void(const std::filesystem::path& blob)> hook);

private:
  std::shared_ptr<const ImageTree::Listing> kept(const std::filesystem::path& blob);
  void keep(const std::filesystem::path& blob, std::shared_ptr<const ImageTree::Listing> listing);
  /// Puts `listing` among the recent ones (mutex_ held).
  void hold(std::shared_ptr<const ImageTree::Listing> listing);

  std::filesystem::path dir_;
  std::function<void(const std::filesystem::path& blob)> before_reading_;
  std::mutex mutex_;
  /// By blob file name (digest hex). Held for the build when the folder
  /// does not have it; else while a tree is being made from it, and while
  /// it is among the recent ones.
  struct Known {
    std::weak_ptr<const ImageTree::Listing> used;
    std::shared_ptr<const ImageTree::Listing> pinned;
  };
  std::map<std::string, Known> known_;
  /// The listings the folder has that were used last, up to kRecentPaths
  /// paths in all, oldest first: the trees of a build ask for the same
  /// layers in turn (a copy's check, then its tree, then a later stage's
  /// tree), and decoding golang's 16,000 paths anew for each cost 30 ms
  /// every time. A context of a million files is never held twice.
  static constexpr size_t kRecentPaths = 100'000;
  std::deque<std::shared_ptr<const ImageTree::Listing>> recent_;
  size_t recent_paths_ = 0;
};

}  // namespace imgbuild
