#!/usr/bin/env bash
# Part of `npm run bench -- cold-launch`, run by bench/cold-launch.ts inside test/xenhost/boot.sh with
# KRATA_BENCH_REGISTRY (the host's registry as dom0 reaches it, 10.0.2.2:PORT) holding
# bench/busybox:1. On the QEMU Xen host, with nothing cached: `kratactl apply` of a Guest of that
# image → phase Running (the agent pulls, packs, composes the launch config and launches), against
# `skopeo copy` + `umoci unpack` + `mksquashfs` + `xl create` of the same image (same kernel, initrd,
# memory, initrd with a launch config, no NIC), alternating; each run of ours starts with the image removed from the
# agent's cache. Prints "PHASES <json>" per run of ours and last "RESULT <ours ms median> <baseline ms median>".
set -euo pipefail
x() { "$KRATA_XENHOST_EXEC" "$@" </dev/null; }
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
runs=${KRATA_BENCH_RUNS:-3}
reg=${KRATA_BENCH_REGISTRY:?the registry, as dom0 reaches it}
ref=$reg/bench/busybox:1
stage=$repo/guest-init/target/bench-cold
(cd "$repo/guest-init" && PATH=/usr/bin:/bin /usr/bin/cargo build --offline --release --quiet)
mkdir -p "$stage"
k="node /krata/dist/kratactl/main.js"
x "command -v skopeo >/dev/null && command -v umoci >/dev/null" ||
  { echo "dom0 has no skopeo or umoci: the xenhost image predates them (test/xenhost/build.sh)" >&2; exit 1; }
x "set -e; mkdir -p /var/lib/krata/guest /run/krata
node /krata/dist/test/e2e/dom0/krata-initrd.js /krata/guest-init/target/release/guest-init /var/lib/krata/guest/initrd >/dev/null
cp /opt/xenhost/guest/vmlinux /var/lib/krata/guest/vmlinuz
(setsid node /krata/dist/node-agent/main.js --metrics 127.0.0.1:9477 --log-level warn --insecure-registry $reg >>/tmp/agent.log 2>&1 </dev/null &)
for i in \$(seq 600); do $k host status >/dev/null 2>&1 && exit 0; sleep 0.2; done; exit 1" >&2
# Ours: the image leaves the cache (and the previous Guest goes) untimed; then apply → Running.
cat >"$stage/ours.sh" <<SH
$k delete guest bench --wait >/dev/null 2>&1 || true
$k image rm $ref >/dev/null 2>&1 || true
KRATA_BENCH_IMAGE=$ref node /krata/dist/bench/dom0-apply.js
SH
cat >"$stage/theirs.sh" <<SH
# The baseline gets the initrd with a launch config, as the agent's guest.
node /krata/dist/bench/launch-initrd.js /var/lib/krata/guest/initrd /tmp/bench-initrd
$k delete guest bench --wait >/dev/null
rm -rf /tmp/cold && mkdir -p /tmp/cold
cat >/tmp/bench-xl.cfg <<CFG
name = "bench-xl"
type = "pv"
kernel = "/var/lib/krata/guest/vmlinuz"
ramdisk = "/tmp/bench-initrd"
extra = "console=hvc0 quiet loglevel=3"
memory = 96
vcpus = 1
disk = [ "format=raw,vdev=xvda,access=ro,target=/tmp/cold/image.sqfs" ]
CFG
s=\${EPOCHREALTIME/./}
TMPDIR=/tmp skopeo copy -q --insecure-policy --src-tls-verify=false docker://$ref oci:/tmp/cold/oci:1
umoci unpack --image /tmp/cold/oci:1 /tmp/cold/bundle >/dev/null
mksquashfs /tmp/cold/bundle/rootfs /tmp/cold/image.sqfs -comp zstd -Xcompression-level 3 -noappend -quiet -no-progress
xl create -q /tmp/bench-xl.cfg
e=\${EPOCHREALTIME/./}
xl destroy bench-xl
echo \$(( (e - s) / 1000 ))
SH
# shellcheck source=bench/xen-alternate.sh
source "$repo/bench/xen-alternate.sh"
alternate /krata/guest-init/target/bench-cold/ours.sh /krata/guest-init/target/bench-cold/theirs.sh 'cold apply → Running (agent API)' 'skopeo + umoci + mksquashfs + xl create'
