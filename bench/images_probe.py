#!/usr/bin/env python3
"""Helpers of bench/images.sh (the image benchmark); python3 standard library only.

    images_probe.py tree DIR [SCALE]       the test image's build directories
    images_probe.py port                   a free TCP port on 127.0.0.1
    images_probe.py wait-http URL SECONDS  wait until URL answers (any HTTP status)
    images_probe.py layers LAYOUT_DIR REF  the layer blobs of REF in an OCI layout, in order
    images_probe.py digest DIR             one digest of the tree below DIR, and its counts
    images_probe.py rusage FILE LABEL -- CMD...   run CMD, append its times to FILE
    images_probe.py layer-records STORE    moor's records of the layers it unpacked
    images_probe.py report OUT             the summary, from the files in OUT

`tree` writes DIR/l1 .. DIR/l5, one build directory per layer, each with an image.yaml
(l1 `from: scratch`, lN `from:` l(N-1)'s tag) and a `root/` tree copied to `/`. The
content is generated from a fixed seed, so every run and every machine builds the same
image: about 200 MB and 32,000 files at SCALE 1 (sizes scale with SCALE, for quick
trials). File sizes follow a log-normal distribution (median ~1.8 KB, a tail of files
up to 4 MiB, like a distribution's /usr); three kinds of content, drawn per file:
text (gzip ~3.5:1), machine-code-like bytes (~2:1) and random bytes (incompressible, like
already compressed media). About 4% of the entries are symlinks; layers 3 and 4
replace some of layer 1's files (an update), so the layers overlap as real ones do.
"""

import hashlib
import json
import math
import os
import random
import re
import socket
import stat
import statistics
import sys
import time
import urllib.error
import urllib.request

SEED = 20261122
# Uncompressed bytes per layer at SCALE 1, bottom first: a large base, smaller layers on top.
LAYER_MB = [90, 50, 30, 20, 10]
TAG = "bench/images"

SYLLABLES = ["ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "xe", "zu", "an", "el", "in",
             "or", "us", "bra", "cle", "dri", "fo", "gru", "ph", "qu", "st", "th", "wy"]


def word(rng, lo=1, hi=3):
    return "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(lo, hi)))


def text_corpus(rng, size):
    """Pseudo-text with a Zipf-like vocabulary: compresses about like documentation."""
    vocab = [word(rng, 1, 4) for _ in range(3000)]
    weights = [1.0 / (i + 1) for i in range(len(vocab))]
    out = []
    total = 0
    while total < size:
        n = rng.randint(4, 14)
        line = " ".join(rng.choices(vocab, weights, k=n))
        if rng.random() < 0.1:
            line = "    " + line + " = " + str(rng.randint(0, 1 << 20)) + ";"
        out.append(line)
        total += len(line) + 1
    return ("\n".join(out) + "\n").encode()[:size]


def code_corpus(rng, size):
    """Bytes shaped like machine code and data sections: ~2:1 under gzip."""
    common = bytes(rng.randrange(256) for _ in range(40))
    strings = [word(rng, 2, 5).encode() + b"\0" for _ in range(400)]
    parts = []
    total = 0
    while total < size:
        r = rng.random()
        if r < 0.50:
            n = rng.randint(32, 512)
            part = bytes(rng.choice(common) if rng.random() < 0.72 else rng.randrange(256)
                         for _ in range(n))
        elif r < 0.65:
            part = rng.randbytes(rng.randint(16, 192))
        elif r < 0.82:
            part = b"".join(rng.choice(strings) for _ in range(rng.randint(2, 12)))
        else:
            part = b"\0" * rng.randint(8, 160)
        parts.append(part)
        total += len(part)
    return b"".join(parts)[:size]


def window(rng, corpus, size, stamp):
    """`size` bytes of `corpus` from a random offset (wrapping), starting with `stamp`."""
    head = stamp[:size]
    need = size - len(head)
    out = [head]
    off = rng.randrange(len(corpus))
    while need > 0:
        take = min(need, len(corpus) - off)
        out.append(corpus[off:off + take])
        need -= take
        off = 0
    return b"".join(out)


def file_size(rng):
    return max(0, min(4 << 20, int(math.exp(rng.gauss(math.log(1800), 1.55)))))


def tree(dest, scale):
    rng = random.Random(SEED)
    corpus_text = text_corpus(rng, 4 << 20)
    corpus_code = code_corpus(rng, 4 << 20)
    base_files = []  # layer 1's regular files: paths later layers replace
    summary = []
    for index, mb in enumerate(LAYER_MB, 1):
        budget = int(mb * scale * 1e6)
        build = os.path.join(dest, "l%d" % index)
        root = os.path.join(build, "root")
        os.makedirs(root)
        files = links = dirs = 0
        written = 0
        tops = ["usr/lib", "usr/share", "usr/lib/x86_64-linux-gnu", "opt/app%d" % index,
                "etc", "usr/bin"]
        made_dirs = set()

        def put(rel, data, mode):
            nonlocal files, written, dirs
            path = os.path.join(root, rel)
            parent = os.path.dirname(path)
            if parent not in made_dirs:
                before = len(made_dirs)
                p = parent
                while p != root and p not in made_dirs:
                    made_dirs.add(p)
                    p = os.path.dirname(p)
                dirs += len(made_dirs) - before
                os.makedirs(parent, exist_ok=True)
            with open(path, "wb") as f:
                f.write(data)
            os.chmod(path, mode)
            files += 1
            written += len(data)

        def content(rel, size):
            kind = rng.random()
            stamp = ("# %s\n" % rel).encode()
            if kind < 0.45:
                return window(rng, corpus_text, size, stamp), 0o644
            if kind < 0.80:
                mode = 0o755 if rng.random() < 0.4 else 0o644
                return window(rng, corpus_code, size, b"\x7fELF" + stamp), mode
            return rng.randbytes(size), 0o644

        # An update: layers 3 and 4 replace some of layer 1's files with new content.
        if index in (3, 4) and base_files:
            for rel in rng.sample(base_files, min(len(base_files), int(300 * scale) + 1)):
                data, mode = content(rel, file_size(rng))
                put(rel, data, mode)
        while written < budget:
            top = rng.choice(tops)
            package = "%s/%s%d" % (top, word(rng), rng.randrange(100))
            count = rng.randint(10, 150)
            subdirs = [package] + ["%s/%s" % (package, "/".join(word(rng) for _ in range(rng.randint(1, 3))))
                                   for _ in range(rng.randint(0, 6))]
            names = []
            for _ in range(count):
                d = rng.choice(subdirs)
                rel = "%s/%s.%s" % (d, word(rng, 1, 4), rng.choice(["so", "txt", "conf", "py", "png", "gz", "dat", "h"]))
                if rel in names:
                    continue
                data, mode = content(rel, file_size(rng))
                put(rel, data, mode)
                names.append(rel)
                if index == 1:
                    base_files.append(rel)
                if written >= budget:
                    break
            # Symlinks to files of the same package, as lib.so -> lib.so.1 in a real /usr.
            for rel in rng.sample(names, max(0, len(names) // 25)):
                link = rel + ".%d" % rng.randrange(1, 9)
                path = os.path.join(root, link)
                if os.path.lexists(path):
                    continue
                target = os.path.relpath(os.path.join(root, rel), os.path.dirname(path))
                os.symlink(target, path)
                links += 1
        parent = "scratch" if index == 1 else "%s:l%d" % (TAG, index - 1)
        with open(os.path.join(build, "image.yaml"), "w") as f:
            f.write("from: %s\n" % parent)
            f.write("copy:\n  - { src: root, dest: / }\n")
            f.write('cmd: ["/usr/bin/true"]\n')
            f.write('labels: { layer: "%d" }\n' % index)
        summary.append({"layer": index, "files": files, "dirs": dirs, "symlinks": links,
                        "bytes": written})
    json.dump(summary, sys.stdout)
    print()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    print(port)


def wait_http(url, seconds):
    deadline = time.monotonic() + float(seconds)
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return 0
        except urllib.error.HTTPError:
            return 0
        except OSError:
            if time.monotonic() > deadline:
                print("no answer from %s after %s s" % (url, seconds), file=sys.stderr)
                return 1
            time.sleep(0.1)


def layers(layout, ref):
    """Paths of the layer blobs of the image tagged `ref` in an OCI layout directory."""
    def blob(digest):
        alg, hexd = digest.split(":", 1)
        return os.path.join(layout, "blobs", alg, hexd)
    with open(os.path.join(layout, "index.json")) as f:
        index = json.load(f)
    for m in index["manifests"]:
        if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == ref:
            with open(blob(m["digest"])) as f:
                manifest = json.load(f)
            for layer in manifest["layers"]:
                print(blob(layer["digest"]))
            return 0
    print("no image tagged %s in %s" % (ref, layout), file=sys.stderr)
    return 1


def tree_digest(path):
    """One digest over every entry below `path` (not the top itself): name, type,
    permission bits, owner, and the content of files or the target of links. Times are
    left out. Equal digests mean the same root file system."""
    h = hashlib.sha256()
    kinds = {"entries": 0, "files": 0, "dirs": 0, "symlinks": 0, "other": 0, "bytes": 0}
    for root, dirnames, filenames in os.walk(path):
        dirnames.sort()
        names = sorted(dirnames + filenames)
        for n in names:
            full = os.path.join(root, n)
            rel = os.path.relpath(full, path)
            st = os.lstat(full)
            fmt = stat.S_IFMT(st.st_mode)
            kinds["entries"] += 1
            h.update(b"%s\0%o\0%o\0%d:%d\0" % (os.fsencode(rel), fmt, stat.S_IMODE(st.st_mode),
                                              st.st_uid, st.st_gid))
            if fmt == stat.S_IFREG:
                kinds["files"] += 1
                kinds["bytes"] += st.st_size
                fh = hashlib.sha256()
                with open(full, "rb") as f:
                    while True:
                        b = f.read(1 << 20)
                        if not b:
                            break
                        fh.update(b)
                h.update(fh.digest())
            elif fmt == stat.S_IFLNK:
                kinds["symlinks"] += 1
                h.update(os.fsencode(os.readlink(full)))
            elif fmt == stat.S_IFDIR:
                kinds["dirs"] += 1
            else:
                kinds["other"] += 1
                h.update(b"%d" % st.st_rdev)
    kinds["digest"] = h.hexdigest()
    print(json.dumps(kinds))


def rusage(out, label, argv):
    """Runs argv once (output discarded) and appends wall, user and system time and the
    peak RSS (wait4 counts the children it reaped too) to the JSON-lines file `out`."""
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        try:
            os.execvp(argv[0], argv)
        finally:
            os._exit(127)
    _, status, ru = os.wait4(pid, 0)
    wall = time.monotonic() - start
    rc = os.waitstatus_to_exitcode(status)
    with open(out, "a") as f:
        f.write(json.dumps({"label": label, "wall": wall, "user": ru.ru_utime,
                            "system": ru.ru_stime, "maxrss_kib": ru.ru_maxrss, "rc": rc}) + "\n")
    return rc


def layer_records(store):
    """moor's records of the layers it unpacked (entries and bytes per layer)."""
    d = os.path.join(store, "images", "layers", "sha256")
    out = []
    for n in sorted(os.listdir(d)):
        if n.endswith(".json"):
            with open(os.path.join(d, n)) as f:
                r = json.load(f)
            out.append({"chain_id": n[:-5], "entries": r.get("entries"), "size": r.get("size")})
    print(json.dumps(out))


# --- the report --------------------------------------------------------------------------

def load(path, default=None):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return default


def load_lines(path):
    try:
        with open(path) as f:
            return [json.loads(line) for line in f if line.strip()]
    except (OSError, ValueError):
        return []


def hyperfine(path):
    """name -> result of a hyperfine JSON export."""
    data = load(path, {}) or {}
    return {r["command"]: r for r in data.get("results", [])}


def strace_table(path):
    """Rows of an `strace -c` summary: (syscall, seconds, calls, errors), and the total."""
    rows, total = [], None
    try:
        lines = open(path).read().splitlines()
    except OSError:
        return rows, total
    for line in lines:
        parts = line.split()
        if len(parts) < 5 or not re.match(r"^[0-9.]+$", parts[0]):
            continue
        try:
            seconds = float(parts[1])
            calls = int(parts[3])
        except ValueError:
            continue
        errors = int(parts[4]) if len(parts) == 6 else 0
        row = (parts[-1], seconds, calls, errors)
        if parts[-1] == "total":
            total = row
        else:
            rows.append(row)
    return rows, total


def report(out):
    meta = {}
    try:
        for line in open(os.path.join(out, "meta.txt")):
            if "=" in line:
                k, v = line.rstrip("\n").split("=", 1)
                meta[k] = v
    except OSError:
        pass
    image = load(os.path.join(out, "image.json"), {}) or {}
    p = lambda *a: print(*a)
    runs = meta.get("runs", "?")
    p("moor image benchmark, %s, moor %s, %s cores, %s" % (
        meta.get("date", "?"), meta.get("moor_commit", "?"), meta.get("cores", "?"),
        meta.get("kernel", "?")))
    layers = image.get("layers", [])
    if layers:
        files = sum(l["files"] for l in layers)
        links = sum(l["symlinks"] for l in layers)
        raw = sum(l["bytes"] for l in layers)
        p("image: %d layers, %s files and %s symlinks in %.1f MB of file data; layer tars "
          "%.1f MB, gzip %.1f MB (%.2f:1); OCI archive %.1f MB" % (
              len(layers), format(files, ","), format(links, ","), raw / 1e6,
              image.get("tar_bytes", 0) / 1e6, image.get("gzip_bytes", 0) / 1e6,
              image.get("tar_bytes", 0) / max(1, image.get("gzip_bytes", 1)),
              image.get("archive_bytes", 0) / 1e6))
    check = load(os.path.join(out, "check.json"), {}) or {}
    if check:
        same = len({v.get("digest") for v in check.values()}) == 1
        first = next(iter(check.values()))
        p("root file systems compared (names, types, modes, owners, contents, link targets): %s "
          "(%s entries, %s files, %.1f MB)" % (
              "identical for " + ", ".join(check) if same else "DIFFERENT: " + ", ".join(
                  "%s %s" % (k, v.get("digest", "?")[:12]) for k, v in check.items()),
              format(first.get("entries", 0), ","), format(first.get("files", 0), ","),
              first.get("bytes", 0) / 1e6))

    def table(title, results, moor_name, peers):
        if not results:
            p("\n%s: not measured" % title)
            return
        p("\n%s" % title)
        p("  %-40s %9s %9s %8s %9s   %s" % ("", "median s", "mean s", "stddev", "min s", "moor / this"))
        m = results.get(moor_name)
        for name, label in peers:
            r = results.get(name)
            if not r:
                p("  %-40s %9s" % (label, "failed"))
                continue
            ratio = ""
            if m and name != moor_name:
                ratio = "%.2fx" % (m["median"] / r["median"])
            p("  %-40s %9.2f %9.2f %8.2f %9.2f   %s" % (
                label, r["median"], r["mean"], r.get("stddev") or 0.0, r["min"], ratio))

    unpack_rows = [
        ("moor", "moor image import + image bundle"),
        ("skopeo+umoci", "skopeo copy + umoci unpack"),
        ("tar", "tar -xzf of each layer (floor)"),
        ("tar+sync", "tar -xzf of each layer, then sync"),
    ]
    unpack = hyperfine(os.path.join(out, "unpack.json"))
    table("unpack from the OCI archive into a runnable root: warm page cache, cold store, "
          "%s runs" % runs, unpack, "moor", unpack_rows)
    cold = hyperfine(os.path.join(out, "unpack-cold.json"))
    if cold:
        table("the same with cold caches (sync; drop_caches before each), %s runs" %
              meta.get("cold_runs", "?"), cold, "moor", unpack_rows)
    pull = hyperfine(os.path.join(out, "pull.json"))
    table("pull from docker-registry on 127.0.0.1 (plain HTTP), fresh store each run, %s runs"
          % runs, pull, "moor", [
              ("moor", "moor image pull (download + unpack)"),
              ("skopeo", "skopeo copy (download only)"),
              ("skopeo+umoci", "skopeo copy + umoci unpack"),
          ])

    p("\nstep-2 goals (warm page cache, medians)")
    m, su, t = (unpack.get(k) for k in ("moor", "skopeo+umoci", "tar"))

    def goal(text, a, b, limit, an, bn):
        if not (a and b):
            p("  [FAIL] %s: not measured (%s or %s failed)" % (text, an, bn))
            return
        ratio = a["median"] / b["median"]
        p("  [%s] %s: moor %.2f s, %s %.2f s: %.2fx" % (
            "PASS" if ratio <= limit else "FAIL", text, a["median"], bn, b["median"], ratio))
    goal("moor at least 2x faster than skopeo+umoci (<= 0.50x)", m, su, 0.5, "moor", "skopeo+umoci")
    goal("moor within 1.3x of tar -xzf (<= 1.30x)", m, t, 1.3, "moor", "tar")
    ts = unpack.get("tar+sync")
    if m and ts:
        p("         for reference, against tar -xzf then sync (durable, as moor is): %.2fx"
          % (m["median"] / ts["median"]))

    phases = load_lines(os.path.join(out, "rusage.jsonl"))
    if phases:
        p("\nwhere the time goes: each step alone, medians of %s runs (fresh output, warm cache)"
          % meta.get("phase_runs", "?"))
        p("  %-34s %8s %8s %8s %8s %10s" % ("", "wall s", "user s", "sys s", "cpu/wall", "max RSS"))
        order = []
        for ph in phases:
            if ph["label"] not in order:
                order.append(ph["label"])
        for label in order:
            rs = [ph for ph in phases if ph["label"] == label]
            med = lambda k: statistics.median(r[k] for r in rs)
            bad = [r["rc"] for r in rs if r["rc"] != 0]
            p("  %-34s %8.2f %8.2f %8.2f %8.2f %7.1f MiB%s" % (
                label, med("wall"), med("user"), med("system"),
                (med("user") + med("system")) / max(med("wall"), 1e-9),
                med("maxrss_kib") / 1024, "  (exit %s)" % bad[0] if bad else ""))

    records = load(os.path.join(out, "moor-layers.json"), []) or []
    entries = sum(r.get("entries") or 0 for r in records)
    for name, label in (("import", "moor image import"), ("bundle", "moor image bundle")):
        rows, total = strace_table(os.path.join(out, "strace-%s.txt" % name))
        wrows, wtotal = strace_table(os.path.join(out, "strace-wall-%s.txt" % name))
        if not total:
            continue
        per = " = %.1f per archive entry (%s entries)" % (total[2] / entries, format(entries, ",")) \
            if entries and name == "bundle" else ""
        p("\n  %s: %s syscalls%s, %.2f s of system time under strace -c" % (
            label, format(total[2], ","), per, total[1]))
        top = sorted(rows, key=lambda r: -r[1])[:8]
        p("    system time: " + ", ".join("%s %.2f s (%s)" % (r[0], r[1], format(r[2], ",")) for r in top))
        if wrows:
            wtop = sorted(wrows, key=lambda r: -r[1])[:8]
            p("    wall time:   " + ", ".join("%s %.2f s (%s)" % (r[0], r[1], format(r[2], ",")) for r in wtop))
    for fname, title in (("perf-comm.txt", "cpu-clock samples by thread and object"),
                         ("perf-profile.txt", "cpu-clock profile of import + bundle, top symbols")):
        try:
            lines = [l.rstrip() for l in open(os.path.join(out, fname)) if l.strip()]
        except OSError:
            continue
        if lines:
            p("\n  %s:" % title)
            for l in lines[:14]:
                p("    " + l.strip())
    if meta.get("perf") == "absent":
        p("\n  perf: not installed, no profile")


if __name__ == "__main__":
    cmd, args = (sys.argv[1], sys.argv[2:]) if len(sys.argv) > 1 else ("", [])
    if cmd == "tree":
        tree(args[0], float(args[1]) if len(args) > 1 else 1.0)
    elif cmd == "port":
        free_port()
    elif cmd == "wait-http":
        sys.exit(wait_http(args[0], args[1]))
    elif cmd == "layers":
        sys.exit(layers(args[0], args[1]))
    elif cmd == "digest":
        tree_digest(args[0])
    elif cmd == "rusage" and len(args) > 3 and args[2] == "--":
        sys.exit(rusage(args[0], args[1], args[3:]))
    elif cmd == "layer-records":
        layer_records(args[0])
    elif cmd == "report":
        report(args[0])
    else:
        sys.exit(__doc__)
