#include "build/progress.hpp"

#include <type_traits>

namespace imgbuild {

const char* to_string(StepKind kind) {
  switch (kind) {
    case StepKind::From:
      return "from";
    case StepKind::Copy:
      return "copy";
    case StepKind::Run:
      return "run";
    case StepKind::Build:
      return "build";
    case StepKind::Config:
      return "config";
  }
  return "?";
}

const char* to_string(StepStatus status) {
  switch (status) {
    case StepStatus::Cached:
      return "cached";
    case StepStatus::Done:
      return "done";
    case StepStatus::Failed:
      return "failed";
  }
  return "?";
}

const char* to_string(TransferDirection direction) { return direction == TransferDirection::Pull ? "pull" : "push"; }

ProgressSink platform_steps(ProgressSink sink, size_t first_step, std::string platform) {
  return [sink = std::move(sink), first_step, platform = std::move(platform)](const ProgressEvent& event) {
    ProgressEvent named = event;
    std::visit(
        [&](auto& e) {
          if constexpr (!std::is_same_v<std::decay_t<decltype(e)>, TransferProgressed>) {
            e.step += first_step;
            e.platform = platform;
          }
        },
        named);
    sink(named);
  };
}

TransferMeter::TransferMeter(ProgressSink sink, TransferDirection direction, std::string ref,
                             std::chrono::milliseconds interval)
    : sink_(std::move(sink)), direction_(direction), ref_(std::move(ref)), interval_(interval) {}

void TransferMeter::update(const Digest& digest, uint64_t done, uint64_t total) {
  auto now = Clock::now();
  TransferProgressed event{direction_, ref_, digest, done, total, 0, done >= total};
  {
    std::lock_guard lock(mutex_);
    auto [it, first] = blobs_.try_emplace(digest, Blob{now, now});
    Blob& blob = it->second;
    // The first update, a throttled one, the last: a finished blob says no more.
    if (blob.finished || (!first && !event.finished && now - blob.last < interval_)) return;
    blob.last = now;
    blob.finished = event.finished;
    event.seconds = std::chrono::duration<double>(now - blob.start).count();
  }
  sink_(event);
}

}  // namespace imgbuild
