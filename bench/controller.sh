#!/usr/bin/env bash
# moor's controller-group benchmark: three moor controllers against three etcd members,
# both on loopback, both durable on every commit, in one run. Run it as root, on demand:
#
#     sudo bench/controller.sh
#     sudo IDLE_SECS=10 FAILOVERS=2 bench/controller.sh     # a quick run
#
# Method (bench/README.md has the figures and how to read them):
#
#  * Where: a fresh ext4 file system with a journal (mkfs.ext4 defaults) on a loop device
#    (FS_SIZE, 4G sparse, in /tmp), mounted as the work directory; both groups keep their
#    data there (BENCH_FS=tmp: /tmp itself). The groups run one after the other (etcd first,
#    SYSTEMS to change), never together, each from empty data directories.
#  * moor is built the way it ships: static, release, x86_64-unknown-linux-gnu
#    (`CARGO_TARGET_DIR` is honoured; `MOOR=path` skips the build). Three controllers:
#    `moor controller --init` for ctl-1, `moor token create --role controller` and
#    `moor controller --join` for ctl-2 and ctl-3, default `lan` timings (150 ms heartbeat,
#    500–800 ms election). HOME points into the work directory, so ~/.moor is not touched.
#  * etcd is the `etcd` on PATH (Debian's etcd-server), three members with their defaults
#    (100 ms heartbeat, 1 s election, fsync of the WAL on every Raft ready, bbolt commit every
#    100 ms), mutual TLS between members and with clients (ECDSA P-256 certificates made with
#    openssl for the run), as moor's QUIC transport always has.
#  * Durability: moor's log appends become durable in a redb commit with
#    `Durability::Immediate` (one fsync, shared by the appends queued while the previous
#    one ran; applies ride on it) before openraft counts them flushed; etcd fdatasyncs its
#    WAL before acknowledging.
#    The run counts fsync/fdatasync calls of every member during STRACE_WRITES sequential
#    writes (strace -f -c, after the timed steps) and prints them per write.
#  * The client is bench/load (`bench-load`, built here; `BENCH_LOAD=path` to skip): moor's
#    `wire::Client` sending `Apply` of one ConfigMap, etcd's gRPC `Put` through
#    `etcd-client`; one connection shared by all writers, keys `PREFIX-N`, values of
#    VALUE_SIZE bytes. See bench/load/src/main.rs for what a write is.
#  * Steps, per system:
#      seq       SEQ_WRITES writes one after the other (after 50 untimed), to the leader:
#                latency p50/p99;
#      load      WRITERS concurrent writers for LOAD_SECS, to the leader: writes/s;
#      read      READS sequential reads of one key from the leader, linearizable (moor: Raft
#                read barrier; etcd: ReadIndex) and local (moor `Stale`, etcd
#                serializable): what a request costs without Raft, and what the barrier adds
#                (an apply starts with the same barrier);
#      rss       VmRSS (and VmHWM) of every member from /proc/PID/status after the load;
#      idle      `sync`, SETTLE_SECS of quiet, then write_bytes from /proc/PID/io of every member
#                before and after IDLE_SECS of idle, and the sectors the loop device wrote
#                meanwhile (the whole file system: journal, metadata, data);
#      fsyncs    STRACE_WRITES sequential writes with strace counting every member's
#                fsync/fdatasync/sync_file_range (not timed);
#      failover  FAILOVERS times: the client knows all three members (leader first); one
#                write, then SIGKILL to the leader's process, then a new write attempt every
#                ATTEMPT_EVERY_MS (each may run ATTEMPT_MS; they overlap) until one is
#                acknowledged: kill to acknowledged write. Once with one long-lived client,
#                once with a new client per attempt (as separate CLI calls would). Beside it,
#                each survivor is asked every 10 ms, on its own connection, which member
#                leads: kill to a survivor naming a new leader, the group's part alone. The
#                killed member is restarted and the group left to settle before the next
#                round.
#  * The summary (bench/controller_report.py): metric, moor, etcd, moor/etcd, and the goals
#    (throughput >= etcd, p99 <= etcd, failover < 2 s, RSS < 40 MB per member, no bytes
#    written when idle).
#
# Knobs (environment): SEQ_WRITES (2000), WRITERS (64), LOAD_SECS (10), VALUE_SIZE (100),
# READS (1000), IDLE_SECS (60), SETTLE_SECS (5), STRACE_WRITES (200, 0 to skip),
# FAILOVERS (5), ATTEMPT_MS (5000), ATTEMPT_EVERY_MS (100), SYSTEMS ("etcd moor"),
# BENCH_FS (loop), FS_SIZE (4G), MOOR_BENCH_OUT
# (results directory, default /tmp/moor-ctlbench-results.DATE). Results stay there;
# everything else (processes, mounts, the work directory) is removed on exit, also when
# the run fails or is interrupted.
set -euo pipefail

SEQ_WRITES=${SEQ_WRITES:-2000}
WRITERS=${WRITERS:-64}
LOAD_SECS=${LOAD_SECS:-10}
VALUE_SIZE=${VALUE_SIZE:-100}
IDLE_SECS=${IDLE_SECS:-60}
SETTLE_SECS=${SETTLE_SECS:-5}
STRACE_WRITES=${STRACE_WRITES:-200}
FAILOVERS=${FAILOVERS:-5}
ATTEMPT_MS=${ATTEMPT_MS:-5000}
ATTEMPT_EVERY_MS=${ATTEMPT_EVERY_MS:-100}
READS=${READS:-1000}
SYSTEMS=${SYSTEMS:-etcd moor}
BENCH_FS=${BENCH_FS:-loop}
FS_SIZE=${FS_SIZE:-4G}

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)

say() { printf '\n== %s\n' "$*"; }
die() { printf 'controller.sh: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root: sudo bench/controller.sh"

# --- prerequisites -------------------------------------------------------------------
missing=()
need() { command -v "$1" >/dev/null 2>&1 || missing+=("$1 ($2)"); }
need etcd "apt-get install etcd-server"
need openssl "apt-get install openssl"
need python3 "apt-get install python3"
need strace "apt-get install strace"
need timeout "apt-get install coreutils"
case $BENCH_FS in
    loop)
        need mkfs.ext4 "apt-get install e2fsprogs"
        need losetup "apt-get install mount"
        need mountpoint "apt-get install util-linux"
        ;;
    tmp) ;;
    *) die "BENCH_FS must be loop or tmp, not $BENCH_FS" ;;
esac
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
if [ -z "${MOOR:-}" ] || [ -z "${BENCH_LOAD:-}" ]; then
    [ -n "$cargo" ] || missing+=("cargo (a Rust toolchain, or MOOR= and BENCH_LOAD= paths to built binaries)")
fi
# etcd-client generates its gRPC code at build time.
[ -n "${BENCH_LOAD:-}" ] || need protoc "apt-get install protobuf-compiler (to build bench/load)"
if [ ${#missing[@]} -gt 0 ]; then
    printf 'controller.sh: missing prerequisites:\n' >&2
    printf '  - %s\n' "${missing[@]}" >&2
    exit 1
fi

# --- the binaries ----------------------------------------------------------------------
target_dir=${CARGO_TARGET_DIR:-$repo/target}
if [ -n "${MOOR:-}" ]; then
    moor=$MOOR
    say "moor: using MOOR=$moor (not built)"
else
    say "building moor as it ships (static, release)"
    (cd "$repo" && RUSTFLAGS="-C target-feature=+crt-static" CARGO_TARGET_DIR="$target_dir" \
        "$cargo" build --release --target x86_64-unknown-linux-gnu -p moor)
    moor=$target_dir/x86_64-unknown-linux-gnu/release/moor
fi
[ -x "$moor" ] || die "no moor binary at $moor"
if [ -n "${BENCH_LOAD:-}" ]; then
    load=$BENCH_LOAD
    say "load generator: using BENCH_LOAD=$load (not built)"
else
    say "building the load generator (bench/load, a workspace of its own)"
    (cd "$here/load" && CARGO_TARGET_DIR="$target_dir" "$cargo" build --release)
    load=$target_dir/release/bench-load
fi
[ -x "$load" ] || die "no bench-load binary at $load"
etcd_bin=$(command -v etcd)

stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=${MOOR_BENCH_OUT:-/tmp/moor-ctlbench-results.$stamp}
mkdir -p "$out"
{
    echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "kernel=$(uname -r)"
    echo "cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    echo "cores=$(nproc)"
    echo "memory_mib=$(awk '/MemTotal/ {print int($2/1024)}' /proc/meminfo)"
    echo "bench_fs=$BENCH_FS"
    echo "load_before=$(cut -d' ' -f1-3 /proc/loadavg)"
    commit=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)
    if [ -n "$(git -C "$repo" status --porcelain --untracked-files=no -- crates Cargo.toml Cargo.lock 2>/dev/null)" ]; then
        commit="$commit+uncommitted changes"
    fi
    echo "moor_commit=$commit"
    echo "moor_path=$moor"
    echo "moor_bytes=$(stat -Lc %s "$moor")"
    echo "etcd_path=$etcd_bin"
    echo "etcd_version=$("$etcd_bin" --version | head -1 | sed 's/^etcd Version: //')"
    echo "etcd_go=$("$etcd_bin" --version | sed -n 's/^Go Version: //p')"
    echo "etcd_bytes=$(stat -Lc %s "$etcd_bin")"
    echo "seq_writes=$SEQ_WRITES writers=$WRITERS load_secs=$LOAD_SECS value_size=$VALUE_SIZE idle_secs=$IDLE_SECS settle_secs=$SETTLE_SECS strace_writes=$STRACE_WRITES failovers=$FAILOVERS attempt_ms=$ATTEMPT_MS attempt_every_ms=$ATTEMPT_EVERY_MS reads=$READS"
} > "$out/meta.txt"

# --- clean-up, whatever happens -------------------------------------------------------------
declare -A pid=()
cleanup() {
    local rc=$? p
    trap - EXIT INT TERM
    set +e
    for p in "${pid[@]}"; do kill -9 "$p" 2>/dev/null; done
    for p in "${pid[@]}"; do wait "$p" 2>/dev/null; done
    if [ -n "${work:-}" ] && [ -d "$work" ]; then
        # The logs are worth keeping next to the results.
        [ -d "$work/logs" ] && cp -r "$work/logs" "$out/" 2>/dev/null
        if [ "$BENCH_FS" = loop ] && mountpoint -q "$work"; then
            umount "$work" 2>/dev/null || umount -l "$work"
        fi
        rm -rf "$work"
        rm -f "$work.img"
    fi
    [ "$rc" = 0 ] || printf '\ncontroller.sh: failed (exit %s); members stopped, %s removed; logs in %s/logs\n' "$rc" "${work:-the work directory}" "$out" >&2
    exit "$rc"
}
work=$(mktemp -d /tmp/moor-ctlbench.XXXXXX)
trap cleanup EXIT
trap 'exit 130' INT TERM
if [ "$BENCH_FS" = loop ]; then
    truncate -s "$FS_SIZE" "$work.img"
    mkfs.ext4 -q -F "$work.img"
    mount -o loop "$work.img" "$work"
fi
echo "work_fs=$(findmnt -no FSTYPE,OPTIONS -T "$work") ($BENCH_FS)" >> "$out/meta.txt"
mkdir -p "$work/logs" "$work/home"
export HOME=$work/home
# The block device under the work directory, for its written-sectors counter.
dev=$(basename "$(findmnt -no SOURCE -T "$work")")
[ -r "/sys/block/$dev/stat" ] || dev=

# Ports free now for both TCP and UDP on 127.0.0.1 (the kernel picks them).
free_ports() {
    python3 - "$1" <<'EOF'
import socket, sys
held, ports = [], []
while len(ports) < int(sys.argv[1]):
    t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    t.bind(("127.0.0.1", 0))
    port = t.getsockname()[1]
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        u.bind(("127.0.0.1", port))
    except OSError:
        t.close()
        continue
    held += [t, u]
    ports.append(port)
print(" ".join(map(str, ports)))
EOF
}

# wait_for SECONDS DESCRIPTION COMMAND...: until COMMAND succeeds, or fail the run.
wait_for() {
    local secs=$1 what=$2 deadline
    shift 2
    deadline=$(($(date +%s) + secs))
    until "$@" >/dev/null 2>&1; do
        [ "$(date +%s)" -lt "$deadline" ] || die "$what: not within ${secs}s (logs: $work/logs)"
        sleep 0.2
    done
}

members=(1 2 3)

# --- moor --------------------------------------------------------------------------------------
moor_start() {
    local n=$1
    shift
    "$moor" --data-dir "$work/moor/ctl-$n" controller "$@" >> "$work/logs/moor-ctl-$n.log" 2>&1 &
    pid[ctl-$n]=$!
}
moor_up() {
    local ports
    read -r -a ports <<< "$(free_ports 3)"
    for n in "${members[@]}"; do maddr[ctl-$n]=127.0.0.1:${ports[$((n - 1))]}; done
    mkdir -p "$work/moor"
    moor_start 1 --init --name ctl-1 --listen "${maddr[ctl-1]}"
    admin=$work/moor/ctl-1/admin.conf
    wait_for 30 "ctl-1 admin.conf" test -s "$admin"
    wait_for 30 "ctl-1 leading" "$load" moor --config "$admin" leader
    for n in 2 3; do
        local token
        token=$("$moor" --config "$admin" token create --role controller | grep -o 'moor1\.[^ ]*' | tail -1)
        [ -n "$token" ] || die "moor token create printed no token"
        moor_start "$n" --join "$token" --server "${maddr[ctl-1]}" --name "ctl-$n" --listen "${maddr[ctl-$n]}"
        wait_for 60 "ctl-$n joined as a voter" moor_has_voters "$n"
    done
}
moor_has_voters() {
    [ "$("$moor" --config "$admin" controller ls 2>/dev/null | grep -c voter)" -ge "$1" ]
}
moor_restart() {
    moor_start "${1#ctl-}"
}
# moor_client MEMBER... : the load generator's connection arguments for these members.
moor_client() {
    local m
    client=(moor --config "$admin")
    for m in "$@"; do client+=(--member "$m=${maddr[$m]}"); done
}
moor_healthy() {
    moor_has_voters 3 && "$load" moor --config "$admin" leader
}

# --- etcd ----------------------------------------------------------------------------------------
etcd_certs() {
    local d=$work/etcd/pki
    mkdir -p "$d"
    (
        cd "$d"
        openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ca.key 2>/dev/null
        openssl req -x509 -new -key ca.key -subj /CN=bench-etcd-ca -days 2 -out ca.pem \
            -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
        for who in member client; do
            local eku=clientAuth
            [ "$who" = member ] && eku=serverAuth,clientAuth
            openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$who.key" 2>/dev/null
            openssl req -new -key "$who.key" -subj "/CN=$who" -out "$who.csr"
            printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=%s\nkeyUsage=critical,digitalSignature\nbasicConstraints=critical,CA:FALSE\n' "$eku" > "$who.ext"
            openssl x509 -req -in "$who.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
                -extfile "$who.ext" -out "$who.pem" 2>/dev/null
        done
    )
    pki=$d
}
etcd_start() {
    local name=$1
    "$etcd_bin" --name "$name" --data-dir "$work/etcd/$name" \
        --listen-client-urls "${eaddr[$name]}" --advertise-client-urls "${eaddr[$name]}" \
        --listen-peer-urls "${epeer[$name]}" --initial-advertise-peer-urls "${epeer[$name]}" \
        --initial-cluster "$initial_cluster" --initial-cluster-state new \
        --initial-cluster-token moor-bench \
        --cert-file "$pki/member.pem" --key-file "$pki/member.key" \
        --trusted-ca-file "$pki/ca.pem" --client-cert-auth \
        --peer-cert-file "$pki/member.pem" --peer-key-file "$pki/member.key" \
        --peer-trusted-ca-file "$pki/ca.pem" --peer-client-cert-auth \
        --logger zap --log-outputs stderr \
        >> "$work/logs/$name.log" 2>&1 &
    pid[$name]=$!
}
etcd_up() {
    local ports n
    etcd_certs
    read -r -a ports <<< "$(free_ports 6)"
    initial_cluster=
    for n in "${members[@]}"; do
        eaddr[etcd-$n]=https://127.0.0.1:${ports[$((n - 1))]}
        epeer[etcd-$n]=https://127.0.0.1:${ports[$((n + 2))]}
        initial_cluster+="${initial_cluster:+,}etcd-$n=${epeer[etcd-$n]}"
    done
    for n in "${members[@]}"; do etcd_start "etcd-$n"; done
    etcd_client etcd-1 etcd-2 etcd-3
    wait_for 60 "etcd leader elected" "$load" "${client[@]}" leader
    wait_for 60 "etcd members healthy" etcd_healthy
}
etcd_restart() {
    etcd_start "$1"
}
etcd_client() {
    local m
    client=(etcd --cacert "$pki/ca.pem" --cert "$pki/client.pem" --key "$pki/client.key")
    for m in "$@"; do client+=(--endpoint "$m=${eaddr[$m]}"); done
}
etcd_healthy() {
    local m
    for m in etcd-1 etcd-2 etcd-3; do
        etcd_client "$m"
        "$load" "${client[@]}" leader || return 1
    done
}

# --- the steps, the same for both ------------------------------------------------------------------
declare -A maddr=() eaddr=() epeer=()

names_of() {
    case $1 in
        moor) echo ctl-1 ctl-2 ctl-3 ;;
        etcd) echo etcd-1 etcd-2 etcd-3 ;;
    esac
}
# client_for SYSTEM MEMBER...
client_for() {
    local sys=$1
    shift
    case $sys in
        moor) moor_client "$@" ;;
        etcd) etcd_client "$@" ;;
    esac
}
leader_of() {
    local sys=$1
    client_for "$sys" $(names_of "$sys")
    "$load" "${client[@]}" leader
}
healthy() {
    case $1 in
        moor) moor_healthy ;;
        etcd) etcd_healthy ;;
    esac
}
# proc_field PID FILE FIELD: a number from /proc/PID/FILE ("Field: N ...").
proc_field() {
    awk -v f="$3:" '$1 == f {print $2; exit}' "/proc/$1/$2"
}
dev_written() {
    if [ -n "$dev" ]; then awk '{printf "%.0f\n", $7 * 512}' "/sys/block/$dev/stat"; else echo 0; fi
}

run_system() {
    local sys=$1 leader others m i p r
    say "$sys: starting three members"
    case $sys in
        moor) moor_up ;;
        etcd) etcd_up ;;
    esac
    for m in $(names_of "$sys"); do echo "$sys $m pid ${pid[$m]}"; done
    leader=$(leader_of "$sys")
    echo "  leader: $leader"

    say "$sys: $SEQ_WRITES sequential writes to the leader ($VALUE_SIZE-byte values)"
    client_for "$sys" "$leader"
    "$load" "${client[@]}" seq --count "$SEQ_WRITES" --value-size "$VALUE_SIZE" --prefix seq \
        | tee "$out/$sys-seq.json"

    say "$sys: $WRITERS concurrent writers for $LOAD_SECS s, to the leader"
    "$load" "${client[@]}" load --writers "$WRITERS" --seconds "$LOAD_SECS" \
        --value-size "$VALUE_SIZE" --prefix load | tee "$out/$sys-load.json"

    say "$sys: $READS sequential reads of one key from the leader, linearizable then local"
    "$load" "${client[@]}" read --count "$READS" | tee "$out/$sys-read.json"
    "$load" "${client[@]}" read --count "$READS" --local | tee "$out/$sys-read-local.json"

    say "$sys: memory after the load"
    for m in $(names_of "$sys"); do
        p=${pid[$m]}
        printf '%s %s rss_kib=%s hwm_kib=%s role=%s\n' "$sys" "$m" "$(proc_field "$p" status VmRSS)" \
            "$(proc_field "$p" status VmHWM)" "$([ "$m" = "$leader" ] && echo leader || echo follower)" \
            | tee -a "$out/$sys-rss.txt"
        du -sb "$work/$sys/$m" | awk -v s="$sys" -v m="$m" '{print s, m, "data_bytes=" $1}' >> "$out/$sys-disk.txt"
    done

    say "$sys: bytes written while idle ($SETTLE_SECS s to settle, then $IDLE_SECS s)"
    # What the load left dirty goes to disk now, not inside the idle window.
    sync
    sleep "$SETTLE_SECS"
    declare -A before=()
    for m in $(names_of "$sys"); do before[$m]=$(proc_field "${pid[$m]}" io write_bytes); done
    local dev_before
    dev_before=$(dev_written)
    sleep "$IDLE_SECS"
    local dev_after
    dev_after=$(dev_written)
    for m in $(names_of "$sys"); do
        echo "$sys $m write_bytes=$(($(proc_field "${pid[$m]}" io write_bytes) - ${before[$m]})) secs=$IDLE_SECS" \
            | tee -a "$out/$sys-idle.txt"
    done
    echo "$sys device write_bytes=$((dev_after - dev_before)) secs=$IDLE_SECS dev=${dev:-none}" | tee -a "$out/$sys-idle.txt"

    if [ "$STRACE_WRITES" -gt 0 ]; then
        say "$sys: fsyncs per write (strace -f -c of every member, $STRACE_WRITES sequential writes, not timed)"
        local tracers=()
        for m in $(names_of "$sys"); do
            strace -f -c -e trace=fsync,fdatasync,sync_file_range,syncfs,msync -o "$out/$sys-strace-$m.txt" \
                -p "${pid[$m]}" 2>/dev/null &
            tracers+=($!)
        done
        sleep 1
        client_for "$sys" "$leader"
        "$load" "${client[@]}" seq --count "$STRACE_WRITES" --warmup 0 --value-size "$VALUE_SIZE" \
            --prefix strace > "$out/$sys-strace-seq.json"
        sleep 0.5
        for p in "${tracers[@]}"; do kill -INT "$p" 2>/dev/null || true; done
        for p in "${tracers[@]}"; do wait "$p" 2>/dev/null || true; done
        for m in $(names_of "$sys"); do
            r=$(awk '$NF ~ /^(fsync|fdatasync|sync_file_range|syncfs|msync)$/ {s += $4} END {print s + 0}' "$out/$sys-strace-$m.txt")
            echo "$sys $m syncs=$r writes=$STRACE_WRITES role=$([ "$m" = "$leader" ] && echo leader || echo follower)" \
                | tee -a "$out/$sys-syncs.txt"
        done
    fi

    local mode
    for mode in long-lived fresh; do
        say "$sys: failover x$FAILOVERS ($mode client): kill -9 the leader, time to the next acknowledged write"
        for i in $(seq 1 "$FAILOVERS"); do
            wait_for 60 "$sys healthy before failover $i" healthy "$sys"
            leader=$(leader_of "$sys")
            others=()
            for m in $(names_of "$sys"); do [ "$m" = "$leader" ] || others+=("$m"); done
            client_for "$sys" "$leader" "${others[@]}"
            local extra=()
            [ "$mode" = fresh ] && extra=(--fresh-client)
            if r=$("$load" "${client[@]}" failover --kill "${pid[$leader]}" --attempt-timeout-ms "$ATTEMPT_MS" --attempt-every-ms "$ATTEMPT_EVERY_MS" \
                --value-size "$VALUE_SIZE" --prefix "fo-$mode-$i" "${extra[@]}"); then
                echo "$r" >> "$out/$sys-failover-$mode.jsonl"
                printf '  %d: leader %s killed: %s\n' "$i" "$leader" "$r"
            else
                echo '{"failover_ms": null}' >> "$out/$sys-failover-$mode.jsonl"
                printf '  %d: leader %s killed: no write succeeded\n' "$i" "$leader"
            fi
            wait "${pid[$leader]}" 2>/dev/null || true
            case $sys in
                moor) moor_restart "$leader" ;;
                etcd) etcd_restart "$leader" ;;
            esac
            # Let the restarted member catch up before the next round.
            wait_for 60 "$sys healthy after restarting $leader" healthy "$sys"
            sleep 2
        done
    done

    say "$sys: stopping"
    for m in $(names_of "$sys"); do kill -TERM "${pid[$m]}" 2>/dev/null || true; done
    for m in $(names_of "$sys"); do
        timeout 20 tail --pid="${pid[$m]}" -f /dev/null || kill -9 "${pid[$m]}" 2>/dev/null || true
        wait "${pid[$m]}" 2>/dev/null || true
        unset "pid[$m]"
    done
}

for sys in $SYSTEMS; do
    case $sys in
        moor | etcd) run_system "$sys" ;;
        *) die "SYSTEMS: unknown system $sys (moor, etcd)" ;;
    esac
done

echo "load_after=$(cut -d' ' -f1-3 /proc/loadavg)" >> "$out/meta.txt"
python3 "$here/controller_report.py" "$out" | tee "$out/summary.txt"
printf '\nresults: %s\n' "$out"
