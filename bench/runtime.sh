#!/usr/bin/env bash
# moor's runtime benchmark: moor against runc (and youki, when it is installed), on one
# bundle, in one run. Run it as root, on demand:
#
#     sudo bench/runtime.sh
#
# Method (bench/README.md has the figures and how to read them):
#
#  * moor is built the way it ships: static, release, x86_64-unknown-linux-gnu
#    (`CARGO_TARGET_DIR` is honoured; `MOOR=path` skips the build and uses that binary).
#    runc is whatever `runc` is on PATH (or `RUNC=path`), youki likewise (`YOUKI=path`);
#    youki is reported as absent when there is none.
#  * One bundle for every runtime: a busybox rootfs (from busybox-static) and `runc spec`'s
#    config.json with args ["true"], terminal false and no ambient capabilities (runc
#    drops ambient capabilities that are not inheritable without a word, moor refuses
#    them), so pid, network, ipc, uts and mount namespaces, runc spec's mounts, masked and
#    read-only paths and its deny-all device rule. Copies of the config only (sharing the
#    rootfs) run `sleep 3600` for exec and `true` under a 1 MiB memory limit.
#  * Each runtime gets its own --root under one temporary directory and its own ids
#    (prefix mb<pid>-); a trap deletes every container, cgroup and directory the run
#    made, whatever happens.
#  * Times are hyperfine -N (no shell), with warm-up runs and JSON export; the report
#    uses medians (mean, stddev and min beside them). run, lifecycle and exec are each
#    measured twice: back to back, and with IDLE_MS (50) ms of idle before each run
#    (hyperfine --prepare, not timed), i.e. a start on a quiet host. Back to back, a
#    process joining its cgroup rides on the RCU grace period the previous run's join
#    started; after a pause it waits for one of its own (bench/README.md).
#      run         `run ID` in the foreground (create, start, wait, delete), warm caches;
#      run-cold    the same after `sync; echo 3 > /proc/sys/vm/drop_caches` each time;
#      lifecycle   `create`, `start`, `delete --force` as three commands from a small sh
#                  script, minus an empty sh script measured the same way (so the
#                  shell's own start is not counted; its fork+exec of each verb is, as
#                  for any caller; --force because `true` may still be running when
#                  `start` returns);
#      exec        `exec ID true` into a container running `sleep 3600`;
#      batch       BATCH (20) `create`s started at once, timed until the last exits,
#                  BATCH_ROUNDS (5) times; then `start` and `delete --force` of them all;
#  * peak RSS: GNU time's %M (wait4's ru_maxrss) of `run`, which covers the runtime
#    process and the children it reaps (runc's `runc init`, moor's container child until
#    it executes the user's program), and the image it was forked from: hence GNU time
#    (~1 MiB, the floor, measured on a static `true`) rather than python (~15 MiB);
#  * where the time goes: `strace -f -c -S time` (system time per syscall) and
#    `strace -f -c -w -S time` (wall time per syscall: where the runtime waits) of one
#    `run`, and its ten longest single calls with the files they act on
#    (`strace -ff -T -y`); `perf stat` user/kernel cycles and instructions where the VM
#    exposes hardware counters, else software counters and a cpu-clock profile of
#    PERF_RUNS (20) runs;
#  * the 1 MiB test: `run` of the 1 MiB bundle, exit code and message per runtime;
#  * youki 0.7.0 sometimes misses its child's exit and waits forever: a watchdog wakes
#    it (see youki_watchdog below) and the report counts how often.
#
# The summary (bench/runtime_report.py) prints each time metric with its ratio
# moor/runc (and moor/youki), the RSS and binary sizes, and the step-1 goals: `run`
# median at most half of runc's, peak RSS at most youki's (7.2 MB from
# shared/STACK.md when youki is absent), a container that starts under 1 MiB.
#
# Other knobs (environment): RUNS (100), COLD_RUNS (15), WARMUP (5), RSS_SAMPLES (20),
# HF_TIMEOUT (900 s per hyperfine call), GNU_TIME (/usr/bin/time; installed with apt
# when missing), MOOR_BENCH_OUT (results directory, default
# /tmp/moor-bench-results.DATE). Results stay there; nothing else is left behind but
# moor's own read-only copy of its binary under /run/moor/exe (crates/runtime/src/selfexe.rs).
set -euo pipefail

RUNS=${RUNS:-100}
IDLE_MS=${IDLE_MS:-50}
HF_TIMEOUT=${HF_TIMEOUT:-900}
COLD_RUNS=${COLD_RUNS:-15}
WARMUP=${WARMUP:-5}
BATCH=${BATCH:-20}
BATCH_ROUNDS=${BATCH_ROUNDS:-5}
RSS_SAMPLES=${RSS_SAMPLES:-20}
PERF_RUNS=${PERF_RUNS:-20}

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)

say() { printf '\n== %s\n' "$*"; }
die() { printf 'runtime.sh: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root: sudo bench/runtime.sh"

# --- prerequisites -------------------------------------------------------------------
missing=()
need() { command -v "$1" >/dev/null 2>&1 || missing+=("$1 ($2)"); }
need hyperfine "apt-get install hyperfine"
need strace "apt-get install strace"
need python3 "apt-get install python3"
runc=${RUNC:-$(command -v runc || true)}
[ -n "$runc" ] && [ -x "$runc" ] || missing+=("runc (apt-get install runc, or RUNC=path)")
busybox=${BUSYBOX:-/bin/busybox}
if ! [ -x "$busybox" ]; then
    missing+=("busybox-static (apt-get install busybox-static)")
elif LC_ALL=C ldd "$busybox" 2>&1 | grep -q '=>'; then
    missing+=("a static busybox: $busybox is dynamic (apt-get install busybox-static)")
fi
time_bin=${GNU_TIME:-/usr/bin/time}
if ! [ -x "$time_bin" ] && command -v apt-get >/dev/null; then
    echo "runtime.sh: installing GNU time (apt package time) for the RSS samples"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null 2>&1 || true
fi
[ -x "$time_bin" ] || missing+=("GNU time at $time_bin (apt-get install time, or GNU_TIME=path)")
# sudo's PATH rarely has cargo: look in root's and the invoking user's ~/.cargo too.
cargo=$(command -v cargo || true)
if [ -z "$cargo" ]; then
    for home in "$HOME" "$(getent passwd "${SUDO_USER:-root}" | cut -d: -f6)"; do
        if [ -n "$home" ] && [ -x "$home/.cargo/bin/cargo" ]; then
            cargo=$home/.cargo/bin/cargo
            export CARGO_HOME=${CARGO_HOME:-$home/.cargo}
            [ -d "$home/.rustup" ] && export RUSTUP_HOME=${RUSTUP_HOME:-$home/.rustup}
            break
        fi
    done
fi
[ -n "${MOOR:-}" ] || [ -n "$cargo" ] || missing+=("cargo (a Rust toolchain, or MOOR=path to a built moor)")
if [ ${#missing[@]} -gt 0 ]; then
    printf 'runtime.sh: missing prerequisites:\n' >&2
    printf '  - %s\n' "${missing[@]}" >&2
    exit 1
fi
youki=${YOUKI:-$(command -v youki || true)}
perf=$(command -v perf || true)

# --- step 1: the binaries --------------------------------------------------------------
if [ -n "${MOOR:-}" ]; then
    moor=$MOOR
    say "moor: using MOOR=$moor (not built)"
else
    say "building moor as it ships (static, release)"
    target_dir=${CARGO_TARGET_DIR:-$repo/target}
    (cd "$repo" && RUSTFLAGS="-C target-feature=+crt-static" CARGO_TARGET_DIR="$target_dir" \
        "$cargo" build --release --target x86_64-unknown-linux-gnu -p moor)
    moor=$target_dir/x86_64-unknown-linux-gnu/release/moor
fi
[ -x "$moor" ] || die "no moor binary at $moor"
runtimes=(moor runc)
if [ -n "$youki" ] && [ -x "$youki" ]; then runtimes+=(youki); else youki=; fi

stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=${MOOR_BENCH_OUT:-/tmp/moor-bench-results.$stamp}
mkdir -p "$out"

real() { readlink -f "$1"; }
{
    echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "kernel=$(uname -r)"
    echo "cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    echo "cores=$(nproc)"
    echo "memory_mib=$(awk '/MemTotal/ {print int($2/1024)}' /proc/meminfo)"
    echo "cgroups=$(if [ -d /sys/fs/cgroup/unified ]; then echo hybrid; elif [ -f /sys/fs/cgroup/cgroup.controllers ]; then echo v2; else echo v1; fi)"
    echo "load_before=$(cut -d' ' -f1-3 /proc/loadavg)"
    echo "moor_path=$moor"
    commit=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)
    if [ -n "$(git -C "$repo" status --porcelain --untracked-files=no -- crates Cargo.toml Cargo.lock 2>/dev/null)" ]; then
        commit="$commit+uncommitted changes"
    fi
    echo "moor_commit=$commit"
    echo "moor_bytes=$(stat -Lc %s "$moor")"
    echo "runc_path=$(real "$runc")"
    echo "runc_version=$("$runc" --version | head -1)"
    echo "runc_bytes=$(stat -Lc %s "$runc")"
    if [ -n "$youki" ]; then
        echo "youki_path=$(real "$youki")"
        echo "youki_version=$("$youki" --version 2>/dev/null | head -1)"
        echo "youki_bytes=$(stat -Lc %s "$youki")"
    fi
    echo "hyperfine=$(hyperfine --version)"
    echo "runs=$RUNS idle_ms=$IDLE_MS cold_runs=$COLD_RUNS warmup=$WARMUP batch=$BATCH batch_rounds=$BATCH_ROUNDS rss_samples=$RSS_SAMPLES perf_runs=$PERF_RUNS"
} > "$out/meta.txt"

say "binaries"
for rt in "${runtimes[@]}"; do
    case $rt in moor) bin=$moor ;; runc) bin=$runc ;; youki) bin=$youki ;; esac
    printf '  %-6s %10s bytes  %6.2f MiB  %s\n' "$rt" "$(stat -Lc %s "$bin")" \
        "$(awk -v b="$(stat -Lc %s "$bin")" 'BEGIN {print b/1048576}')" "$bin"
done
[ -n "$youki" ] || echo "  youki  absent (not on PATH; YOUKI=path to use one)"

# --- clean-up, whatever happens ---------------------------------------------------------
# The parent cgroups a runtime makes for its containers (moor: /moor, youki: /youki) are
# removed at the end only if this run made them and they are empty.
parents_before=$(find /sys/fs/cgroup -mindepth 2 -maxdepth 2 -type d \( -name moor -o -name youki \) 2>/dev/null | sort || true)

rt_argv() {
    case $1 in
        moor) RT=("$moor" runtime --root "$work/root-moor") ;;
        runc) RT=("$runc" --root "$work/root-runc") ;;
        youki) RT=("$youki" --root "$work/root-youki") ;;
    esac
}
# One shell-words string (what hyperfine -N splits) of the runtime's argv plus "$@".
rt_cmd() {
    local rt=$1 s
    shift
    rt_argv "$rt"
    s=$(printf '%q ' "${RT[@]}" "$@")
    printf '%s' "${s% }"
}

cleanup() {
    local rc=$? rt id dir pid
    trap - EXIT INT TERM
    set +e
    [ -z "${watchdog_pid:-}" ] || kill "$watchdog_pid" 2>/dev/null
    for rt in "${runtimes[@]}"; do
        rt_argv "$rt"
        [ -d "$work/root-$rt" ] || continue
        for dir in "$work/root-$rt"/*/; do
            [ -d "$dir" ] || continue
            id=$(basename "$dir")
            "${RT[@]}" delete --force "$id" >/dev/null 2>&1
        done
    done
    # Whatever a failed delete left: our ids' cgroups, their processes first.
    while read -r dir; do
        [ -n "$dir" ] || continue
        if [ -f "$dir/cgroup.kill" ]; then echo 1 > "$dir/cgroup.kill" 2>/dev/null; fi
        if [ -f "$dir/cgroup.procs" ]; then
            while read -r pid; do kill -9 "$pid" 2>/dev/null; done < "$dir/cgroup.procs"
        fi
        for _ in 1 2 3 4 5; do rmdir "$dir" 2>/dev/null && break; sleep 0.2; done
    done < <(find /sys/fs/cgroup -depth -type d -name "*${pfx}*" 2>/dev/null)
    while read -r dir; do
        [ -n "$dir" ] || continue
        grep -qxF "$dir" <<<"$parents_before" || rmdir "$dir" 2>/dev/null
    done < <(find /sys/fs/cgroup -mindepth 2 -maxdepth 2 -type d \( -name moor -o -name youki \) 2>/dev/null)
    left=$(find /sys/fs/cgroup -type d -name "*${pfx}*" 2>/dev/null | head -5)
    [ -z "$left" ] || printf 'runtime.sh: could not remove cgroups:\n%s\n' "$left" >&2
    rm -rf "$work"
    [ "$rc" = 0 ] || printf '\nruntime.sh: failed (exit %s); containers, cgroups and %s removed\n' "$rc" "$work" >&2
    exit "$rc"
}
work=$(mktemp -d /tmp/moor-bench.XXXXXX)
pfx=mb$$-
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- step 2: the bundle -----------------------------------------------------------------
say "bundle: $work/bundle (busybox rootfs, runc spec's config, args [\"true\"])"
rootfs=$work/bundle/rootfs
mkdir -p "$rootfs/bin" "$rootfs/etc" "$rootfs/proc" "$rootfs/sys" "$rootfs/dev" "$rootfs/tmp" "$rootfs/root"
cp "$busybox" "$rootfs/bin/busybox"
for applet in $("$busybox" --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$rootfs/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' > "$rootfs/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$rootfs/etc/group"
mkdir -p "$work/spec"
"$runc" spec --bundle "$work/spec"
python3 "$here/runtime_probe.py" bundle "$work/spec/config.json" "$work"
cp "$work/bundle/config.json" "$out/bundle-config.json"
for rt in "${runtimes[@]}"; do mkdir -p "$work/root-$rt"; done

# youki 0.7.0's foreground `run` sometimes misses its child's exit: it waits for SIGCHLD
# in sigtimedwait without having blocked it first, so a child that exits early enough
# leaves it waiting for good (the child a zombie). A watchdog sends such a youki, one
# of this run's (its --root is ours), the SIGCHLD it lost once it has waited 3 s, and
# counts it: the sample stays in, a 3 s outlier in youki's mean and max.
youki_watchdog() {
    local pid cmd
    while sleep 1; do
        for pid in $(pgrep -f -- "--root $work/root-youki " || true); do
            [ "$(ps -o etimes= -p "$pid" 2>/dev/null | tr -d ' ')" -ge 3 ] 2>/dev/null || continue
            if ps --ppid "$pid" -o stat= 2>/dev/null | grep -q '^Z'; then
                cmd=$(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null || true)
                kill -CHLD "$pid" 2>/dev/null && echo "$(date -u +%T) woke youki $pid: $cmd" >> "$out/youki-wakeups.txt"
            fi
        done
    done
}
watchdog_pid=
if [ -n "$youki" ]; then
    youki_watchdog &
    watchdog_pid=$!
fi

# Each runtime once, so that a broken one stops the run here with its own message.
for rt in "${runtimes[@]}"; do
    rt_argv "$rt"
    "${RT[@]}" run --bundle "$work/bundle" "${pfx}$rt-check" </dev/null \
        || die "$rt cannot run the benchmark bundle (exit $?)"
done

# hyperfine, with a deadline: a runtime that hangs fails the run (and the trap cleans up).
hf() {
    timeout --kill-after=10 "$HF_TIMEOUT" hyperfine -N --style basic --time-unit millisecond "$@"
}
# hf twice: back to back (NAME.json), then with IDLE_MS of idle before each (NAME-spaced.json).
hf2() {
    local name=$1
    shift
    hf --warmup "$WARMUP" --runs "$RUNS" --export-json "$out/$name.json" "$@"
    say "  ... the same with $IDLE_MS ms of idle before each run (not timed)"
    hf --warmup "$WARMUP" --runs "$RUNS" --prepare "sleep $(awk -v m="$IDLE_MS" 'BEGIN {print m/1000}')" \
        --export-json "$out/$name-spaced.json" "$@"
}

# --- 3a/3b: run, warm and cold ------------------------------------------------------------
say "run: warm caches, back to back, $RUNS runs"
args=()
for rt in "${runtimes[@]}"; do args+=(-n "$rt" "$(rt_cmd "$rt" run --bundle "$work/bundle" "${pfx}$rt-w")"); done
hf2 run "${args[@]}"

say "run: cold caches (sync; drop_caches before each), $COLD_RUNS runs"
args=()
for rt in "${runtimes[@]}"; do args+=(-n "$rt" "$(rt_cmd "$rt" run --bundle "$work/bundle" "${pfx}$rt-c")"); done
hf --runs "$COLD_RUNS" --prepare "sh -c 'sync; echo 3 > /proc/sys/vm/drop_caches'" \
    --export-json "$out/run-cold.json" "${args[@]}"

# --- 3c: create + start + delete --------------------------------------------------------------
say "lifecycle: create, start, delete --force from one sh script, $RUNS runs (minus an empty sh script)"
: > "$work/empty.sh"
args=(-n "sh (empty script)" "sh $work/empty.sh")
for rt in "${runtimes[@]}"; do
    id=${pfx}$rt-l
    {
        echo "set -e"
        echo "$(rt_cmd "$rt" create --bundle "$work/bundle" "$id") </dev/null >/dev/null"
        echo "$(rt_cmd "$rt" start "$id")"
        echo "$(rt_cmd "$rt" delete --force "$id")"
    } > "$work/lifecycle-$rt.sh"
    args+=(-n "$rt" "sh $work/lifecycle-$rt.sh")
done
hf2 lifecycle "${args[@]}"

# --- 3d: exec ---------------------------------------------------------------------------------
say "exec: \`exec ID true\` into a running sleep 3600, $RUNS runs"
args=()
for rt in "${runtimes[@]}"; do
    rt_argv "$rt"
    "${RT[@]}" run --detach --bundle "$work/sleep" "${pfx}$rt-s" </dev/null >/dev/null 2>&1 \
        || die "$rt cannot start the sleep container"
    args+=(-n "$rt" "$(rt_cmd "$rt" exec "${pfx}$rt-s" true)")
done
hf2 exec "${args[@]}"
for rt in "${runtimes[@]}"; do
    rt_argv "$rt"
    "${RT[@]}" delete --force "${pfx}$rt-s" >/dev/null 2>&1 || true
done

# --- 3e: creates in parallel ------------------------------------------------------------------
say "batch: $BATCH creates at once, $BATCH_ROUNDS rounds"
for rt in "${runtimes[@]}"; do
    rt_argv "$rt"
    timeout --kill-after=10 600 python3 "$here/runtime_probe.py" batch "$out/batch-$rt.json" "$BATCH" "$BATCH_ROUNDS" \
        "$work/bundle" "${pfx}$rt-p" -- "${RT[@]}" \
        || echo "  $rt: batch failed (see $out/batch-$rt.json)"
    python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print("  %-6s creates %s ms" % (sys.argv[2], " ".join("%.1f" % (t*1e3) for t in r["create_batch_s"])))' \
        "$out/batch-$rt.json" "$rt"
done

# --- 3f: peak RSS -----------------------------------------------------------------------------
say "peak RSS of run (GNU time %M), $RSS_SAMPLES samples"
python3 "$here/runtime_probe.py" rss "$out/rss-floor.json" "$RSS_SAMPLES" "$time_bin" -- "$busybox" true
python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print("  floor  max %s KiB (GNU time on a static true)" % r.get("max_kib"))' "$out/rss-floor.json"
for rt in "${runtimes[@]}"; do
    rt_argv "$rt"
    timeout --kill-after=10 600 python3 "$here/runtime_probe.py" rss "$out/rss-$rt.json" "$RSS_SAMPLES" "$time_bin" -- \
        "${RT[@]}" run --bundle "$work/bundle" "${pfx}$rt-r" || echo "  $rt: some runs failed"
    python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print("  %-6s max %s KiB, median %s KiB" % (sys.argv[2], r.get("max_kib"), r.get("median_kib")))' \
        "$out/rss-$rt.json" "$rt"
done

# --- 3g: where the time goes --------------------------------------------------------------------
say "strace -f -c of one run (system time, then wall time per syscall)"
for rt in "${runtimes[@]}"; do
    rt_argv "$rt"
    timeout 120 strace -f -c -S time -o "$out/strace-$rt.txt" "${RT[@]}" run --bundle "$work/bundle" "${pfx}$rt-t" </dev/null \
        || echo "  $rt: run under strace failed"
    timeout 120 strace -f -c -w -S time -o "$out/strace-wall-$rt.txt" "${RT[@]}" run --bundle "$work/bundle" "${pfx}$rt-t" </dev/null \
        || echo "  $rt: run under strace -w failed"
    mkdir -p "$work/strace-ff-$rt"
    timeout 120 strace -ff -T -y -o "$work/strace-ff-$rt/t" "${RT[@]}" run --bundle "$work/bundle" "${pfx}$rt-t" </dev/null \
        || echo "  $rt: run under strace -ff failed"
    python3 "$here/runtime_probe.py" slowest "$out/strace-slowest-$rt.txt" "$work/strace-ff-$rt/t" 10
done
if [ -n "$perf" ]; then
    if perf stat -e instructions:u true 2>&1 | grep -q 'not supported'; then
        echo "perf_hw=no" >> "$out/meta.txt"
        say "perf: no hardware counters in this VM; software counters and a cpu-clock profile instead"
        events=task-clock,context-switches,cpu-migrations,page-faults
    else
        echo "perf_hw=yes" >> "$out/meta.txt"
        say "perf stat: cycles and instructions, user vs kernel"
        events=cycles:u,cycles:k,instructions:u,instructions:k,task-clock
    fi
    for rt in "${runtimes[@]}"; do
        rt_argv "$rt"
        timeout --kill-after=10 300 perf stat -x, -r "$PERF_RUNS" -e "$events" -o "$out/perf-stat-$rt.csv" -- \
            "${RT[@]}" run --bundle "$work/bundle" "${pfx}$rt-f" </dev/null \
            || echo "  $rt: perf stat failed"
        runs_script=$work/perf-$rt.sh
        printf 'i=0\nwhile [ $i -lt %s ]; do %s; i=$((i+1)); done\n' "$PERF_RUNS" \
            "$(rt_cmd "$rt" run --bundle "$work/bundle" "${pfx}$rt-f")" > "$runs_script"
        if timeout --kill-after=10 300 perf record -q -e cpu-clock -F 20000 -o "$work/perf-$rt.data" -- sh "$runs_script" </dev/null >/dev/null 2>&1; then
            perf report -i "$work/perf-$rt.data" --stdio --no-children --sort sym 2>/dev/null \
                | grep -E '^ +[0-9.]+%' | head -15 > "$out/perf-profile-$rt.txt" || true
        fi
    done
else
    echo "perf=absent" >> "$out/meta.txt"
fi

# --- 3h: the 1 MiB container -------------------------------------------------------------------
say "1 MiB memory limit: run true"
for rt in "${runtimes[@]}"; do
    rt_argv "$rt"
    timeout --kill-after=10 120 python3 "$here/runtime_probe.py" memtest "$out/mem-$rt.json" -- \
        "${RT[@]}" run --bundle "$work/mem" "${pfx}$rt-m"
done

echo "load_after=$(cut -d' ' -f1-3 /proc/loadavg)" >> "$out/meta.txt"

# --- 4: the summary ------------------------------------------------------------------------------
python3 "$here/runtime_report.py" "$out" | tee "$out/summary.txt"
printf '\nresults: %s\n' "$out"
