#!/usr/bin/env bash
# Baseline for the test bed itself, using Xen's own toolstack: `xl create` of a PV guest (Debian
# kernel + the busybox initrd from build.sh) with one vbd and one vif; assert its console shows our
# unique marker (and that disk and network came up), record `xenstore-ls -fp` while it runs, then
# `xl destroy` and assert the domain and its xenstore entries are gone.
# RECORD_FIXTURES=1 rewrites test/e2e/fixtures/xl-pv-guest.xenstore.txt from the recording.
set -euo pipefail
x() { "$KRATA_XENHOST_EXEC" "$@"; }
name=e2e-pv-marker
marker=krata-$(date +%s)-$RANDOM$RANDOM
log=/var/log/xen/console/guest-$name.log
out=${KRATA_E2E_ARTIFACTS:-$(mktemp -d)}
fixture=${KRATA_REPO:-.}/test/e2e/fixtures/xl-pv-guest.xenstore.txt
fail() { echo "FAIL: $*" >&2; exit 1; }
paths() { sed -e 's/ = .*//' -e 's/[0-9a-f]\{8\}-[0-9a-f-]\{27\}/UUID/g' | sort; }   # keys only
trap 'x "xl destroy $name 2>/dev/null; losetup -d \$(cat /tmp/$name.loop) 2>/dev/null; true" </dev/null || true' EXIT

# A bridge for the vif (idempotent: shared with other scenarios), a loop device for the vbd.
x bash -s <<EOF
set -e
[ -d /sys/class/net/xenbr0 ] || { brctl addbr xenbr0; ip addr add 10.99.0.1/24 dev xenbr0; ip link set xenbr0 up; }
loop=\$(losetup -f); losetup -r \$loop /opt/xenhost/guest/disk.sqfs; echo \$loop >/tmp/$name.loop
cat >/tmp/$name.cfg <<CFG
name = "$name"
type = "pv"
kernel = "/opt/xenhost/guest/vmlinux"
ramdisk = "/opt/xenhost/guest/initrd.gz"
extra = "console=hvc0 quiet loglevel=3 krata_marker=$marker krata_devices=1 krata_ip=10.99.0.2"
memory = 128
vcpus = 1
on_crash = "preserve"
disk = [ 'phy:\$loop,xvda,r' ]
vif = [ 'mac=00:16:3e:00:00:02,bridge=xenbr0' ]
CFG
xl create /tmp/$name.cfg
EOF

# xenconsoled logs the guest console; wait (bounded) for the guest's last line.
x "for i in \$(seq 600); do grep -q KRATA-GUEST-READY $log 2>/dev/null && break; sleep 0.1; done; cat $log" \
  </dev/null >"$out/console.log"
grep -q "KRATA-GUEST-MARKER $marker" "$out/console.log" || { cat "$out/console.log"; fail "marker $marker not on the console"; }
grep -q "KRATA-GUEST-DISK hello-from-xvda" "$out/console.log" || fail "guest could not read its vbd"
grep -q "KRATA-GUEST-NET eth0 up" "$out/console.log" || fail "guest vif did not come up"
echo "guest console shows marker $marker"

domid=$(x "xl domid $name" </dev/null)
x "xenstore-ls -fp" </dev/null >"$out/xenstore.txt"
grep -q "^/local/domain/$domid/name = \"$name\"" "$out/xenstore.txt" || fail "guest not in xenstore"
if [ "${RECORD_FIXTURES:-}" = 1 ]; then
  { echo "# xenstore-ls -fp in dom0 while the PV guest of test/e2e/scenarios/010-xl-pv-marker.sh runs"
    echo "# (domid $domid, created by xl on Xen $(x "xl info" </dev/null | awk '$1 == "xen_version" {print $3}'); one vbd phy:/dev/loopN,xvda,r; one vif on xenbr0; console)."
    echo "# Values such as uuids, ring-refs, ports, start_time and the marker differ on every run."
    cat "$out/xenstore.txt"
  } >"$fixture"
  echo "recorded $fixture"
elif [ -f "$fixture" ] && ! diff -q <(grep -v '^#' "$fixture" | paths) <(paths <"$out/xenstore.txt") >/dev/null; then
  echo "note: xenstore paths differ from $fixture (RECORD_FIXTURES=1 to update)"
fi

x "xl destroy $name" </dev/null
x "for i in \$(seq 100); do ! xl domid $name >/dev/null 2>&1 && ! xenstore-exists /local/domain/$domid && exit 0; sleep 0.1; done; exit 1" \
  </dev/null || fail "domain $name (domid $domid) still present after xl destroy"
echo "domain $domid destroyed"
