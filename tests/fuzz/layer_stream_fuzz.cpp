// libFuzzer target for LayerStream, the decoder every layer blob on disk is
// read through (gzip by ISA-L, zstd, plain). Run it through tests/fuzz/run.sh.
//
// Each input is written to a file and decoded whole. A std::runtime_error is
// the documented answer to a damaged blob. When the reference decoder (zlib
// for gzip, joining members as gzip(1) does; libzstd for zstd) also reads the
// input whole, both must give the same bytes: a decoder that hands out other
// bytes than the blob holds is a finding, as is a crash, a sanitizer report,
// another exception, a leak or a run past -timeout.
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <stdexcept>
#include <string>

#include "layer/layer_stream.hpp"

namespace {

void check(bool ok) {
  if (!ok) __builtin_trap();
}

/// zlib's reading of a run of gzip members; nullopt where it fails.
std::optional<std::string> zlib_gunzip(const uint8_t* data, size_t size) {
  std::string out;
  size_t at = 0;
  do {
    z_stream z{};
    if (inflateInit2(&z, 16 + 15) != Z_OK) return std::nullopt;
    z.next_in = const_cast<Bytef*>(data + at);
    z.avail_in = uInt(size - at);
    int rc = Z_OK;
    while (rc == Z_OK) {
      char buf[1 << 14];
      z.next_out = reinterpret_cast<Bytef*>(buf);
      z.avail_out = sizeof buf;
      rc = inflate(&z, Z_NO_FLUSH);
      out.append(buf, sizeof buf - z.avail_out);
      if (rc == Z_BUF_ERROR && z.avail_in == 0) break;
    }
    at = size - z.avail_in;
    inflateEnd(&z);
    if (rc != Z_STREAM_END) return std::nullopt;
  } while (size - at >= 2 && data[at] == 0x1f && data[at + 1] == 0x8b);
  return out;
}

/// libzstd's reading of a run of frames; nullopt where it fails.
std::optional<std::string> zstd_decode(const uint8_t* data, size_t size) {
  ZSTD_DStream* d = ZSTD_createDStream();
  std::string out;
  ZSTD_inBuffer in{data, size, 0};
  size_t rc = 1;
  char buf[1 << 14];
  for (;;) {
    ZSTD_outBuffer o{buf, sizeof buf, 0};
    rc = ZSTD_decompressStream(d, &o, &in);
    if (ZSTD_isError(rc)) break;
    out.append(buf, o.pos);
    if (in.pos == in.size && o.pos < o.size) break;
  }
  ZSTD_freeDStream(d);
  if (ZSTD_isError(rc) || rc != 0) return std::nullopt;
  return out;
}

struct Workspace {
  std::filesystem::path file;
  Workspace() {
    std::string tmpl =
        (std::filesystem::is_directory("/dev/shm") ? "/dev/shm" : "/tmp") + std::string("/imgbuild-stream-fuzz-XXXXXX");
    int fd = ::mkstemp(tmpl.data());
    check(fd >= 0);
    ::close(fd);
    file = tmpl;
  }
  ~Workspace() { ::unlink(file.c_str()); }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Workspace work;
  {
    std::ofstream f(work.file, std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(data), std::streamsize(size));
    check(bool(f));
  }
  std::optional<std::string> ours;
  try {
    imgbuild::LayerStream stream(work.file, "fuzz");
    std::string out;
    for (std::span<const char> bytes; !(bytes = stream.next()).empty();) out.append(bytes.data(), bytes.size());
    check(stream.size() == out.size());
    ours = std::move(out);
  } catch (const std::runtime_error&) {
  }
  std::optional<std::string> reference;
  if (size >= 2 && data[0] == 0x1f && data[1] == 0x8b)
    reference = zlib_gunzip(data, size);
  else if (size >= 4 && (uint32_t(data[0]) | uint32_t(data[1]) << 8 | uint32_t(data[2]) << 16 |
                         uint32_t(data[3]) << 24) == ZSTD_MAGICNUMBER)
    reference = zstd_decode(data, size);
  else if (size >= 4 && (data[0] & 0xf0) == 0x50 && data[1] == 0x2a && data[2] == 0x4d && data[3] == 0x18)
    reference = zstd_decode(data, size);  // a skippable frame first: zstd too
  else if (ours)
    check(*ours == std::string(reinterpret_cast<const char*>(data), size));
  if (ours && reference) check(*ours == *reference);
  return 0;
}
