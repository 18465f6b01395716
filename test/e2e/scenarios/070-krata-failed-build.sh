#!/usr/bin/env bash
# A build that fails half way leaves nothing behind: ask krata's builder for more memory than the host
# has (createdomain and the disk's loop device succeed, populating memory fails), and check that the
# domain, its xenstore entries and the loop device are all gone afterwards, and that the error says why.
set -euo pipefail
x() { "$KRATA_XENHOST_EXEC" "$@" </dev/null; }
fail() { echo "FAIL: $*" >&2; exit 1; }
out=${KRATA_E2E_ARTIFACTS:-$(mktemp -d)}
launch="node /krata/dist/node-agent/xen/launch-main.js"
before=$(x "xl list | awk 'NR>1 {print \$2}' | xargs")
if x "$launch --name e2e-too-big --kernel /opt/xenhost/guest/vmlinux --memory 8192 --disk /opt/xenhost/guest/disk.sqfs:xvda" >"$out/launch.txt" 2>&1; then
  fail "an 8 GiB guest on a 3 GiB host was built"
fi
grep -q "Xen has no memory left" "$out/launch.txt" || { cat "$out/launch.txt"; fail "the error does not say what ran out"; }
[ "$(x "xl list | awk 'NR>1 {print \$2}' | xargs")" = "$before" ] || fail "a domain was left behind"
x "losetup -a" | grep -q disk.sqfs && fail "the loop device was left behind"
x "xenstore-ls /local/domain | grep -c '^[0-9]' || true" >"$out/domains.txt"
[ "$(cat "$out/domains.txt")" = 1 ] || fail "xenstore still has entries for a domain other than dom0"
echo "failed as it should ($(cat "$out/launch.txt")); nothing left behind"
