#include "cli/progress.hpp"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/text.hpp"

namespace imgbuild {

namespace {

using Clock = std::chrono::steady_clock;
using json = nlohmann::json;

/// "0.4s", "12.3s", "2m05s".
std::string duration_text(double seconds) {
  char buf[32];
  if (seconds < 60)
    std::snprintf(buf, sizeof buf, "%.1fs", seconds);
  else
    std::snprintf(buf, sizeof buf, "%dm%02ds", static_cast<int>(seconds) / 60, static_cast<int>(seconds) % 60);
  return buf;
}

/// "+1.9 MB", "-12.0 kB", "+0 B".
std::string signed_size(int64_t delta) {
  return (delta < 0 ? "-" : "+") + human_size(static_cast<uint64_t>(delta < 0 ? -delta : delta));
}

/// "pull docker.io/library/alpine:3.20  4f4fb700ef54": which blob a transfer line is about.
std::string transfer_name(const TransferProgressed& t) {
  return std::string(to_string(t.direction)) + " " + t.ref + "  " + std::string(t.digest.short_hex());
}

std::string rate_text(double bytes_per_second) { return human_size(static_cast<uint64_t>(bytes_per_second)) + "/s"; }

/// Where a step is: its recipe line, after its platform when the build makes
/// images for several ("[linux/arm64] recipe.lua:5").
template <class StepEvent>
std::string step_at(const StepEvent& e) {
  return e.platform.empty() ? e.loc : "[" + e.platform + "] " + e.loc;
}

/// The line plain output prints for an event, as a CI log shows it; none for
/// events a later line covers (a step's start, but a RUN step's, which
/// frames its output; a blob still moving). A step's output is shown
/// through printable_text(), unless `raw_output` (--progress raw) asks for
/// its bytes as they came.
std::optional<std::string> plain_line(const ProgressEvent& event, bool raw_output) {
  if (auto* s = std::get_if<StepStarted>(&event))
    return s->kind == StepKind::Run && !s->cached ? std::optional(step_at(*s) + "  " + s->description) : std::nullopt;
  if (auto* o = std::get_if<StepOutput>(&event))
    return step_at(*o) + " | " + (raw_output ? o->line : printable_text(o->line));
  if (auto* n = std::get_if<StepNotice>(&event)) return step_at(*n) + "  " + n->message;
  if (auto* e = std::get_if<StepEnded>(&event)) {
    std::string line = step_at(*e) + "  " + e->description;
    if (e->status == StepStatus::Cached) return line + "  (cached)";
    if (e->status == StepStatus::Failed) return line + "  (failed after " + duration_text(e->seconds) + ")";
    if (e->kind == StepKind::Config) return line;
    if (e->layer_size) line += "  " + human_size(*e->layer_size);
    return line + "  (" + duration_text(e->seconds) + ")";
  }
  const auto& t = std::get<TransferProgressed>(event);
  if (!t.finished) return std::nullopt;
  return transfer_name(t) + "  " + human_size(t.total) + " in " + duration_text(t.seconds) + " (" +
         rate_text(t.rate()) + ")";
}

/// Writes all of `text` to stderr in one go (stderr is unbuffered: a partial
/// write would show half a frame).
void write_stderr(const std::string& text) {
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::write(STDERR_FILENO, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // a closed stderr loses progress, never the build
    done += static_cast<size_t>(n);
  }
}

/// The size table: one row per image, figures as imgbuild(1) defines them.
std::string size_table(const std::vector<OutputImage>& images) {
  std::vector<std::vector<std::string>> rows = {
      {"IMAGE", "DIGEST", "LAYERS", "COMPRESSED", "UNCOMPRESSED", "VS BASE", "VS PREVIOUS"}};
  for (auto& img : images) {
    const BuiltImage& b = img.built;
    std::string vs_base = signed_size(static_cast<int64_t>(b.compressed - b.base_compressed)) + " over " +
                          (b.base.empty() ? std::string("scratch") : b.base);
    std::string vs_previous =
        !img.previous ? "new"
        : img.previous->digest == b.manifest.digest
            ? "unchanged"
            : signed_size(static_cast<int64_t>(b.compressed) - static_cast<int64_t>(img.previous->compressed));
    rows.push_back({img.name, "sha256:" + std::string(b.manifest.digest.short_hex()),
                    std::to_string(b.image.layers.size()), human_size(b.compressed), human_size(b.uncompressed),
                    vs_base, vs_previous});
  }
  std::vector<size_t> width(rows[0].size());
  for (auto& r : rows)
    for (size_t c = 0; c < r.size(); ++c) width[c] = std::max(width[c], r[c].size());
  // Figures right-aligned, words left-aligned.
  auto right = [](size_t c) { return c >= 2 && c <= 4; };
  std::string out;
  for (auto& r : rows) {
    std::string line;
    for (size_t c = 0; c < r.size(); ++c) {
      std::string pad(width[c] - r[c].size(), ' ');
      line += (c ? "  " : "") + (right(c) ? pad + r[c] : r[c] + (c + 1 < r.size() ? pad : ""));
    }
    out += line + "\n";
  }
  return out;
}

/// --progress plain and raw, and the parts of tty that do not move: events
/// as lines on stderr, results on stdout, the size table at the end.
class PlainView : public ProgressView {
public:
  explicit PlainView(bool raw_output) : raw_output_(raw_output) {}

  void event(const ProgressEvent& e) override {
    std::lock_guard lock(mutex_);
    if (auto line = plain_line(e, raw_output_)) {
      write_stderr("  " + *line + "\n");
    } else if (auto* t = std::get_if<TransferProgressed>(&e)) {
      // A long transfer shows it is alive, every 10 seconds.
      auto& last = shown_[t->ref + t->digest.str()];
      if (t->seconds - last >= 10) {
        last = t->seconds;
        write_stderr("  " + transfer_name(*t) + "  " + human_size(t->done) + " of " + human_size(t->total) + " (" +
                     rate_text(t->rate()) + ")\n");
      }
    }
  }

  void image(const OutputImage& img) override {
    std::lock_guard lock(mutex_);
    const BuiltImage& b = img.built;
    std::cout << img.name << "  " << b.manifest.digest.str() << "  " << human_size(b.size) << "  ("
              << b.image.layers.size() << (b.image.layers.size() == 1 ? " layer" : " layers") << ")" << std::endl;
    images_.push_back(img);
  }

  void pushed(const std::vector<std::string>& refs, const Digest& digest, const std::optional<PushResult>& r) override {
    std::lock_guard lock(mutex_);
    if (!r) {
      for (auto& ref : refs) std::cout << "would push " << ref << "@" << digest.str() << " (--no-push)" << std::endl;
      return;
    }
    print_push(*r);
  }

  void finish() override {
    std::lock_guard lock(mutex_);
    if (!images_.empty()) write_stderr("\n" + size_table(images_));
  }

protected:
  std::mutex mutex_;

private:
  bool raw_output_;  ///< a step's output as it came (--progress raw)
  std::map<std::string, double> shown_;
  std::vector<OutputImage> images_;
};

/// --progress tty: the lines plain output prints, except the starts, scroll
/// above a live block of what is under way (running steps with their time,
/// moving blobs with bytes and rate), redrawn in place.
class TtyView : public PlainView {
public:
  TtyView() : PlainView(false), ticker_([this] { tick(); }) {}
  ~TtyView() override {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    wake_.notify_all();
    ticker_.join();
    write_stderr(erase());
  }

  void event(const ProgressEvent& e) override {
    std::lock_guard lock(mutex_);
    std::string out = erase();
    if (auto* s = std::get_if<StepStarted>(&e)) {
      if (!s->cached) running_[s->step] = Running{step_at(*s) + "  " + s->description, Clock::now()};
    } else if (auto* t = std::get_if<TransferProgressed>(&e)) {
      if (t->finished)
        transfers_.erase(t->ref + t->digest.str());
      else
        transfers_.insert_or_assign(t->ref + t->digest.str(), *t);
    } else if (auto* end = std::get_if<StepEnded>(&e)) {
      running_.erase(end->step);
    }
    if (auto line = plain_line(e, false); line && !std::holds_alternative<StepStarted>(e)) out += "  " + *line + "\n";
    out += draw();
    write_stderr(out);
  }

  void image(const OutputImage& img) override {
    above([&] { PlainView::image(img); });
  }
  void pushed(const std::vector<std::string>& refs, const Digest& digest, const std::optional<PushResult>& r) override {
    above([&] { PlainView::pushed(refs, digest, r); });
  }
  void finish() override {
    above([&] { PlainView::finish(); });
  }

private:
  struct Running {
    std::string text;
    Clock::time_point start;
  };

  /// Prints with the live block out of the way (stdout shares the terminal).
  template <class Print>
  void above(const Print& print) {
    {
      std::lock_guard lock(mutex_);
      write_stderr(erase());
    }
    print();
    std::lock_guard lock(mutex_);
    write_stderr(draw());
  }

  /// Moves back over the block drawn last, clearing it line by line. Not
  /// with "clear to the end of the screen": from the top left corner that
  /// clears the whole screen, which tmux copies into its history first.
  std::string erase() {
    std::string out = drawn_ ? "\r" : "";
    for (; drawn_ > 0; --drawn_) out += "\x1b[1A\x1b[2K";
    return out;
  }

  /// Draws the block; erase() takes it away again.
  std::string draw() {
    auto [text, lines] = frame();
    frame_ = text;
    drawn_ = lines;
    return text;
  }

  /// The block and its number of lines, each line cut to the terminal's
  /// width so none wraps: a wrapped line would take two rows, and erase()
  /// would leave one behind.
  std::pair<std::string, size_t> frame() const {
    winsize ws{};
    size_t columns = 80, rows = 24;
    if (::ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) {
      columns = ws.ws_col;
      rows = ws.ws_row;
    }
    std::vector<std::string> lines;
    auto now = Clock::now();
    for (auto& [id, r] : running_)
      lines.push_back("  " + r.text + "  running " +
                      duration_text(std::chrono::duration<double>(now - r.start).count()));
    for (auto& [key, t] : transfers_)
      lines.push_back("  " + transfer_name(t) + "  " + human_size(t.done) + " / " + human_size(t.total) + "  " +
                      rate_text(t.rate()));
    size_t room = rows > 3 ? rows - 2 : 1;
    if (lines.size() > room) {
      size_t hidden = lines.size() - (room - 1);
      lines.resize(room - 1);
      lines.push_back("  ... and " + std::to_string(hidden) + " more");
    }
    std::string out;
    for (auto& l : lines) out += fit(l, columns - 1) + "\n";
    return {out, lines.size()};
  }

  /// `line` cut to `columns` characters (UTF-8 aware), ending in "..." when cut.
  static std::string fit(const std::string& line, size_t columns) {
    size_t chars = 0;
    for (size_t i = 0; i < line.size(); ++i) {
      if ((static_cast<unsigned char>(line[i]) & 0xC0) == 0x80) continue;
      if (++chars > columns) {
        std::string cut = line.substr(0, i);
        // Room for the dots: drop three more characters.
        for (int n = 0; n < 3 && !cut.empty();) {
          unsigned char c = static_cast<unsigned char>(cut.back());
          cut.pop_back();
          if ((c & 0xC0) != 0x80) ++n;
        }
        return columns >= 3 ? cut + "..." : cut;
      }
    }
    return line;
  }

  /// Redraws the running times while steps run.
  void tick() {
    std::unique_lock lock(mutex_);
    while (!stop_) {
      wake_.wait_for(lock, std::chrono::milliseconds(200));
      // Times shown in tenths of a second: most ticks change the frame.
      if (!stop_ && !running_.empty() && frame().first != frame_) write_stderr(erase() + draw());
    }
  }

  std::map<size_t, Running> running_;
  std::map<std::string, TransferProgressed> transfers_;
  size_t drawn_ = 0;   ///< lines of the block on the screen
  std::string frame_;  ///< and what they say
  bool stop_ = false;
  std::condition_variable wake_;
  std::thread ticker_;
};

/// The "platform" of a step's JSON event: its name, or null when the build
/// makes images for one platform only.
json platform_json(const std::string& platform) { return platform.empty() ? json(nullptr) : json(platform); }

/// --progress json: every event and result as one JSON object a line on
/// stdout (the schema is in imgbuild(1)).
class JsonView : public ProgressView {
public:
  void event(const ProgressEvent& e) override {
    json j;
    if (auto* s = std::get_if<StepStarted>(&e)) {
      j = {{"event", "step_start"},        {"step", s->step},     {"loc", s->loc},
           {"kind", to_string(s->kind)},   {"cached", s->cached}, {"platform", platform_json(s->platform)},
           {"description", s->description}};
    } else if (auto* o = std::get_if<StepOutput>(&e)) {
      j = {{"event", "output"},
           {"step", o->step},
           {"loc", o->loc},
           {"platform", platform_json(o->platform)},
           {"line", o->line}};
    } else if (auto* n = std::get_if<StepNotice>(&e)) {
      j = {{"event", "notice"},
           {"step", n->step},
           {"loc", n->loc},
           {"platform", platform_json(n->platform)},
           {"message", n->message}};
    } else if (auto* end = std::get_if<StepEnded>(&e)) {
      j = {{"event", "step_end"},
           {"step", end->step},
           {"loc", end->loc},
           {"platform", platform_json(end->platform)},
           {"kind", to_string(end->kind)},
           {"description", end->description},
           {"status", to_string(end->status)},
           {"seconds", end->seconds},
           {"layer_size", end->layer_size ? json(*end->layer_size) : json(nullptr)}};
    } else {
      const auto& t = std::get<TransferProgressed>(e);
      j = {{"event", "transfer"},   {"direction", to_string(t.direction)},
           {"ref", t.ref},          {"digest", t.digest.str()},
           {"done", t.done},        {"total", t.total},
           {"seconds", t.seconds},  {"rate", t.rate()},
           {"finished", t.finished}};
    }
    write(std::move(j));
  }

  void image(const OutputImage& img) override {
    const BuiltImage& b = img.built;
    write({{"event", "image"},
           {"name", img.name},
           {"digest", b.manifest.digest.str()},
           {"size", b.size},
           {"layers", b.image.layers.size()},
           {"compressed", b.compressed},
           {"uncompressed", b.uncompressed},
           {"base", b.base.empty() ? json(nullptr) : json(b.base)},
           {"base_compressed", b.base_compressed},
           {"vs_base", static_cast<int64_t>(b.compressed - b.base_compressed)},
           {"previous", img.previous ? json(img.previous->digest.str()) : json(nullptr)},
           {"previous_compressed", img.previous ? json(img.previous->compressed) : json(nullptr)},
           {"vs_previous",
            img.previous ? json(static_cast<int64_t>(b.compressed) - static_cast<int64_t>(img.previous->compressed))
                         : json(nullptr)}});
  }

  void pushed(const std::vector<std::string>& refs, const Digest& digest, const std::optional<PushResult>& r) override {
    // "ref" is the first tag, as it was when a push had only one.
    json j = {
        {"event", "push"}, {"ref", refs.front()}, {"refs", refs}, {"digest", digest.str()}, {"pushed", r.has_value()}};
    if (r) {
      j["uploaded"] = r->uploaded;
      j["mounted"] = r->mounted;
      j["present"] = r->present;
      j["bytes"] = r->bytes;
      j["manifests"] = r->manifests;
      json failed = json::array();
      for (auto& t : r->tags)
        if (!t.error.empty()) failed.push_back({{"ref", t.dest.str()}, {"error", t.error}});
      j["failed"] = std::move(failed);
    }
    write(std::move(j));
  }

  void finish() override {}

private:
  void write(json j) {
    std::lock_guard lock(mutex_);
    j["time"] = std::chrono::duration<double>(Clock::now() - start_).count();
    // A program's output need not be UTF-8: invalid bytes become U+FFFD.
    std::cout << j.dump(-1, ' ', false, json::error_handler_t::replace) << std::endl;
  }

  std::mutex mutex_;
  Clock::time_point start_ = Clock::now();
};

}  // namespace

std::optional<ProgressMode> parse_progress_mode(const std::string& text) {
  if (text == "auto") return ProgressMode::Auto;
  if (text == "tty") return ProgressMode::Tty;
  if (text == "plain") return ProgressMode::Plain;
  if (text == "json") return ProgressMode::Json;
  if (text == "raw") return ProgressMode::Raw;
  return std::nullopt;
}

void print_push(const PushResult& r) {
  for (auto& t : r.tags)
    if (t.error.empty()) std::cout << "pushed " << t.dest.str() << "@" << r.digest.str() << std::endl;
  std::string what = r.tags.size() == 1 ? r.tags.front().dest.str() : std::to_string(r.tags.size()) + " tags";
  std::cerr << "  " << what << ": " << r.uploaded << " uploaded (" << human_size(r.bytes) << "), " << r.mounted
            << " mounted, " << r.present << " already there, " << r.manifests
            << (r.manifests == 1 ? " manifest" : " manifests") << " put\n";
}

std::unique_ptr<ProgressView> ProgressView::make(ProgressMode mode) {
  if (mode == ProgressMode::Json) return std::make_unique<JsonView>();
  const char* term = std::getenv("TERM");
  bool terminal = ::isatty(STDERR_FILENO) && term && *term && std::strcmp(term, "dumb") != 0;
  if (mode != ProgressMode::Plain && mode != ProgressMode::Raw && terminal) return std::make_unique<TtyView>();
  return std::make_unique<PlainView>(mode == ProgressMode::Raw);
}

}  // namespace imgbuild
