#!/usr/bin/env bash
# imgbuild sbom: the SPDX 2.3 and CycloneDX 1.6 documents of examples/hello,
# of a Go service with real dependencies (Debian's Go library sources through
# a module proxy in a folder, so go.sum holds real h1: hashes) and of an image
# holding apk and dpkg databases, checked against the official schemas, `go
# version -m`, the files' own checksums and a second build elsewhere; and the
# provenance a build keeps beside an image built on a registry's base.
#
#   tests/e2e/sbom.sh IMGBUILD REPO_ROOT
set -uo pipefail
source "$(dirname "$0")/lib.sh"
e2e_workspace "$@"
share_go_cache
export SOURCE_DATE_EPOCH=1700000000
schema="$ROOT/../shared/schemas/spdx-2.3.schema.json"
spdx_valid() {
  python3 -c 'import json, sys, jsonschema; jsonschema.validate(json.load(open(sys.argv[1])), json.load(open(sys.argv[2])))' \
    "$1" "$schema"
}
# cdx_valid FILE: the CycloneDX project's own validator (scripts/setup installs it).
cdx_node=/opt/imgbuild-test-node/node_modules
[[ -d $cdx_node/@cyclonedx/cyclonedx-library ]] || skip "no CycloneDX validator in $cdx_node: run scripts/setup --deps"
cdx_valid() { NODE_PATH=$cdx_node node "$ROOT/tests/e2e/cyclonedx_validate.js" "$1"; }
# cdx_purls FILE: every package URL a CycloneDX document lists, sorted.
cdx_purls() { jq -r '.components[].purl // empty' "$1" | sort; }
# purls FILE: every package URL the document lists, sorted.
purls() { jq -r '.packages[].externalRefs[]? | select(.referenceType == "purl") | .referenceLocator' "$1" | sort; }

step "examples/hello: the same SBOM from the store, from an OCI layout and from another checkout"
check_cmd "$IMGBUILD" "$ROOT/examples/hello/recipe.lua" -o "oci:$work/oci"
digest=$(jq -r '.manifests[0].digest' "$work/oci/index.json")
check_cmd "$IMGBUILD" sbom hello
cp "$work/last.out" "$work/hello.spdx.json"
check "valid against the SPDX 2.3 schema" spdx_valid "$work/hello.spdx.json"
check "it describes the image by its digest" \
  jq -e --arg d "$digest" '.packages[] | select(.SPDXID == "SPDXRef-Image") | .versionInfo == $d' "$work/hello.spdx.json"
check "the Go program, its toolchain and build settings" jq -e '.packages[] | select(.name == "example.com/hello")
  | .packageFileName == "/app" and (.comment | test("^built by go[0-9.]+ with .*CGO_ENABLED=0"))' "$work/hello.spdx.json"
check "the standard library as pkg:golang/stdlib" grep -qx "pkg:golang/stdlib@$(go env GOVERSION | sed s/^go//)" \
  <(purls "$work/hello.spdx.json")
umoci raw unpack --rootless --image "$work/oci:hello" "$work/hello-root" >/dev/null 2>&1
check "the file /app with the SHA-256 of its bytes" jq -e --arg s "$(sha256sum <"$work/hello-root/app" | cut -d' ' -f1)" \
  '.files[] | select(.fileName == "./app") | .checksums[] | select(.algorithm == "SHA256") | .checksumValue == $s' "$work/hello.spdx.json"
check "and its SHA-1" jq -e --arg s "$(sha1sum <"$work/hello-root/app" | cut -d' ' -f1)" \
  '.files[] | select(.fileName == "./app") | .checksums[] | select(.algorithm == "SHA1") | .checksumValue == $s' "$work/hello.spdx.json"
"$IMGBUILD" sbom "oci:$work/oci:hello" >"$work/hello-oci.spdx.json" 2>"$work/last.err"
check "oci:DIR:hello gives the same bytes" cmp "$work/hello.spdx.json" "$work/hello-oci.spdx.json"
other_checkout "$work/checkout2"
XDG_DATA_HOME="$work/data2" XDG_CACHE_HOME="$work/cache2" \
  check_cmd "$IMGBUILD" "$work/checkout2/examples/hello/recipe.lua"
XDG_DATA_HOME="$work/data2" "$IMGBUILD" sbom hello >"$work/hello2.spdx.json" 2>"$work/last.err"
check "another checkout and a cold cache: byte-identical SBOM" cmp "$work/hello.spdx.json" "$work/hello2.spdx.json"
"$IMGBUILD" sbom hello --format cyclonedx >"$work/hello.cdx.json" 2>"$work/last.err"
check "CycloneDX: valid for the CycloneDX library's strict validator" cdx_valid "$work/hello.cdx.json"
check "CycloneDX: the image by its digest" jq -e --arg d "$digest" '.metadata.component.version == $d' "$work/hello.cdx.json"
check "CycloneDX: the same purls as SPDX" diff <(purls "$work/hello.spdx.json" | grep -v '^pkg:oci/') <(cdx_purls "$work/hello.cdx.json")
check "CycloneDX: /app with the SHA-256 of its bytes" jq -e --arg s "$(sha256sum <"$work/hello-root/app" | cut -d' ' -f1)" \
  '.components[] | select(.type == "file" and .name == "/app") | .hashes[] | select(.alg == "SHA-256") | .content == $s' \
  "$work/hello.cdx.json"
XDG_DATA_HOME="$work/data2" "$IMGBUILD" sbom "oci:$work/oci:hello" --format cyclonedx >"$work/hello2.cdx.json" 2>"$work/last.err"
check "CycloneDX: byte-identical from an OCI layout and another store" cmp "$work/hello.cdx.json" "$work/hello2.cdx.json"
"$IMGBUILD" sbom hello --format xml >"$work/last.out" 2>"$work/last.err"
check "an unknown --format: a usage error (exit 2)" test $? -eq 2
check "naming the formats" grep -q "expected spdx or cyclonedx" "$work/last.err"

step "a Go service with real dependencies: every module of go version -m, with its version and sum"
python3 "$ROOT/tests/e2e/goproxy.py" "$work/goproxy" \
  github.com/pkg/errors@v0.9.1=/usr/share/gocode/src/github.com/pkg/errors \
  github.com/opencontainers/go-digest@v1.0.0=/usr/share/gocode/src/github.com/opencontainers/go-digest
svc="$work/svc"
mkdir -p "$svc"
cat >"$svc/main.go" <<'GO'
package main

import (
	"fmt"

	"github.com/opencontainers/go-digest"
	"github.com/pkg/errors"
)

func main() { fmt.Println(errors.Wrap(fmt.Errorf("%s", digest.FromString("svc")), "svc")) }
GO
printf 'module example.com/svc\n\ngo 1.19\n\nrequire (\n\tgithub.com/opencontainers/go-digest v1.0.0\n\tgithub.com/pkg/errors v0.9.1\n)\n' >"$svc/go.mod"
goenv=(env -u GOFLAGS GOENV=off GOWORK=off GOSUMDB=off GOMODCACHE="$work/gomod" CGO_ENABLED=0)
(cd "$svc" && "${goenv[@]}" GOPROXY="file://$work/goproxy" GOFLAGS=-mod=mod go mod tidy &&
  "${goenv[@]}" GOPROXY=off go build -trimpath -o svc .) >"$work/go.log" 2>&1
check "the service builds from the module proxy" test -x "$svc/svc"
check "go.sum holds real hashes" grep -q '^github.com/pkg/errors v0.9.1 h1:' "$svc/go.sum"
printf 'image("svc", scratch:copy("svc", "/svc"):entrypoint { "/svc" })\n' >"$svc/recipe.lua"
check_cmd "$IMGBUILD" "$svc/recipe.lua" --ignore root
"$IMGBUILD" sbom svc >"$work/svc.spdx.json" 2>"$work/last.err"
check "valid against the SPDX 2.3 schema" spdx_valid "$work/svc.spdx.json"
go version -m "$svc/svc" | awk '$1 == "dep" { print $2, $3, $4 }' | sort >"$work/go-deps.txt"
jq -r '.packages[] | select(.SPDXID | startswith("SPDXRef-GoModule-")) | [.name, .versionInfo, (.comment | sub("^go.sum "; ""))] | join(" ")' \
  "$work/svc.spdx.json" | sort >"$work/sbom-deps.txt"
check "the same modules, versions and sums as go version -m ($(wc -l <"$work/go-deps.txt") modules)" \
  diff "$work/go-deps.txt" "$work/sbom-deps.txt"
check "go version -m lists them at all" test -s "$work/go-deps.txt"
check "each as a pkg:golang purl" grep -qx 'pkg:golang/github.com/pkg/errors@v0.9.1' <(purls "$work/svc.spdx.json")
# h1: is the base64 of a SHA-256; SPDX's checksum is its hex.
sum=$(awk '$1 == "github.com/pkg/errors" { print $3 }' "$work/go-deps.txt")
hex=$(printf '%s' "${sum#h1:}" | base64 -d | od -An -tx1 | tr -d ' \n')
check "and the h1: sum as its SHA-256 checksum" jq -e --arg h "$hex" \
  '.packages[] | select(.name == "github.com/pkg/errors") | .checksums[0] == {"algorithm": "SHA256", "checksumValue": $h}' \
  "$work/svc.spdx.json"
"$IMGBUILD" sbom svc --format cyclonedx >"$work/svc.cdx.json" 2>"$work/last.err"
check "CycloneDX: valid" cdx_valid "$work/svc.cdx.json"
jq -r '.components[] | select(.["bom-ref"] | startswith("GoModule-")) | [.name, .version, (.properties[] | select(.name == "imgbuild:go:sum") | .value)] | join(" ")' \
  "$work/svc.cdx.json" | sort >"$work/cdx-deps.txt"
check "CycloneDX: the same modules, versions and sums as go version -m" diff "$work/go-deps.txt" "$work/cdx-deps.txt"
check "CycloneDX: the h1: sum as the module's SHA-256" jq -e --arg h "$hex" \
  '.components[] | select(.name == "github.com/pkg/errors") | .hashes == [{"alg": "SHA-256", "content": $h}]' "$work/svc.cdx.json"
check "the program depends on each module" jq -e '[.relationships[] | select(.relationshipType == "DEPENDS_ON"
  and (.spdxElementId | startswith("SPDXRef-Go-1-")) and (.relatedSpdxElement | startswith("SPDXRef-GoModule-")))] | length == 2' \
  "$work/svc.spdx.json"

step "package databases: apk and dpkg packages as purls of the image's distribution"
pkgs="$work/pkgs"
mkdir -p "$pkgs/root/etc" "$pkgs/root/lib/apk/db" "$pkgs/root/var/lib/dpkg/status.d"
printf 'ID=alpine\nVERSION_ID=3.20.3\n' >"$pkgs/root/etc/os-release"
printf 'P:musl\nV:1.2.5-r0\nA:x86_64\nL:MIT\no:musl\n\nP:busybox\nV:1.36.1-r29\nA:x86_64\nL:GPL-2.0-only\n' \
  >"$pkgs/root/lib/apk/db/installed"
printf 'Package: tzdata\nStatus: install ok installed\nVersion: 2024a-0+deb12u1\nArchitecture: all\n' \
  >"$pkgs/root/var/lib/dpkg/status.d/tzdata"
printf 'image("pkgs", scratch:copy("root/", "/"))\n' >"$pkgs/recipe.lua"
check_cmd "$IMGBUILD" "$pkgs/recipe.lua"
"$IMGBUILD" sbom pkgs >"$work/pkgs.spdx.json" 2>"$work/last.err"
check "valid against the SPDX 2.3 schema" spdx_valid "$work/pkgs.spdx.json"
purls "$work/pkgs.spdx.json" | grep -v '^pkg:oci/' >"$work/pkgs-purls.txt"
printf '%s\n' 'pkg:apk/alpine/busybox@1.36.1-r29?arch=x86_64&distro=alpine-3.20.3' \
  'pkg:apk/alpine/musl@1.2.5-r0?arch=x86_64&distro=alpine-3.20.3' \
  'pkg:deb/alpine/tzdata@2024a-0%2Bdeb12u1?arch=all&distro=alpine-3.20.3' | sort >"$work/pkgs-expected.txt"
check "exactly the packages of both databases" diff "$work/pkgs-expected.txt" "$work/pkgs-purls.txt"
"$IMGBUILD" sbom pkgs --format cyclonedx >"$work/pkgs.cdx.json" 2>"$work/last.err"
check "CycloneDX: valid" cdx_valid "$work/pkgs.cdx.json"
check "CycloneDX: exactly the same packages" diff "$work/pkgs-expected.txt" <(cdx_purls "$work/pkgs.cdx.json")

step "provenance: kept beside an image built on a registry's base, in a git checkout"
here "registry" registry_start open
here "the seed images" seed_images "$REGISTRY_open"
app="$work/app"
mkdir -p "$app"
printf 'hello\n' >"$app/greeting.txt"
cat >"$app/recipe.lua" <<LUA
local token = param("deploy_token", "")
image("app", from("$REGISTRY_open/base/busybox:oci"):copy("greeting.txt", "/greeting.txt")
  :env { GREETING = param("greeting", "hi") })
LUA
git -C "$app" init -q && git -C "$app" add -A &&
  git -C "$app" -c user.name=t -c user.email=t@example.invalid commit -qm app &&
  git -C "$app" remote add origin "https://ci:remote-pass-4711@git.example.invalid/team/app.git"
check_cmd "$IMGBUILD" "$app/recipe.lua" -o "oci:$work/app-oci" \
  --set deploy_token=tok-secret-0815 --set greeting=hello-there
app_digest=$(jq -r '.manifests[0].digest' "$work/app-oci/index.json")
statement="$XDG_DATA_HOME/imgbuild/provenance/sha256-${app_digest#sha256:}.intoto.json"
check "the statement is in the store by the image's digest" test -s "$statement"
check "an in-toto statement v1 of SLSA provenance v1" jq -e '._type == "https://in-toto.io/Statement/v1"
  and .predicateType == "https://slsa.dev/provenance/v1"' "$statement"
check "its subject is the image's manifest digest" jq -e --arg d "${app_digest#sha256:}" \
  '.subject == [{"name": "app", "digest": {"sha256": $d}}]' "$statement"
base_digest=$(skopeo inspect --raw --tls-verify=false "docker://$REGISTRY_open/base/busybox:oci" | sha256sum | cut -d' ' -f1)
check "the base by the registry's manifest digest" jq -e --arg d "$base_digest" --arg r "$REGISTRY_open/base/busybox:oci" \
  '.predicate.buildDefinition.resolvedDependencies[] | select(.name == $r) | .digest.sha256 == $d' "$statement"
check "the recipe by path and SHA-256" jq -e --arg s "$(sha256sum <"$app/recipe.lua" | cut -d' ' -f1)" \
  '.predicate.buildDefinition.externalParameters.recipe == {"path": "recipe.lua", "digest": {"sha256": $s}}' "$statement"
check "the context's commit, the remote without its password" jq -e --arg c "$(git -C "$app" rev-parse HEAD)" \
  '.predicate.buildDefinition.resolvedDependencies[] | select(.name == "context")
   | . == {"name": "context", "uri": "git+https://git.example.invalid/team/app.git", "digest": {"gitCommit": $c}}' "$statement"
check "a plain parameter as given" jq -e '.predicate.buildDefinition.externalParameters.parameters.greeting == "hello-there"' \
  "$statement"
check "no secret: neither the token parameter's value nor the remote's password" \
  bash -c '! grep -rqE "tok-secret-0815|remote-pass-4711" "$1"' _ "$XDG_DATA_HOME/imgbuild/provenance"
check "imgbuild's version" jq -e --arg v "$("$IMGBUILD" --version | cut -d' ' -f2)" \
  '.predicate.runDetails.builder.version.imgbuild == $v' "$statement"
cp "$statement" "$work/statement1.json"
check_cmd "$IMGBUILD" "$app/recipe.lua" \
  --set deploy_token=tok-secret-0815 --set greeting=hello-there
check "built again: byte-identical" cmp "$work/statement1.json" "$statement"
"$IMGBUILD" sbom app --format cyclonedx >"$work/app.cdx.json" 2>"$work/last.err"
check "CycloneDX of an image on a base: valid" cdx_valid "$work/app.cdx.json"
check "CycloneDX: the base by its digest" jq -e --arg d "sha256:$base_digest" \
  '.metadata.component.pedigree.ancestors[0].version == $d' "$work/app.cdx.json"

step "errors"
"$IMGBUILD" sbom nothing-here >"$work/last.out" 2>"$work/last.err"
check "an unknown image: exit 1" test $? -eq 1
check "and a message naming it" grep -q "no image named 'nothing-here' in " "$work/last.err"
"$IMGBUILD" sbom >"$work/last.out" 2>"$work/last.err"
check "no image: a usage error (exit 2)" test $? -eq 2

finish
