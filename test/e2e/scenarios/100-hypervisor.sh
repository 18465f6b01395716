#!/usr/bin/env bash
# The node agent's Hypervisor on Xen (node-agent/runtime/xen-hypervisor.ts, driven by
# test/e2e/dom0/hypervisor.ts): a guest-init guest created through it is listed running with its guest
# key, uid and spec hash, and its marker is in the console history. Then an agent restart: the process
# closes the XenHypervisor, a new process opens one, and list() adopts the domain (same domid and uuid,
# still running) with its console (live ticks arrive); cleanupOrphans() removes a stray loop device under
# the state dir but not the guest's; a graceful shutdown() reaches the process as SIGTERM, 'change' fires
# with exit code 0, and nothing is left (domain, loop devices, xenstore). A guest whose process exits 3
# by itself: 'change' fires, list() shows exitCode 3, then the shut-down state.
set -euo pipefail
x() { "$KRATA_XENHOST_EXEC" "$@" </dev/null; }
fail() { echo "FAIL: $*" >&2; exit 1; }
out=${KRATA_E2E_ARTIFACTS:-$(mktemp -d)}
repo=${KRATA_REPO:-$(cd "$(dirname "$0")/../../.." && pwd)}
sd=/tmp/krata-hv-state
drive="node /krata/dist/test/e2e/dom0/hypervisor.js"
launch="node /krata/dist/node-agent/xen/launch-main.js"
cleanup() {
  x "for n in e2e-hv-tick e2e-hv-exit; do d=\$(xl domid \$n 2>/dev/null) && $launch --destroy \$d; done
     losetup -a | grep -F '$sd/' | cut -d: -f1 | xargs -r -n1 losetup -d; rm -rf $sd" >/dev/null 2>&1 || true
}
trap cleanup EXIT

# Nothing of ours may be there before, or the "nothing left" checks below would prove nothing.
[ -z "$(x "losetup -a")" ] || fail "loop devices attached before the scenario: $(x "losetup -a")"
domains_before=$(x "xl list | awk 'NR > 1 {print \$2}' | sort | tr '\n' ' '")

. "$(dirname "$0")/lib/guest-init.sh"
stage=$repo/guest-init/target/e2e-hv
gi_stage_image "$stage"
gi_config "$stage" config-tick e2e-hv-tick '{"tty":false,"terminationGracePeriodSeconds":20}' \
  '{"Cmd":["sh","-c","trap \"echo got-term; exit 0\" TERM; echo KRATA-HV-READY; i=0; while :; do i=$((i+1)); echo tick-$i; sleep 1; done"]}'
gi_config "$stage" config-exit e2e-hv-exit '{"tty":false,"terminationGracePeriodSeconds":5}' \
  '{"Cmd":["sh","-c","echo KRATA-HV-EXIT3; sleep 1; exit 3"]}'
x "rm -rf $sd && mkdir -p $sd && cp /krata/guest-init/target/e2e-hv/image.sqfs /krata/guest-init/target/e2e-hv/config-{tick,exit}.cpio $sd/" \
  || fail "staging the image and configs failed"
gi_initrd $sd/initrd.cpio >"$out/initrd.json" || fail "building the initrd failed"

common="\"stateDir\":\"$sd\",\"initrd\":\"$sd/initrd.cpio\",\"image\":\"$sd/image.sqfs\""
tick="\"name\":\"e2e-hv-tick\",\"guestKey\":\"e2e/hv-tick\",\"guestUid\":\"uid-$RANDOM$RANDOM\",\"specHash\":\"hash-$RANDOM\""
field() { node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[2], "utf8"))[process.argv[1]] ?? "")' "$1" "$2"; }

# 1. create, list, console history; then the process ends (the "agent" stops).
x "$drive start '{$common,$tick,\"config\":\"$sd/config-tick.cpio\",\"until\":\"KRATA-HV-READY\"}'" >"$out/start.json" 2>"$out/start.err" \
  || { cat "$out/start.json" "$out/start.err" >&2; fail "start phase failed"; }
cat "$out/start.json"
domid=$(field domid "$out/start.json") uuid=$(field uuid "$out/start.json")
[ -n "$domid" ] && [ -n "$uuid" ] || fail "no domid/uuid from the start phase"
x "xl list e2e-hv-tick >/dev/null" || fail "the guest did not outlive the process that created it"
[ "$(x "xenstore-read /local/domain/$domid/krata/guest-key")" = e2e/hv-tick ] || fail "krata/guest-key is not in xenstore"

# A loop device nobody references, over a file in the state dir (what a crashed agent leaves).
x "dd if=/dev/zero of=$sd/orphan.img bs=64k count=1 status=none && losetup -r -f $sd/orphan.img && losetup -a" >"$out/losetup-with-orphan.txt" \
  || fail "could not attach the orphan loop device"

# 2. a new process adopts the domain, serves its console, cleans orphans, stops it gracefully.
x "$drive adopt '{$common,$tick,\"domid\":$domid,\"uuid\":\"$uuid\",\"orphan\":\"$sd/orphan.img\"}'" >"$out/adopt.json" 2>"$out/adopt.err" \
  || { cat "$out/adopt.json" "$out/adopt.err" >&2; fail "adopt phase failed"; }
cat "$out/adopt.json"
nothing_left() {
  x "xl list | awk 'NR > 1 {print \$1}'" >"$out/xl-list-$1.txt"
  ! grep -q '^e2e-hv' "$out/xl-list-$1.txt" || fail "a domain is left after $1: $(cat "$out/xl-list-$1.txt")"
  # Also nameless ones (a zombie whose xenstore entries are gone).
  [ "$(x "xl list | awk 'NR > 1 {print \$2}' | sort | tr '\n' ' '")" = "$domains_before" ] || fail "domains after $1 differ from before: $(x "xl list")"
  [ -z "$(x "losetup -a")" ] || fail "loop devices left after $1: $(x "losetup -a")"
  x "xenstore-ls /local/domain" >"$out/xenstore-$1.txt" 2>&1 || true
  ! grep -qE 'guest-key|e2e-hv' "$out/xenstore-$1.txt" || fail "krata entries left in xenstore after $1 (see $out/xenstore-$1.txt)"
  ! x "xenstore-exists /local/domain/$2 || xenstore-exists /local/domain/0/backend/vbd/$2" || fail "xenstore tree of domain $2 left after $1"
}
nothing_left shutdown "$domid"
echo "adopted domain $domid in a new process, live console, graceful stop with exit code 0; nothing left"

# 3. a process that exits 3 by itself.
exitg="\"name\":\"e2e-hv-exit\",\"guestKey\":\"e2e/hv-exit\",\"guestUid\":\"uid-$RANDOM\",\"specHash\":\"hash-$RANDOM\""
x "$drive exit '{$common,$exitg,\"config\":\"$sd/config-exit.cpio\",\"exitCode\":3}'" >"$out/exit.json" 2>"$out/exit.err" \
  || { cat "$out/exit.json" "$out/exit.err" >&2; fail "exit phase failed"; }
cat "$out/exit.json"
nothing_left exit "$(field domid "$out/exit.json")"
echo "a process exiting 3: 'change' fired, list() showed exitCode 3 and then the shut-down state; nothing left"
