#include "registry/transfer.hpp"

#include <atomic>
#include <exception>
#include <mutex>
#include <set>
#include <thread>

#include "base/text.hpp"

namespace imgbuild {

using json = nlohmann::json;

namespace {

/// Blob transfers in flight at once: enough to hide a registry's per-request
/// latency, few enough not to starve a 2-core machine or a registry.
constexpr size_t kParallelBlobs = 4;

/// Runs `work(i)` for i in [0, n) on up to `width` threads. The first failure
/// stops the handing out of new items and is rethrown once all threads end.
void parallel_each(size_t n, size_t width, const std::function<void(size_t)>& work) {
  std::atomic<size_t> next{0};
  std::exception_ptr failure;
  std::mutex failure_mutex;
  auto run = [&] {
    for (size_t i; (i = next.fetch_add(1)) < n;) {
      try {
        work(i);
      } catch (...) {
        std::lock_guard lock(failure_mutex);
        if (!failure) failure = std::current_exception();
        next = n;
      }
    }
  };
  std::vector<std::thread> threads;
  for (size_t t = 1; t < std::min(width, n); ++t) threads.emplace_back(run);
  run();
  for (auto& t : threads) t.join();
  if (failure) std::rethrow_exception(failure);
}

/// arm64's only variant is v8, which indexes may or may not spell out.
std::string normal_variant(const Platform& p) {
  return p.architecture == "arm64" && p.variant == "v8" ? "" : p.variant;
}

bool platform_matches(const Platform& wanted, const Platform& have) {
  if (wanted.os != have.os || wanted.architecture != have.architecture) return false;
  return wanted.variant.empty() || normal_variant(wanted) == normal_variant(have);
}

json parse_document(const std::string& body, const std::string& what) {
  json doc = json::parse(body, nullptr, false);
  if (!doc.is_object()) throw RegistryError(what + ": not a valid JSON document");
  return doc;
}

/// The manifest of `platform` in an index; an error listing what there is otherwise.
Descriptor choose_platform(const json& index, const Platform& platform, const std::string& what) {
  if (!index.contains("manifests") || !index["manifests"].is_array())
    throw RegistryError(what + ": the index has no manifest list");
  std::vector<std::string> offered;
  for (auto& m : index["manifests"]) {
    Descriptor d = Descriptor::from_json(m);
    if (!d.platform) continue;
    if (platform_matches(platform, *d.platform)) return d;
    offered.push_back(d.platform->str());
  }
  throw RegistryError(what + ": no image for " + platform.str() + " (the index has " +
                      (offered.empty() ? std::string("none with a platform") : join(offered, ", ")) + ")");
}

}  // namespace

namespace {

PulledImage pull(RegistryClient& client, Layout& store, const Reference& ref, const Platform& platform, bool refresh,
                 const TransferLog& log) {
  const std::string name = ref.str();
  auto annotate = [&](Image image, const Descriptor& manifest) {
    image.annotations[kBaseNameAnnotation] = name;
    image.annotations[kBaseDigestAnnotation] = manifest.digest.str();
    return image;
  };
  if (!refresh) {
    if (auto recorded = store.find_ref(name, platform)) {
      StoredImage stored = store.load(*recorded);
      Image image = image_from_documents(stored.manifest_json, stored.config_json);
      return PulledImage{*recorded, annotate(std::move(image), *recorded), true};
    }
  }

  // The first source that has the image serves all of it; the store records
  // it under the name the recipe used.
  std::vector<Reference> sources = client.pull_sources(ref);
  std::optional<Manifest> got;
  const Reference* served_by = nullptr;
  std::string mirror_errors;
  for (auto& source : sources) {
    try {
      got = client.get_manifest(source);
      served_by = &source;
      break;
    } catch (const RegistryError& e) {
      if (&source == &sources.back()) throw RegistryError(e.what() + mirror_errors, e.status(), e.code());
      mirror_errors += std::string(" (mirror: ") + e.what() + ")";
      if (log) log(name + ": not from mirror " + source.registry + ": " + e.what());
    }
  }
  const Reference& from = *served_by;
  Manifest fetched = std::move(*got);
  if (fetched.media_type.is_index()) {
    Descriptor chosen = choose_platform(parse_document(fetched.body, name), platform, name);
    if (log) log(name + ": " + platform.str() + " is " + chosen.digest.str());
    fetched = client.get_manifest(from.with_digest(chosen.digest));
    if (fetched.body.size() != chosen.size)
      throw RegistryError(name + ": the " + platform.str() + " manifest is not the size its index gives");
    if (fetched.media_type.is_index()) throw RegistryError(name + ": an index inside an index is not supported");
  }
  json manifest = parse_document(fetched.body, name);
  if (!manifest.contains("config")) throw RegistryError(name + ": the manifest has no config");
  Descriptor config_desc = Descriptor::from_json(manifest["config"]);
  std::string config_text =
      store.has_blob(config_desc.digest) ? store.read_document(config_desc) : client.get_document(from, config_desc);
  json config = parse_document(config_text, name + ": config");
  Image image = image_from_documents(manifest, config);
  if (!platform_matches(platform, image.platform))
    throw RegistryError(name + ": the image is for " + image.platform.str() + ", not " + platform.str() +
                        " (from(ref, { platform = ... }) chooses the platform)");

  store.put_document(config_text, config_desc.media_type);
  Descriptor stored = store.put_document(fetched.body, fetched.media_type);
  // Recorded under the platform asked for: that is what the next build looks up.
  stored.platform = platform;
  store.set_ref(name, stored);
  if (log) log(name + ": pulled " + fetched.digest.str());
  return PulledImage{stored, annotate(std::move(image), stored), false};
}

}  // namespace

PulledImage pull_image(RegistryClient& client, Layout& store, const Reference& ref, const Platform& platform,
                       bool refresh, const TransferLog& log) {
  try {
    return pull(client, store, ref, platform, refresh, log);
  } catch (const RegistryError&) {
    throw;
  } catch (const std::runtime_error& e) {
    // A malformed document (a descriptor without a digest...): say whose.
    throw RegistryError(ref.str() + ": " + e.what());
  }
}

namespace {

/// The client's per-blob callback for `blob`, or none.
TransferProgress blob_progress(const BlobProgress& progress, const Digest& blob) {
  if (!progress) return {};
  return [&progress, blob](uint64_t done, uint64_t total) { progress(blob, done, total); };
}

}  // namespace

void fetch_layers(RegistryClient& client, Layout& store, const Reference& ref, const std::vector<LayerBlob>& layers,
                  const TransferLog& log, const BlobProgress& progress, const IncomingBlobs& incoming) {
  std::vector<Reference> sources = client.pull_sources(ref);
  parallel_each(layers.size(), kParallelBlobs, [&](size_t i) {
    const LayerBlob& layer = layers[i];
    auto arriving = incoming.find(layer.digest);
    GrowingFile* reader_told = arriving == incoming.end() ? nullptr : arriving->second.get();
    if (store.has_blob(layer.digest)) {
      if (reader_told) reader_told->failed("the store had the blob already");
      return;
    }
    Descriptor blob{layer.media_type, layer.digest, layer.size, {}, {}};
    // A mirror that lacks the blob is no reason to fail while the registry has it.
    for (auto& source : sources) {
      try {
        client.download_blob(source, blob, store.blob_path(layer.digest), blob_progress(progress, layer.digest),
                             reader_told);
        store.note_verified(layer.digest);  // hashed as it came
        break;
      } catch (const RegistryError&) {
        if (&source == &sources.back()) throw;
      }
    }
    if (log)
      log(ref.str() + ": layer " + std::string(layer.digest.short_hex()) + " " + std::to_string(layer.size) + " bytes");
  });
}

namespace {

/// Thrown from an abandoned upload's progress callback: cuts the transfer short.
/// Not a std::exception, so no retry takes it for a network failure.
struct Abandoned {};

/// "127.0.0.1:5000/app@sha256:...": a blob in a repository, whatever the tag.
std::string blob_key(const Reference& repo, const Digest& digest) {
  return repo.registry + "/" + repo.repository + "@" + digest.str();
}

/// One blob of a push: nothing when the repository has it, else mounted from
/// `mount_from` or uploaded.
BlobOutcome send_blob(RegistryClient& client, const Layout& store, const Reference& dest, const Descriptor& blob,
                      const std::string& mount_from, const TransferProgress& progress) {
  if (client.has_blob(dest, blob.digest)) return BlobOutcome::Present;
  std::filesystem::path file = store.verified_blob(blob.digest, blob.size, kRebuildHint);
  return client.upload_blob(dest, blob, file, mount_from, progress) ? BlobOutcome::Mounted : BlobOutcome::Uploaded;
}

}  // namespace

BlobUploader::BlobUploader(RegistryClient& client, const Layout& store) : client_(client), store_(store) {}

BlobUploader::~BlobUploader() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    queue_.clear();
  }
  wake_.notify_all();
  for (auto& w : workers_) w.join();
}

void BlobUploader::add(const Reference& dest, const Descriptor& blob, BlobProgress progress) {
  std::lock_guard lock(mutex_);
  auto [it, fresh] = started_.try_emplace(blob_key(dest, blob.digest));
  if (!fresh) return;
  queue_.push_back(Job{dest, blob, std::move(progress), {}});
  it->second.outcome = queue_.back().done.get_future().share();
  // A worker for each job no idle worker takes, up to the limit; the others wait their turn.
  if (queue_.size() > idle_ && workers_.size() < kParallelBlobs)
    workers_.emplace_back([this] { work(); });
  else
    wake_.notify_one();
}

void BlobUploader::work() {
  std::unique_lock lock(mutex_);
  for (;;) {
    ++idle_;
    wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
    --idle_;
    if (stopping_) return;
    Job job = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    try {
      // No mount: only a base's layers could be mounted, and those are left to the push.
      job.done.set_value(
          send_blob(client_, store_, job.dest, job.blob, {},
                    [this, report = blob_progress(job.progress, job.blob.digest)](uint64_t done, uint64_t total) {
                      if (stopping_) throw Abandoned{};
                      if (report) report(done, total);
                    }));
    } catch (...) {
      job.done.set_exception(std::current_exception());
    }
    lock.lock();
  }
}

std::optional<BlobOutcome> BlobUploader::claim(const Reference& dest, const Digest& digest) {
  std::shared_future<BlobOutcome> outcome;
  bool first = false;
  {
    std::lock_guard lock(mutex_);
    auto it = started_.find(blob_key(dest, digest));
    if (it == started_.end()) return std::nullopt;
    first = !it->second.claimed;
    it->second.claimed = true;
    outcome = it->second.outcome;
  }
  BlobOutcome o = outcome.get();
  return first ? o : BlobOutcome::Present;
}

std::string PushResult::failures() const {
  std::string out;
  for (auto& t : tags)
    if (!t.error.empty()) out += (out.empty() ? "" : "\n") + t.dest.str() + ": " + t.error;
  return out;
}

std::vector<Reference> PushResult::pushed() const {
  std::vector<Reference> out;
  for (const TagPush& t : tags)
    if (t.error.empty()) out.push_back(t.dest);
  return out;
}

namespace {

/// The repository of the image's base when it is on `dest`'s registry and is
/// another repository: its layers can be mounted from there. Empty otherwise.
std::string base_repository(const nlohmann::json& manifest, const Reference& dest) {
  auto ann = manifest.find("annotations");
  if (ann == manifest.end() || !ann->is_object()) return {};
  auto base = ann->find(kBaseNameAnnotation);
  if (base == ann->end() || !base->is_string()) return {};
  try {
    Reference b = Reference::parse(base->get<std::string>());
    if (b.registry == dest.registry && b.repository != dest.repository) return b.repository;
  } catch (const ReferenceError&) {
    // An annotation we cannot read only costs the mount.
  }
  return {};
}

/// Puts the manifest (or index) `body` under each tag of `result` that has
/// not failed yet, counting those put and saying why each other failed.
void put_under_tags(RegistryClient& client, const MediaType& media_type, const std::string& body, PushResult& result) {
  for (auto& tag : result.tags) {
    if (!tag.error.empty()) continue;
    try {
      client.put_manifest(tag.dest, media_type, body);
      ++result.manifests;
    } catch (const std::exception& e) {
      tag.error = e.what();
    }
  }
}

/// A multi-platform image: each platform's manifest (and its blobs) goes
/// first into every repository named, put by its digest, so the index never
/// names what a registry lacks; then the index under every tag. A platform
/// that fails in a repository fails that repository's tags.
PushResult push_index(RegistryClient& client, const Layout& store, const Descriptor& manifest,
                      const std::vector<Reference>& dests, const TransferLog& log, const PushProgress& progress,
                      BlobUploader* started) {
  const std::string body = store.read_document(manifest);
  PushResult result{manifest.digest};
  std::map<std::string, Reference> by_repository;  ///< name() -> the first tag named there
  for (auto& d : dests) {
    result.tags.push_back(TagPush{d, {}});
    by_repository.try_emplace(d.name(), d);
  }
  // The children's transfers are shown under the tag of their repository.
  PushProgress child_progress = [&](const Reference& child) {
    return progress ? progress(by_repository.at(child.name())) : BlobProgress{};
  };
  json index = parse_document(body, dests.front().str());
  for (auto& entry : index.at("manifests")) {
    const Descriptor child = Descriptor::from_json(entry);
    std::vector<Reference> child_dests;
    for (auto& [name, tag] : by_repository) {
      Reference by_digest = tag;
      by_digest.tag.clear();
      by_digest.digest = child.digest;
      child_dests.push_back(by_digest);
    }
    PushResult r = push_tags(client, store, child, child_dests, log, child_progress, started);
    result.uploaded += r.uploaded;
    result.mounted += r.mounted;
    result.present += r.present;
    result.bytes += r.bytes;
    for (const TagPush& failed : r.tags)
      if (!failed.error.empty())
        for (auto& t : result.tags)
          if (t.dest.name() == failed.dest.name() && t.error.empty())
            t.error = "the manifest of platform " + child.digest.str() + ": " + failed.error;
  }
  put_under_tags(client, manifest.media_type, body, result);
  return result;
}

}  // namespace

PushResult push_tags(RegistryClient& client, const Layout& store, const Descriptor& manifest,
                     const std::vector<Reference>& dests, const TransferLog& log, const PushProgress& progress,
                     BlobUploader* started) {
  if (manifest.media_type.is_index()) return push_index(client, store, manifest, dests, log, progress, started);
  StoredImage image = store.load(manifest);
  std::vector<Descriptor> blobs;
  for (auto& l : image.manifest_json.at("layers")) blobs.push_back(Descriptor::from_json(l));
  blobs.push_back(Descriptor::from_json(image.manifest_json.at("config")));

  PushResult result{manifest.digest};
  for (auto& d : dests) result.tags.push_back(TagPush{d, {}});
  std::mutex result_mutex;

  // Every blob into one repository: mounted from `mount_from` where it can be.
  auto send_all = [&](const Reference& dest, const std::string& mount_from) {
    BlobProgress report = progress ? progress(dest) : BlobProgress{};
    parallel_each(blobs.size(), kParallelBlobs, [&](size_t i) {
      const Descriptor& blob = blobs[i];
      std::optional<BlobOutcome> outcome = started ? started->claim(dest, blob.digest) : std::nullopt;
      if (!outcome) outcome = send_blob(client, store, dest, blob, mount_from, blob_progress(report, blob.digest));
      std::lock_guard lock(result_mutex);
      if (*outcome == BlobOutcome::Present) {
        ++result.present;
        return;
      }
      bool mounted = *outcome == BlobOutcome::Mounted;
      if (mounted) {
        ++result.mounted;
      } else {
        ++result.uploaded;
        result.bytes += blob.size;
      }
      if (log) log(dest.name() + ": " + (mounted ? "mounted " : "uploaded ") + std::string(blob.digest.short_hex()));
    });
  };

  // Repositories in the order first named; on each registry, the first
  // repository that got every blob is where the others mount them from.
  std::map<std::string, std::string> holder;  ///< registry -> repository with every blob
  std::set<std::string> tried;                ///< "registry/repository"
  for (auto& tag : result.tags) {
    const Reference& dest = tag.dest;
    if (!tried.insert(dest.registry + "/" + dest.repository).second) continue;
    auto held = holder.find(dest.registry);
    try {
      send_all(dest, held != holder.end() ? held->second : base_repository(image.manifest_json, dest));
      holder.try_emplace(dest.registry, dest.repository);
    } catch (const std::exception& e) {
      for (auto& t : result.tags)
        if (t.dest.registry == dest.registry && t.dest.repository == dest.repository) t.error = e.what();
    }
  }

  std::string body = store.read_document(manifest);
  put_under_tags(client, manifest.media_type, body, result);
  return result;
}

PushResult push_image(RegistryClient& client, const Layout& store, const Descriptor& manifest, const Reference& dest,
                      const TransferLog& log, const BlobProgress& progress, BlobUploader* started) {
  PushResult r = push_tags(
      client, store, manifest, {dest}, log, [&progress](const Reference&) { return progress; }, started);
  if (!r.tags.front().error.empty()) throw RegistryError(r.tags.front().error);
  return r;
}

}  // namespace imgbuild
