#!/usr/bin/env bash
# Power cut (issue 23): the QEMU host is stopped hard (SIGKILL: no shutdown, dom0's page cache lost)
# while three guests run (restartPolicy Always, OnFailure, Never), while a client streams applies to
# the agent and while an image is being imported; booted again, the agent is started on the same
# state (the persistent disk, /mnt/state). Checked:
#   - the host really restarted (new kernel boot id), the state disk mounted (ext4 journal replayed);
#   - the store: loads without a problem, holds every apply the agent acknowledged before the cut (the
#     client's acknowledgements are kept on the host), no torn record, no temporary left by the load;
#   - the image cache: every committed image readable (unsquashfs -l), and once the agent ran its
#     recovery no temporary or image job left; the imported image is there if its import was answered;
#   - the guests: Always and OnFailure Running again (restartCount 1, a HostRestarted event), Never
#     Failed with reason HostRestarted; then leaks.sh: nothing left that nothing live owns.
# Runs last: it reboots the shared host (everything in dom0's memory is gone afterwards; run.sh's
# copy of the code is restaged by powercut.sh). KRATA_POWERCUT_SEED (default 195) picks the moment of
# the cut (after how many acknowledged applies, then a delay) and the client's choices; printed.
# Time: about 4-5 min on an idle machine (estimated: two agent starts, a reboot with the code copied
# again, two rounds of guest boots); measured 20-25 min on this 2-core machine while three other QEMU
# hosts ran (boot 122 s instead of ~15 s). The limit is for such a machine.
# e2e-timeout: 2400
set -euo pipefail
. "$(dirname "$0")/lib/agent.sh"
[ -n "${KRATA_XENHOST_POWERCUT:-}" ] || { echo "SKIP: this xenhost has no power cut (KRATA_XENHOST_POWERCUT)"; exit 77; }
seed=${KRATA_POWERCUT_SEED:-195}
state=/mnt/state/krata
e2edir=/mnt/state/e2e
agent=${agent/--state \/var\/lib\/krata/--state $state}
agent=${agent/--initrd \/tmp\/krata-initrd.cpio/--initrd $e2edir/krata-initrd.cpio}
stream='' import=''
cleanup() {
  [ -z "$stream" ] || kill "$stream" 2>/dev/null || true
  [ -z "$import" ] || kill "$import" 2>/dev/null || true
  agent_cleanup "$state" "$e2edir"
}
trap cleanup EXIT
checks=0
ok() { echo "ok   $*"; checks=$((checks + 1)); }
json() { node -e "const g=JSON.parse(require('fs').readFileSync(0,'utf8')); console.log($1)"; }

# The images: busybox for the guests, and one with 24 MB of random data whose import is slow enough
# to be cut (docker save archives, written by krata's own image code on the host).
. "$(dirname "$0")/lib/guest-init.sh"
stage=$repo/guest-init/target/e2e-powercut
gi_stage_image "$stage"
node "$repo/dist/test/e2e/busybox-image.js" "$stage/busybox.tar" e2e/busybox:1
node --input-type=module -e "
import { buildTar } from '$repo/dist/lib/tar.js';
import { buildImage, writeDockerSave } from '$repo/dist/test/oci-images.js';
import { randomBytes } from 'node:crypto';
const tar = buildTar([0, 1, 2, 3].map((i) => ({ path: 'data/r' + i, data: randomBytes(6 << 20) })));
writeDockerSave('$stage/big.tar', buildImage({ layers: [{ tar, compression: 'gzip' }] }), ['e2e/powercut-big:1']);"
cleanup
x "mkdir -p $e2edir" || fail "cannot write to the state disk"
gi_initrd "$e2edir/krata-initrd.cpio" >"$out/initrd.json" || fail "building the initrd failed"
x "$k image import --offline --store $state -q /krata/guest-init/target/e2e-powercut/busybox.tar" >"$out/import-busybox.txt" \
  || fail "image import failed"

# (a) Three guests running, one per restartPolicy.
start_agent || fail "the agent did not start"
boot1=$(x "cat /proc/sys/kernel/random/boot_id")
for p in Always OnFailure Never; do
  cat <<YAML
---
apiVersion: krata.dev/v1alpha1
kind: Guest
metadata: {name: pc-$(echo $p | tr 'A-Z' 'a-z')}
spec:
  image: e2e/busybox:1
  restartPolicy: $p
  command: [sh, -c, 'echo KRATA-E2E-POWERCUT; while :; do sleep 1; done']
  resources: {cpus: 1, memory: 96Mi}
  terminationGracePeriodSeconds: 2
YAML
done >"$stage/guests.yaml"
x "$k apply -f /krata/guest-init/target/e2e-powercut/guests.yaml" >"$out/apply.txt" || fail "apply failed"
fail_logs='pc-always pc-onfailure'
for g in pc-always pc-onfailure pc-never; do running $g || fail "$g did not reach Running"; done
ok "before the cut: pc-always, pc-onfailure, pc-never Running (boot id $boot1)"

# (b) and (c): the apply stream and the import, then the cut at a seeded moment while both run. The
# acknowledgements come back over SSH into a host file: they outlive dom0.
RANDOM=$seed
after_acks=$((4 + RANDOM % 12))
delay_ms=$((RANDOM % 500))
echo "seed $seed: the cut comes after $after_acks acknowledged applies, once the import is under way, plus ${delay_ms} ms"
"$KRATA_XENHOST_EXEC" "exec node /krata/dist/test/e2e/dom0/apply-stream.js /run/krata/agent.sock $seed" \
  </dev/null >"$out/acks.txt" 2>"$out/stream.err" &
stream=$!
"$KRATA_XENHOST_EXEC" "exec $k image import /krata/guest-init/target/e2e-powercut/big.tar --name e2e/powercut-big:1" \
  </dev/null >"$out/import-big.txt" 2>&1 &
import=$!
importing=''
for _ in $(seq 1200); do
  [ -n "$importing" ] || ! x "[ -n \"\$(ls -A $state/images/.partial 2>/dev/null)\" ]" || importing=1
  kill -0 "$import" 2>/dev/null || importing=${importing:-ended}
  [ -n "$importing" ] && [ "$(grep -c '^ACK' "$out/acks.txt")" -ge "$after_acks" ] && break
  kill -0 "$stream" 2>/dev/null || { cat "$out/stream.err" >&2; fail "the apply stream ended"; }
  sleep 0.2
done
[ -n "$importing" ] && [ "$(grep -c '^ACK' "$out/acks.txt")" -ge "$after_acks" ] || fail "the stream or the import did not get going"
sleep "$(printf '0.%03d' "$delay_ms")"
x "cat /tmp/agent.log" >"$out/agent-before-cut.log" 2>&1 || true
answered=$(grep -c '^ACK' "$out/acks.txt" || true)
imported_before=$(grep -q 'e2e/powercut-big:1' "$out/import-big.txt" && ! kill -0 "$import" 2>/dev/null && echo yes || echo no)
"$KRATA_XENHOST_POWERCUT" || fail "the host did not come back after the power cut"
wait "$stream" 2>/dev/null || true
wait "$import" 2>/dev/null || true
stream='' import=''
acked=$(grep -c '^ACK' "$out/acks.txt" || true)
ok "power cut: QEMU SIGKILLed after $acked acknowledged applies ($answered when the cut was asked for), import answered before the cut: $imported_before"

boot2=$(x "cat /proc/sys/kernel/random/boot_id")
[ "$boot2" != "$boot1" ] || fail "the boot id did not change: the host did not restart"
x "grep -q ' /mnt/state ext4 ' /proc/mounts && ! pidof node >/dev/null && ! xl list | grep -q '^krata'" || fail "dom0 did not start afresh"
x "dmesg | grep -i 'EXT4-fs (vd' | tr '\n' ' '" >"$out/ext4.txt" || true
ok "the host restarted: boot id $boot2, state disk mounted ($(cat "$out/ext4.txt" | grep -o 'recovery complete' | head -1 || echo 'clean'))"

# The store, as the agent will load it, before the agent starts.
"$KRATA_XENHOST_EXEC" "node /krata/dist/test/e2e/dom0/store-check.js $state" <"$out/acks.txt" >"$out/store-check.txt" 2>&1 \
  || { cat "$out/store-check.txt" >&2; fail "the store check failed"; }
cat "$out/store-check.txt"
checks=$((checks + $(grep -c '^ok' "$out/store-check.txt")))

# The image cache as the cut left it: every committed image (metadata and squashfs) readable.
readable='cd '"$state"'/images && n=0 && for m in sha256-*.json; do [ -e "$m" ] || continue; s=${m%.json}.squashfs; unsquashfs -l "$s" >/dev/null 2>&1 || { echo "unreadable: $s"; exit 1; }; n=$((n + 1)); done; echo "$n"'
committed=$(x "$readable") || fail "a committed image is not readable: $committed"
left=$(x "cd $state/images && { ls -A .partial; ls | grep -v -e '\.json\$' -e '\.squashfs\$' || true; for s in *.squashfs; do [ -e \"\$s\" ] && [ ! -e \"\${s%.squashfs}.json\" ] && echo \$s; done; } | wc -l")
ok "image cache after the cut: $committed committed images, each readable (unsquashfs -l); $left uncommitted leftovers for recovery"

# The agent on the same state: recovery, then the guests per restartPolicy.
start_agent || fail "the agent did not start after the power cut"
x "[ -z \"\$(ls -A $state/images/.partial)\" ] && [ -z \"\$(find $state -name '*.tmp-*')\" ]" || fail "the agent's recovery left temporaries or image jobs"
x "$k image ls -o json" >"$out/images.json" || fail "image ls failed"
listed=$(json "g.map((i) => i.names.join(',')).join(' ')" <"$out/images.json")
x "$readable" >/dev/null || fail "a cached image is not readable after recovery"
case " $listed " in *e2e/busybox:1*) ;; *) fail "the busybox image is gone from the cache: $listed" ;; esac
big=no; case " $listed " in *e2e/powercut-big:1*) big=yes ;; esac
[ "$imported_before" = no ] || [ "$big" = yes ] || fail "the image whose import was answered before the cut is gone"
ok "image cache after recovery: $listed (the cut import: $([ $big = yes ] && echo complete || echo absent)); no .partial job, no temporary"

for g in pc-always pc-onfailure; do running $g || fail "$g is not Running again after the power cut"; done
for g in pc-always pc-onfailure; do
  x "$k get $g -o json" >"$out/$g.json"
  [ "$(json 'g.status.restartCount' <"$out/$g.json")" = 1 ] || fail "$g: restartCount is not 1"
  x "$k describe guest $g" >"$out/$g-describe.txt"
  grep -q 'HostRestarted.*the host restarted' "$out/$g-describe.txt" || { cat "$out/$g-describe.txt" >&2; fail "$g: describe shows no HostRestarted event"; }
done
ok "pc-always and pc-onfailure Running again after the host restart: restartCount 1, event HostRestarted"
x "for i in \$(seq 150); do $k get pc-never -o json | grep -q '\"reason\": \"HostRestarted\"' && exit 0; sleep 0.2; done; exit 1" || fail "pc-never has no reason HostRestarted"
x "$k get pc-never -o json" >"$out/pc-never.json"
[ "$(json 'g.status.phase + " " + g.status.reason' <"$out/pc-never.json")" = "Failed HostRestarted" ] || fail "pc-never: $(json 'g.status.phase + " " + g.status.reason' <"$out/pc-never.json")"
x "! xl list | grep -q '^krata\.default\.pc-never '" || fail "pc-never was started again"
x "grep -q 'the host restarted since the agent last ran' /tmp/agent.log" || fail "the agent's log does not say the host restarted"
x "$k get -o wide" >"$out/get.txt" || true
ok "pc-never Failed with reason HostRestarted, not started again; the agent's log says the host restarted"

# Nothing left that nothing live owns: two domains (pc-always, pc-onfailure).
x "losetup -a; xl list" >"$out/devices.txt" 2>&1 || true
x "bash /krata/test/e2e/dom0/leaks.sh $state 2" >"$out/leaks.txt" 2>&1 || { cat "$out/leaks.txt" >&2; fail "leaks after the power cut"; }
ok "$(tail -1 "$out/leaks.txt")"
x "$k delete guest --all --wait" >"$out/delete.txt" || fail "delete --all failed"
x "bash /krata/test/e2e/dom0/leaks.sh $state 0" >"$out/leaks-end.txt" 2>&1 || { cat "$out/leaks-end.txt" >&2; fail "leaks after deleting every Guest"; }
ok "every Guest deleted: $(tail -1 "$out/leaks-end.txt")"
stop_agent || true
echo "power cut: $checks checks passed (seed $seed)"
