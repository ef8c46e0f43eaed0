#!/usr/bin/env bash
# Tier 3: what goes with a pushed image. The hello example pushed with a
# signing key carries its SPDX SBOM and its cosign signature as OCI 1.1
# referrers: on Debian's docker-registry (no referrers API: the referrers tag
# schema) and on a stand-in registry with the API. The signature is checked by
# openssl on its own, `imgbuild verify` catches a tampered payload, signature
# and subject, and a provenance about another image, a second push adds
# nothing, `-o oci:DIR` carries them the same way (found by their subject in
# index.json, the image still read by skopeo and umoci), an index of two
# platforms verifies (its signature, each platform's SBOM and provenance)
# pushed and written, one platform's SBOM or provenance tampered or removed
# being named, and the key appears nowhere.
#
#   tests/e2e/sign.sh IMGBUILD REPO_ROOT
set -uo pipefail
source "$(dirname "$0")/lib.sh"
e2e_workspace "$@"
share_go_cache
cd "$work" || exit 1

step "keys: an ECDSA P-256 key as openssl makes it, and wrong ones"
openssl ecparam -name prime256v1 -genkey -noout -out sec1.pem 2>/dev/null
openssl pkcs8 -topk8 -nocrypt -in sec1.pem -out key.pem
openssl ec -in key.pem -pubout -out pub.pem 2>/dev/null
openssl ecparam -name prime256v1 -genkey -noout -out other.pem 2>/dev/null
openssl ec -in other.pem -pubout -out other-pub.pem 2>/dev/null
openssl ecparam -name secp384r1 -genkey -noout -out p384.pem 2>/dev/null
openssl genpkey -algorithm ed25519 -out ed25519.pem 2>/dev/null
openssl pkcs8 -topk8 -in sec1.pem -passout pass:secret -out encrypted.pem
check "the keys were made" test -s key.pem -a -s pub.pem -a -s p384.pem -a -s encrypted.pem

# refused KEY MESSAGE: a build with --sign-key KEY fails with MESSAGE before any work.
refused() {
  "$IMGBUILD" "$ROOT/examples/hello/recipe.lua" --sign-key "$1" >"$work/refused.out" 2>"$work/refused.err"
  local rc=$?
  check "--sign-key $1: exit 1" test $rc -eq 1
  check "--sign-key $1: says '$2'" grep -qF "imgbuild: $2" "$work/refused.err"
  check "--sign-key $1: before any build work" sh -c "! grep -q 'go build' '$work/refused.out' '$work/refused.err' && ! test -e '$XDG_DATA_HOME/imgbuild/index.json'"
}
refused missing.pem "--sign-key: "
refused p384.pem "p384.pem: not an ECDSA P-256 key"
refused ed25519.pem "ed25519.pem: not an ECDSA P-256 key"
refused encrypted.pem "encrypted.pem: the key is encrypted"
refused pub.pem "pub.pem: not a PEM private key"
IMGBUILD_SIGN_KEY="not a key" "$IMGBUILD" "$ROOT/examples/hello/recipe.lua" >refused.out 2>refused.err
check "a wrong IMGBUILD_SIGN_KEY is named" grep -qF "imgbuild: IMGBUILD_SIGN_KEY: not a PEM private key" refused.err

step "hello, pushed signed to docker-registry 2.8 (no referrers API)"
here "open registry" registry_start open
REG=$REGISTRY
check_cmd "$IMGBUILD" "$ROOT/examples/hello/recipe.lua"
check_cmd "$IMGBUILD" push hello "$REG/hello:1" --sign-key key.pem
digest=$(sed -n 's/^pushed .*@\(sha256:[0-9a-f]*\)$/\1/p' last.out)
hex=${digest#sha256:}
check "the push says what it attached, and where" grep -qF "imgbuild: attached SBOM, provenance and signature to $REG/hello@$digest (the referrers tag sha256-$hex, sha256-$hex.sig)" last.err

# get PATH [ACCEPT]: a GET of the registry's API.
get() {
  curl -sf -H "Accept: ${2:-application/vnd.oci.image.manifest.v1+json,application/vnd.oci.image.index.v1+json}" "http://$REG/v2/$1"
}
get "hello/manifests/sha256-$hex" >referrers.json
check "the referrers index lists the SBOM, the provenance and the signature" \
  jq -e '[.manifests[].artifactType] | sort == ["application/spdx+json", "application/vnd.dev.cosign.artifact.sig.v1+json", "application/vnd.in-toto+json"]' referrers.json
sig_referrer=$(jq -r '.manifests[] | select(.artifactType == "application/vnd.dev.cosign.artifact.sig.v1+json") | .digest' referrers.json)
sbom_manifest=$(jq -r '.manifests[] | select(.artifactType == "application/spdx+json") | .digest' referrers.json)
get "hello/manifests/$sbom_manifest" >sbom-manifest.json
check "the SBOM is an OCI 1.1 artifact about the image" jq -e --arg d "$digest" \
  '.subject.digest == $d and .artifactType == "application/spdx+json" and .config.mediaType == "application/vnd.oci.empty.v1+json" and .config.size == 2 and (.layers | length) == 1' sbom-manifest.json
get "hello/blobs/$(jq -r '.layers[0].digest' sbom-manifest.json)" >sbom.json
check "it is the image's SPDX document" jq -e --arg d "$digest" '.spdxVersion == "SPDX-2.3" and (tostring | contains($d))' sbom.json

step "the signature, checked by openssl alone"
get "hello/manifests/sha256-$hex.sig" >sig-manifest.json
check "cosign's tag holds the signature referrer" test "sha256:$(sha256sum <sig-manifest.json | cut -d' ' -f1)" = "$sig_referrer"
check "cosign's tag holds one simple signing layer" jq -e '.layers | length == 1 and .[0].mediaType == "application/vnd.dev.cosign.simplesigning.v1+json"' sig-manifest.json
get "hello/blobs/$(jq -r '.layers[0].digest' sig-manifest.json)" >payload.json
jq -r '.layers[0].annotations["dev.cosignproject.cosign/signature"]' sig-manifest.json | base64 -d >sig.bin
check "openssl dgst -sha256 -verify accepts the signature" openssl dgst -sha256 -verify pub.pem -signature sig.bin payload.json
check "the payload is cosign's, byte for byte" test "$(cat payload.json)" = \
  "{\"critical\":{\"identity\":{\"docker-reference\":\"$REG/hello\"},\"image\":{\"docker-manifest-digest\":\"$digest\"},\"type\":\"cosign container image signature\"},\"optional\":null}"
check "another key does not verify it" sh -c "! openssl dgst -sha256 -verify other-pub.pem -signature sig.bin payload.json"

step "imgbuild verify"
check_cmd "$IMGBUILD" verify "$REG/hello:1" --key pub.pem
outcome "it names the signature it verified" "signature $sig_referrer: verified with pub.pem ($REG/hello@$digest)"
outcome "and the SBOM" "sbom $sbom_manifest: application/spdx+json"
outcome "and the provenance, about the image" "provenance sha256:[0-9a-f]*: application/vnd.in-toto+json, [0-9]* bytes, about $digest"
"$IMGBUILD" verify "$REG/hello:1" --key other-pub.pem >last.out 2>last.err
check "another public key: exit 1" test $? -eq 1
check "  saying the signature does not verify" grep -qF "does not verify with other-pub.pem" last.err

step "pushed again (and signed through IMGBUILD_SIGN_KEY): nothing new"
get "hello/tags/list" "application/json" >tags-before.json
get "hello/manifests/sha256-$hex.sig" >sig-before.json
IMGBUILD_SIGN_KEY="$(cat key.pem)" check_cmd "$IMGBUILD" push hello "$REG/hello:1"
check "the key from the environment signed too" grep -qF "attached SBOM, provenance and signature" last.err
get "hello/tags/list" "application/json" >tags-after.json
check "the same tags: hello's, its referrers index and its signature" jq -e --arg h "$hex" \
  '.tags | sort == (["1", "sha256-" + $h, "sha256-" + $h + ".sig"] | sort)' tags-after.json
check "the tags are unchanged" cmp tags-before.json tags-after.json
check "the signature manifest is the same" sh -c "get_sig() { curl -sf -H 'Accept: application/vnd.oci.image.manifest.v1+json' http://$REG/v2/hello/manifests/sha256-$hex.sig; }; get_sig | cmp - sig-before.json"
get "hello/manifests/sha256-$hex" >referrers-after.json
check "the referrers index has no duplicate" cmp referrers.json referrers-after.json

step "tampering is caught by verify"
# put TAG FILE [TYPE]: PUTs a manifest under a tag (of $repo, hello unless set).
put() {
  curl -sf -X PUT -H "Content-Type: ${3:-application/vnd.oci.image.manifest.v1+json}" --data-binary "@$2" \
    "http://$REG/v2/${repo:-hello}/manifests/$1" >/dev/null
}
# blob FILE: uploads a blob; prints its digest.
blob() {
  local d location
  d=sha256:$(sha256sum "$1" | cut -d' ' -f1)
  location=$(curl -sfi -X POST "http://$REG/v2/hello/blobs/uploads/" | tr -d '\r' | sed -n 's/^[Ll]ocation: //p')
  [[ $location == http* ]] || location=http://$REG$location
  curl -sf -X PUT -H "Content-Type: application/octet-stream" --data-binary "@$1" "$location&digest=$d" >/dev/null
  echo "$d"
}
# tampered DESCRIPTION MESSAGE: verify (of $verified, $REG/hello:1 unless set) fails, saying MESSAGE.
tampered() {
  "$IMGBUILD" verify "${verified:-$REG/hello:1}" --key pub.pem >last.out 2>last.err
  check "$1: exit 1" test $? -eq 1
  check "$1: says '$2'" grep -qF "$2" last.err
}
# sig_manifest PAYLOAD SIGNATURE_B64: the signature manifest with that layer.
sig_manifest() {
  local d size
  d=$(blob "$1")
  size=$(stat -c %s "$1")
  jq -c --arg d "$d" --argjson s "$size" --arg sig "$2" \
    '.layers[0].digest = $d | .layers[0].size = $s | .layers[0].annotations["dev.cosignproject.cosign/signature"] = $sig' sig-manifest.json
}
other=sha256:$(printf other | sha256sum | cut -d' ' -f1)
sed "s/$digest/$other/" payload.json >payload-other.json
sig_manifest payload-other.json "$(base64 -w0 sig.bin)" >t1.json && put "sha256-$hex.sig" t1.json
tampered "a payload changed under its signature" "the signature of payload"
openssl dgst -sha256 -sign key.pem -out sig-other.bin payload-other.json
sig_manifest payload-other.json "$(base64 -w0 sig-other.bin)" >t2.json && put "sha256-$hex.sig" t2.json
tampered "a genuine signature of another digest" "the signed payload is for $other, not $digest"
openssl dgst -sha256 -sign other.pem -out sig-wrong.bin payload.json
sig_manifest payload.json "$(base64 -w0 sig-wrong.bin)" >t3.json && put "sha256-$hex.sig" t3.json
tampered "a signature by another key" "does not verify with pub.pem"
put "sha256-$hex.sig" sig-before.json
check_cmd "$IMGBUILD" verify "$REG/hello:1" --key pub.pem
jq -c --arg o "$other" '.subject.digest = $o' sbom-manifest.json >t4.json
t4=sha256:$(sha256sum t4.json | cut -d' ' -f1)
put "$t4" t4.json
jq -c --arg d "$t4" --argjson s "$(stat -c %s t4.json)" \
  '.manifests += [{mediaType: "application/vnd.oci.image.manifest.v1+json", digest: $d, size: $s, artifactType: "application/spdx+json"}]' \
  referrers.json >t5.json && put "sha256-$hex" t5.json application/vnd.oci.image.index.v1+json
tampered "an SBOM about another image listed as a referrer" "$t4 is listed as a referrer of $digest but its subject is $other"
put "sha256-$hex" referrers.json application/vnd.oci.image.index.v1+json
check_cmd "$IMGBUILD" verify "$REG/hello:1" --key pub.pem
prov_manifest=$(jq -r '.manifests[] | select(.artifactType == "application/vnd.in-toto+json") | .digest' referrers.json)
get "hello/manifests/$prov_manifest" >prov-manifest.json
get "hello/blobs/$(jq -r '.layers[0].digest' prov-manifest.json)" >provenance.json
# listed_instead STATEMENT: the provenance artifact, made of STATEMENT, takes
# the genuine one's place in the referrers index; prints its digest.
listed_instead() {
  local d m
  d=$(blob "$1")
  jq -c --arg d "$d" --argjson s "$(stat -c %s "$1")" '.layers[0].digest = $d | .layers[0].size = $s' prov-manifest.json >"$1.manifest"
  m=sha256:$(sha256sum <"$1.manifest" | cut -d' ' -f1)
  put "$m" "$1.manifest"
  jq -c --arg old "$prov_manifest" --arg d "$m" --argjson s "$(stat -c %s "$1.manifest")" \
    '.manifests |= map(if .digest == $old then .digest = $d | .size = $s else . end)' referrers.json >"$1.index"
  put "sha256-$hex" "$1.index" application/vnd.oci.image.index.v1+json
  echo "$m"
}
jq -c --arg o "${other#sha256:}" '.subject |= map(.digest.sha256 = $o)' provenance.json >prov-subject.json
t6=$(listed_instead prov-subject.json)
tampered "a provenance whose subject digest was changed" "$t6: the provenance's subject is not $digest"
# Nothing signs the provenance's content: a forged one about the same digest
# passes, and verify says it checked no more than the subject.
jq -c '.predicate.runDetails.builder.id = "https://forged.example/builder"' provenance.json >prov-content.json
t7=$(listed_instead prov-content.json)
check_cmd "$IMGBUILD" verify "$REG/hello:1" --key pub.pem
outcome "a provenance changed after signing: verify says its content is unchecked" \
  "provenance $t7: application/vnd.in-toto+json, [0-9]* bytes, about $digest (not signed: its content is not checked)"
outcome "  and so does its summary" "their contents are covered by no signature"
put "sha256-$hex" referrers.json application/vnd.oci.image.index.v1+json

step "-o oci:DIR carries them the same way"
check_cmd "$IMGBUILD" "$ROOT/examples/hello/recipe.lua" -o "oci:$work/out" --sign-key key.pem
image_entry='.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == "hello")'
out_digest=$(jq -r "$image_entry | .digest" out/index.json)
check "the layout is valid" sh -c "python3 '$VALIDATE' '$work/out' | grep -qx OK"
check "index.json lists the image, its SBOM, provenance and signature" jq -e \
  '[.manifests[] | .artifactType // "image"] | sort == ["application/spdx+json", "application/vnd.dev.cosign.artifact.sig.v1+json", "application/vnd.in-toto+json", "image"]' out/index.json
# about DIGEST: the manifests index.json lists whose subject is DIGEST (a
# referrers lookup scanning the layout).
about() {
  for d in $(jq -r '.manifests[].digest[7:]' out/index.json); do
    jq -r --arg d "$d" 'select(.subject.digest == "'"$1"'") | "sha256:" + $d' "out/blobs/sha256/$d"
  done
}
check "the three artifacts are found by their subject" test "$(about "$out_digest" | wc -l)" = 3
check "each names the image's manifest as its subject" sh -c "jq -e '.manifests[] | select(.artifactType) | .mediaType == \"application/vnd.oci.image.manifest.v1+json\"' out/index.json >/dev/null"
check "skopeo reads the image from the layout" skopeo inspect "oci:$work/out:hello"
check "umoci unpacks it" sh -c "umoci raw unpack --rootless --image '$work/out:hello' '$work/out-unpacked' >/dev/null 2>&1 && test -x '$work/out-unpacked/app'"
check_cmd "$IMGBUILD" inspect "oci:$work/out"
check "imgbuild inspect oci:DIR counts one image, not the artifacts" grep -qF "$out_digest" last.out
check_cmd "$IMGBUILD" sbom "oci:$work/out"
cp out/index.json out-index-before.json
check_cmd "$IMGBUILD" "$ROOT/examples/hello/recipe.lua" -o "oci:$work/out" --sign-key key.pem
check "written again: index.json is the same (no duplicate, no new signature)" cmp out-index-before.json out/index.json
check_cmd "$IMGBUILD" verify "oci:$work/out" --key pub.pem
outcome "verify oci:DIR finds the referrers in index.json" "referrers: 3 through $work/out/index.json"
outcome "  and the signature" "signature sha256:[0-9a-f]*: verified with pub.pem (hello@$out_digest)"
"$IMGBUILD" verify "oci:$work/out" --key other-pub.pem >last.out 2>last.err
check "verify oci:DIR with another key: exit 1" test $? -eq 1
out_prov=$(jq -r '.manifests[] | select(.artifactType == "application/vnd.in-toto+json") | .digest[7:]' out/index.json)
out_statement=out/blobs/sha256/$(jq -r '.layers[0].digest[7:]' "out/blobs/sha256/$out_prov")
cp "$out_statement" statement.json
jq -c '.predicate.runDetails.builder.id = "https://forged.example/builder"' statement.json >"$out_statement"
"$IMGBUILD" verify "oci:$work/out" --key pub.pem >last.out 2>last.err
check "a provenance edited in the layout: exit 1" test $? -eq 1
check "  naming the blob" grep -qF "blob sha256:$(sha256sum statement.json | cut -d' ' -f1) is corrupt" last.err
cp statement.json "$out_statement"
"$IMGBUILD" "$ROOT/examples/hello/recipe.lua" -o "oci:$work/out" >last.out 2>&1
check "written again without a key: the signature stays listed" test "$(about "$out_digest" | wc -l)" = 3

step "a referrers tag that holds no index is replaced, saying so"
put "sha256-$hex" sbom-manifest.json
check_cmd "$IMGBUILD" push hello "$REG/hello:1" --sign-key key.pem
check "the push says what the tag held" grep -qF "imgbuild: warning: $REG/hello:sha256-$hex held no referrers index (the referrers index is not an image index (no manifests list), sha256:$(sha256sum <sbom-manifest.json | cut -d' ' -f1)): replaced by one" last.err
get "hello/manifests/sha256-$hex" >replaced.json
check "the tag holds the same referrers index again" cmp referrers.json replaced.json
check_cmd "$IMGBUILD" verify "$REG/hello:1" --key pub.pem

step "a registry with the referrers API (a stand-in on loopback)"
python3 "$ROOT/tests/e2e/referrers_registry.py" "$work/api.port" "$work/api.log" >"$work/api.err" 2>&1 &
api_pid=$!
at_exit "kill $api_pid"
for _ in $(seq 100); do test -s "$work/api.port" && break; sleep 0.1; done
API=127.0.0.1:$(cat "$work/api.port")
check_cmd "$IMGBUILD" push hello "$API/hello:1" --sign-key key.pem
check "attached through the referrers API" grep -qF "imgbuild: attached SBOM, provenance and signature to $API/hello@$digest (the referrers API, sha256-$hex.sig)" last.err
check "no referrers tag was written (no stray tag)" sh -c "! grep -q 'PUT /v2/hello/manifests/sha256-$hex\$' '$work/api.log'"
curl -sf "http://$API/v2/hello/referrers/$digest" >api-referrers.json
check "the registry lists the SBOM, the provenance and the signature" jq -e '[.manifests[].artifactType] | sort == ["application/spdx+json", "application/vnd.dev.cosign.artifact.sig.v1+json", "application/vnd.in-toto+json"]' api-referrers.json
check_cmd "$IMGBUILD" push hello "$API/hello:1" --sign-key key.pem
curl -sf "http://$API/v2/hello/referrers/$digest" >api-referrers2.json
check "pushed again: the same three referrers" cmp api-referrers.json api-referrers2.json
check_cmd "$IMGBUILD" verify "$API/hello:1" --key pub.pem
outcome "verify found them through the API" "referrers: 3 through the referrers API"

step "signed by two keys: verify takes several --key, each signature verifying with one"
check_cmd "$IMGBUILD" push hello "$API/hello:1" --sign-key other.pem
"$IMGBUILD" verify "$API/hello:1" --key pub.pem >last.out 2>last.err
check "one key of the two: exit 1, the other's signature does not verify" sh -c "test $? -eq 1 && grep -qF 'does not verify with pub.pem' last.err"
check_cmd "$IMGBUILD" verify "$API/hello:1" --key pub.pem --key other-pub.pem
outcome "both keys: each signature verified with its own" "verified with other-pub.pem"
# The first signature's manifest stays listed; cosign's tag now holds both.
outcome "  three signature layers: the first manifest's and the two under cosign's tag" "verified: 3 signatures"
openssl ecparam -name prime256v1 -genkey -noout 2>/dev/null | openssl ec -pubout -out third-pub.pem 2>/dev/null
"$IMGBUILD" verify "$API/hello:1" --key pub.pem --key third-pub.pem >last.out 2>last.err
check "a key that signed nothing does not stand for one that did: exit 1" test $? -eq 1
check "  naming the keys tried" grep -qF "does not verify with pub.pem or third-pub.pem" last.err

step "an index of two platforms: the index signed, each platform's image described"
FOREIGN=arm64
[[ $HOST_ARCH == arm64 ]] && FOREIGN=amd64
# examples/hello, pushed by its recipe to $REGISTRY/multi:1.
mkdir multi-src && cp "$ROOT"/examples/hello/{go.mod,main.go} multi-src/
cat >multi-src/recipe.lua <<'EOF'
local go = require "imgbuild.go"
local hello = scratch:copy(go.build { main = ".", static = true }, "/app"):entrypoint { "/app" }
image("hello", hello)
push(hello, param("REGISTRY") .. "/multi:1")
EOF
check_cmd "$IMGBUILD" multi-src/recipe.lua --platform "linux/$HOST_ARCH,linux/$FOREIGN" --set "REGISTRY=$REG" --sign-key key.pem
get "multi/manifests/1" >multi-index.json
index_digest=sha256:$(sha256sum multi-index.json | cut -d' ' -f1)
foreign_digest=$(jq -r --arg a "$FOREIGN" '.manifests[] | select(.platform.architecture == $a) | .digest' multi-index.json)
check "the index lists the two platforms" jq -e '.manifests | length == 2' multi-index.json
check_cmd "$IMGBUILD" verify "$REG/multi:1" --key pub.pem
outcome "verify checks the index's signature" "signature sha256:[0-9a-f]*: verified with pub.pem ($REG/multi@$index_digest)"
outcome "  then names each platform's image" "^  platform linux/$FOREIGN $foreign_digest\$"
outcome "  with its SBOM, about it" "^    sbom sha256:[0-9a-f]*: application/spdx+json, [0-9]* bytes, about $foreign_digest"
outcome "  and its provenance" "^    provenance sha256:[0-9a-f]*: application/vnd.in-toto+json, [0-9]* bytes, about $foreign_digest"
outcome "  one signature, an SBOM and a provenance per platform" "^verified: 1 signature, 2 SBOMs, 2 provenance statements"
foreign_hex=${foreign_digest#sha256:}
get "multi/manifests/sha256-$foreign_hex" >multi-referrers.json
foreign_sbom=$(jq -r '.manifests[] | select(.artifactType == "application/spdx+json") | .digest' multi-referrers.json)
get "multi/manifests/$foreign_sbom" | jq -c --arg o "$other" '.subject.digest = $o' >t8.json
t8=sha256:$(sha256sum t8.json | cut -d' ' -f1)
repo=multi put "$t8" t8.json
jq -c --arg old "$foreign_sbom" --arg d "$t8" --argjson s "$(stat -c %s t8.json)" \
  '.manifests |= map(if .digest == $old then .digest = $d | .size = $s else . end)' multi-referrers.json >t9.json
repo=multi put "sha256-$foreign_hex" t9.json application/vnd.oci.image.index.v1+json
verified=$REG/multi:1 tampered "one platform's SBOM about another image" \
  "verify: platform linux/$FOREIGN $foreign_digest: $t8 is listed as a referrer of $foreign_digest but its subject is $other"
jq -c --arg old "$foreign_sbom" '.manifests |= map(select(.digest != $old))' multi-referrers.json >t10.json
repo=multi put "sha256-$foreign_hex" t10.json application/vnd.oci.image.index.v1+json
verified=$REG/multi:1 tampered "one platform's SBOM removed" \
  "verify: platform linux/$FOREIGN $foreign_digest: no SBOM is attached to $foreign_digest"
repo=multi put "sha256-$foreign_hex" multi-referrers.json application/vnd.oci.image.index.v1+json
check_cmd "$IMGBUILD" verify "$REG/multi:1" --key pub.pem
check_cmd "$IMGBUILD" multi-src/recipe.lua --platform "linux/$HOST_ARCH,linux/$FOREIGN" --set "REGISTRY=$API" --sign-key key.pem
check_cmd "$IMGBUILD" verify "$API/multi:1" --key pub.pem
outcome "the referrers API: each platform's referrers found through it" "^    referrers: 2 through the referrers API"
outcome "  all of them verified" "^verified: 1 signature, 2 SBOMs, 2 provenance statements"

step "an index of two platforms written with -o oci:DIR"
check_cmd "$IMGBUILD" "$ROOT/examples/hello/recipe.lua" --platform "linux/$HOST_ARCH,linux/$FOREIGN" \
  -o "oci:$work/multi" --sign-key key.pem
check_cmd "$IMGBUILD" verify "oci:$work/multi" --key pub.pem
outcome "verify oci:DIR finds each platform's referrers in index.json" "^    referrers: 2 through $work/multi/index.json"
outcome "  and verifies them all" "^verified: 1 signature, 2 SBOMs, 2 provenance statements"
layout_foreign=$(jq -r --arg a "$FOREIGN" '.manifests[] | select(.platform.architecture == $a) | .digest' \
  "multi/blobs/sha256/$(jq -r '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == "hello") | .digest[7:]' multi/index.json)")
# layout_referrer TYPE: the manifest index.json lists of TYPE about the foreign platform's image.
layout_referrer() {
  for d in $(jq -r --arg t "$1" '.manifests[] | select(.artifactType == $t) | .digest[7:]' multi/index.json); do
    jq -r --arg f "$layout_foreign" 'select(.subject.digest == $f) | "sha256:" + "'"$d"'"' "multi/blobs/sha256/$d"
  done
}
cp multi/index.json multi-index-before.json
jq -c --arg d "$(layout_referrer application/spdx+json)" '.manifests |= map(select(.digest != $d))' \
  multi-index-before.json >multi/index.json
verified=oci:$work/multi tampered "oci:DIR: one platform's SBOM no longer listed" \
  "verify: platform linux/$FOREIGN $layout_foreign: no SBOM is attached to $layout_foreign"
jq -c --arg d "$(layout_referrer application/vnd.in-toto+json)" '.manifests |= map(select(.digest != $d))' \
  multi-index-before.json >multi/index.json
verified=oci:$work/multi tampered "oci:DIR: one platform's provenance no longer listed" \
  "verify: platform linux/$FOREIGN $layout_foreign: no provenance is attached, while the index's other platforms have theirs"
cp multi-index-before.json multi/index.json
check_cmd "$IMGBUILD" verify "oci:$work/multi" --key pub.pem

step "the key is nowhere: outputs, store, cache"
grep -v -- '-----' key.pem >key-lines.txt
grep -v -- '-----' sec1.pem >>key-lines.txt
check "no line of the key's PEM in any output, the store or the cache" sh -c \
  "! grep -rlF -f key-lines.txt '$XDG_DATA_HOME' '$XDG_CACHE_HOME' '$work'/*.out '$work'/*.err '$work/api.log' '$REG_WORK'"

finish
