#!/usr/bin/env bash
# Many guests from one long-lived process, as the node agent will run them: 5 guests built one after
# another by one DomainBuilder while the earlier ones boot, every console served by krata's backend
# through one event-channel descriptor and one grant device. Each guest's marker must arrive, the
# process's thread count must not grow with the number of guests, and nothing may be left afterwards.
set -euo pipefail
x() { "$KRATA_XENHOST_EXEC" "$@" </dev/null; }
fail() { echo "FAIL: $*" >&2; exit 1; }
out=${KRATA_E2E_ARTIFACTS:-$(mktemp -d)}
n=5
trap 'x "for d in \$(xl list | awk '"'"'NR > 2 && \$1 ~ /^e2e-many-/ {print \$2}'"'"'); do xl destroy \$d; done" >/dev/null 2>&1 || true' EXIT

x "cd /krata && node dist/test/e2e/dom0/many-guests.js $n 240" >"$out/result.json" 2>"$out/stderr.txt" \
  || { tail -40 "$out/stderr.txt" >&2; fail "many-guests exited with $?"; }
result=$(tail -1 "$out/result.json")
echo "$result"
node -e '
const r = JSON.parse(process.argv[1]);
if (r.guests !== Number(process.argv[2]) || r.markers !== r.guests) { console.error(`FAIL: ${r.markers} of ${r.guests} markers`); process.exit(1); }
if (r.threadsWithAll !== r.threadsWithOne) { console.error(`FAIL: threads grew from ${r.threadsWithOne} (1 guest) to ${r.threadsWithAll} (${r.guests} guests)`); process.exit(1); }
' "$result" "$n"
left=$(x "xl list | awk 'NR > 2 {print \$1}'")
[ -z "$left" ] || fail "domains left: $left"
x "! xenstore-ls /local/domain 2>/dev/null | grep -q '^[1-9]'" || fail "xenstore entries of guests left under /local/domain"
x "[ -z \"\$(losetup -a)\" ]" || fail "loop devices left"
echo "$n guests, $n markers, threads flat; nothing left"
