#!/usr/bin/env bash
# Part of `npm run bench -- agent`, run by bench/agent.ts inside test/xenhost/boot.sh: on the QEMU Xen
# host, `kratactl apply` of a Guest whose image is cached → phase Running, against `xl create` of the
# same guest (kernel, initrd with guest-init and a launch config, memory, the same image disk, no NIC), timed
# in dom0, alternating. Prints "PHASES <json>" per run (the agent's breakdown of that launch, phase →
# ms, from its krata_launch_phase_seconds) and last "RESULT <ours ms median> <xl ms median>".
set -euo pipefail
x() { "$KRATA_XENHOST_EXEC" "$@" </dev/null; }
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
runs=${KRATA_BENCH_RUNS:-3}
stage=$repo/guest-init/target/bench-agent
(cd "$repo/guest-init" && PATH=/usr/bin:/bin /usr/bin/cargo build --offline --release --quiet)
mkdir -p "$stage"
node "$repo/dist/test/e2e/busybox-image.js" "$stage/busybox.tar" bench/busybox:1
cat >"$stage/guest.yaml" <<'YAML'
apiVersion: krata.dev/v1alpha1
kind: Guest
metadata: {name: bench}
spec:
  image: bench/busybox:1
  command: [sh, -c, 'while :; do sleep 1; done']
  resources: {cpus: 1, memory: 96Mi}
  network: {enabled: false}
  terminationGracePeriodSeconds: 1
YAML
k="node /krata/dist/kratactl/main.js"
x "set -e; mkdir -p /var/lib/krata/guest /run/krata
node /krata/dist/test/e2e/dom0/krata-initrd.js /krata/guest-init/target/release/guest-init /var/lib/krata/guest/initrd >/dev/null
cp /opt/xenhost/guest/vmlinux /var/lib/krata/guest/vmlinuz
$k image import --offline --store /var/lib/krata -q /krata/guest-init/target/bench-agent/busybox.tar >/dev/null
(setsid node /krata/dist/node-agent/main.js --metrics 127.0.0.1:9477 --log-level warn >>/tmp/agent.log 2>&1 </dev/null &)
for i in \$(seq 600); do $k host status >/dev/null 2>&1 && exit 0; sleep 0.2; done; exit 1" >&2
# The timed parts run in dom0 (no SSH round trips inside the measurement). Ours is timed inside one
# Node process (bench/dom0-apply.ts), from the API request to phase Running.
cat >"$stage/ours.sh" <<'SH'
node /krata/dist/bench/dom0-apply.js
SH
cat >"$stage/theirs.sh" <<'SH'
# xl gets the disk the agent used for this guest (the cached image) and the initrd with a launch config.
img=$(ls /var/lib/krata/images/*.squashfs | head -1)
node /krata/dist/bench/launch-initrd.js /var/lib/krata/guest/initrd /tmp/bench-initrd
node /krata/dist/kratactl/main.js delete guest bench --wait >/dev/null
cat >/tmp/bench-xl.cfg <<CFG
name = "bench-xl"
type = "pv"
kernel = "/var/lib/krata/guest/vmlinuz"
ramdisk = "/tmp/bench-initrd"
extra = "console=hvc0 quiet loglevel=3"
memory = 96
vcpus = 1
disk = [ "format=raw,vdev=xvda,access=ro,target=$img" ]
CFG
s=${EPOCHREALTIME/./}
xl create -q /tmp/bench-xl.cfg
e=${EPOCHREALTIME/./}
xl destroy bench-xl
echo $(( (e - s) / 1000 ))
SH
# shellcheck source=bench/xen-alternate.sh
source "$repo/bench/xen-alternate.sh"
alternate /krata/guest-init/target/bench-agent/ours.sh /krata/guest-init/target/bench-agent/theirs.sh 'apply → Running (agent API)' 'xl create'
