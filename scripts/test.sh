#!/bin/sh
# The test command: installs what the tests need on a fresh Debian machine, then runs
# the format check, clippy and the whole test suite as root, with privileged tests
# failing (not skipping) when a prerequisite is missing.
set -eu
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
    echo "scripts/test.sh: run as root (the runtime's tests make namespaces, mounts and cgroups)" >&2
    exit 1
fi
need=""
for pkg in busybox-static util-linux bsdutils iproute2 nftables docker-registry skopeo umoci faketime; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need="$need $pkg"
done
if [ -n "$need" ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need
fi
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
MOOR_TEST_STRICT=1 cargo test --workspace
