#pragma once
// What a build reports while it runs, as structured events: a step starts,
// prints a line, ends; a blob moves to or from a registry. Whatever shows them
// (a live terminal, CI logs, JSON for tools) lives in the command line; the
// core knows nothing of terminals.
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <variant>

#include "oci/digest.hpp"

namespace imgbuild {

/// What a step does, as users name it ("from", "copy", "run", "build" for a
/// file built on the host such as go.build, "config" for env, workdir...).
enum class StepKind { From, Copy, Run, Build, Config };
/// How a step ended.
enum class StepStatus { Cached, Done, Failed };
/// Which way a blob travels.
enum class TransferDirection { Pull, Push };

/// "from", "copy", "run", "build", "config": the kind as JSON and text show it.
const char* to_string(StepKind kind);
/// "cached", "done", "failed".
const char* to_string(StepStatus status);
/// "pull", "push".
const char* to_string(TransferDirection direction);

/// A step begins. `step` identifies it within the build, across platforms
/// (events of parallel stages and platforms interleave); `cached` says its
/// result comes from the cache, so it ends at once. `platform` ("linux/arm64")
/// names the image's platform when the build makes several, on every event of
/// a step; empty otherwise.
struct StepStarted {
  size_t step = 0;
  std::string loc, description;
  StepKind kind = StepKind::Copy;
  bool cached = false;
  std::string platform = {};
};

/// One line a RUN step printed (stdout and stderr alike).
struct StepOutput {
  size_t step = 0;
  std::string loc, line;
  std::string platform = {};
};

/// A step ended. `description` may be more precise than at the start (a base
/// image's tag gains its digest). `layer_size` is the compressed size of the
/// layer the step made or took from the cache; unset when it made none.
struct StepEnded {
  size_t step = 0;
  std::string loc, description;
  StepKind kind = StepKind::Copy;
  StepStatus status = StepStatus::Done;
  double seconds = 0;
  std::optional<uint64_t> layer_size;
  std::string platform = {};
};

/// Something worth knowing about a step that is not its output (a RUN step
/// fell back to a copy of the image where overlay is refused).
struct StepNotice {
  size_t step = 0;
  std::string loc, message;
  std::string platform = {};
};

/// A blob's progress between the store and a registry: `done` of `total`
/// bytes after `seconds`. The last event of a blob has `finished` set.
struct TransferProgressed {
  TransferDirection direction = TransferDirection::Pull;
  std::string ref;
  Digest digest;
  uint64_t done = 0, total = 0;
  double seconds = 0;
  bool finished = false;

  /// Bytes a second so far (0 before any time has passed).
  double rate() const { return seconds > 0 ? static_cast<double>(done) / seconds : 0; }
};

using ProgressEvent = std::variant<StepStarted, StepOutput, StepEnded, StepNotice, TransferProgressed>;
/// Receives events, possibly from several threads at once: it must be
/// thread-safe itself (Builder serialises its own; transfers run in threads
/// of their own).
using ProgressSink = std::function<void(const ProgressEvent&)>;

/// `sink` for the steps of one platform's builder when a build makes images
/// for several: each step's id moved past the ids of the builders before it
/// (`first_step`: their steps' count), so that no two steps of the build share
/// one, and its events naming `platform`.
ProgressSink platform_steps(ProgressSink sink, size_t first_step, std::string platform);

/// Turns the byte counts of blob transfers (a callback per network read) into
/// TransferProgressed events: the first, then at most one every `interval` per
/// blob, and always the last, so no output is flooded. Thread-safe: blobs of
/// one image move in parallel.
class TransferMeter {
public:
  TransferMeter(ProgressSink sink, TransferDirection direction, std::string ref,
                std::chrono::milliseconds interval = std::chrono::milliseconds(250));

  /// `done` of `total` bytes of `digest` have moved.
  void update(const Digest& digest, uint64_t done, uint64_t total);

private:
  using Clock = std::chrono::steady_clock;
  struct Blob {
    Clock::time_point start, last;
    bool finished = false;
  };
  ProgressSink sink_;
  TransferDirection direction_;
  std::string ref_;
  std::chrono::milliseconds interval_;
  std::mutex mutex_;
  std::map<Digest, Blob> blobs_;
};

}  // namespace imgbuild
