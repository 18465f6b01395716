#!/usr/bin/env bash
# e2e runner (`npm run e2e`): boots one xenhost and runs every executable in test/e2e/scenarios/,
# in sorted order, against it; the host is always shut down afterwards. Contract: README.md.
#   run.sh [SUBSTRING...]   only the scenarios whose file name contains one of the substrings
# With KRATA_XENHOST_STATE already set (e.g. the state dir of a running `npm run xenhost`), the
# scenarios run against that host instead of a new one.
set -uo pipefail
e2e=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$e2e/../.." && pwd)
if [ -z "${KRATA_XENHOST_STATE:-}" ]; then
  # Boot, then rerun this script inside. QEMU's emulation very rarely dies while booting (seen once: an
  # MSI-X assertion); a boot failure (125) gets one more try, scenario failures do not.
  # boot.sh runs as a child (not exec'd) so it can be retried; signals to this script are passed on,
  # and boot.sh's own cleanup stops QEMU.
  child=
  trap '[ -n "$child" ] && kill -TERM "$child" 2>/dev/null; wait "$child" 2>/dev/null; exit 143' TERM
  trap '[ -n "$child" ] && kill -INT "$child" 2>/dev/null; wait "$child" 2>/dev/null; exit 130' INT
  trap '[ -n "$child" ] && kill -HUP "$child" 2>/dev/null; wait "$child" 2>/dev/null; exit 129' HUP
  boot() {
    # --pdeathsig: if this script is SIGKILLed, boot.sh still gets TERM and stops QEMU.
    setpriv --pdeathsig TERM "$repo/test/xenhost/boot.sh" "$e2e/run.sh" "$@" <&0 &
    child=$!
    wait "$child"
  }
  boot "$@"
  rc=$?
  if [ $rc -eq 125 ]; then
    echo "e2e: the xenhost did not boot; trying once more" >&2
    boot "$@"
    rc=$?
  fi
  exit $rc
fi

x() { "$KRATA_XENHOST_EXEC" "$@" </dev/null; }
ms() { echo $(($(date +%s%N) / 1000000)); }
fmt() { printf '%d.%ds' $(($1 / 1000)) $(($1 % 1000 / 100)); }
# Artifacts of the last 10 runs are kept in the cache dir (outside the repo).
runs=${KRATA_CACHE:-$HOME/.cache/krata}/e2e-runs
if [ -z "${KRATA_E2E_ARTIFACTS:-}" ]; then
  mkdir -p "$runs"
  ls -1d "$runs"/*/ 2>/dev/null | head -n -9 | xargs -r rm -rf
fi
artifacts=${KRATA_E2E_ARTIFACTS:-$(mktemp -d "$runs/$(date +%Y%m%d-%H%M%S).XXXX")}
suite_start=$(ms)

# dist/ and node_modules/ are copied into dom0's memory for the run (stage-code.sh says why), and again
# after a power cut (test/xenhost/powercut.sh runs KRATA_XENHOST_AFTER_BOOT); unmounted at the end, so
# /krata is live again for `npm run xenhost`'s shell. Scenarios write their files in guest-init/target/,
# not in dist/.
if "$e2e/stage-code.sh"; then
  trap '"$e2e/stage-code.sh" unstage' EXIT
  export KRATA_XENHOST_AFTER_BOOT=$e2e/stage-code.sh
  echo "e2e: dist/ and node_modules/ copied into dom0's memory in $(fmt $(($(ms) - suite_start)))"
else
  echo "e2e: copying dist/ and node_modules/ into dom0 failed; the scenarios read them over 9p (slower)" >&2
fi
results=() failed=0 ran=0

while IFS= read -r s; do
  n=$(basename "$s")
  if [ $# -gt 0 ]; then
    match=''; for f in "$@"; do [[ $n == *"$f"* ]] && match=1; done
    [ -n "$match" ] || continue
  fi
  mkdir -p "$artifacts/$n"
  echo "=== RUN   $n"
  start=$(ms)
  # A scenario may ask for more time than the default with a line "# e2e-timeout: SECONDS".
  own=$(sed -n 's/^# e2e-timeout: \([0-9][0-9]*\)$/\1/p' "$s" | head -1)
  limit=${KRATA_E2E_TIMEOUT:-${own:-600}}
  run_one() {
    (cd "$repo" && KRATA_REPO=$repo KRATA_E2E_ARTIFACTS=$artifacts/$n \
      timeout -k 10 "$limit" "$s" </dev/null)
  }
  run_one
  rc=$?
  flaky=''
  # Software-emulated Xen has rare hiccups of its own (a dom0 process dying once in hundreds of runs).
  # A scenario that fails is run once more: a pass then counts, but is reported as flaky with the
  # first failure's status, so it stays visible. A timeout is not retried.
  if [ $rc -ne 0 ] && [ $rc -ne 77 ] && [ $rc -ne 124 ] && [ -z "${KRATA_E2E_NO_RETRY:-}" ]; then
    first=$rc
    echo "    $n failed (exit $first); running it once more"
    left=$(x "xl list | awk 'NR > 2 {print \$1}'" | tr '\n' ' ' | sed 's/ *$//')
    [ -z "$left" ] || x "for d in $left; do xl destroy \$d; done"
    mv "$artifacts/$n" "$artifacts/$n.first-failure" && mkdir -p "$artifacts/$n"
    run_one
    rc=$?
    [ $rc -eq 0 ] && flaky=" (flaky: failed once with exit $first, see $n.first-failure)"
  fi
  dt=$(fmt $(($(ms) - start)))
  case $rc in
    0) verdict=PASS ;;
    77) verdict=SKIP ;;
    124) verdict=FAIL; echo "    $n: timed out after ${limit}s" ;;
    *) verdict=FAIL ;;
  esac
  [ $verdict = FAIL ] && failed=$((failed + 1))
  ran=$((ran + 1))
  echo "--- $verdict  $n ($dt)$flaky"
  results+=("$(printf '%-4s  %-40s %8s%s' "$verdict" "$n" "$dt" "$flaky")")
  # Isolation: guests a scenario left behind would skew the next ones.
  left=$(x "xl list | awk 'NR > 2 {print \$1}'" | tr '\n' ' ' | sed 's/ *$//')
  if [ -n "$left" ]; then
    echo "    $n left domains behind, destroying: $left"
    x "for d in $left; do xl destroy \$d; done"
  fi
done < <(find "$e2e/scenarios" -maxdepth 1 -type f -perm -u+x | LC_ALL=C sort)

echo
echo "e2e summary (artifacts: $artifacts)"
printf '  %s\n' "${results[@]}"
echo "e2e: $ran run, $failed failed, suite time $(fmt $(($(ms) - suite_start)))"
[ "$ran" -gt 0 ] || { echo "e2e: no scenario matched" >&2; exit 1; }
[ "$failed" -eq 0 ]
