#!/usr/bin/env bash
# scripts/check-floors passes on src/ and fails, naming the include, on copies
# of src/ that break the order in each way it knows: a floor reaching up, two
# peers including each other, a folder src/floors does not place, a Lua header
# below lua/.
set -euo pipefail
root=$1
check=$root/scripts/check-floors
"$check" "$root/src"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# expect_failure NAME FILE LINE MESSAGE: a copy of src/ with LINE prepended
# to FILE must fail the check with MESSAGE.
expect_failure() {
  local name=$1 file=$2 line=$3 message=$4 tree=$work/$1
  cp -r "$root/src" "$tree"
  mkdir -p "$(dirname "$tree/$file")"
  { printf '%s\n' "$line"; cat "$tree/$file" 2>/dev/null || true; } > "$tree/$file.new"
  mv "$tree/$file.new" "$tree/$file"
  if "$check" "$tree" 2> "$work/$name.err"; then
    echo "FAIL $name: check-floors passed"; exit 1
  fi
  if ! grep -qF -- "$message" "$work/$name.err"; then
    echo "FAIL $name: expected «$message», got:"; cat "$work/$name.err"; exit 1
  fi
  echo "ok $name"
}

expect_failure up oci/digest.hpp '#include "build/graph.hpp"' \
  'src/oci/digest.hpp:1: oci/ includes "build/graph.hpp", which is not below it in src/floors'
expect_failure sideways inspect/doctor.cpp '#include "sandbox/sandbox.hpp"' \
  'src/inspect/doctor.cpp:1: inspect/ includes "sandbox/sandbox.hpp"'
expect_failure unplaced extra/thing.hpp '#pragma once' \
  'src/extra/: a folder that src/floors does not place'
expect_failure lua_below layer/layer.hpp '#include <lua.h>' \
  'src/layer/layer.hpp:1: layer/ includes <lua.h>: only lua/ may include Lua headers'
