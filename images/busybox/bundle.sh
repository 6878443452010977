#!/bin/sh
# Assembles an OCI bundle (rootfs + config.json) from Debian's busybox-static:
#   images/busybox/bundle.sh DIR
# The rootfs holds busybox with a relative link per applet (bin/sh -> busybox), so it
# works wherever it is mounted. Step 2 replaces this with `moor image build`.
set -eu
dir=${1:?usage: bundle.sh DIR}
here=$(cd "$(dirname "$0")" && pwd)
busybox=${BUSYBOX:-/bin/busybox}
[ -x "$busybox" ] || { echo "bundle.sh: $busybox not found (apt-get install busybox-static)" >&2; exit 1; }
rm -rf "$dir/rootfs"
mkdir -p "$dir/rootfs/bin" "$dir/rootfs/etc" "$dir/rootfs/proc" "$dir/rootfs/sys" \
         "$dir/rootfs/dev" "$dir/rootfs/tmp" "$dir/rootfs/root"
cp "$busybox" "$dir/rootfs/bin/busybox"
for applet in $("$busybox" --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$dir/rootfs/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' > "$dir/rootfs/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$dir/rootfs/etc/group"
cp "$here/config.json" "$dir/config.json"
echo "bundle ready: $dir"
