#pragma once
// Whole images between a registry and the local store: pulling a base image
// for one platform, and pushing a stored image (blobs first, several at once,
// only what the registry lacks; the manifest last).
#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "layer/unpack.hpp"
#include "oci/image.hpp"
#include "oci/reference.hpp"
#include "registry/registry.hpp"
#include "store/layout.hpp"

namespace imgbuild {

/// One line per event (resolved, downloaded, skipped), for progress output.
using TransferLog = std::function<void(const std::string&)>;
/// Bytes of one blob moved so far (TransferMeter turns these into events).
/// Called from the threads that move blobs, several at once.
using BlobProgress = std::function<void(const Digest& blob, uint64_t done, uint64_t total)>;

struct PulledImage {
  Descriptor manifest;  ///< the platform manifest, as stored
  Image image;          ///< to build on; annotated with the base's name and digest
  bool from_store = false;
};

/// The image `ref` names for `platform`, its manifest and config in `store`;
/// its layers come with fetch_layers(), when something needs their bytes.
/// Without `refresh`, a reference pulled before is used exactly as recorded
/// (no network); with it, the tag is resolved again. The store names the
/// result `ref.str()` for `platform`.
PulledImage pull_image(RegistryClient& client, Layout& store, const Reference& ref, const Platform& platform,
                       bool refresh, const TransferLog& log = {});

/// Downloads the `layers` the store lacks from `ref`'s repository (its mirrors
/// first), several at once, each verified against its digest and size. Those
/// in `incoming` say there how far they are written and how they ended, for
/// an unpack that reads them as they come; a mirror that fails one fails its
/// reader too (it then waits for the blob whole).
void fetch_layers(RegistryClient& client, Layout& store, const Reference& ref, const std::vector<LayerBlob>& layers,
                  const TransferLog& log = {}, const BlobProgress& progress = {}, const IncomingBlobs& incoming = {});

/// One tag of a push and what became of it.
struct TagPush {
  Reference dest;
  std::string error;  ///< why its manifest was not put there; empty when it was
};

/// A push of one image to one or more tags. The counts are over the whole
/// push: a blob sent once to a registry and mounted into its other
/// repositories counts as one upload and as mounts.
struct PushResult {
  Digest digest;              ///< of the manifest pushed
  size_t uploaded = 0;        ///< blobs sent
  size_t mounted = 0;         ///< blobs the registry mounted from another repository
  size_t present = 0;         ///< blobs the registry already had
  uint64_t bytes = 0;         ///< bytes uploaded
  size_t manifests = 0;       ///< tags the manifest was put under
  std::vector<TagPush> tags;  ///< every tag, in the order given

  /// "REF: why" for each tag that failed, one per line; empty when none did.
  std::string failures() const;
  /// The tags the manifest was put under, in the order given.
  std::vector<Reference> pushed() const;
};

/// What became of one blob of a push.
enum class BlobOutcome { Present, Mounted, Uploaded };

/// Uploads that start before the image they belong to is complete: a build
/// that will push sends each layer as soon as a step has stored it, so the
/// network works while later layers are still compressed. push_image() then
/// waits for these instead of sending the blobs again; the manifest still
/// goes last, only once the build has succeeded. At most kParallelBlobs at
/// once. Destroying the uploader (a failed build) drops what has not started
/// and cuts short what has; an interrupt stops them as it stops any transfer.
class BlobUploader {
public:
  BlobUploader(RegistryClient& client, const Layout& store);
  ~BlobUploader();
  BlobUploader(const BlobUploader&) = delete;
  BlobUploader& operator=(const BlobUploader&) = delete;

  /// Queues the stored `blob` for `dest`'s repository (once per repository;
  /// later calls for it are ignored). Never blocks on the network.
  void add(const Reference& dest, const Descriptor& blob, BlobProgress progress = {});

  /// Waits for the upload of `digest` to `dest`'s repository and returns what
  /// became of it, or nullopt when none was queued. Its failure is rethrown
  /// here, with the message a push would have given. The first claim gets the
  /// outcome; later ones (another tag of the same repository) get Present, as
  /// a second push would have found the blob there.
  std::optional<BlobOutcome> claim(const Reference& dest, const Digest& digest);

private:
  struct Job {
    Reference dest;
    Descriptor blob;
    BlobProgress progress;
    std::promise<BlobOutcome> done;
  };
  struct Started {
    std::shared_future<BlobOutcome> outcome;
    bool claimed = false;
  };
  void work();

  RegistryClient& client_;
  const Layout& store_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Job> queue_;
  std::map<std::string, Started> started_;  ///< by "registry/repository@digest"
  size_t idle_ = 0;                         ///< workers waiting for a job
  std::atomic<bool> stopping_{false};
  std::vector<std::thread> workers_;
};

/// The progress callback for the blobs sent to one destination, or none.
using PushProgress = std::function<BlobProgress(const Reference& dest)>;

/// Pushes the stored image `manifest` to every tag of `dests`: each blob goes
/// once to each registry, to the first of its repositories named (mounted
/// from the image's base repository when that is on the same registry),
/// several at once; the registry's other repositories mount it from there
/// (a registry that answers a mount with an upload session gets the blob
/// sent). Then the manifest is put under every tag. A repository or tag that
/// fails is recorded in the result and does not stop the others; blobs
/// `started` uploads are awaited rather than sent again.
PushResult push_tags(RegistryClient& client, const Layout& store, const Descriptor& manifest,
                     const std::vector<Reference>& dests, const TransferLog& log = {},
                     const PushProgress& progress = {}, BlobUploader* started = nullptr);

/// push_tags() to the one tag `dest`; its failure is thrown as a RegistryError.
PushResult push_image(RegistryClient& client, const Layout& store, const Descriptor& manifest, const Reference& dest,
                      const TransferLog& log = {}, const BlobProgress& progress = {}, BlobUploader* started = nullptr);

}  // namespace imgbuild
