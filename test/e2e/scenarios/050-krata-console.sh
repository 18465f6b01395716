#!/usr/bin/env bash
# Debian's stock bzImage (xz payload, decompressed by krata in dom0) booted by krata's builder, with
# console/type=krata; the backend maps the ring through the grant the builder seeded (gntdev, grant
# reference 0), binds the event channel and must show the guest's marker. xenconsoled must leave the
# guest alone (no log for it).
set -euo pipefail
x() { "$KRATA_XENHOST_EXEC" "$@" </dev/null; }
fail() { echo "FAIL: $*" >&2; exit 1; }
out=${KRATA_E2E_ARTIFACTS:-$(mktemp -d)}
name=e2e-krata-console
marker=krata-console-$(date +%s)-$RANDOM
launch="node /krata/dist/node-agent/xen/launch-main.js"
trap 'x "d=\$(xl domid $name 2>/dev/null) && $launch --destroy \$d" >/dev/null 2>&1 || true' EXIT

x "timeout 120 $launch --name $name --kernel /opt/xenhost/guest/vmlinuz --initrd /opt/xenhost/guest/initrd.gz --memory 128 --console krata --attach-until KRATA-GUEST-READY --attach-timeout 90 --cmdline 'console=hvc0 quiet loglevel=3 krata_marker=$marker'" \
  >"$out/console.log" 2>&1 || { rc=$?; tail -30 "$out/console.log"; fail "launch or console attach failed (exit status $rc)"; }
grep -q "KRATA-GUEST-MARKER $marker" "$out/console.log" || { tail -30 "$out/console.log"; fail "marker not seen through krata's console backend"; }
first=$(grep -o '"consoleFirstByteMs":[0-9]*' "$out/console.log" | cut -d: -f2)
echo "marker $marker read through krata's console backend (first console byte ${first} ms after create)"
if x "test -s /var/log/xen/console/guest-$name.log"; then fail "xenconsoled also served the krata console"; fi
x "d=\$(xl domid $name) && $launch --destroy \$d" >/dev/null
x "! xl domid $name >/dev/null 2>&1" || fail "domain still there"
echo "destroyed"
