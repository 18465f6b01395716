#!/usr/bin/env bash
# Benchmark xen-launch, run by bench/main.ts inside test/xenhost/boot.sh, on the same QEMU Xen host,
# with the same kernel, initrd, memory and command line and no devices, ours and xl alternating:
#   builder: create -> paused domain ready to unpause; krata's builder against `xl create -p`.
#   first byte: create -> first console byte (earlyprintk=xen: the kernel's first printk), krata's
#     builder + console backend against `xl create` + xenconsoled.
# xl is timed as a command (how it is used); krata inside one resident process (how the node agent
# uses it: Node started and xenstore connected once), launch-main.js --serve, one launch per request.
# Output: "OURS builder|first_byte {ms, phases}" and "XL builder|first_byte MS" per run, "XLLOG T LINE"
# for one `xl -vvv create -p` with each line stamped on arrival (bench/stamp-lines.mjs; xl's phases),
# then "RESULT ...".
set -euo pipefail
x() { "$KRATA_XENHOST_EXEC" "$@" </dev/null; }
runs=${KRATA_BENCH_RUNS:-3}
args="--kernel /opt/xenhost/guest/vmlinux --initrd /opt/xenhost/guest/initrd.gz --memory 128"
cmdline=${KRATA_BENCH_CMDLINE:-'console=hvc0 earlyprintk=xen krata_marker=bench'}
x "cat >/tmp/bench-xl.cfg <<CFG
name = \"bench-xl\"
type = \"pv\"
kernel = \"/opt/xenhost/guest/vmlinux\"
ramdisk = \"/opt/xenhost/guest/initrd.gz\"
extra = \"$cmdline\"
memory = 128
vcpus = 1
CFG
rm -f /tmp/bench-wait; mkfifo /tmp/bench-wait"

# xl's runs, each a command in dom0 printing its milliseconds. The first-byte wait polls xenconsoled's
# log every 5 ms without forking (read -t on a fifo nobody writes), so the poll costs xl little.
xl_builder='s=${EPOCHREALTIME/./}; xl create -p -q /tmp/bench-xl.cfg; e=${EPOCHREALTIME/./}; xl destroy bench-xl; echo $(( (e - s) / 1000 ))'
xl_first_byte='rm -f /var/log/xen/console/guest-bench-xl.log; exec 9<>/tmp/bench-wait; s=${EPOCHREALTIME/./}
xl create -q /tmp/bench-xl.cfg
until [ -s /var/log/xen/console/guest-bench-xl.log ]; do read -t 0.005 -u 9 || true; done
e=${EPOCHREALTIME/./}; xl destroy bench-xl; echo $(( (e - s) / 1000 ))'

coproc OURS { "$KRATA_XENHOST_EXEC" "node /krata/dist/node-agent/xen/launch-main.js --serve --name bench-krata $args --cmdline '$cmdline'"; }
ours() {
  echo "$1" >&"${OURS[1]}"
  local line
  IFS= read -r -t 300 line <&"${OURS[0]}" || { echo "krata's launch ($1) did not answer" >&2; exit 1; }
  echo "$line"
}
# Warm-up, not measured: the JIT for ours, the page cache for both.
ours paused >/dev/null
ours first-byte >/dev/null
x "$xl_builder" >/dev/null
x "$xl_first_byte" >/dev/null

# Xen scrubs a destroyed domain's memory in the background, or in the next populate if that comes
# first (hundreds of ms for 128 MiB under TCG): each measured launch starts after the same quiet pause.
settle=${KRATA_BENCH_SETTLE:-3}
for i in $(seq "$runs"); do
  for what in builder first_byte; do
    sleep "$settle"
    o=$(ours "$([ $what = builder ] && echo paused || echo first-byte)")
    sleep "$settle"
    t=$(x "$([ $what = builder ] && echo "$xl_builder" || echo "$xl_first_byte")")
    echo "OURS $what $o"
    echo "XL $what $t"
    echo "run $i $what: krata $(echo "$o" | grep -o '^{"ms":[0-9]*' | cut -d: -f2) ms, xl $t ms" >&2
  done
done
exec {OURS[1]}>&-
wait "$OURS_PID" || true

# xl's own phases: one verbose create, each line stamped in dom0 as it arrives.
sleep "$settle"
# The stamper (Node) is started and reading before xl starts, so its start-up is not in the stamps.
x 'rm -f /tmp/bench-xl.log; mkfifo /tmp/bench-xl.log
node /krata/bench/stamp-lines.mjs /tmp/bench-xl.log 2>/tmp/bench-stamp.ready & stamper=$!
until [ -s /tmp/bench-stamp.ready ]; do read -t 0.01 -u 9 9<>/tmp/bench-wait || true; done
exec 8>/tmp/bench-xl.log
# 8>&-: the monitor xl leaves behind must not hold the fifo open (the stamper would never see its end).
echo "(start)" >&8; xl -vvv create -p /tmp/bench-xl.cfg >&8 2>&1 8>&-; echo "(exit)" >&8; exec 8>&-
wait $stamper; xl destroy bench-xl'
echo "RESULT $(x "free -m | awk '/Mem:/ {print \$3}'")"
