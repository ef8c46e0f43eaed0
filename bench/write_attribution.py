#!/usr/bin/env python3
"""Where a build's written bytes go: reads the output of
`strace -f -y -e trace=write,pwrite64,writev,pwritev,pwritev2,copy_file_range,sendfile,splice`
and prints, per kind of destination, the bytes the build's processes (imgbuild
and what its RUN steps ran) wrote to regular files, largest first, as a
markdown table.

    write_attribution.py STRACE_LOG DATA_HOME CACHE_HOME

DATA_HOME and CACHE_HOME are the build's $XDG_DATA_HOME and $XDG_CACHE_HOME:
paths under them are told apart by imgbuild's folders (man imgbuild, FILES);
paths a step's processes wrote are as they saw them inside the step.
Pipes, sockets and terminals are left out: they are not disk.
"""
import re
import sys
from collections import defaultdict

# "PID syscall(FD<path>, ...) = RET", also when strace split the call in two
# ("<unfinished ...>" then "<... syscall resumed> ...) = RET").
CALL = re.compile(r"^(\d+)\s+(\w+)\((.*)\)\s+=\s+(-?\d+)")
UNFINISHED = re.compile(r"^(\d+)\s+(\w+)\((.*)\s+<unfinished \.\.\.>$")
RESUMED = re.compile(r"^(\d+)\s+<\.\.\. (\w+) resumed>(.*)\)\s+=\s+(-?\d+)")
FD_PATH = re.compile(r"^\d+<(.*?)>")
WRITES = {"write", "pwrite64", "writev", "pwritev", "pwritev2"}
# the argument that names the file written to
DEST_ARG = {"copy_file_range": 2, "sendfile": 0, "splice": 2}


def kinds(data_home, cache_home):
    """(prefix or pattern, kind) rules, the first that matches wins."""
    c = cache_home.rstrip("/") + "/imgbuild/"
    d = data_home.rstrip("/") + "/imgbuild/"
    return [
        (re.compile(re.escape(c) + r"tmp/"), "step working folders (cache/tmp: a :run step's overlay upper, go.build)"),
        (re.compile(re.escape(c) + r"roots/[^/]*\.unpack-"), "root preparation (cache/roots: unpacking layers into a root)"),
        (re.compile(re.escape(c) + r"roots/"), "roots (cache/roots, other writes)"),
        (re.compile(re.escape(c) + r"run-cache/"), "cache mounts (cache/run-cache)"),
        (re.compile(re.escape(c) + r"layer-listings/"), "layer listings (cache/layer-listings)"),
        (re.compile(re.escape(c) + r"(steps|shapes)/"), "step cache entries and shapes (cache/steps, cache/shapes)"),
        (re.compile(re.escape(c)), "other build cache files"),
        (re.compile(re.escape(d) + r"blobs/"), "store blobs (layers gzip-compressed, configs, manifests)"),
        (re.compile(re.escape(d)), "store metadata (index.json, verified records)"),
        (re.compile(r"^/root/\.cache/go-build/"), "inside the step: Go build cache (GOCACHE)"),
        (re.compile(r"^/root/go/pkg/mod/|^/go/pkg/mod/"), "inside the step: Go module cache"),
        (re.compile(r"^/tmp/go-build"), "inside the step: go build's work folder (/tmp/go-build*)"),
        (re.compile(r"^/go/src/"), "inside the step: the program built (/go/src/app)"),
    ]


def path_of(args, index):
    parts = args.split(", ")
    if index >= len(parts):
        return None
    m = FD_PATH.match(parts[index])
    return m.group(1) if m else None


def main():
    log, data_home, cache_home = sys.argv[1:4]
    rules = kinds(data_home, cache_home)
    pending = {}
    by_kind = defaultdict(int)
    calls = defaultdict(int)
    other = defaultdict(int)
    total = 0
    for line in open(log, errors="replace"):
        line = line.rstrip("\n")
        m = UNFINISHED.match(line)
        if m:
            pending[(m.group(1), m.group(2))] = m.group(3)
            continue
        m = RESUMED.match(line)
        if m:
            pid, name, rest, ret = m.groups()
            args = pending.pop((pid, name), "") + rest
        else:
            m = CALL.match(line)
            if not m:
                continue
            pid, name, args, ret = m.groups()
        ret = int(ret)
        if ret <= 0:
            continue
        if name in WRITES:
            path = path_of(args, 0)
        elif name in DEST_ARG:
            path = path_of(args, DEST_ARG[name])
        else:
            continue
        if not path or not path.startswith("/") or path.startswith("/dev/") or path.startswith("/proc/"):
            continue
        total += ret
        for rule, kind in rules:
            if rule.search(path):
                by_kind[kind] += ret
                calls[kind] += 1
                break
        else:
            kind = "elsewhere: " + "/".join(path.split("/")[:3])
            by_kind[kind] += ret
            calls[kind] += 1
            other[path] += ret
    print("| written to | MB | share | calls |")
    print("|---|---|---|---|")
    for kind, n in sorted(by_kind.items(), key=lambda kv: -kv[1]):
        print(f"| {kind} | {n / 1e6:.1f} | {100 * n / max(total, 1):.0f}% | {calls[kind]} |")
    print(f"| **total, regular files** | **{total / 1e6:.1f}** | 100% | {sum(calls.values())} |")


if __name__ == "__main__":
    main()
