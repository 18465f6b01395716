#!/usr/bin/env bash
# Benchmark xen-launch, run by bench/main.ts inside test/xenhost/boot.sh: time from "create" to the
# guest's first console byte, krata's builder + console backend against `xl create` + xenconsoled, with
# the same kernel, initrd, memory and command line, alternating, on the same QEMU Xen host. xl is timed
# as a command (how it is used); krata inside a resident process (how the node agent uses it).
set -euo pipefail
x() { "$KRATA_XENHOST_EXEC" "$@" </dev/null; }
runs=${KRATA_BENCH_RUNS:-3}
args="--kernel /opt/xenhost/guest/vmlinux --initrd /opt/xenhost/guest/initrd.gz --memory 128"
# KRATA_BENCH_CMDLINE='console=hvc0 earlyprintk=xen …' moves the first byte to the kernel's first printk
# (the ring written from head_64 on), which leaves out the guest's driver start-up that both sides share.
cmdline=${KRATA_BENCH_CMDLINE:-'console=hvc0 krata_marker=bench'}
x "cat >/tmp/bench-xl.cfg <<CFG
name = \"bench-xl\"
type = \"pv\"
kernel = \"/opt/xenhost/guest/vmlinux\"
ramdisk = \"/opt/xenhost/guest/initrd.gz\"
extra = \"$cmdline\"
memory = 128
vcpus = 1
CFG"
ours=() theirs=()
for i in $(seq "$runs"); do
  # krata: as the node agent does it, in a resident process (Node already started, xenstore connected):
  # from the create request (reading kernel and initrd included) to the first console byte.
  t=$(x "node /krata/dist/node-agent/xen/launch-main.js --name bench-krata $args --console krata --attach-until '' --cmdline '$cmdline' | grep -o '\"consoleFirstByteMs\":[0-9]*' | cut -d: -f2; xl destroy bench-krata")
  ours+=("$t")
  # xl: create to the first byte xenconsoled logs for the guest.
  t=$(x "rm -f /var/log/xen/console/guest-bench-xl.log; s=\${EPOCHREALTIME/./}; xl create -q /tmp/bench-xl.cfg; while [ ! -s /var/log/xen/console/guest-bench-xl.log ]; do sleep 0.01; done; e=\${EPOCHREALTIME/./}; xl destroy bench-xl; echo \$(( (e - s) / 1000 ))")
  theirs+=("$t")
  echo "run $i: krata ${ours[-1]} ms, xl ${theirs[-1]} ms" >&2
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "RESULT $(median "${ours[@]}") $(median "${theirs[@]}") $(x "free -m | awk '/Mem:/ {print \$3}'")"
