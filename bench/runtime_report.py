#!/usr/bin/env python3
"""The summary of bench/runtime.sh: reads its results directory, prints every section
and the table of ratios moor/runc (and moor/youki) with the step-1 goals checked.

    runtime_report.py RESULTS_DIR

Times are hyperfine's (seconds in its JSON, milliseconds here); ratios use medians.
python3 stdlib only.
"""

import json
import os
import sys

RUNTIMES = ("moor", "runc", "youki")
# shared/STACK.md, "Runtime peers measured here": youki 0.7.0's peak RSS for `run`.
YOUKI_RSS_STACK_MB = 7.2
GOAL_RUN_RATIO = 0.5
ONE_MIB = 1048576


def load_json(directory, name):
    path = os.path.join(directory, name)
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def load_meta(directory):
    meta = {}
    path = os.path.join(directory, "meta.txt")
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            # "runs=100 cold_runs=15 ..." is one line of several pairs; the others are
            # one pair whose value may hold spaces.
            if line.startswith("runs="):
                for pair in line.split():
                    k, _, v = pair.partition("=")
                    meta[k] = v
            elif "=" in line:
                k, _, v = line.partition("=")
                meta[k] = v
    return meta


def hyperfine_results(doc):
    """{name: {median, mean, stddev, min, max, user, system}} in milliseconds."""
    if not doc:
        return {}
    out = {}
    for r in doc["results"]:
        out[r["command"]] = {
            "median": r["median"] * 1e3,
            "mean": r["mean"] * 1e3,
            "stddev": (r.get("stddev") or 0.0) * 1e3,
            "min": r["min"] * 1e3,
            "max": r["max"] * 1e3,
            "user": r["user"] * 1e3,
            "system": r["system"] * 1e3,
            "runs": len(r.get("times", [])),
        }
    return out


def fmt(value, digits=1):
    return "-" if value is None else f"{value:.{digits}f}"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def fmt_ratio(value):
    return "-" if value is None else f"{value:.2f}x"


def print_hyperfine(title, results, present):
    print(f"\n{title}")
    print(f"  {'':<18}{'median':>9}{'mean':>9}{'stddev':>9}{'min':>9}{'max':>9}{'user':>8}{'sys':>8}  runs")
    for name, r in results.items():
        if name not in present and name in RUNTIMES:
            continue
        print(
            f"  {name:<18}{r['median']:9.2f}{r['mean']:9.2f}{r['stddev']:9.2f}{r['min']:9.2f}"
            f"{r['max']:9.2f}{r['user']:8.2f}{r['system']:8.2f}  {r['runs']}"
        )


def strace_table(path, top=12):
    if not os.path.exists(path):
        return ["  (missing)"]
    with open(path, encoding="utf-8") as f:
        lines = [l.rstrip("\n") for l in f if l.strip()]
    # Header, separator, rows ..., separator, total.
    start = next((i for i, l in enumerate(lines) if l.startswith("% time")), None)
    if start is None:
        return ["  " + l for l in lines[:top]]
    rows = []
    for line in lines[start + 2 :]:
        if line.startswith("------"):
            break
        rows.append(line)
    total = lines[-1]
    return ["  " + l for l in [lines[start]] + rows[:top] + [total]]


def perf_stat(path):
    """{event: (value, unit)} from `perf stat -x,` output."""
    if not os.path.exists(path):
        return {}
    out = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip() or line.startswith("#"):
                continue
            fields = line.rstrip("\n").split(",")
            if len(fields) < 3:
                continue
            value, unit, event = fields[0], fields[1], fields[2]
            try:
                out[event] = (float(value), unit)
            except ValueError:
                out[event] = (None, value)
    return out


def main(directory):
    meta = load_meta(directory)
    present = [rt for rt in RUNTIMES if rt == "moor" or f"{rt}_path" in meta]
    youki = "youki" in present

    print("\n" + "=" * 78)
    print(f"moor runtime benchmark, {meta.get('date')}")
    print(
        f"machine: {meta.get('cpu')}, {meta.get('cores')} cores, {meta.get('memory_mib')} MiB, "
        f"Linux {meta.get('kernel')}, cgroups {meta.get('cgroups')}"
    )
    print(f"load average before/after: {meta.get('load_before')} / {meta.get('load_after')}")
    print(f"moor {meta.get('moor_commit')} ({meta.get('moor_path')})")
    print(f"{meta.get('runc_version')} ({meta.get('runc_path')})")
    print(f"youki: {meta.get('youki_version') + ' (' + meta.get('youki_path') + ')' if youki else 'absent'}")
    print(meta.get("hyperfine", ""))

    print("\nbinary sizes")
    sizes = {}
    for rt in present:
        b = int(meta[f"{rt}_bytes"])
        sizes[rt] = b
        print(f"  {rt:<6}{b:>12,} bytes {b / ONE_MIB:8.2f} MiB")

    idle = f"{meta.get('idle_ms', '50')} ms idle before each"
    warm = hyperfine_results(load_json(directory, "run.json"))
    spaced = hyperfine_results(load_json(directory, "run-spaced.json"))
    cold = hyperfine_results(load_json(directory, "run-cold.json"))
    life = hyperfine_results(load_json(directory, "lifecycle.json"))
    life_spaced = hyperfine_results(load_json(directory, "lifecycle-spaced.json"))
    execs = hyperfine_results(load_json(directory, "exec.json"))
    execs_spaced = hyperfine_results(load_json(directory, "exec-spaced.json"))
    print_hyperfine("run, warm caches, back to back (ms)", warm, present)
    print_hyperfine(f"run, warm caches, {idle} (ms)", spaced, present)
    print_hyperfine("run, cold caches (ms)", cold, present)

    def net_of_shell(results):
        base = results.get("sh (empty script)", {}).get("median")
        return {rt: results[rt]["median"] - base for rt in present if rt in results and base is not None}

    net, net_spaced = net_of_shell(life), net_of_shell(life_spaced)
    for label, results, n in (("back to back", life, net), (idle, life_spaced, net_spaced)):
        print_hyperfine(f"create + start + delete --force from sh, {label} (ms, shell included)", results, present)
        if n:
            print("  net of the empty sh script (medians): " + ", ".join(f"{rt} {v:.2f}" for rt, v in n.items()))
    print_hyperfine("exec ID true, back to back (ms)", execs, present)
    print_hyperfine(f"exec ID true, {idle} (ms)", execs_spaced, present)

    print(f"\n{meta.get('batch', '?')} creates at once, wall time to the last exit (ms)")
    batch = {}
    for rt in present:
        b = load_json(directory, f"batch-{rt}.json")
        if not b:
            continue
        batch[rt] = b
        rounds = " ".join(f"{t * 1e3:.1f}" for t in b["create_batch_s"])
        line = f"  {rt:<6} median {fmt(b.get('create_median_s', 0) * 1e3)}  rounds: {rounds}"
        if "start_delete_median_s" in b:
            line += f"  (then start+delete of all: {b['start_delete_median_s'] * 1e3:.1f})"
        if not b["ok"]:
            line += f"  FAILED: {b['errors'][:1]}"
        print(line)

    print("\npeak RSS of run (GNU time %M = wait4 ru_maxrss)")
    floor = load_json(directory, "rss-floor.json")
    if floor and "max_kib" in floor:
        print(f"  floor  max {floor['max_kib']:>6} KiB: GNU time itself, on a static true")
    rss = {}
    for rt in present:
        r = load_json(directory, f"rss-{rt}.json")
        if not r or "max_kib" not in r:
            print(f"  {rt:<6} no sample")
            continue
        rss[rt] = r
        print(
            f"  {rt:<6} max {r['max_kib']:>6} KiB ({r['max_kib'] * 1024 / 1e6:.2f} MB)  "
            f"median {r['median_kib']:>8} KiB  min {r['min_kib']} KiB  over {len(r['maxrss_kib'])} runs"
            + (f", {r['failures']} failed" if r["failures"] else "")
        )

    for kind, label in (("strace", "system time per syscall"), ("strace-wall", "wall time per syscall")):
        print(f"\nstrace -f -c{' -w' if kind == 'strace-wall' else ''} -S time of one run: {label}")
        for rt in present:
            print(f" {rt}:")
            for line in strace_table(os.path.join(directory, f"{kind}-{rt}.txt")):
                print(line)

    print("\nthe ten longest single syscalls of one run (strace -ff -T -y; strace slows everything)")
    for rt in present:
        path = os.path.join(directory, f"strace-slowest-{rt}.txt")
        if os.path.exists(path):
            print(f" {rt}:")
            with open(path, encoding="utf-8") as f:
                for line in f.read().splitlines():
                    print("  " + line)

    if meta.get("perf") == "absent":
        print("\nperf: not installed")
    else:
        hw = meta.get("perf_hw") == "yes"
        print(f"\nperf stat, mean of {meta.get('perf_runs', 'several')} runs" + ("" if hw else " (no hardware counters in this VM)"))
        for rt in present:
            stats = perf_stat(os.path.join(directory, f"perf-stat-{rt}.csv"))
            parts = []
            for event, (value, unit) in stats.items():
                parts.append(f"{event} {fmt(value, 2) if value is not None else unit}{' ' + unit if unit and value is not None else ''}")
            tc = stats.get("task-clock", (None, ""))[0]
            if tc and rt in warm:
                parts.append(f"busy {tc / warm[rt]['median'] * 100:.0f}% of the warm run median")
            print(f"  {rt:<6}" + "; ".join(parts))
        for rt in present:
            path = os.path.join(directory, f"perf-profile-{rt}.txt")
            if os.path.exists(path):
                print(f" cpu-clock profile of {rt} run (top symbols, [k] kernel):")
                with open(path, encoding="utf-8") as f:
                    for line in f.read().splitlines()[:12]:
                        print("  " + line.strip())

    print("\n1 MiB memory limit, run true")
    mem = {}
    for rt in present:
        m = load_json(directory, f"mem-{rt}.json")
        if m is None:
            continue
        mem[rt] = m
        verdict = "OK" if m["exit_code"] == 0 else "FAILED"
        msg = m["stderr"].splitlines()[-1] if m["stderr"] else ""
        print(f"  {rt:<6}{verdict:<7} exit {m['exit_code']}  {msg[:200]}")

    # --- the summary table ------------------------------------------------------------
    print("\n" + "=" * 78)
    print("summary (medians, warm caches; back to back unless 'idle first'; ratios below 1")
    print("mean moor is faster or smaller)")
    cols = ["moor", "runc"] + (["youki"] if youki else [])
    head = f"  {'metric':<44}" + "".join(f"{c:>9}" for c in cols) + f"{'moor/runc':>11}"
    if youki:
        head += f"{'moor/youki':>12}"
    print(head)

    def row(label, values, digits=1):
        line = f"  {label:<44}" + "".join(f"{fmt(values.get(c), digits):>9}" for c in cols)
        line += f"{fmt_ratio(ratio(values.get('moor'), values.get('runc'))):>11}"
        if youki:
            line += f"{fmt_ratio(ratio(values.get('moor'), values.get('youki'))):>12}"
        print(line)

    short = f"{meta.get('idle_ms', '50')} ms idle first"

    def pick(results, key="median"):
        return {rt: results[rt][key] for rt in present if rt in results}

    row("run (ms)", pick(warm))
    row("  user (ms, mean)", pick(warm, "user"))
    row("  system (ms, mean)", pick(warm, "system"))
    row(f"run, {short} (ms)", pick(spaced))
    row("run, cold caches (ms)", pick(cold))
    row("create+start+delete, net (ms)", net)
    row(f"create+start+delete, {short} (ms)", net_spaced)
    row("exec (ms)", pick(execs))
    row(f"exec, {short} (ms)", pick(execs_spaced))
    row(f"{meta.get('batch', '?')} creates at once (ms)", {rt: b["create_median_s"] * 1e3 for rt, b in batch.items() if "create_median_s" in b})
    row("peak RSS of run, max (MiB)", {rt: r["max_kib"] / 1024 for rt, r in rss.items()}, 2)
    row("peak RSS of run, median (MiB)", {rt: r["median_kib"] / 1024 for rt, r in rss.items()}, 2)
    row("binary size (MiB)", {rt: b / ONE_MIB for rt, b in sizes.items()}, 2)

    wakeups = os.path.join(directory, "youki-wakeups.txt")
    if os.path.exists(wakeups):
        with open(wakeups, encoding="utf-8") as f:
            n = sum(1 for line in f if line.strip())
        print(
            f"\n  note: youki missed its child's exit {n} time(s) and was woken by the watchdog "
            "after ~3 s (youki-wakeups.txt); those samples count in its mean, stddev and max"
        )

    print("\nstep-1 goals")
    for label, results in (("back to back", warm), (idle, spaced)):
        r = ratio(results.get("moor", {}).get("median"), results.get("runc", {}).get("median"))
        ok = r is not None and r <= GOAL_RUN_RATIO
        print(
            f"  [{'PASS' if ok else 'FAIL'}] run median <= {GOAL_RUN_RATIO}x runc ({label}): "
            f"moor {fmt(results.get('moor', {}).get('median'), 2)} ms, "
            f"runc {fmt(results.get('runc', {}).get('median'), 2)} ms: {fmt_ratio(r)}"
        )
    moor_rss_mb = rss["moor"]["max_kib"] * 1024 / 1e6 if "moor" in rss else None
    if youki and "youki" in rss:
        ref, source = rss["youki"]["max_kib"] * 1024 / 1e6, "youki measured in this run"
    else:
        ref, source = YOUKI_RSS_STACK_MB, "youki absent here: 7.2 MB from shared/STACK.md"
    ok = moor_rss_mb is not None and moor_rss_mb <= ref
    print(f"  [{'PASS' if ok else 'FAIL'}] peak RSS <= youki's: moor {fmt(moor_rss_mb, 2)} MB (max), youki {ref:.2f} MB ({source})")
    m = mem.get("moor")
    ok = m is not None and m["exit_code"] == 0
    runc_mem = mem.get("runc")
    runc_note = "" if runc_mem is None else f"; runc {'OK' if runc_mem['exit_code'] == 0 else 'FAILED'} (exit {runc_mem['exit_code']})"
    print(f"  [{'PASS' if ok else 'FAIL'}] a container starts under a 1 MiB memory limit: moor exit {m['exit_code'] if m else '-'}{runc_note}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1]))
