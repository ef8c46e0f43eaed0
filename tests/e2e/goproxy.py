#!/usr/bin/env python3
"""A Go module proxy in a folder (GOPROXY=file://DIR) from module sources on
this machine, such as Debian's golang-*-dev packages under /usr/share/gocode:
the tests build Go services with real dependencies, real go.sum hashes and no
network.

    goproxy.py DIR MODULE@VERSION=SOURCE_DIR...
"""
import json
import os
import sys
import zipfile


def add_module(proxy, module, version, source):
    where = os.path.join(proxy, module.lower(), "@v")  # lower case: real paths escape capitals
    os.makedirs(where, exist_ok=True)
    go_mod_path = os.path.join(source, "go.mod")
    go_mod = open(go_mod_path).read() if os.path.exists(go_mod_path) else f"module {module}\n"
    with open(os.path.join(where, f"{version}.mod"), "w") as f:
        f.write(go_mod)
    with open(os.path.join(where, f"{version}.info"), "w") as f:
        json.dump({"Version": version, "Time": "2020-01-01T00:00:00Z"}, f)
    with zipfile.ZipFile(os.path.join(where, f"{version}.zip"), "w") as z:
        for folder, dirs, files in os.walk(source):
            dirs.sort()
            for name in sorted(files):
                path = os.path.join(folder, name)
                z.write(path, f"{module}@{version}/" + os.path.relpath(path, source))
    with open(os.path.join(where, "list"), "a") as f:
        f.write(version + "\n")


def main():
    proxy = sys.argv[1]
    for arg in sys.argv[2:]:
        spec, source = arg.split("=", 1)
        module, version = spec.split("@", 1)
        add_module(proxy, module, version, source)


if __name__ == "__main__":
    main()
