#!/usr/bin/env bash
# Self-test of the cleanup guarantees: an e2e run killed a few seconds into boot must leave no QEMU
# (nor any other process referring to its state dir), no state dir and no held build lock. Cases:
# SIGTERM to the runner (CI cancel), SIGINT to its process group (Ctrl-C), SIGKILL to the runner
# alone (QEMU must die by PR_SET_PDEATHSIG), SIGKILL to the whole process group; and SIGTERM while a
# scenario runs (its process tree must go too) or while the image is built (temp dir and lock too).
set -uo pipefail
# shellcheck source=test/xenhost/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
states="${TMPDIR:-/tmp}/krata-xenhost."
ours() { pgrep -af "krata-xenhost\." ; }        # QEMU, ssh master, cleanup watcher
[ -z "$(ours)" ] || xh_die "a krata xenhost is already running; stop it first"
"$xh_dir/build.sh" >/dev/null || xh_die "build failed"   # cached image: the kill lands in the boot
failures=0

check() {  # check CASE SIGNAL TARGET EXPECTED_STATUS [WHEN: boot|scenario|build]
  local name=$1 sig=$2 target=$3 want=$4 when=${5:-boot} pid rc i log cache=$xh_cache
  log=$(mktemp)
  # A build from scratch needs a cache of its own (the download is cached too).
  [ "$when" = build ] && cache=$(mktemp -d)/xenhost
  # Own session/process group, default INT/TERM handling (a background job would ignore SIGINT).
  KRATA_CACHE=${cache%/xenhost} setsid env --default-signal=INT,TERM "$xh_repo/test/e2e/run.sh" >"$log" 2>&1 &
  pid=$!
  for ((i = 0; i < 1200; i++)); do
    case $when in
      boot) pgrep -f "qemu-system.*$states" >/dev/null && break ;;
      scenario) grep -q '^=== RUN' "$log" && break ;;
      build) compgen -G "$cache/.build.*/x" >/dev/null && break ;;   # unpacking the .debs
    esac
    sleep 0.1
  done
  sleep 3
  if [ "$target" = group ]; then kill "-$sig" -- "-$pid"; else kill "-$sig" "$pid"; fi
  { for ((i = 0; i < 300; i++)); do kill -0 "$pid" || break; sleep 0.1; done
    wait "$pid"; rc=$?; } 2>/dev/null   # no "Killed" job notices
  for ((i = 0; i < 100; i++)); do [ -z "$(ours)" ] && ! compgen -G "$states*" >/dev/null && break; sleep 0.1; done
  local problems=()
  [ "$rc" = "$want" ] || problems+=("runner exit status $rc, expected $want")
  [ -z "$(ours)" ] || problems+=("processes left: $(ours | tr '\n' ';')")
  ! compgen -G "$states*" >/dev/null || problems+=("state dir left: $(echo "$states"*)")
  flock -n "$cache/build.lock" true || problems+=("build lock still held")
  ! compgen -G "$cache/.build.*" >/dev/null || problems+=("build temp dir left")
  if [ ${#problems[@]} -eq 0 ]; then
    echo "ok    $name (runner exit $rc, cleaned up after $((i / 10)).$((i % 10))s)"
  else
    echo "FAIL  $name: ${problems[*]}"; sed 's/^/    | /' "$log"; failures=$((failures + 1))
    ours | awk '{print $1}' | xargs -r kill -KILL; rm -rf "$states"*
  fi
  rm -f "$log"
  [ "$cache" = "$xh_cache" ] || rm -rf "${cache%/xenhost}"
}

check "SIGTERM to runner" TERM pid 143
check "SIGINT to process group (Ctrl-C)" INT group 130
check "SIGKILL to runner only" KILL pid 137
check "SIGKILL to process group" KILL group 137
check "SIGTERM to runner during a scenario" TERM pid 143 scenario
check "SIGTERM to runner during the image build" TERM pid 143 build
[ "$failures" -eq 0 ]
