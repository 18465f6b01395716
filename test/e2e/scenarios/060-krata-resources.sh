#!/usr/bin/env bash
# vCPUs and memory below the maximum: a guest built by krata with 2 vCPUs and a 96 MiB target under a
# 160 MiB maximum shows 2 vCPUs, and its balloon driver gives memory back down to the target
# (memory/target in xenstore, as krata writes it). Then the graceful stop path: control/shutdown, the
# guest powering itself off within the grace period, destroy, nothing left.
set -euo pipefail
x() { "$KRATA_XENHOST_EXEC" "$@" </dev/null; }
fail() { echo "FAIL: $*" >&2; exit 1; }
out=${KRATA_E2E_ARTIFACTS:-$(mktemp -d)}
name=e2e-krata-resources
launch="node /krata/dist/node-agent/xen/launch-main.js"
trap 'x "d=\$(xl domid $name 2>/dev/null) && $launch --destroy \$d" >/dev/null 2>&1 || true' EXIT

x "$launch --name $name --kernel /opt/xenhost/guest/vmlinux --initrd /opt/xenhost/guest/initrd.gz --vcpus 2 --memory 96 --max-memory 160 --console xenconsoled --cmdline 'console=hvc0 quiet loglevel=3'" >"$out/launch.json" || fail "launch failed"
domid=$(node -e "console.log(JSON.parse(require('fs').readFileSync('$out/launch.json','utf8')).domid)")
[ "$(x "xenstore-read /local/domain/$domid/memory/static-max")" = 163840 ] || fail "memory/static-max"
[ "$(x "xenstore-read /local/domain/$domid/memory/target")" = 98304 ] || fail "memory/target"
# xl list columns: Name ID Mem VCPUs State Time
x "for i in \$(seq 300); do m=\$(xl list $name | awk 'NR==2 {print \$3}'); [ \"\$m\" -le 100 ] && break; sleep 0.2; done; xl list $name" >"$out/xl-list.txt"
mem=$(awk 'NR==2 {print $3}' "$out/xl-list.txt"); vcpus=$(awk 'NR==2 {print $4}' "$out/xl-list.txt")
[ "$vcpus" = 2 ] || fail "xl list shows $vcpus vCPUs, not 2"
[ "$mem" -le 100 ] || fail "the guest still holds $mem MiB; its balloon did not go down to the 96 MiB target"
echo "2 vCPUs; ballooned from 160 MiB to $mem MiB (target 96 MiB)"

x "$launch --shutdown $domid --grace 30" >"$out/stop.json" || fail "shutdown failed"
# The guest powers itself off when asked (its kernel runs /sbin/poweroff; the init traps the signal).
grep -q '"graceful":true' "$out/stop.json" || fail "the guest did not shut down by itself within the grace period: $(cat "$out/stop.json")"
x "! xl domid $name >/dev/null 2>&1 && ! xenstore-exists /local/domain/$domid" || fail "domain or xenstore entries left after shutdown"
echo "stopped ($(cat "$out/stop.json")); nothing left"
