#!/bin/sh
# moor's main job for now: build moor, assemble the busybox bundle and run a container.
# Run as root on a Debian machine with a Rust toolchain.
set -eu
cd "$(dirname "$0")/.."
if ! [ -x /bin/busybox ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static
fi
cargo build --release -p moor
bundle=${MOOR_DEMO_BUNDLE:-/tmp/moor-busybox}
images/busybox/bundle.sh "$bundle"
exec target/release/moor runtime run --bundle "$bundle" "demo-$$"
