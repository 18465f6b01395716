#!/usr/bin/env bash
# Cuts the xenhost's power and waits until it is back (boot.sh exports it as KRATA_XENHOST_POWERCUT):
#   powercut.sh
# boot.sh SIGKILLs QEMU (dom0 gets no shutdown, its page cache is lost) and boots the same image with
# the same disks again, on the same control port if it is free. dom0 starts from scratch: everything
# but the state disk (/mnt/state) is gone. Then, if KRATA_XENHOST_AFTER_BOOT names a command, it runs
# (test/e2e/run.sh sets it to restage its code copy). Prints one line; exit 0 once dom0 is ready again.
set -euo pipefail
state=${KRATA_XENHOST_STATE:?"no xenhost: run this under test/xenhost/boot.sh"}
boot=$(cat "$state/boot.pid")
rm -f "$state/powercut.result"
kill -USR1 "$boot"
# boot.sh's own boot timeout bounds the wait; this one only guards against boot.sh being gone.
for ((i = 0; i < ${KRATA_XENHOST_BOOT_TIMEOUT:-300} * 2 + 120; i++)); do
  [ -f "$state/powercut.result" ] && break
  kill -0 "$boot" 2>/dev/null || { echo "powercut: boot.sh ($boot) is gone" >&2; exit 1; }
  sleep 0.5
done
result=$(cat "$state/powercut.result" 2>/dev/null) || { echo "powercut: no answer from boot.sh" >&2; exit 1; }
[[ $result == ok* ]] || { echo "powercut: $result" >&2; exit 1; }
if [ -n "${KRATA_XENHOST_AFTER_BOOT:-}" ]; then
  $KRATA_XENHOST_AFTER_BOOT || { echo "powercut: after-boot command failed: $KRATA_XENHOST_AFTER_BOOT" >&2; exit 1; }
fi
echo "powercut: host back after ${result#ok }s"
