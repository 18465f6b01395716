#!/usr/bin/env bash
# krata's xenstore client against the real xenstored: the session of test/xenstore/scenario.ts (two
# connections, transactions that conflict, watches, permissions, XS_DIRECTORY_PART) must give the
# transcript recorded in test/fixtures/xenstore/session.json; the unit tests replay that recording's
# bytes anywhere. The same session then runs over the /dev/xen/xenbus device transport.
# RECORD_FIXTURES=1 rewrites the recording.
set -euo pipefail
fail() { echo "FAIL: $*" >&2; exit 1; }
out=${KRATA_E2E_ARTIFACTS:-$(mktemp -d)}
fixture=${KRATA_REPO:-.}/test/fixtures/xenstore/session.json
[ -f "${KRATA_REPO:-.}/dist/test/xenstore/record.js" ] || fail "dist/ is not built (npm run build)"
"$KRATA_XENHOST_EXEC" "node /krata/dist/test/xenstore/record.js" </dev/null >"$out/session.json"
transcript() { node -e "console.log(JSON.stringify(JSON.parse(require('fs').readFileSync('$1','utf8')).transcript))"; }
if [ "${RECORD_FIXTURES:-}" = 1 ]; then
  mkdir -p "$(dirname "$fixture")" && cp "$out/session.json" "$fixture"
  echo "recorded $fixture ($(grep -c '"dir"' "$fixture") frames)"
else
  [ -f "$fixture" ] || fail "no $fixture: run with RECORD_FIXTURES=1"
  [ "$(transcript "$out/session.json")" = "$(transcript "$fixture")" ] || { diff <(transcript "$fixture") <(transcript "$out/session.json"); fail "the real xenstored answered differently from the recording"; }
  echo "real xenstored gives the recorded transcript"
fi
# The same session through the /dev/xen/xenbus device transport (one write per message, blocking reads).
"$KRATA_XENHOST_EXEC" "timeout 60 node /krata/dist/test/xenstore/record.js /dev/xen/xenbus" </dev/null >"$out/session-xenbus.json" || fail "the session over /dev/xen/xenbus failed"
[ "$(transcript "$out/session-xenbus.json")" = "$(transcript "$fixture")" ] || { diff <(transcript "$fixture") <(transcript "$out/session-xenbus.json"); fail "over /dev/xen/xenbus the transcript differs"; }
echo "the /dev/xen/xenbus transport gives the same transcript"
