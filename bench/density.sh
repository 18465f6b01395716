#!/usr/bin/env bash
# Benchmark density, run by bench/main.ts inside test/xenhost/boot.sh: busybox guests (96 MiB: the stock
# Debian guest kernel with an initrd needs ~78 MiB to boot, so 64 MiB fails for xl and krata alike) started one
# after another until the QEMU Xen host has no memory for another, first through the node agent (each
# Running with its network and console), then, after they are all gone and the agent is stopped, with
# `xl create` (same kernel and memory, one read-only vbd and a vif through Xen's hotplug scripts,
# xenconsoled) in the same boot. bench/dom0-density.ts does the work in dom0 and measures dom0's cost
# per guest. Prints "OURS {json}" and "XL {json}".
set -euo pipefail
x() { "$KRATA_XENHOST_EXEC" "$@" </dev/null; }
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
max=${KRATA_DENSITY_MAX:-64}
stage=$repo/guest-init/target/bench-density
(cd "$repo/guest-init" && PATH=/usr/bin:/bin /usr/bin/cargo build --offline --release --quiet)
mkdir -p "$stage"
node "$repo/dist/test/e2e/busybox-image.js" "$stage/busybox.tar" bench/busybox:1
k="node /krata/dist/kratactl/main.js"
# As test/e2e/run.sh does: dist/ and node_modules/ copied into dom0's memory (node loading them over 9p
# takes minutes under TCG). The copy is in dom0's memory before either baseline is taken.
code=guest-init/target/bench-density/code.tar
tar -C "$repo" -cf "$repo/$code" --exclude='*.map' --exclude='*.d.ts' --exclude=node_modules/typescript \
  --exclude='node_modules/@types' --exclude='node_modules/@kubernetes' dist node_modules
x "mkdir -p /run/krata-code && dd if=/krata/$code bs=512k 2>/dev/null | tar -C /run/krata-code -xf - &&
  mount --bind /run/krata-code/dist /krata/dist && mount --bind /run/krata-code/node_modules /krata/node_modules"
rm -f "$repo/$code"
x "set -e; mkdir -p /var/lib/krata/guest /run/krata
node /krata/dist/test/e2e/dom0/krata-initrd.js /krata/guest-init/target/release/guest-init /var/lib/krata/guest/initrd >/dev/null
cp /opt/xenhost/guest/vmlinux /var/lib/krata/guest/vmlinuz
$k image import --offline --store /var/lib/krata -q /krata/guest-init/target/bench-density/busybox.tar >/dev/null
(setsid node /krata/dist/node-agent/main.js --metrics off --log-level warn >>/tmp/agent.log 2>&1 </dev/null & echo \$! >/run/krata/agent.pid)
for i in \$(seq 600); do $k host status >/dev/null 2>&1 && exit 0; sleep 0.2; done; exit 1" >&2
echo "density: Xen host memory ${KRATA_XENHOST_MEM:-3072} MiB (KRATA_XENHOST_MEM), dom0 1024 MiB; $(x "xl info | grep -E '^(total|free)_memory' | tr -s ' ' | tr '\n' ' '")" >&2
ours=$(x "KRATA_DENSITY_GUEST_MIB=${KRATA_DENSITY_GUEST_MIB:-96} node /krata/dist/bench/dom0-density.js ours $max")
echo "OURS $ours"
# The agent's guests are gone; stop the agent (and kratanet) so that xl's figures are xl's alone.
x "p=\$(cat /run/krata/agent.pid); kill -TERM \$p; for i in \$(seq 100); do kill -0 \$p 2>/dev/null || break; sleep 0.1; done
xl list | awk 'NR > 2 {print \$1}'; losetup -a | wc -l" >&2
img=$(x "ls /var/lib/krata/images/*.squashfs | head -1")
x "[ -d /sys/class/net/xenbr0 ] || { brctl addbr xenbr0; ip addr add 10.99.0.1/16 dev xenbr0; ip link set xenbr0 up; }"
theirs=$(x "KRATA_DENSITY_GUEST_MIB=${KRATA_DENSITY_GUEST_MIB:-96} node /krata/dist/bench/dom0-density.js xl $max $img")
echo "XL $theirs"
