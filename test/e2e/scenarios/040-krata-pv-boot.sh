#!/usr/bin/env bash
# krata's own PV domain builder (no xl, no libxl): boot the Debian guest kernel + the busybox initrd of
# scenario 010 as a PV guest with two read-only disks (files on loop devices, served by blkback) and a
# network interface (served by netback, bridged in dom0 here as a stand-in for kratanet), see its marker
# and the disk's contents on the console, ping it, destroy it with our code, and show that nothing is
# left (domain list, xenstore, loop devices, vifs). The console is served by xenconsoled here; krata's own
# console backend is exercised by 050.
set -euo pipefail
x() { "$KRATA_XENHOST_EXEC" "$@" </dev/null; }
fail() { echo "FAIL: $*" >&2; exit 1; }
out=${KRATA_E2E_ARTIFACTS:-$(mktemp -d)}
name=e2e-krata-boot
marker=krata-own-$(date +%s)-$RANDOM
log=/var/log/xen/console/guest-$name.log
launch="node /krata/dist/node-agent/xen/launch-main.js"
[ -f "${KRATA_REPO:-.}/dist/node-agent/xen/launch-main.js" ] || fail "dist/ is not built (npm run build)"
domid=
trap '[ -n "$domid" ] && x "$launch --destroy $domid" >/dev/null 2>&1 || true' EXIT

x "[ -d /sys/class/net/xenbr0 ] || { brctl addbr xenbr0; ip addr add 10.99.0.1/24 dev xenbr0; ip link set xenbr0 up; }"
x "$launch --name $name --kernel /opt/xenhost/guest/vmlinux --initrd /opt/xenhost/guest/initrd.gz --memory 128 --console xenconsoled --disk /opt/xenhost/guest/disk.sqfs:xvda --disk /opt/xenhost/guest/initrd.gz:xvdb --mac 02:16:3e:00:00:03 --cmdline 'console=hvc0 quiet loglevel=3 krata_marker=$marker krata_devices=1 krata_ip=10.99.0.3'" >"$out/launch.json" \
  || { cat "$out/launch.json"; fail "launch failed"; }
domid=$(node -e "console.log(JSON.parse(require('fs').readFileSync('$out/launch.json','utf8')).domid)")
echo "launched domid $domid in $(node -e "console.log(JSON.parse(require('fs').readFileSync('$out/launch.json','utf8')).ms)") ms"
x "xl list" >"$out/xl-list.txt"
grep -q "^$name " "$out/xl-list.txt" || fail "xl list does not show $name"
x "for i in \$(seq 900); do grep -q KRATA-GUEST-READY $log 2>/dev/null && break; sleep 0.1; done; cat $log; xl dmesg | tail -20" >"$out/console.log" || true
grep -q "KRATA-GUEST-MARKER $marker" "$out/console.log" || { tail -40 "$out/console.log"; fail "marker $marker not on the console"; }
grep -q "KRATA-GUEST-DISK hello-from-xvda" "$out/console.log" || { tail -40 "$out/console.log"; fail "the guest could not read its disk"; }
x "losetup -a" >"$out/losetup.txt"
grep -q disk.sqfs "$out/losetup.txt" && grep -q initrd.gz "$out/losetup.txt" || fail "no loop devices for the two disks while the guest runs"
for dev in 51712 51728; do   # xvda, xvdb: blkback and blkfront both Connected (4)
  [ "$(x "xenstore-read /local/domain/0/backend/vbd/$domid/$dev/state")" = 4 ] || fail "vbd $dev backend not connected"
  [ "$(x "xenstore-read /local/domain/$domid/device/vbd/$dev/state")" = 4 ] || fail "vbd $dev frontend not connected"
done
grep -q "KRATA-GUEST-NET eth0 up" "$out/console.log" || fail "the guest's vif did not come up"
x "ip link set vif$domid.0 up && brctl addif xenbr0 vif$domid.0 && ping -c 1 -W 5 10.99.0.3" >"$out/ping.txt" || { cat "$out/ping.txt"; fail "no ping from the guest over its vif"; }
echo "guest answers ping over vif$domid.0 (netback)"
echo "guest console shows marker $marker and reads its disk (xvda via blkback)"

x "$launch --destroy $domid" >/dev/null
x "for i in \$(seq 100); do ! xl domid $name >/dev/null 2>&1 && ! xenstore-exists /local/domain/$domid && exit 0; sleep 0.1; done; exit 1" \
  || fail "domain $domid or its xenstore entries are still there after destroy"
x "for i in \$(seq 50); do losetup -a | grep -q -e disk.sqfs -e initrd.gz || exit 0; sleep 0.1; done; losetup -a; exit 1" || fail "loop device left behind"
x "! xenstore-exists /local/domain/0/backend/vbd/$domid && ! xenstore-exists /local/domain/0/backend/vif/$domid" || fail "device backend entries left behind"
x "for i in \$(seq 50); do [ ! -e /sys/class/net/vif$domid.0 ] && exit 0; sleep 0.1; done; exit 1" || fail "vif$domid.0 left behind"
domid=
echo "destroyed; nothing left in the domain list, xenstore, loop devices or vifs"
