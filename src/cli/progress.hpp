#pragma once
// How `imgbuild build` shows what happens (--progress): live lines on a
// terminal, one line per event for CI logs, one JSON object per event for
// tools; and what it made: a result line per image, a size table.
#include <memory>
#include <optional>
#include <string>

#include "build/builder.hpp"
#include "build/progress.hpp"
#include "registry/transfer.hpp"

namespace imgbuild {

/// --progress auto|tty|plain|json|raw. raw is plain with each line a step
/// writes as it came, escape sequences and all; the others show those lines
/// through printable_text() (json escapes them as JSON strings instead).
enum class ProgressMode { Auto, Tty, Plain, Json, Raw };

/// The mode `text` names; nullopt for anything else.
std::optional<ProgressMode> parse_progress_mode(const std::string& text);

/// The same name stored before this build replaced it: what the size table
/// compares a new image with.
struct PreviousBuild {
  Digest digest;
  uint64_t compressed = 0;  ///< its compressed layers
};

/// An image the build made, under the name it went out as (a target's name,
/// or the reference of an image that is only pushed).
struct OutputImage {
  std::string name;
  BuiltImage built;
  std::optional<PreviousBuild> previous;
};

/// "pushed REF@DIGEST" on stdout for each tag put, and on stderr what the
/// whole push took (blobs uploaded, mounted, already there; manifests put).
void print_push(const PushResult& result);

/// Shows a build's events and results. Text modes write events to stderr and
/// results to stdout (a line per image that scripts read), then the size
/// table to stderr; the JSON mode writes every event and result to stdout,
/// one object a line, and leaves stderr to warnings and errors.
class ProgressView {
public:
  /// The view for `mode`. `auto` and `tty` draw live only when stderr is a
  /// terminal (and TERM is not "dumb"); otherwise they print plain lines.
  /// Only `raw` lets a step's bytes reach the terminal unchanged.
  static std::unique_ptr<ProgressView> make(ProgressMode mode);
  virtual ~ProgressView() = default;

  /// Takes any event, from any thread.
  virtual void event(const ProgressEvent& event) = 0;
  /// An image was stored (or is about to be pushed): its result line and its
  /// row of the size table.
  virtual void image(const OutputImage& image) = 0;
  /// A push of the image `digest` went to the tags `refs` (`result` unset:
  /// --no-push, it would have); `result` says which tags failed.
  virtual void pushed(const std::vector<std::string>& refs, const Digest& digest,
                      const std::optional<PushResult>& result) = 0;
  /// The build succeeded: the size table of every image().
  virtual void finish() = 0;

  /// This view's events as a sink for the builder and transfer meters.
  ProgressSink sink() {
    return [this](const ProgressEvent& e) { event(e); };
  }
};

}  // namespace imgbuild
