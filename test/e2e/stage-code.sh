#!/usr/bin/env bash
# Copies dist/ and node_modules/ into dom0's memory and mounts them over their /krata paths (run.sh
# does it once per run; after a power cut, test/xenhost/powercut.sh again through KRATA_XENHOST_AFTER_BOOT):
#   stage-code.sh          stage (exit 1 if it failed: the scenarios then read /krata over 9p)
#   stage-code.sh unstage  unmount and drop the copy, so /krata is live again
# Why: dom0 runs node from /krata, the repo over virtio-9p without a cache: every file a program loads
# costs round trips through QEMU (a kratactl call took 6 s instead of 3 on an idle machine, 50-140 s on
# a loaded one). Copied without what only the build (typescript, types, source maps) or the operator
# (@kubernetes; it does not run in dom0) reads: ~32 MB, as one tar file that dom0 reads in large blocks
# (over ssh it took twice as long), staged where the scenarios stage their disks.
set -uo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
x() { "$KRATA_XENHOST_EXEC" "$@" </dev/null; }
code=guest-init/target/e2e-code.tar
unstage() {
  x "for d in /krata/dist /krata/node_modules; do grep -q \" \$d \" /proc/mounts && umount \$d; done; rm -rf /run/krata-e2e-code" \
    >/dev/null 2>&1 || true
}
if [ "${1:-}" = unstage ]; then unstage; exit 0; fi
unstage
mkdir -p "$repo/guest-init/target"
if tar -C "$repo" -cf "$repo/$code" --exclude='*.map' --exclude='*.d.ts' --exclude=node_modules/typescript \
  --exclude='node_modules/@types' --exclude='node_modules/@kubernetes' dist node_modules &&
  x "mkdir -p /run/krata-e2e-code && dd if=/krata/$code bs=512k 2>/dev/null | tar -C /run/krata-e2e-code -xf - &&
    mount --bind /run/krata-e2e-code/dist /krata/dist && mount --bind /run/krata-e2e-code/node_modules /krata/node_modules"; then
  rm -f "$repo/$code"
  exit 0
fi
rm -f "$repo/$code"
unstage
exit 1
