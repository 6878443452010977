#!/bin/sh
# moor's main job for now: build moor, build the busybox and hello images with
# `moor image build`, make a bundle of hello and run it, then ask its web server.
# Run as root on a Debian machine with a Rust toolchain. Uses moor's defaults: the store
# in /var/lib/moor, container state in /run/moor/runtime.
set -eu
cd "$(dirname "$0")/.."
if ! [ -x /bin/busybox ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static
fi
cargo build --release -p moor
moor=target/release/moor
$moor image build images/busybox -t moor.local/busybox:latest
$moor image build images/hello -t moor.local/hello:latest
$moor image ls

bundle=${MOOR_DEMO_BUNDLE:-/tmp/moor-hello}
id=demo-$$
if [ -e "$bundle/.moor-bundle" ]; then
    $moor image unbundle "$bundle"
fi
$moor image bundle moor.local/hello:latest "$bundle"
cleanup() {
    $moor runtime delete --force "$id" 2>/dev/null || true
    $moor image unbundle "$bundle" || true
}
trap cleanup EXIT
$moor runtime run --detach --bundle "$bundle" "$id"
$moor runtime list

# The server starts in the background: ask until it answers (at most ~5 s).
tries=0
until $moor runtime exec "$id" wget -q -O - http://127.0.0.1:8080/?from=demo; do
    tries=$((tries + 1))
    [ "$tries" -lt 50 ] || { echo "demo: hello did not answer" >&2; exit 1; }
    sleep 0.1
done
