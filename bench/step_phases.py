#!/usr/bin/env python3
"""When each phase of an imgbuild build ends: reads the output of
`strace -f --seccomp-bpf -ttt -e trace=mount,rename,rmdir,exit_group` (few calls
traced, so the build runs at nearly its own speed) and prints, as a markdown
table, the seconds since the build started at which it put a root in place,
started and ended a RUN step, wrote a layer blob and recorded a step; the gap
from one line to the next is what that phase cost.

    step_phases.py STRACE_LOG

Each is told by the call that ends it, as imgbuild names its files (man
imgbuild, FILES): a root is renamed from roots/.unpack-*/root into place (a
RUN step that stacks its top layer on the root below makes none: unpacking
that layer is in the gap before its overlay is mounted), a
RUN step's first process mounts its overlay and its exit ends the step, a
layer blob is renamed from blobs/sha256/.layer.tmp-*, a step's cache entry
from steps/.*.tmp-*; a RUN step's scratch folder (cache/tmp/run-*, its
overlay's upper folder) is removed by a thread of its own, beside the phases
that follow: its line is not a gap on the build's path.
"""
import re
import sys

LINE = re.compile(r'^(\d+)\s+(\d+\.\d+)\s+(.*)$')


def phases(lines):
    """(seconds, what) for each phase's end, in order."""
    start = None
    step_pids = set()
    events = []
    for raw in lines:
        m = LINE.match(raw)
        if not m:
            continue
        pid, when, call = m.group(1), float(m.group(2)), m.group(3)
        if start is None:
            start = when
        at = when - start
        if call.startswith('mount("overlay"'):
            step_pids.add(pid)
            events.append((at, "RUN step: its overlay mounted, its command starts"))
        elif call.startswith("exit_group") and pid in step_pids:
            events.append((at, "RUN step: its command and every process of it ended"))
        elif call.startswith("rename(") and "/roots/.unpack-" in call and call.split(",")[0].endswith('/root"'):
            events.append((at, "a root put in place (layers unpacked or linked into cache/roots)"))
        elif call.startswith("rename(") and "/blobs/sha256/.layer.tmp-" in call:
            events.append((at, "a layer blob written into the store"))
        elif call.startswith("rename(") and re.search(r'/steps/\.[0-9a-f]+\.json\.tmp-', call):
            events.append((at, "a step recorded in the cache"))
        elif call.startswith("rmdir(") and re.search(r'/tmp/run-[^/"]+"', call):
            events.append((at, "a RUN step's scratch folder removed (in the background)"))
    if start is not None:
        events.append((when - start, "the build ended"))
    return events


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    with open(sys.argv[1], encoding="utf-8", errors="replace") as f:
        events = phases(f)
    print("| seconds | gap | what ended |")
    print("|---|---|---|")
    last = 0.0
    for at, what in events:
        print(f"| {at:.2f} | {at - last:.2f} | {what} |")
        last = at


if __name__ == "__main__":
    main()
