#!/usr/bin/env python3
"""Deterministic benchmark trees for bench/run.sh.

    gen_tree.py layer DIR   205 MB: 20 000 small text files (1-16 KiB) + 3 large files (90 MiB)
    gen_tree.py big DIR     1 GiB: one incompressible and one text file, 512 MiB each
    gen_tree.py many DIR    60 000 empty files in 600 folders (per-entry costs)
    gen_tree.py tiny DIR    1 000 000 files of 0-100 bytes ("x" repeated) in 1000 folders

Every byte of the first three comes from AES-128-CTR keystreams made by
`openssl enc` with a key derived from a fixed seed string, so the same command
gives the same tree on any machine (file contents, names, sizes and modes; mtimes are not fixed). Text is
pseudo-words, operators and line breaks drawn by keystream bytes: it compresses
like source code (gzip -6: about 4x); the keystream itself does not compress
at all.
"""
import bisect
import hashlib
import os
import subprocess
import sys

MiB = 1 << 20


def keystream(seed):
    """A file object yielding the AES-128-CTR keystream for `seed`, endlessly."""
    key = hashlib.sha256(seed.encode()).hexdigest()[:32]
    p = subprocess.Popen(
        ["openssl", "enc", "-aes-128-ctr", "-nosalt", "-K", key, "-iv", "0" * 32],
        stdin=open("/dev/zero", "rb"), stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL, bufsize=MiB)
    return p


def read_exact(p, n):
    data = p.stdout.read(n)
    if len(data) != n:
        raise SystemExit("gen_tree: openssl keystream ended early")
    return data


def close(p):
    p.stdout.close()
    p.kill()
    p.wait()


# Text: tokens drawn from a Zipf-like distribution (exponent 0.75) over a
# vocabulary of operators, line breaks with indentation, 4096 pseudo-words and 48
# recurring "lines". Calibrated on Go's standard library source, which gzip -6
# shrinks about 4.2x at ~37 MB/s on a 2-core EPYC: this text shrinks about 4x.
LETTERS = b"etaoinshrdlcumwfgypbvkjxqz"
OPS = [b" ", b" ", b" ", b" ", b"(", b")", b"{", b"}", b", ", b".", b" := ", b" = ",
       b" == ", b" != ", b"[", b"]", b": ", b"; ", b'"', b" + ", b" && ", b" // "]
BREAKS = [b"\n", b"\n\t", b"\n\t\t", b"\n\t\t\t", b"\n}\n", b"\n\n"]
N_WORDS, N_LINES, ZIPF_S = 4096, 48, 0.75


def vocabulary():
    """A table of 65536 tokens: a uniform 16-bit keystream value picks one."""
    p = keystream("imgbuild-bench-vocabulary")
    words = []
    for _ in range(N_WORDS):
        b = read_exact(p, 13)
        # lengths 2..11; letters skewed towards the common ones
        words.append(bytes(LETTERS[(x * x) // 2600 % 26] for x in b[1:3 + b[0] % 10]))
    lines = []
    for _ in range(N_LINES):
        b = read_exact(p, 8)
        toks = []
        for x in b:
            toks += [words[x % 200], OPS[x % len(OPS)]]
        lines.append(b"".join(toks) + BREAKS[b[0] % len(BREAKS)])
    close(p)
    # rank order: operators, breaks, words and lines interleaved (most frequent first)
    vocab = []
    for i in range(N_WORDS):
        if i < len(OPS):
            vocab.append(OPS[i])
        if i < len(BREAKS):
            vocab.append(BREAKS[i])
        vocab.append(words[i])
        if i < N_LINES:
            vocab.append(lines[i])
    weights = [1 / (r + 1) ** ZIPF_S for r in range(len(vocab))]
    total, acc, cdf = sum(weights), 0.0, []
    for w in weights:
        acc += w / total
        cdf.append(acc)
    return [vocab[min(bisect.bisect_left(cdf, (u + 0.5) / 65536), len(vocab) - 1)]
            for u in range(65536)]


def text_corpus(size):
    """`size` bytes of text-like data."""
    table = vocabulary()
    p = keystream("imgbuild-bench-text")
    out, n = [], 0
    while n < size:
        b = read_exact(p, 128 * 1024)
        chunk = b"".join(table[b[i] << 8 | b[i + 1]] for i in range(0, len(b), 2))
        out.append(chunk)
        n += len(chunk)
    close(p)
    return b"".join(out)[:size]


def write_random(path, size, seed):
    p = keystream(seed)
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 4 * MiB)
            f.write(read_exact(p, n))
            left -= n
    close(p)


def write_text(path, size, corpus, rng):
    """`size` bytes made of 64 KiB slices of `corpus` at keystream offsets."""
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 64 * 1024)
            off = int.from_bytes(read_exact(rng, 4), "big") % (len(corpus) - n)
            f.write(corpus[off:off + n])
            left -= n


def write_mixed(path, size, corpus, rng, seed):
    """Alternating 1 MiB chunks: keystream (incompressible) then text."""
    rnd = keystream(seed)
    with open(path, "wb") as f:
        left, i = size, 0
        while left:
            n = min(left, MiB)
            if i % 2 == 0:
                f.write(read_exact(rnd, n))
            else:
                off = int.from_bytes(read_exact(rng, 4), "big") % (len(corpus) - n)
                f.write(corpus[off:off + n])
            left -= n
            i += 1
    close(rnd)


def layer_tree(root):
    corpus = text_corpus(16 * MiB)
    rng = keystream("imgbuild-bench-layout")
    exts = [".go", ".js", ".json", ".md", ".txt", ".html", ".css", ".yaml"]
    for i in range(20000):
        # log-uniform 1..16 KiB: most files are small, as in real trees
        u = int.from_bytes(read_exact(rng, 2), "big") / 65536
        size = int(1024 * 16 ** u)
        off = int.from_bytes(read_exact(rng, 4), "big") % (len(corpus) - size)
        d = os.path.join(root, "src", "m%02d" % (i // 2000), "p%02d" % ((i // 100) % 20))
        if i % 100 == 0:
            os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "f%05d%s" % (i, exts[i % len(exts)])), "wb") as f:
            f.write(corpus[off:off + size])
    large = os.path.join(root, "large")
    os.makedirs(large)
    write_random(os.path.join(large, "blob-40m.bin"), 40 * MiB, "imgbuild-bench-blob")
    write_mixed(os.path.join(large, "mixed-30m.bin"), 30 * MiB, corpus, rng, "imgbuild-bench-mixed")
    write_text(os.path.join(large, "log-20m.txt"), 20 * MiB, corpus, rng)
    close(rng)


def big_tree(root):
    corpus = text_corpus(16 * MiB)
    rng = keystream("imgbuild-bench-big-layout")
    os.makedirs(root)
    write_random(os.path.join(root, "incompressible-512m.bin"), 512 * MiB, "imgbuild-bench-big")
    write_text(os.path.join(root, "text-512m.txt"), 512 * MiB, corpus, rng)
    close(rng)


def many_tree(root):
    for d in range(600):
        folder = os.path.join(root, "d%03d" % d)
        os.makedirs(folder)
        for i in range(100):
            open(os.path.join(folder, "f%03d" % i), "wb").close()


def tiny_tree(root):
    for d in range(1000):
        folder = os.path.join(root, "d%04d" % d)
        os.makedirs(folder)
        for i in range(1000):
            with open(os.path.join(folder, "f%04d" % i), "wb") as f:
                f.write(b"x" * ((d * 7 + i * 13) % 101))


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("layer", "big", "many", "tiny"):
        raise SystemExit(__doc__)
    kind, root = sys.argv[1], sys.argv[2]
    if os.path.exists(root):
        raise SystemExit("gen_tree: %s exists" % root)
    os.umask(0o022)
    {"layer": layer_tree, "big": big_tree, "many": many_tree, "tiny": tiny_tree}[kind](root)


if __name__ == "__main__":
    main()
