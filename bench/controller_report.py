#!/usr/bin/env python3
"""Summary of bench/controller.sh: one table, moor against etcd, and the goals.

    python3 bench/controller_report.py RESULTS_DIR

Reads what controller.sh left in RESULTS_DIR (SYSTEM-seq.json, SYSTEM-load.json,
SYSTEM-rss.txt, SYSTEM-idle.txt, SYSTEM-syncs.txt, SYSTEM-failover-MODE.jsonl,
SYSTEM-disk.txt, SYSTEM-read.json, SYSTEM-read-local.json) and prints medians and ratios; a system that was not run shows '-'.
"""

import json
import os
import statistics
import sys

MIB = 1024 * 1024


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def read_jsonl(path):
    try:
        with open(path) as f:
            return [json.loads(line) for line in f if line.strip()]
    except (OSError, ValueError):
        return []


def read_kv(path):
    """Lines 'SYSTEM NAME k=v k=v ...' as a list of (name, {k: v})."""
    rows = []
    try:
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) < 3:
                    continue
                fields = dict(p.split("=", 1) for p in parts[2:] if "=" in p)
                rows.append((parts[1], fields))
    except OSError:
        pass
    return rows


def collect(out, system):
    r = {}
    seq = read_json(os.path.join(out, f"{system}-seq.json"))
    if seq:
        r["seq_p50"] = seq["latency"]["p50_us"] / 1e3
        r["seq_p99"] = seq["latency"]["p99_us"] / 1e3
        r["seq_mean"] = seq["latency"]["mean_us"] / 1e3
        r["seq_rate"] = seq["writes_per_s"]
    load = read_json(os.path.join(out, f"{system}-load.json"))
    if load:
        r["load_rate"] = load["writes_per_s"]
        r["load_p50"] = load["latency"]["p50_us"] / 1e3
        r["load_p99"] = load["latency"]["p99_us"] / 1e3
        r["load_errors"] = load["errors"]
        r["writers"] = load["writers"]
    for name, key in (("read", "read_lin"), ("read-local", "read_local")):
        rd = read_json(os.path.join(out, f"{system}-{name}.json"))
        if rd:
            r[key + "_p50"] = rd["latency"]["p50_us"] / 1e3
            r[key + "_p99"] = rd["latency"]["p99_us"] / 1e3
    rss = read_kv(os.path.join(out, f"{system}-rss.txt"))
    if rss:
        kib = [int(f["rss_kib"]) for _, f in rss]
        r["rss_max"] = max(kib) * 1024 / MIB
        r["rss_leader"] = next(
            (int(f["rss_kib"]) * 1024 / MIB for _, f in rss if f.get("role") == "leader"), None
        )
        r["rss_members"] = kib
        r["hwm_max"] = max(int(f["hwm_kib"]) for _, f in rss) * 1024 / MIB
    idle = read_kv(os.path.join(out, f"{system}-idle.txt"))
    if idle:
        members = [int(f["write_bytes"]) for n, f in idle if n != "device"]
        r["idle_members"] = sum(members)
        r["idle_member_max"] = max(members) if members else 0
        dev = [int(f["write_bytes"]) for n, f in idle if n == "device"]
        r["idle_device"] = dev[0] if dev else None
        r["idle_secs"] = int(idle[0][1].get("secs", 0))
    syncs = read_kv(os.path.join(out, f"{system}-syncs.txt"))
    if syncs:
        per = {
            f["role"] + ("" if f["role"] == "leader" else f" {n}"): int(f["syncs"]) / int(f["writes"])
            for n, f in syncs
        }
        r["syncs_leader"] = next((v for k, v in per.items() if k == "leader"), None)
        followers = [v for k, v in per.items() if k != "leader"]
        r["syncs_follower"] = statistics.mean(followers) if followers else None
    elected = []
    for mode in ("long-lived", "fresh"):
        rounds = read_jsonl(os.path.join(out, f"{system}-failover-{mode}.jsonl"))
        elected += [x["new_leader_known_ms"] for x in rounds if x.get("new_leader_known_ms") is not None]
        ms = [x["failover_ms"] for x in rounds if x.get("failover_ms") is not None]
        if rounds:
            r[f"fo_{mode}"] = statistics.median(ms) if ms else None
            r[f"fo_{mode}_max"] = max(ms) if ms else None
            r[f"fo_{mode}_all"] = ms
            r[f"fo_{mode}_failed"] = len(rounds) - len(ms)
    if elected:
        r["elected"] = statistics.median(elected)
        r["elected_max"] = max(elected)
        r["elected_all"] = elected
    disk = read_kv(os.path.join(out, f"{system}-disk.txt"))
    if disk:
        r["disk_max"] = max(int(f["data_bytes"]) for _, f in disk) / MIB
    return r


def fmt(v, spec):
    if v is None:
        return "-"
    return format(v, spec)


def ratio(a, b):
    if a is None or b is None or b == 0:
        return "-"
    return f"{a / b:.2f}x"


def main():
    out = sys.argv[1]
    moor = collect(out, "moor")
    etcd = collect(out, "etcd")
    meta = {}
    try:
        with open(os.path.join(out, "meta.txt")) as f:
            for line in f:
                if "=" in line:
                    k, v = line.rstrip("\n").split("=", 1)
                    meta[k] = v
    except OSError:
        pass
    writers = moor.get("writers") or etcd.get("writers") or "?"
    idle_secs = moor.get("idle_secs") or etcd.get("idle_secs") or "?"
    rows = [
        ("sequential write p50 (ms)", "seq_p50", ".2f"),
        ("sequential write p99 (ms)", "seq_p99", ".2f"),
        ("sequential write mean (ms)", "seq_mean", ".2f"),
        ("sequential writes/s", "seq_rate", ".0f"),
        (f"{writers} writers: writes/s", "load_rate", ".0f"),
        (f"{writers} writers: p50 (ms)", "load_p50", ".1f"),
        (f"{writers} writers: p99 (ms)", "load_p99", ".1f"),
        (f"{writers} writers: failed writes", "load_errors", "d"),
        ("linearizable read p50 (ms)", "read_lin_p50", ".2f"),
        ("linearizable read p99 (ms)", "read_lin_p99", ".2f"),
        ("local read p50 (ms)", "read_local_p50", ".2f"),
        ("local read p99 (ms)", "read_local_p99", ".2f"),
        ("RSS after load, largest member (MiB)", "rss_max", ".1f"),
        ("RSS after load, leader (MiB)", "rss_leader", ".1f"),
        ("peak RSS (VmHWM), largest member (MiB)", "hwm_max", ".1f"),
        ("data directory after load, largest (MiB)", "disk_max", ".1f"),
        ("failover: kill to new leader known, median (ms)", "elected", ".0f"),
        ("failover: kill to new leader known, max (ms)", "elected_max", ".0f"),
        ("failover, long-lived client, median (ms)", "fo_long-lived", ".0f"),
        ("failover, long-lived client, max (ms)", "fo_long-lived_max", ".0f"),
        ("failover, new client per attempt, median (ms)", "fo_fresh", ".0f"),
        ("failover, new client per attempt, max (ms)", "fo_fresh_max", ".0f"),
        (f"idle {idle_secs} s: write_bytes, all members (bytes)", "idle_members", "d"),
        (f"idle {idle_secs} s: written to the device (bytes)", "idle_device", "d"),
        ("fsync+fdatasync per write, leader", "syncs_leader", ".2f"),
        ("fsync+fdatasync per write, follower (mean)", "syncs_follower", ".2f"),
    ]
    print(
        "summary: moor %s against etcd %s, three members each on loopback, %s"
        % (meta.get("moor_commit", "?"), meta.get("etcd_version", "?"), meta.get("work_fs", "?"))
    )
    print("(ratios are moor/etcd: below 1 means moor is faster, smaller or quieter)")
    print(f"  {'metric':<50} {'moor':>10} {'etcd':>10} {'moor/etcd':>10}")
    for label, key, spec in rows:
        if key not in moor and key not in etcd:
            continue
        a, b = moor.get(key), etcd.get(key)
        print(f"  {label:<50} {fmt(a, spec):>10} {fmt(b, spec):>10} {ratio(a, b):>10}")
    for mode in ("long-lived", "fresh"):
        for name, r in (("moor", moor), ("etcd", etcd)):
            ms = r.get(f"fo_{mode}_all")
            if ms is not None:
                failed = r.get(f"fo_{mode}_failed", 0)
                tail = f", {failed} without a write within the limit" if failed else ""
                print(f"  failover rounds, {mode}, {name}: " + " ".join(f"{x:.0f}" for x in ms) + f" ms{tail}")
    for name, r in (("moor", moor), ("etcd", etcd)):
        if r.get("elected_all"):
            print(f"  new leader known, {name}: " + " ".join(f"{x:.0f}" for x in r["elected_all"]) + " ms")
    if moor.get("rss_members"):
        print("  moor RSS per member (MiB): " + " ".join(f"{k / 1024:.1f}" for k in moor["rss_members"]))
    if etcd.get("rss_members"):
        print("  etcd RSS per member (MiB): " + " ".join(f"{k / 1024:.1f}" for k in etcd["rss_members"]))

    print("\ngoals")

    def goal(ok, text):
        state = "----" if ok is None else ("PASS" if ok else "FAIL")
        print(f"  [{state}] {text}")

    a, b = moor.get("load_rate"), etcd.get("load_rate")
    goal(
        None if a is None or b is None else a >= b,
        f"throughput with {writers} writers >= etcd: moor {fmt(a, '.0f')}/s, etcd {fmt(b, '.0f')}/s ({ratio(a, b)})",
    )
    a, b = moor.get("seq_p99"), etcd.get("seq_p99")
    goal(
        None if a is None or b is None else a <= b,
        f"sequential write p99 <= etcd: moor {fmt(a, '.2f')} ms, etcd {fmt(b, '.2f')} ms ({ratio(a, b)})",
    )
    a = moor.get("elected")
    goal(
        None if a is None else a < 2000,
        f"failover < 2 s (median, kill to a survivor naming the new leader): moor {fmt(a, '.0f')} ms, etcd {fmt(etcd.get('elected'), '.0f')} ms",
    )
    a = moor.get("fo_long-lived")
    goal(
        None if a is None else a < 2000,
        f"failover < 2 s (median, long-lived client): moor {fmt(a, '.0f')} ms, etcd {fmt(etcd.get('fo_long-lived'), '.0f')} ms",
    )
    a = moor.get("fo_fresh")
    goal(
        None if a is None else a < 2000,
        f"failover < 2 s (median, new client per attempt): moor {fmt(a, '.0f')} ms, etcd {fmt(etcd.get('fo_fresh'), '.0f')} ms",
    )
    a = moor.get("rss_max")
    goal(
        None if a is None else a * MIB < 40e6,
        f"RSS < 40 MB per member: moor largest {fmt(a, '.1f')} MiB, etcd largest {fmt(etcd.get('rss_max'), '.1f')} MiB",
    )
    a = moor.get("idle_members")
    goal(
        None if a is None else a == 0,
        f"0 bytes written in {idle_secs} s idle: moor {fmt(a, 'd')} bytes (device {fmt(moor.get('idle_device'), 'd')}), "
        f"etcd {fmt(etcd.get('idle_members'), 'd')} bytes (device {fmt(etcd.get('idle_device'), 'd')})",
    )


if __name__ == "__main__":
    main()
