#!/bin/sh
# moor's main job for now: build moor, build the busybox and hello images with
# `moor image build`, make a bundle of hello and run it, then ask its web server; then
# start a controller and an agent on this machine and give them a Deployment.
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

# The cluster: a controller and an agent on this machine (127.0.0.1), in a scratch data
# directory and HOME so the machine's own ~/.moor/config is left alone. The agent joins
# with a token, registers its node and sends heartbeats; a Deployment and a Service are
# stored and shown (running them on nodes comes with step 4).
demo=$(mktemp -d /tmp/moor-demo.XXXXXX)
port=${MOOR_DEMO_PORT:-17443}
ctl_pid=""
agent_pid=""
cleanup_cluster() {
    [ -z "$agent_pid" ] || kill "$agent_pid" 2>/dev/null || true
    [ -z "$ctl_pid" ] || kill "$ctl_pid" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$demo"
    cleanup
}
trap cleanup_cluster EXIT
export HOME="$demo/home"
mkdir -p "$HOME"
$moor --data-dir "$demo/controller" controller --init --name ctl-1 \
    --listen "127.0.0.1:$port" --heartbeat-interval 2s --node-grace 6s \
    2>"$demo/controller.log" &
ctl_pid=$!
tries=0
until $moor get namespaces >/dev/null 2>&1; do
    tries=$((tries + 1))
    [ "$tries" -lt 100 ] || { cat "$demo/controller.log" >&2; exit 1; }
    sleep 0.1
done
token=$($moor token create --role agent --ttl 10m)
MOOR_JOIN_TOKEN=$token $moor --data-dir "$demo/agent" agent --server "127.0.0.1:$port" \
    --name demo-node 2>"$demo/agent.log" &
agent_pid=$!
tries=0
until $moor node ls 2>/dev/null | grep -q '^demo-node *Ready'; do
    tries=$((tries + 1))
    [ "$tries" -lt 100 ] || { cat "$demo/agent.log" >&2; exit 1; }
    sleep 0.1
done
$moor controller ls
$moor node ls
$moor apply -f - <<'YAML'
apiVersion: apps/v1
kind: Deployment
metadata: {name: hello}
spec:
  replicas: 2
  selector: {matchLabels: {app: hello}}
  template:
    metadata: {labels: {app: hello}}
    spec:
      containers:
      - name: hello
        image: moor.local/hello:latest
        ports: [{containerPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: hello}
spec:
  selector: {app: hello}
  ports: [{port: 80, targetPort: 8080}]
YAML
$moor get deployments
$moor get services
$moor describe node demo-node
