#!/usr/bin/env bash
# Every example is built by an end-to-end test: each examples/NAME is named by
# at least one tests/e2e script, which builds it and checks its image with the
# doctor and oci_validate.py. A new example without a test fails here.
#
#   tests/e2e/examples_tested.sh REPO_ROOT
set -uo pipefail
ROOT=$(realpath "$1")
source "$ROOT/tests/e2e/lib.sh"
work=$(mktemp -d /tmp/imgbuild-e2e-examples.XXXXXX)
trap 'rm -rf "$work"' EXIT

step "each example has an end-to-end test that validates its image"
for dir in "$ROOT"/examples/*/; do
  name=$(basename "$dir")
  mapfile -t scripts < <(grep -lE "examples/$name([^a-z-]|$)" "$ROOT"/tests/e2e/*.sh | grep -v /examples_tested.sh)
  check "examples/$name is built by an e2e script (${scripts[*]##*/})" test "${#scripts[@]}" -gt 0
  check "examples/$name: one of them runs oci_validate.py" grep -q oci_validate /dev/null "${scripts[@]}"
done

finish
