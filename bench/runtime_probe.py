#!/usr/bin/env python3
"""Measurements for bench/runtime.sh that hyperfine cannot take (python3 stdlib only).

    runtime_probe.py bundle SPEC_JSON WORK_DIR
        writes WORK_DIR/{bundle,sleep,mem}/config.json from `runc spec`'s output
    runtime_probe.py rss OUT_JSON SAMPLES GNU_TIME -- ARGV...
        peak RSS (GNU time's %M, i.e. wait4's ru_maxrss) of SAMPLES runs of ARGV
    runtime_probe.py batch OUT_JSON COUNT ROUNDS BUNDLE ID_PREFIX -- RUNTIME_ARGV...
        COUNT `create`s started at once, timed until the last one exits; then
        `start` and `delete --force` of all of them (timed separately), ROUNDS times
    runtime_probe.py slowest OUT_TXT STRACE_PREFIX N
        the N longest single syscalls of a `strace -ff -T -y -o STRACE_PREFIX` trace
    runtime_probe.py memtest OUT_JSON -- ARGV...
        one run of ARGV: its exit code and the tail of what it printed

Every ARGV is run directly (no shell), with stdin and stdout on /dev/null.
"""

import json
import glob
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time


def write_json(path, value):
    with open(path, "w", encoding="utf-8") as out:
        json.dump(value, out, indent=1)
        out.write("\n")


def make_bundles(spec_path, work):
    """The benchmark's bundles, all from `runc spec`'s config.

    bundle/: the shared one (rootfs + `true`); sleep/: `sleep 3600` for exec; mem/:
    `true` with a 1 MiB memory limit. sleep/ and mem/ use bundle/rootfs by absolute path.
    """
    with open(spec_path, encoding="utf-8") as f:
        spec = json.load(f)
    process = spec["process"]
    process["terminal"] = False
    process["args"] = ["true"]
    # runc drops ambient capabilities that are not inheritable without a word; moor
    # refuses them. Neither runtime grants them, so the bundle does not ask.
    process["capabilities"].pop("ambient", None)
    spec["hostname"] = "bench"
    rootfs = os.path.join(work, "bundle", "rootfs")

    def write(name, mutate):
        config = json.loads(json.dumps(spec))
        mutate(config)
        os.makedirs(os.path.join(work, name), exist_ok=True)
        write_json(os.path.join(work, name, "config.json"), config)

    write("bundle", lambda c: None)

    def sleeper(c):
        c["process"]["args"] = ["sleep", "3600"]
        c["root"]["path"] = rootfs

    def one_mib(c):
        c["root"]["path"] = rootfs
        c["linux"].setdefault("resources", {})["memory"] = {"limit": 1048576}

    write("sleep", sleeper)
    write("mem", one_mib)


def rss(out_path, samples, time_bin, argv):
    """Peak RSS of SAMPLES runs of argv, from GNU time's %M (wait4's ru_maxrss).

    ru_maxrss covers the process across its execve's and the children it reaped (runc's
    `runc init`, moor's container child until it runs the user's program), and also the
    image the process had before its first execve: a child forked from this python
    would start at python's ~15 MB. GNU time forks from a ~1 MB process, and the floor
    that leaves is measured separately (the same on a static `true`).
    """
    kib, user, system, failures = [], [], [], 0
    with tempfile.NamedTemporaryFile("r", suffix=".time") as report:
        for _ in range(samples):
            cmd = [time_bin, "-f", "%M %U %S", "-o", report.name] + argv
            code = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False).returncode
            report.seek(0)
            fields = report.read().split()
            if code != 0 or len(fields) < 3:
                failures += 1
                continue
            kib.append(int(fields[-3]))
            user.append(float(fields[-2]))
            system.append(float(fields[-1]))
    result = {"argv": argv, "samples": samples, "failures": failures, "maxrss_kib": kib}
    if kib:
        result.update(
            max_kib=max(kib),
            median_kib=statistics.median(kib),
            min_kib=min(kib),
            user_s_median=statistics.median(user),
            system_s_median=statistics.median(system),
        )
    write_json(out_path, result)
    return failures == 0


def spawn_all(argvs):
    """Starts every argv at once and waits for all: (exit codes, seconds to the last,
    messages of the failed ones).

    stderr goes to files, not pipes: a created container's init inherits the runtime's
    stdio and holds it until `start`, so a pipe would not close when `create` exits.
    """
    errs = [tempfile.TemporaryFile() for _ in argvs]
    start = time.perf_counter()
    procs = [
        subprocess.Popen(a, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=e)
        for a, e in zip(argvs, errs)
    ]
    codes = [p.wait() for p in procs]
    took = time.perf_counter() - start
    errors = []
    for code, e in zip(codes, errs):
        if code != 0:
            e.seek(0)
            errors.append(e.read().decode(errors="replace").strip()[-300:])
        e.close()
    return codes, took, errors


def batch(out_path, count, rounds, bundle, prefix, runtime):
    creates, finishes, errors = [], [], []
    for r in range(rounds):
        ids = [f"{prefix}{r}-{i}" for i in range(count)]
        codes, took, errs = spawn_all([runtime + ["create", "--bundle", bundle, i] for i in ids])
        errors += errs
        if any(codes):
            # Leave the rest to the caller's clean-up; a failed batch has no time.
            break
        creates.append(took)
        start = time.perf_counter()
        s_codes, _, s_errs = spawn_all([runtime + ["start", i] for i in ids])
        d_codes, _, d_errs = spawn_all([runtime + ["delete", "--force", i] for i in ids])
        finishes.append(time.perf_counter() - start)
        errors += s_errs + d_errs
        if any(s_codes) or any(d_codes):
            break
    result = {
        "count": count,
        "rounds": rounds,
        "create_batch_s": creates,
        "start_delete_batch_s": finishes,
        "errors": errors[:5],
        "ok": len(creates) == rounds and not errors,
    }
    if creates:
        result.update(
            create_median_s=statistics.median(creates),
            create_mean_s=statistics.fmean(creates),
            create_min_s=min(creates),
            create_max_s=max(creates),
        )
    if finishes:
        result["start_delete_median_s"] = statistics.median(finishes)
    write_json(out_path, result)
    return result["ok"]


def memtest(out_path, argv):
    with tempfile.TemporaryFile() as err:
        code = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, check=False).returncode
        err.seek(0)
        message = err.read().decode(errors="replace").strip()
    write_json(out_path, {"argv": argv, "exit_code": code, "stderr": message[-600:]})
    return True


def slowest(out_path, prefix, top):
    """The longest single syscalls of a `strace -ff -T -y -o PREFIX` trace (one file per
    process, so no call is split across lines): where the runtime waits, and on what."""
    calls = []
    for path in glob.glob(glob.escape(prefix) + ".*"):
        pid = path.rsplit(".", 1)[1]
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                m = re.search(r"<([0-9]+\.[0-9]+)>$", line.rstrip())
                if m:
                    text = line.rstrip()[: m.start()].strip()
                    calls.append((float(m.group(1)), pid, text[:150]))
    calls.sort(reverse=True)
    with open(out_path, "w", encoding="utf-8") as out:
        for took, pid, text in calls[:top]:
            out.write(f"{took * 1e3:8.2f} ms  pid {pid:>7}  {text}\n")
    return True


def split_argv(args):
    if "--" not in args:
        sys.exit("runtime_probe.py: expected -- before the command")
    at = args.index("--")
    return args[:at], args[at + 1 :]


def main(args):
    if not args:
        sys.exit(__doc__)
    verb, rest = args[0], args[1:]
    if verb == "bundle":
        make_bundles(rest[0], rest[1])
        return 0
    if verb == "slowest":
        return 0 if slowest(rest[0], rest[1], int(rest[2])) else 1
    head, argv = split_argv(rest)
    if verb == "rss":
        return 0 if rss(head[0], int(head[1]), head[2], argv) else 1
    if verb == "batch":
        out, count, rounds, bundle, prefix = head
        return 0 if batch(out, int(count), int(rounds), bundle, prefix, argv) else 1
    if verb == "memtest":
        return 0 if memtest(head[0], argv) else 1
    sys.exit(f"runtime_probe.py: unknown verb {verb!r}\n{__doc__}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
