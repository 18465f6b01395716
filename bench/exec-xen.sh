#!/usr/bin/env bash
# `npm run bench -- exec`, run by bench/main.ts inside test/xenhost/boot.sh: on the QEMU Xen host, one
# busybox guest reached from dom0 two ways (bench/dom0-exec.ts): `exec` through the agent's API and the
# guest's control channel, and TCP through kratanet (the guest's published ports on dom0's loopback)
# to busybox nc servers in the same guest.
# Prints "RESULT {json}".
set -euo pipefail
x() { "$KRATA_XENHOST_EXEC" "$@" </dev/null; }
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
stage=$repo/guest-init/target/bench-exec
bytes=${KRATA_BENCH_EXEC_BYTES:-2097152}
rounds=${KRATA_BENCH_RUNS:-20}
(cd "$repo/guest-init" && PATH=/usr/bin:/bin /usr/bin/cargo build --offline --release --quiet)
mkdir -p "$stage"
node "$repo/dist/test/e2e/busybox-image.js" "$stage/busybox.tar" bench/busybox:1
cat >"$stage/guest.yaml" <<YAML
apiVersion: krata.dev/v1alpha1
kind: Guest
metadata: {name: bench}
spec:
  image: bench/busybox:1
  command: [sh, -c, 'busybox nc -ll -p 7000 -e cat & busybox nc -ll -p 7001 -e head -c $bytes /dev/zero & while :; do sleep 1; done']
  network:
    ports: [{containerPort: 7000, hostPort: 17000}, {containerPort: 7001, hostPort: 17001}]
  resources: {cpus: 1, memory: 128Mi}
  terminationGracePeriodSeconds: 1
YAML
k="node /krata/dist/kratactl/main.js"
x "set -e; mkdir -p /var/lib/krata/guest /run/krata
node /krata/dist/test/e2e/dom0/krata-initrd.js /krata/guest-init/target/release/guest-init /var/lib/krata/guest/initrd >/dev/null
cp /opt/xenhost/guest/vmlinux /var/lib/krata/guest/vmlinuz
$k image import --offline --store /var/lib/krata -q /krata/guest-init/target/bench-exec/busybox.tar >/dev/null
(setsid node /krata/dist/node-agent/main.js --metrics off --log-level warn >>/tmp/agent.log 2>&1 </dev/null &)
for i in \$(seq 600); do $k host status >/dev/null 2>&1 && break; sleep 0.2; done
$k apply -f /krata/guest-init/target/bench-exec/guest.yaml >/dev/null
for i in \$(seq 600); do $k get bench -o json | grep -q '\"phase\": \"Running\"' && exit 0; sleep 0.2; done; exit 1" >&2
# The channel and the servers are up once an exec answers and the published echo port answers.
x "for i in \$(seq 120); do $k exec bench -- true 2>/dev/null && (echo ping; sleep 1) | busybox nc 127.0.0.1 17000 | grep -q ping && exit 0; sleep 1; done; exit 1" >&2
# What the channel runs over (describe's Channel line): "up (bulk ring)" once guest-init's ring is mapped.
x "for i in \$(seq 30); do $k describe guest bench | grep -q 'Channel:.*bulk ring' && break; sleep 1; done; $k describe guest bench" |
  sed -n 's/^ *Channel: *\(.*\)$/CHANNEL \1/p'
x "node /krata/dist/bench/dom0-exec.js default/bench 127.0.0.1 $bytes $rounds" || { x "tail -20 /tmp/agent.log" >&2; exit 1; }
