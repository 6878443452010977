#!/usr/bin/env bash
# moor's image benchmark: getting a runnable root file system out of an image, moor
# against skopeo + umoci and against plain `tar -xzf`, from one OCI archive and from a
# local registry, in one run. Run it as root, on demand:
#
#     sudo bench/images.sh
#
# Method (bench/README.md has the figures and how to read them):
#
#  * Where: a fresh ext4 file system with a journal (mkfs.ext4 defaults) on a loop
#    device, made for the run (FS_SIZE, 8G sparse, in /tmp) and mounted as the work
#    directory: what an edge box's root file system usually is, and the same for every
#    tool. BENCH_FS=tmp runs in /tmp itself instead. Why: on an ext4 without a journal
#    (this VM's root), creating inodes soon after deleting many makes the allocator
#    read each recently freed inode to skip it (`recently_deleted` in ext4's
#    find_inode_bit), so every tool pays seconds of system time that depend on what the
#    previous run removed: the figures measured the allocator, not the tools.
#  * moor is built the way it ships: static, release, x86_64-unknown-linux-gnu
#    (`CARGO_TARGET_DIR` is honoured; `MOOR=path` skips the build and uses that binary).
#    skopeo, umoci, docker-registry, GNU tar and gzip are the ones on PATH.
#  * The test image: bench/images_probe.py generates a fixed-seed tree (the same bytes on
#    every machine): 5 layers of 90, 50, 30, 20 and 10 MB of file data (SCALE multiplies
#    them), ~31,000 files, ~1,100 symlinks, log-normal sizes (median ~1.8 KB, up to 4 MiB),
#    text, code-like and random content (gzip 1.76:1 overall); layers 3 and 4 replace
#    some of layer 1's files. `moor image build` makes it as a chain of 5 images
#    (`from: scratch`, then `from:` the one before, each `copy` of its tree to `/`);
#    `moor image save` writes the OCI archive every tool reads. The tar baseline uses the
#    very layer blobs of that archive (gzip tars), taken from its blobs/ directory.
#  * Before timing, each way is run once and the root file systems compared (names,
#    types, permission bits, owners, file contents, link targets): moor's overlay
#    rootfs, umoci's rootfs, tar's directory must be identical, or the run stops.
#  * Step 2, from the OCI archive, into fresh directories each run (hyperfine --prepare,
#    not timed: unbundle, remove the previous output, `sync` so no run pays for the
#    previous one's writeback); warm page cache (WARMUP runs first), RUNS (7) runs:
#      moor          `moor --data-dir D image import ARCHIVE` then `moor image bundle
#                    REF B`: import verifies and stores the blobs (fsync each), bundle
#                    unpacks every layer (diff_id checked, one syncfs per layer), mounts
#                    the overlay and writes config.json: what `moor runtime run --bundle B`
#                    needs. The result is shared read-only layers plus an overlay.
#      skopeo+umoci  `skopeo copy oci-archive:ARCHIVE:v1 oci:S:v1` (TMPDIR in the work
#                    directory) then `umoci unpack --image S:v1 U`: a flattened rootfs,
#                    config.json and umoci's mtree manifest of it. No fsync.
#      tar           `tar -xzf` of each layer blob in order into one directory: no
#                    verification, no whiteouts, no durability: the floor.
#      tar+sync      the same then `sync`: the floor when the result must survive a power
#                    cut, as moor's does (information only: the goal is against `tar`).
#    The same with cold caches (`sync; echo 3 > drop_caches` in the prepare), COLD_RUNS
#    (3) runs, 0 to skip.
#  * Step 3, from a registry: docker-registry on 127.0.0.1 (a free port) with its own
#    config, storage in the work directory; the image pushed once with `moor image push
#    --plain-http`. Fresh output each run, RUNS runs:
#      moor          `moor image pull --plain-http` (download with 3 blobs at once,
#                    verify, store, unpack every layer; no overlay mount);
#      skopeo        `skopeo copy --src-tls-verify=false docker://… oci:S:v1` (download only);
#      skopeo+umoci  the same then `umoci unpack`.
#  * Step 4, where the time goes: each phase alone (import, bundle, skopeo copy, umoci
#    unpack, tar) PHASE_RUNS (3) times with its wall, user and system time and peak RSS
#    (wait4, children included); `strace -f -c` (system time per syscall) and
#    `strace -f -c -w` (wall time per syscall) of one import and one bundle, with
#    syscalls per archive entry; and when perf is installed a cpu-clock profile of
#    import + bundle, by thread and by symbol, of a build of the same tree with symbols
#    (`--profile symbols`: release with strip = false; SYMBOLS=0 skips it, MOOR_SYMBOLS=
#    path uses that binary).
#
# The summary (bench/images_probe.py report) prints medians, moor's ratio to each peer,
# and the step-2 goals: moor at most 0.5x skopeo+umoci and at most 1.3x tar.
#
# Other knobs (environment): RUNS (7), WARMUP (1), COLD_RUNS (3), PHASE_RUNS (3),
# SCALE (1), BENCH_FS (loop), FS_SIZE (8G), HF_TIMEOUT (1800 s per hyperfine call), MOOR_BENCH_OUT (results directory,
# default /tmp/moor-imgbench-results.DATE). Results stay there. Everything else the run
# makes (the work directory under /tmp, mounts, the registry process, skopeo's blob-info
# cache when this run created it) is removed on exit, also when it fails or is
# interrupted.
set -euo pipefail

RUNS=${RUNS:-7}
WARMUP=${WARMUP:-1}
COLD_RUNS=${COLD_RUNS:-3}
PHASE_RUNS=${PHASE_RUNS:-3}
SCALE=${SCALE:-1}
HF_TIMEOUT=${HF_TIMEOUT:-1800}
SYMBOLS=${SYMBOLS:-1}

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
probe=$here/images_probe.py

say() { printf '\n== %s\n' "$*"; }
die() { printf 'images.sh: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root: sudo bench/images.sh"

# --- prerequisites -------------------------------------------------------------------
missing=()
need() { command -v "$1" >/dev/null 2>&1 || missing+=("$1 ($2)"); }
need hyperfine "apt-get install hyperfine"
need skopeo "apt-get install skopeo"
need umoci "apt-get install umoci"
need docker-registry "apt-get install docker-registry"
need strace "apt-get install strace"
need python3 "apt-get install python3"
need gzip "apt-get install gzip"
need mountpoint "apt-get install util-linux"
BENCH_FS=${BENCH_FS:-loop}
FS_SIZE=${FS_SIZE:-8G}
case $BENCH_FS in
    loop)
        need mkfs.ext4 "apt-get install e2fsprogs"
        need losetup "apt-get install mount"
        ;;
    tmp) ;;
    *) die "BENCH_FS must be loop or tmp, not $BENCH_FS" ;;
esac
need timeout "apt-get install coreutils"
if ! command -v tar >/dev/null 2>&1 || ! tar --version 2>/dev/null | grep -q 'GNU tar'; then
    missing+=("GNU tar (apt-get install tar)")
fi
if ! grep -qw overlay /proc/filesystems; then
    modprobe overlay 2>/dev/null || true
    grep -qw overlay /proc/filesystems || missing+=("overlayfs in the kernel (moor image bundle mounts one)")
fi
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
    printf 'images.sh: missing prerequisites:\n' >&2
    printf '  - %s\n' "${missing[@]}" >&2
    exit 1
fi
perf=$(command -v perf || true)
if [ -n "$perf" ] && ! perf record -q -e cpu-clock -o /dev/null -- true >/dev/null 2>&1; then
    perf=
fi

# --- step 1a: moor ---------------------------------------------------------------------
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
# The profile needs symbols; the shipped binary is stripped. The same code, unstripped.
moor_sym=${MOOR_SYMBOLS:-}
if [ -n "$perf" ] && [ -z "$moor_sym" ] && [ "$SYMBOLS" = 1 ] && [ -z "${MOOR:-}" ]; then
    say "building moor with symbols for the profile (release, strip = false)"
    (cd "$repo" && RUSTFLAGS="-C target-feature=+crt-static" CARGO_TARGET_DIR="$target_dir" \
        "$cargo" build --config 'profile.symbols.inherits="release"' \
        --config 'profile.symbols.strip=false' --profile symbols \
        --target x86_64-unknown-linux-gnu -p moor)
    moor_sym=$target_dir/x86_64-unknown-linux-gnu/symbols/moor
fi

stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=${MOOR_BENCH_OUT:-/tmp/moor-imgbench-results.$stamp}
mkdir -p "$out"

{
    echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "kernel=$(uname -r)"
    echo "cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    echo "cores=$(nproc)"
    echo "memory_mib=$(awk '/MemTotal/ {print int($2/1024)}' /proc/meminfo)"
    echo "bench_fs=$BENCH_FS"
    echo "load_before=$(cut -d' ' -f1-3 /proc/loadavg)"
    echo "moor_path=$moor"
    commit=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)
    if [ -n "$(git -C "$repo" status --porcelain -- crates Cargo.toml Cargo.lock 2>/dev/null)" ]; then
        commit="$commit+uncommitted changes"
    fi
    echo "moor_commit=$commit"
    echo "moor_bytes=$(stat -Lc %s "$moor")"
    echo "moor_symbols=${moor_sym:-none}"
    echo "skopeo=$(skopeo --version)"
    echo "umoci=$(umoci --version)"
    echo "registry=$(docker-registry --version)"
    echo "tar=$(tar --version | head -1)"
    echo "gzip=$(gzip --version | head -1)"
    echo "hyperfine=$(hyperfine --version)"
    echo "perf=${perf:-absent}"
    echo "runs=$RUNS"
    echo "warmup=$WARMUP"
    echo "cold_runs=$COLD_RUNS"
    echo "phase_runs=$PHASE_RUNS"
    echo "scale=$SCALE"
} > "$out/meta.txt"

# --- clean-up, whatever happens ---------------------------------------------------------
# skopeo (containers/image) keeps a blob-info cache under /var/lib/containers; removed at
# the end only when this run made it.
skopeo_cache=/var/lib/containers/cache/blob-info-cache-v1.boltdb
skopeo_cache_before=no
[ -e "$skopeo_cache" ] && skopeo_cache_before=yes
registry_pid=

# Mounts below the work directory, deepest first.
work_mounts() {
    awk -v w="$work/" 'index($2, w) == 1 {print $2}' /proc/self/mounts | sort -r
}
cleanup() {
    local rc=$? m
    trap - EXIT INT TERM
    set +e
    if [ -n "$registry_pid" ]; then
        kill "$registry_pid" 2>/dev/null
        wait "$registry_pid" 2>/dev/null
    fi
    if [ -n "${work:-}" ] && [ -d "$work" ]; then
        for m in $(work_mounts); do umount "$m" 2>/dev/null || umount -l "$m"; done
        if [ "$BENCH_FS" = loop ] && mountpoint -q "$work"; then
            umount "$work" 2>/dev/null || umount -l "$work"
        fi
        rm -rf "$work"
        rm -f "$work.img"
    fi
    if [ "$skopeo_cache_before" = no ] && [ -e "$skopeo_cache" ]; then
        rm -f "$skopeo_cache"
        rmdir /var/lib/containers/cache /var/lib/containers 2>/dev/null
    fi
    [ "$rc" = 0 ] || printf '\nimages.sh: failed (exit %s); mounts, the registry and %s removed\n' "$rc" "${work:-the work directory}" >&2
    exit "$rc"
}
work=$(mktemp -d /tmp/moor-imgbench.XXXXXX)
trap cleanup EXIT
trap 'exit 130' INT TERM
if [ "$BENCH_FS" = loop ]; then
    truncate -s "$FS_SIZE" "$work.img"
    mkfs.ext4 -q -F "$work.img"
    mount -o loop "$work.img" "$work"
fi
echo "work_fs=$(findmnt -no FSTYPE,OPTIONS -T "$work") ($BENCH_FS)" >> "$out/meta.txt"
mkdir -p "$work/tmp"

# One shell-words string of "$@" (for the small scripts hyperfine runs).
q() {
    local s
    s=$(printf '%q ' "$@")
    printf '%s' "${s% }"
}

# --- step 1b: the image -----------------------------------------------------------------
say "test image: generating the tree (SCALE=$SCALE)"
python3 "$probe" tree "$work/src" "$SCALE" > "$work/tree.json"
python3 -c 'import json,sys
for l in json.load(open(sys.argv[1])):
    print("  layer %d: %6d files %5d dirs %4d symlinks %6.1f MB" % (l["layer"], l["files"], l["dirs"], l["symlinks"], l["bytes"]/1e6))' "$work/tree.json"

ref=bench/images:v1
say "test image: moor image build, 5 images, each from the one before"
build_store=$work/build-store
for l in 1 2 3 4 5; do
    tags=(-t "bench/images:l$l")
    [ "$l" = 5 ] && tags+=(-t "$ref")
    start=$(date +%s%N)
    "$moor" --data-dir "$build_store" image build "$work/src/l$l" "${tags[@]}" >/dev/null \
        || die "moor image build of layer $l failed"
    printf '  layer %d built in %d ms\n' "$l" $((($(date +%s%N) - start) / 1000000))
done
archive=$work/image.tar
"$moor" --data-dir "$build_store" image save "$ref" -o "$archive" >/dev/null || die "moor image save failed"
rm -rf "$work/src"
mkdir "$work/layout"
tar -xf "$archive" -C "$work/layout"
mapfile -t layers < <(python3 "$probe" layers "$work/layout" v1)
[ "${#layers[@]}" = 5 ] || die "expected 5 layers in $archive, found ${#layers[@]}"
gzip_bytes=0
tar_bytes=0
for i in "${!layers[@]}"; do
    gzip -t "${layers[$i]}" || die "layer blob ${layers[$i]} is not gzip"
    c=$(stat -c %s "${layers[$i]}")
    u=$(gzip -dc "${layers[$i]}" | wc -c)
    gzip_bytes=$((gzip_bytes + c))
    tar_bytes=$((tar_bytes + u))
    printf '  layer %d blob %s: %6.1f MB gzip, %6.1f MB tar\n' $((i + 1)) \
        "$(basename "${layers[$i]}" | cut -c1-12)" "$(awk -v b="$c" 'BEGIN {print b/1e6}')" \
        "$(awk -v b="$u" 'BEGIN {print b/1e6}')"
done
archive_bytes=$(stat -c %s "$archive")
printf '  OCI archive %s: %.1f MB\n' "$archive" "$(awk -v b="$archive_bytes" 'BEGIN {print b/1e6}')"
python3 -c 'import json,sys
t = json.load(open(sys.argv[1]))
json.dump({"layers": t, "gzip_bytes": int(sys.argv[2]), "tar_bytes": int(sys.argv[3]),
           "archive_bytes": int(sys.argv[4])}, open(sys.argv[5], "w"))' \
    "$work/tree.json" "$gzip_bytes" "$tar_bytes" "$archive_bytes" "$out/image.json"

# --- the commands ---------------------------------------------------------------------------
# Output paths, the same every run (removed by each prepare).
D=$work/moor-store B=$work/moor-bundle S=$work/skopeo-oci U=$work/umoci-bundle T=$work/tar-root
P=$work/moor-pull PS=$work/pull-oci PU=$work/pull-umoci

# script NAME LINE...: writes $work/NAME.sh (set -e, then the lines).
script() {
    local name=$1
    shift
    { echo "set -e"; printf '%s\n' "$@"; } > "$work/$name.sh"
}
moor_prepare=(
    "if [ -e $(q "$B/.moor-bundle") ]; then $(q "$moor" --data-dir "$D" image unbundle "$B") >/dev/null 2>&1 || true; fi"
    "if mountpoint -q $(q "$B/rootfs"); then umount $(q "$B/rootfs"); fi"
    "rm -rf $(q "$D" "$B")"
)
script prep-moor "${moor_prepare[@]}" sync
script prep-moor-cold "${moor_prepare[@]}" sync "echo 3 > /proc/sys/vm/drop_caches"
script moor-import "$(q "$moor" --data-dir "$D" image import "$archive")"
script moor-bundle "$(q "$moor" --data-dir "$D" image bundle "$ref" "$B")"
script moor "$(q "$moor" --data-dir "$D" image import "$archive")" \
    "$(q "$moor" --data-dir "$D" image bundle "$ref" "$B")"
script prep-skopeo "rm -rf $(q "$S" "$U" "$work/tmp")" "mkdir $(q "$work/tmp")" sync
script prep-skopeo-cold "rm -rf $(q "$S" "$U" "$work/tmp")" "mkdir $(q "$work/tmp")" sync "echo 3 > /proc/sys/vm/drop_caches"
script skopeo-copy "export TMPDIR=$(q "$work/tmp")" "$(q skopeo copy -q "oci-archive:$archive:v1" "oci:$S:v1")"
script umoci-unpack "$(q umoci unpack --image "$S:v1" "$U")"
script skopeo-umoci "export TMPDIR=$(q "$work/tmp")" "$(q skopeo copy -q "oci-archive:$archive:v1" "oci:$S:v1")" \
    "$(q umoci unpack --image "$S:v1" "$U")"
tar_lines=("mkdir $(q "$T")")
for l in "${layers[@]}"; do tar_lines+=("$(q tar -xzf "$l" -C "$T")"); done
script tar "${tar_lines[@]}"
script tar-sync "${tar_lines[@]}" sync
script prep-tar "rm -rf $(q "$T")" sync
script prep-tar-cold "rm -rf $(q "$T")" sync "echo 3 > /proc/sys/vm/drop_caches"

hf() {
    timeout --kill-after=10 "$HF_TIMEOUT" hyperfine -N --style basic --time-unit second "$@"
}

# --- step 1c: each way once, and the results compared ------------------------------------------
say "check: each way once; the root file systems must be identical"
for s in prep-moor moor prep-skopeo skopeo-umoci prep-tar tar; do
    sh "$work/$s.sh" >/dev/null 2>"$work/$s.err" || { cat "$work/$s.err" >&2; die "$s failed"; }
done
python3 "$probe" layer-records "$D" > "$out/moor-layers.json"
{
    printf '{"moor": %s,\n' "$(python3 "$probe" digest "$B/rootfs")"
    printf '"umoci": %s,\n' "$(python3 "$probe" digest "$U/rootfs")"
    printf '"tar": %s}\n' "$(python3 "$probe" digest "$T")"
} > "$out/check.json"
python3 - "$out/check.json" <<'EOF' || die "the three root file systems differ (see $out/check.json)"
import json, sys
c = json.load(open(sys.argv[1]))
for k, v in c.items():
    print("  %-6s %s  %d entries, %d files, %d symlinks, %.1f MB" % (k, v["digest"][:16], v["entries"], v["files"], v["symlinks"], v["bytes"] / 1e6))
sys.exit(0 if len({v["digest"] for v in c.values()}) == 1 else 1)
EOF
for s in prep-moor prep-skopeo prep-tar; do sh "$work/$s.sh"; done

# --- step 2: from the OCI archive -------------------------------------------------------------
say "unpack from the OCI archive: warm page cache, $WARMUP warm-up, $RUNS runs"
hf --warmup "$WARMUP" --runs "$RUNS" --export-json "$out/unpack.json" \
    -n moor --prepare "sh $work/prep-moor.sh" "sh $work/moor.sh" \
    -n skopeo+umoci --prepare "sh $work/prep-skopeo.sh" "sh $work/skopeo-umoci.sh" \
    -n tar --prepare "sh $work/prep-tar.sh" "sh $work/tar.sh" \
    -n tar+sync --prepare "sh $work/prep-tar.sh" "sh $work/tar-sync.sh"
for s in prep-moor prep-skopeo prep-tar; do sh "$work/$s.sh"; done

if [ "$COLD_RUNS" -gt 0 ]; then
    say "unpack from the OCI archive: cold caches (sync; drop_caches before each), $COLD_RUNS runs"
    hf --runs "$COLD_RUNS" --export-json "$out/unpack-cold.json" \
        -n moor --prepare "sh $work/prep-moor-cold.sh" "sh $work/moor.sh" \
        -n skopeo+umoci --prepare "sh $work/prep-skopeo-cold.sh" "sh $work/skopeo-umoci.sh" \
        -n tar --prepare "sh $work/prep-tar-cold.sh" "sh $work/tar.sh" \
        -n tar+sync --prepare "sh $work/prep-tar-cold.sh" "sh $work/tar-sync.sh"
    for s in prep-moor prep-skopeo prep-tar; do sh "$work/$s.sh"; done
fi

# --- step 3: from a registry --------------------------------------------------------------------
say "pull: docker-registry on 127.0.0.1"
port=$(python3 "$probe" port)
mkdir -p "$work/registry/data"
cat > "$work/registry/config.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $work/registry/data
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$port
EOF
docker-registry serve "$work/registry/config.yml" > "$out/registry.log" 2>&1 &
registry_pid=$!
python3 "$probe" wait-http "http://127.0.0.1:$port/v2/" 20 || die "docker-registry did not start (see $out/registry.log)"
remote=127.0.0.1:$port/bench/images:v1
: > "$work/registries.yaml"
"$moor" --data-dir "$build_store" --registries "$work/registries.yaml" image push --plain-http "$ref" "$remote" \
    > "$out/push.log" 2>&1 || die "moor image push to $remote failed (see $out/push.log)"
echo "  pushed $ref to $remote"
script prep-pull "rm -rf $(q "$P" "$PS" "$PU")" sync
script moor-pull "$(q "$moor" --data-dir "$P" --registries "$work/registries.yaml" image pull --plain-http "$remote")"
script skopeo-pull "$(q skopeo copy -q --src-tls-verify=false "docker://$remote" "oci:$PS:v1")"
script skopeo-umoci-pull "$(q skopeo copy -q --src-tls-verify=false "docker://$remote" "oci:$PS:v1")" \
    "$(q umoci unpack --image "$PS:v1" "$PU")"
for s in prep-pull moor-pull prep-pull skopeo-umoci-pull prep-pull; do
    sh "$work/$s.sh" >/dev/null 2>"$work/$s.err" || { cat "$work/$s.err" >&2; die "$s failed"; }
done
say "pull: fresh output each run, $WARMUP warm-up, $RUNS runs"
hf --warmup "$WARMUP" --runs "$RUNS" --prepare "sh $work/prep-pull.sh" --export-json "$out/pull.json" \
    -n moor "sh $work/moor-pull.sh" \
    -n skopeo "sh $work/skopeo-pull.sh" \
    -n skopeo+umoci "sh $work/skopeo-umoci-pull.sh"
sh "$work/prep-pull.sh"
kill "$registry_pid" 2>/dev/null || true
wait "$registry_pid" 2>/dev/null || true
registry_pid=

# --- step 4: where the time goes ------------------------------------------------------------------
say "phases alone: wall, user and system time, $PHASE_RUNS runs each"
rus=$out/rusage.jsonl
: > "$rus"
for _ in $(seq "$PHASE_RUNS"); do
    sh "$work/prep-moor.sh"
    python3 "$probe" rusage "$rus" "moor image import" -- sh "$work/moor-import.sh" || die "moor image import failed"
    sync
    python3 "$probe" rusage "$rus" "moor image bundle" -- sh "$work/moor-bundle.sh" || die "moor image bundle failed"
    sh "$work/prep-skopeo.sh"
    python3 "$probe" rusage "$rus" "skopeo copy (oci-archive to oci)" -- sh "$work/skopeo-copy.sh" || die "skopeo copy failed"
    sync
    python3 "$probe" rusage "$rus" "umoci unpack" -- sh "$work/umoci-unpack.sh" || die "umoci unpack failed"
    sh "$work/prep-tar.sh"
    python3 "$probe" rusage "$rus" "tar -xzf, 5 layers" -- sh "$work/tar.sh" || die "tar failed"
done
for s in prep-moor prep-skopeo prep-tar; do sh "$work/$s.sh"; done

say "strace -f -c of one import and one bundle (system time, then wall time per syscall)"
for mode in "" "-w"; do
    suffix=${mode:+-wall}
    sh "$work/prep-moor.sh"
    timeout 600 strace -f -c $mode -S time -o "$out/strace$suffix-import.txt" sh "$work/moor-import.sh" >/dev/null \
        || echo "  import under strace failed"
    sync
    timeout 600 strace -f -c $mode -S time -o "$out/strace$suffix-bundle.txt" sh "$work/moor-bundle.sh" >/dev/null \
        || echo "  bundle under strace failed"
done
sh "$work/prep-moor.sh"

if [ -n "$perf" ] && [ -n "$moor_sym" ] && [ -x "$moor_sym" ]; then
    say "perf: cpu-clock profile of import + bundle ($moor_sym)"
    script moor-sym "$(q "$moor_sym" --data-dir "$D" image import "$archive")" \
        "$(q "$moor_sym" --data-dir "$D" image bundle "$ref" "$B")"
    if timeout 600 perf record -q -e cpu-clock -F 2000 -o "$work/perf.data" -- sh "$work/moor-sym.sh" >/dev/null 2>&1; then
        perf report -i "$work/perf.data" --stdio --no-children --sort comm,dso 2>/dev/null \
            | grep -E '^ +[0-9.]+%' | head -12 > "$out/perf-comm.txt" || true
        perf report -i "$work/perf.data" --stdio --no-children --sort sym 2>/dev/null \
            | grep -E '^ +[0-9.]+%' | head -25 > "$out/perf-profile.txt" || true
    else
        echo "  perf record failed"
    fi
    sh "$work/prep-moor.sh"
elif [ -z "$perf" ]; then
    echo "perf: not installed or not usable here; no profile"
fi

echo "load_after=$(cut -d' ' -f1-3 /proc/loadavg)" >> "$out/meta.txt"

# --- the summary ----------------------------------------------------------------------------------
echo
python3 "$probe" report "$out" | tee "$out/summary.txt"
printf '\nresults: %s\n' "$out"
