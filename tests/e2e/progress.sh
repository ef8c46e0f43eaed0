#!/usr/bin/env bash
# Tier 3: what a build shows. --progress json parses line by line and has a
# start and an end for every step `imgbuild plan` lists, output lines, and
# transfer events for a pull and a push to a local registry; the size table's
# figures are those skopeo reports for the pushed image; plain output has no
# control characters and no line twice; tty output, drawn in a real terminal
# (tmux) narrower than its lines, ends as a clean log; :budget fails a build;
# a hostile step's escape sequences reach neither a log nor a terminal
# (plain, tty, the error message) but as text, unless --progress raw; a
# build for two platforms numbers each step once and names its platform.
#
#   tests/e2e/progress.sh IMGBUILD REPO_ROOT     (KEEP=1 keeps its work folder)
set -uo pipefail
source "$(dirname "$0")/lib.sh"
e2e_workspace "$@"
at_exit 'tmux -S "$work/tmux.sock" kill-server >/dev/null 2>&1'
mkdir -p "$work/ctx"

imgbuild() { "$IMGBUILD" "$@" >"$work/last.out" 2>"$work/last.err"; }

step "a local registry with busybox"
here "registry" registry_start open
REG=$REGISTRY_open
here "seed busybox" seed_images "$REG"

# Two stages from a pulled base (one RUN step each, built in parallel) and a
# final image on the same base with files from both and from the context.
ctx=$work/ctx
cd "$ctx" || exit 1  # messages and events name recipe.lua as given
cat >recipe.lua <<EOF
local base = "$REG/base/busybox:oci"
local builder = from(base)
  :workdir "/src"
  :copy("data.txt", "data.txt")
  :run "echo building; cp data.txt /out.txt; echo built"
local tools = from(base)
  :run "mkdir -p /t && echo tool >/t/tool"
local app = from(base)
  :copy("/out.txt", "/app/data.txt", { from = builder })
  :copy("/t/tool", "/app/tool", { from = tools })
  :copy("blob.bin", "/app/blob.bin")
  :env { MODE = "release" }
  :cmd { "cat", "/app/data.txt" }
image("app", app)
push(app, "$REG/test/app:1")
EOF
echo "version 1" >"$ctx/data.txt"
head -c 300000 /dev/urandom >"$ctx/blob.bin"

step "--progress json: every line an object, every step started and ended"
"$IMGBUILD" plan recipe.lua >"$work/plan.out" 2>&1
grep -oE '^recipe\.lua:[0-9]+' "$work/plan.out" | sort >"$work/plan.locs"
check "plan lists the steps" test "$(wc -l <"$work/plan.locs")" -ge 10
imgbuild recipe.lua --progress json
check "the build succeeds" test -s "$work/last.out"
cat >"$work/events.py" <<'EOF'
import json, sys
events = [json.loads(line) for line in open(sys.argv[1])]
starts = {e["step"]: e for e in events if e["event"] == "step_start"}
ends = {e["step"]: e for e in events if e["event"] == "step_end"}
assert len(starts) == sum(e["event"] == "step_start" for e in events), "a step started twice"
assert starts.keys() == ends.keys(), f"started {sorted(starts)} but ended {sorted(ends)}"
for e in ends.values():
    assert e["status"] in ("done", "cached"), e
    assert e["kind"] == starts[e["step"]]["kind"], e
    assert events.index(starts[e["step"]]) < events.index(e), e
# One start per step plan lists, by recipe line (host builds are not plan steps).
locs = sorted(s["loc"].split("/")[-1] for s in starts.values() if s["kind"] != "build")
plan = sorted(open(sys.argv[2]).read().split())
assert locs == plan, f"events {locs} != plan {plan}"
print(len(starts), "steps")
EOF
check "each line parses; a start and an end for each of plan's steps" python3 "$work/events.py" "$work/last.out" "$work/plan.locs"
check "RUN output arrives as output events" jq -s -e 'any(.[]; .event == "output" and .line == "building")' "$work/last.out"
check "base layers pulled: finished transfer events, done == total" \
  jq -s -e 'any(.[]; .event == "transfer" and .direction == "pull" and .finished and .done == .total and .total > 0)' "$work/last.out"
check "blobs pushed: transfer events with a rate" \
  jq -s -e 'any(.[]; .event == "transfer" and .direction == "push" and .finished and .rate > 0)' "$work/last.out"
check "the push is an event" jq -s -e "any(.[]; .event == \"push\" and .ref == \"$REG/test/app:1\" and .pushed)" "$work/last.out"
check "json mode prints nothing else on stdout" sh -c "jq -e . '$work/last.out' >/dev/null"

step "the size table's figures are skopeo's"
skopeo inspect --raw --tls-verify=false "docker://$REG/test/app:1" >"$work/manifest.json" 2>"$work/skopeo.err"
skopeo inspect --tls-verify=false "docker://$REG/test/app:1" >"$work/skopeo.json" 2>>"$work/skopeo.err"
jq -c 'select(.event == "image")' "$work/last.out" >"$work/image.json"
compressed=$(jq '[.layers[].size] | add' "$work/manifest.json")
check "compressed: the sum of the pushed manifest's layer sizes ($compressed)" \
  jq -e ".compressed == $compressed and .layers == $(jq '.layers | length' "$work/manifest.json")" "$work/image.json"
check "the digest is the pushed one" jq -e ".digest == $(jq '.Digest' "$work/skopeo.json")" "$work/image.json"
uncompressed=0
for d in $(jq -r '.layers[].digest[7:]' "$work/manifest.json"); do
  uncompressed=$((uncompressed + $(gzip -dc "$XDG_DATA_HOME/imgbuild/blobs/sha256/$d" | wc -c)))
done
check "uncompressed: the sum of the layers' tar sizes ($uncompressed)" jq -e ".uncompressed == $uncompressed" "$work/image.json"
base_size=$(skopeo inspect --raw --tls-verify=false "docker://$REG/base/busybox:oci" | jq '[.layers[].size] | add')
check "change vs the base: the layers over busybox's" \
  jq -e ".base == \"$REG/base/busybox:oci\" and .vs_base == $compressed - $base_size and .previous == null" "$work/image.json"

step "--progress plain: a rebuild from the cache"
imgbuild recipe.lua --progress plain
outcome "the result line" "^app  sha256:"
check "every step cached" sh -c "! grep -E '^  recipe\.lua:[0-9]+  (copy|run) ' '$work/last.err' | grep -v '(cached)$'"
check "no carriage return, no escape" bash -c "! grep -q \$'[\\r\\x1b]' '$work/last.err' '$work/last.out'"
check "no line twice" sh -c "test -z \"\$(sort '$work/last.err' | uniq -d)\""
human() { python3 -c 'import sys
v, u = float(sys.argv[1]), 0
while v >= 1000 and u < 4: v, u = v / 1000, u + 1
print(("%.0f %s" if u == 0 else "%.1f %s") % (v, ["B", "kB", "MB", "GB", "TB"][u]))' "$1"; }
row="^app +sha256:[0-9a-f]{12} +$(jq '.layers | length' "$work/manifest.json") +$(human "$compressed") +$(human "$uncompressed") +\+$(human $((compressed - base_size))) over $REG/base/busybox:oci +unchanged$"
check "the table: skopeo's figures, unchanged since the last build" grep -qE "$row" "$work/last.err"
check "the table has its header" grep -qE '^IMAGE +DIGEST +LAYERS +COMPRESSED +UNCOMPRESSED +VS BASE +VS PREVIOUS$' "$work/last.err"

step "a change: the table says how much the image grew"
head -c 200000 /dev/urandom >>"$ctx/blob.bin"
imgbuild recipe.lua --progress plain
check "a grown image: a positive change vs the previous build" grep -qE '^app +sha256:.* \+20[0-9]\.[0-9] kB$' "$work/last.err"
check "pushed blobs are logged with size and rate" grep -qE "^  push $REG/test/app:1  [0-9a-f]{12}  [0-9.]+ [kM]?B in [0-9.]+s \([0-9.]+ [kM]?B/s\)$" "$work/last.err"

step "--progress tty in a terminal 50 columns wide (tmux)"
echo "version 2" >"$ctx/data.txt"
tmux -S "$work/tmux.sock" new-session -d -x 50 -y 40 -c "$ctx" \
  "'$IMGBUILD' recipe.lua --progress tty --no-push; echo EXIT=\$?; sleep 600"
screen_until "$work/tmux.sock" "$work/screen" '^EXIT='
check "the build ends with status 0" grep -qx 'EXIT=0' "$work/screen"
check "the RUN step that ran is on the screen once, with its size" \
  test "$(grep -cE '^  recipe\.lua:5  run echo building' "$work/screen")" = 1
check "its output is shown" grep -q '^  recipe\.lua:5 | building' "$work/screen"
check "cached steps are listed once each" test "$(grep -cE '^  recipe\.lua:7  run mkdir .*\(cached\)' "$work/screen")" = 1
check "no live line is left behind, not even in the history" sh -c "! grep -qE 'running [0-9]|\.\.\.$' '$work/screen'"
check "the result and the table follow" sh -c "grep -q '^app  sha256:' '$work/screen' && grep -q '^IMAGE' '$work/screen'"
"$IMGBUILD" recipe.lua --progress tty --no-push >"$work/tty.out" 2>"$work/tty.err"
check "--progress tty without a terminal prints plain lines" bash -c "! grep -q \$'\\x1b' '$work/tty.err' && grep -q '(cached)' '$work/tty.err'"
TERM=dumb script -qec "'$IMGBUILD' recipe.lua --no-push" "$work/dumb.log" >/dev/null 2>&1
check "auto on a dumb terminal prints plain lines" bash -c "! grep -q \$'\\x1b' '$work/dumb.log' && grep -q '(cached)' '$work/dumb.log'"

step "a hostile step: its escape sequences become text (plain, tty, the error)"
# A clipboard write (OSC 52), a screen clear, a window title (OSC 0), a
# carriage-return overwrite and invalid UTF-8, after a line of UTF-8 letters.
mkdir -p "$work/hostile"
cd "$work/hostile" || exit 1
cat >recipe.lua <<EOF
image("hostile", from("$REG/base/busybox:oci")
  :run [==[printf 'gr\303\274\303\237e\n\033]52;c;cHduZWQ=\007\033[2J\033]0;pwned\007 10%%\rdone \377\376 bad\n'; exit 3]==])
EOF
# Escape sequences imgbuild draws itself (tty): the only ones allowed.
cat >"$work/own_escapes.py" <<'EOF'
import sys
data = open(sys.argv[1], "rb").read()
for own in (b"\x1b[1A", b"\x1b[2K"):
    data = data.replace(own, b"")
assert b"\x1b" not in data and b"\x07" not in data, "a step's ESC or BEL reached the terminal"
EOF
# What the step wrote, as it must read: every control byte as \xNN text.
neutralised=(
  'grüße'
  '\x1b]52;c;cHduZWQ=\x07\x1b[2J\x1b]0;pwned\x07 10%\x0ddone \xff\xfe bad'
)
"$IMGBUILD" recipe.lua --progress plain >"$work/last.out" 2>"$work/last.err"
check "plain: the build fails with status 1" test $? -eq 1
check "plain: no ESC and no BEL byte on stderr" bash -c "! grep -q \$'[\\x1b\\x07]' '$work/last.err'"
for text in "${neutralised[@]}"; do
  check "plain: the output line reads '$text'" grep -qF "  recipe.lua:2 | $text" "$work/last.err"
  check "the error message quotes it as '$text'" grep -qxF "    $text" "$work/last.err"
done
check "the error message says the step failed" grep -q '^imgbuild: recipe\.lua:2: run: .*exited with status 3:$' "$work/last.err"

"$IMGBUILD" recipe.lua --progress json >"$work/last.out" 2>"$work/last.err"
check "json: every line parses" sh -c "jq -e . '$work/last.out' >/dev/null"
check "json: the output line as the step wrote it, escaped by JSON only" \
  jq -s -e 'any(.[]; .event == "output" and (.line | startswith("\u001b]52;c;cHduZWQ=\u0007\u001b[2J\u001b]0;pwned\u0007 10%\rdone \ufffd\ufffd bad")))' "$work/last.out"
check "json: the error message on stderr has no ESC or BEL byte" bash -c "! grep -q \$'[\\x1b\\x07]' '$work/last.err'"

"$IMGBUILD" recipe.lua --progress raw >"$work/last.out" 2>"$work/last.err"
check "raw: the step's bytes as they came (asked for)" grep -qF $'  recipe.lua:2 | \e]52;c;cHduZWQ=\a\e[2J' "$work/last.err"
check "raw: the error message still quotes them as text" grep -qxF "    ${neutralised[1]}" "$work/last.err"

# A real terminal that obeys clipboard writes and titles: what imgbuild
# writes to it, byte for byte (pipe-pane), and what became of the pane.
# `raw` in a second pane proves the terminal would have obeyed.
tmux -S "$work/tmux.sock" set-option -g set-clipboard on
for mode in tty raw; do
  tmux -S "$work/tmux.sock" new-session -d -s "hostile-$mode" -x 200 -y 40 -c "$work/hostile" \
    "while [ ! -e go-$mode ]; do sleep 0.1; done; '$IMGBUILD' recipe.lua --progress $mode; echo EXIT=\$?; sleep 600"
  tmux -S "$work/tmux.sock" pipe-pane -t "hostile-$mode" -o "cat >'$work/$mode.bytes'"
  touch "go-$mode"
  screen_until "$work/tmux.sock" "$work/$mode.screen" '^EXIT=' "hostile-$mode"
  tmux -S "$work/tmux.sock" display-message -t "hostile-$mode" -p '#{pane_title}' >"$work/$mode.title"
  tmux -S "$work/tmux.sock" list-buffers >"$work/$mode.buffers"
  [[ $mode == tty ]] && tmux -S "$work/tmux.sock" delete-buffer 2>/dev/null
done
check "tty: the build fails with status 1" grep -qx 'EXIT=1' "$work/tty.screen"
check "tty: no ESC or BEL from the step among the bytes written" python3 "$work/own_escapes.py" "$work/tty.bytes"
check "tty: the window title is not the step's" sh -c "! grep -q pwned '$work/tty.title'"
check "tty: the step wrote no clipboard" test ! -s "$work/tty.buffers"
check "tty: the screen shows the step's line as text" grep -qF "  recipe.lua:2 | ${neutralised[1]}" "$work/tty.screen"
check "tty: and UTF-8 letters as they are" grep -qF "  recipe.lua:2 | grüße" "$work/tty.screen"
check "raw (control): this terminal obeys the step's title" grep -qx pwned "$work/raw.title"
check "raw (control): and its clipboard write" grep -q 'bytes' "$work/raw.buffers"
cd "$ctx" || exit 1

step "two platforms: each step numbered once in the build and named by its platform"
cat >multi.lua <<EOF
image("multi", from "$REG/base/multi:oci"
  :copy("data.txt", "/data.txt")
  :env { ARCH = platform.arch },
  { platforms = { "linux/amd64", "linux/arm64" } })
EOF
imgbuild multi.lua --progress json
check "the build succeeds" grep -q '"event":"image"' "$work/last.out"
cat >"$work/platform_steps.py" <<'EOF'
import json, sys
events = [json.loads(l) for l in open(sys.argv[1])]
platforms = set(sys.argv[2].split(","))
steps = [e for e in events if e["event"] in ("step_start", "step_end", "output", "notice")]
starts = {}
for e in steps:
    assert e["platform"] in platforms, e
    if e["event"] == "step_start":
        assert e["step"] not in starts, "step %d started twice: %s and %s" % (e["step"], starts[e["step"]], e)
        starts[e["step"]] = e
ends = {e["step"]: e for e in steps if e["event"] == "step_end"}
assert sorted(ends) == sorted(starts), (sorted(starts), sorted(ends))
for e in steps:
    start = starts[e["step"]]
    assert (start["platform"], start["loc"]) == (e["platform"], e["loc"]), (start, e)
# Every step of the recipe (from, copy, env), once for each platform.
got = sorted((e["platform"], e["loc"]) for e in starts.values())
want = sorted((p, "multi.lua:%d" % line) for p in platforms for line in (1, 2, 3))
assert got == want, got
print(len(starts), "steps")
EOF
check "json: a start and an end for each step of each platform, no id used twice, each event naming its platform" \
  python3 "$work/platform_steps.py" "$work/last.out" linux/amd64,linux/arm64
imgbuild multi.lua --progress plain --no-cache
for p in amd64 arm64; do
  check "plain: linux/$p's steps are named by it" sh -c \
    "grep -qE '^  \[linux/$p\] multi\.lua:2  copy data\.txt /data\.txt' '$work/last.err' &&
     grep -qE '^  \[linux/$p\] multi\.lua:3  env ARCH=$p$' '$work/last.err'"
done
check "plain: one line per step and platform" \
  test "$(grep -cE '^  \[linux/(amd64|arm64)\] multi\.lua:[123] ' "$work/last.err")" -eq 6

step ":budget fails a build over it, naming the biggest layers"
sed -i 's|^  :cmd { "cat", "/app/data.txt" }$|&\n  :budget { size = "100kB" }|' recipe.lua
"$IMGBUILD" recipe.lua --no-push >"$work/last.out" 2>"$work/last.err"
check "exit status 1" test $? -eq 1
check "the message names the budget and the size" \
  grep -qE '^imgbuild: recipe\.lua:14: budget: the image is [0-9.]+ [kM]B \(compressed layers\), over its budget of 100kB; biggest layers:$' "$work/last.err"
check "the biggest layers with the steps that made them" grep -qE '^    50[0-9]\.[0-9] kB  recipe\.lua:11  copy blob\.bin /app/blob\.bin$' "$work/last.err"
check "base layers are named by their from line" grep -qE "^    [0-9.]+ [kM]B  recipe\.lua:8  from $REG/base/busybox:oci \(layer 1\)$" "$work/last.err"
check "nothing was stored or printed as a result" test ! -s "$work/last.out"

finish
