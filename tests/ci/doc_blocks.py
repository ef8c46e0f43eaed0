#!/usr/bin/env python3
"""The examples of a Markdown page, for tests that run them as written.

  doc_blocks.py PAGE LANG N       prints the Nth (from 1) ```LANG block of PAGE
  doc_blocks.py PAGE --imgbuild   prints every imgbuild command line of the
                                  page's YAML job definitions, one a line, from
                                  the word `imgbuild` on (a `docker run ... IMAGE
                                  imgbuild build ...` line gives its imgbuild
                                  part), with GitHub's ${{ ... }} expressions
                                  replaced by "x"
"""
import re
import sys

import yaml


def blocks(text, lang):
    return re.findall(r"^```" + re.escape(lang) + r"\n(.*?)^```", text, re.S | re.M)


def strings(node):
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from strings(value)


def main():
    text = open(sys.argv[1], encoding="utf-8").read()
    if sys.argv[2] == "--imgbuild":
        found = 0
        for block in blocks(text, "yaml"):
            for s in strings(yaml.safe_load(block)):
                for line in s.splitlines():
                    at = line.find("imgbuild build")
                    if at >= 0:
                        print(re.sub(r"\$\{\{[^}]*\}\}", "x", line[at:]))
                        found += 1
        if not found:
            sys.exit("no imgbuild command line in the YAML blocks of " + sys.argv[1])
        return
    found = blocks(text, sys.argv[2])
    n = int(sys.argv[3])
    if n > len(found):
        sys.exit(f"{sys.argv[1]} has {len(found)} ```{sys.argv[2]} blocks, not {n}")
    sys.stdout.write(found[n - 1])


main()
