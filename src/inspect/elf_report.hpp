#pragma once
// What inspect_elf found, in the two forms it is shown in: JSON for programs
// (`imgbuild check --json`, and the Lua table the recipe function inspect(path)
// returns) and a few lines of text for people (`imgbuild check`).
#include <string>

#include <nlohmann/json.hpp>

#include "inspect/elf.hpp"

namespace imgbuild {

/// The machine-readable form of `info`. A non-ELF file is {"elf": false} and
/// nothing else; an ELF file has every key below, so a reader never has to ask
/// whether one is there:
///   elf           true
///   class         32 or 64
///   endian        "little" or "big"
///   machine       ElfInfo::machine: "x86_64", "aarch64", ..., "unknown(N)"
///   architecture  the OCI name (oci_architecture): "amd64", "arm64", ...;
///                 null when OCI has none for the machine
///   linking       "static", "static-pie" or "dynamic"
///   static        true for static and static-pie: the image needs no loader
///                 and no shared library for it
///   interpreter   the PT_INTERP path, or null
///   needed        DT_NEEDED sonames in file order (empty array when none)
///   stripped      true when there is no symbol table
///   go            null, or for a Go executable an object:
///                   version, path, main_version (strings; "" when absent),
///                   settings (object: build setting -> value, the first one
///                   when a key repeats; JSON objects keep no order),
///                   deps (array of module paths),
///                   uses_x509, embeds_tzdata, loads_zoneinfo (booleans)
/// Strings read from the file that are not valid UTF-8 have each bad byte
/// replaced by U+FFFD, so dump() never throws on a hostile file.
nlohmann::json elf_json(const ElfInfo& info);

/// A short report for people: one line naming the file and what it is, then
/// what the image must contain for it to run, each line ending in "\n":
///   build/app: ELF 64-bit little-endian x86_64 (linux/amd64), static, stripped
///     go1.19.8 example.com/app (devel); CGO_ENABLED=0 GOOS=linux GOARCH=amd64
///     crypto/x509: linked (needs CA certificates in the image)
///     time zones: loaded by name (needs /usr/share/zoneinfo in the image)
/// A dynamic file gets "interpreter ..., needs ..." and a line saying the
/// image must contain them; a non-ELF file is the single line
/// "NAME: not an ELF file". Control characters in strings read from the file
/// are shown as \xNN, so a crafted file cannot forge report lines.
std::string elf_text_report(const std::string& name, const ElfInfo& info);

}  // namespace imgbuild
