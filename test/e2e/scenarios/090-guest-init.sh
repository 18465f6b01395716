#!/usr/bin/env bash
# krata's guest-init as PID 1 of a real PV guest: Debian's kernel, an initrd made by krata's own cpio
# writer (guest-init plus the stock kernel's modules) with the launch config archive loaded after it
# by the builder (krata/launch.json, no disk), the image as a read-only vbd (xvda) over a loop device,
# the console on krata's backend. The image's process runs as the image's user with the Guest's env,
# its exit code comes back on the console, and the guest powers itself off; then nothing is left.
set -euo pipefail
x() { "$KRATA_XENHOST_EXEC" "$@" </dev/null; }
fail() { echo "FAIL: $*" >&2; exit 1; }
out=${KRATA_E2E_ARTIFACTS:-$(mktemp -d)}
repo=${KRATA_REPO:-$(cd "$(dirname "$0")/../../.." && pwd)}
name=e2e-guest-init
launch="node /krata/dist/node-agent/xen/launch-main.js"
trap 'x "d=\$(xl domid $name 2>/dev/null) && $launch --destroy \$d" >/dev/null 2>&1 || true' EXIT

# guest-init, static, with Debian's toolchain; image and configs staged where dom0 sees them (/krata).
. "$(dirname "$0")/lib/guest-init.sh"
stage=$repo/guest-init/target/e2e
gi_stage_image "$stage"
gi_config "$stage" config "$name" \
  '{"env":[{"name":"GREETING","value":"hello-from-krata"}],"tty":false,"terminationGracePeriodSeconds":5}' \
  '{"Cmd":["sh","-c","id; echo \"GREETING=$GREETING\"; exit 7"],"User":"app"}'
gi_config "$stage" config-stop "$name" '{"tty":false,"terminationGracePeriodSeconds":20}' \
  '{"Cmd":["sh","-c","trap \"echo got-term; exit 0\" TERM; echo KRATA-TEST-READY; while :; do sleep 1; done"]}'

x "cp /krata/guest-init/target/e2e/image.sqfs /tmp/gi-image.sqfs && cp /krata/guest-init/target/e2e/config.cpio /tmp/gi-config.cpio && cp /krata/guest-init/target/e2e/config-stop.cpio /tmp/gi-config-stop.cpio" \
  || fail "copying the image and configs failed"
gi_initrd /tmp/krata-initrd.cpio >"$out/initrd.json" || fail "building the initrd failed"
x "$launch --name $name --kernel /opt/xenhost/guest/vmlinux --initrd /tmp/krata-initrd.cpio --memory 128 \
    --disk /tmp/gi-image.sqfs:xvda --initrd-append /tmp/gi-config.cpio --console krata \
    --attach-until 'KRATA-EXIT' --attach-timeout 120 --cmdline 'console=hvc0 quiet loglevel=3'" >"$out/console.txt" 2>&1 \
  || { tail -30 "$out/console.txt" >&2; fail "launch or console failed"; }
grep -q 'uid=1000(app) gid=1000(app)' "$out/console.txt" || { tail -30 "$out/console.txt" >&2; fail "the process did not run as the image's user"; }
grep -q 'GREETING=hello-from-krata' "$out/console.txt" || fail "the Guest's env did not reach the process"
grep -q 'KRATA-EXIT {"exitCode":7}' "$out/console.txt" || fail "exit code 7 was not reported"
# After reporting, init powers the guest off by itself.
x "for i in \$(seq 150); do xl list $name 2>/dev/null | awk 'NR==2 {print \$5}' | grep -q s && exit 0; xl domid $name >/dev/null 2>&1 || exit 0; sleep 0.2; done; exit 1" \
  || fail "the guest did not power itself off after its process ended"
d=$(x "xl domid $name")
[ "$(x "xenstore-read /local/domain/$d/krata/guest/exit-code")" = 7 ] || fail "krata/guest/exit-code in xenstore is not 7"
# The launch config came in the initrd: xvda (51712) is the domain's only vbd.
vbds=$(x "xenstore-list /local/domain/0/backend/vbd/$d" | tr '\n' ' ')
[ "$vbds" = "51712 " ] || fail "vbds other than xvda: $vbds"
x "$launch --destroy $d" >/dev/null
x "! xl domid $name >/dev/null 2>&1 && [ -z \"\$(losetup -a)\" ] && ! xenstore-exists /local/domain/$d" || fail "domain, loop devices or xenstore entries left"
grep -E 'uid=|GREETING=|KRATA-EXIT' "$out/console.txt"
echo "guest-init ran the image's process as its user and reported its exit (console and xenstore); nothing left"

# The graceful stop: control/shutdown=poweroff -> guest-init's watch -> SIGTERM to the process,
# which exits 0; the guest powers itself off within the grace period.
x "$launch --name $name --kernel /opt/xenhost/guest/vmlinux --initrd /tmp/krata-initrd.cpio --memory 128 \
    --disk /tmp/gi-image.sqfs:xvda --initrd-append /tmp/gi-config-stop.cpio --console krata \
    --attach-until 'KRATA-TEST-READY' --attach-timeout 120 --cmdline 'console=hvc0 quiet loglevel=3'" >"$out/console-stop.txt" 2>&1 \
  || { tail -30 "$out/console-stop.txt" >&2; fail "launch of the second guest failed"; }
d=$(x "xl domid $name")
x "$launch --shutdown $d --grace 60" >"$out/stop.json" || fail "shutdown failed"
grep -q '"graceful":true' "$out/stop.json" || fail "the guest did not stop by itself when asked: $(cat "$out/stop.json")"
x "! xl domid $name >/dev/null 2>&1 && [ -z \"\$(losetup -a)\" ]" || fail "domain or loop devices left after the graceful stop"
echo "control/shutdown reached the process as SIGTERM and the guest powered off ($(cat "$out/stop.json"))"
