#!/usr/bin/env bash
# krata's main job on one host, end to end: krata-node-agent in dom0 with the real Xen layer,
# `kratactl apply -f` of Guests whose image comes from a `docker save` archive imported into the
# agent's cache; Running with addresses; logs; attach and run a command in a shell; an agent restart
# that adopts the running guests; both guests of one image share its loop device; bad input (an image that cannot be pulled, memory beyond the host)
# lands in status; delete --wait leaves no domain, loop device, xenstore entry or file behind.
set -euo pipefail
. "$(dirname "$0")/lib/agent.sh"
cleanup() { agent_cleanup; }
trap cleanup EXIT

# The image: busybox, as a docker save archive built by krata's own image writer on the host.
stage_busybox agent
cleanup
import_busybox

start_agent || fail "the agent did not start"
cat >"$stage/guests.yaml" <<'YAML'
apiVersion: krata.dev/v1alpha1
kind: Guest
metadata: {name: web}
spec:
  image: e2e/busybox:1
  command: [sh, -c, 'echo KRATA-E2E-HELLO $(hostname); i=0; while :; do i=$((i+1)); echo tick $i; sleep 1; done']
  resources: {cpus: 1, memory: 96Mi}
  terminationGracePeriodSeconds: 5
---
apiVersion: krata.dev/v1alpha1
kind: Guest
metadata: {name: shell}
spec:
  image: e2e/busybox:1
  tty: true
  resources: {cpus: 1, memory: 96Mi}
  terminationGracePeriodSeconds: 5
YAML
x "$k apply -f /krata/guest-init/target/e2e-agent/guests.yaml" >"$out/apply.txt" || fail "apply failed"
running web || fail "web did not reach Running"
running shell || fail "shell did not reach Running"
x "$k get -o wide" >"$out/get.txt"
cat "$out/get.txt"
x "$k get web -o json" >"$out/web.json"
node -e "const g=require('$out/web.json'); if(!/^10\.75\./.test(g.status.addresses?.ipv4)) process.exit(1)" || fail "web has no IPv4 address in status"
domid=$(node -p "require('$out/web.json').status.domid")
x "xl list | grep -q '^krata\.default\.web '" || fail "no Xen domain krata.default.web"
# One loop device serves the image to both guests (autoclear: it goes with the last of them).
x "$k get shell -o json" >"$out/shell.json"
shell_domid=$(node -p "require('$out/shell.json').status.domid")
x "xenstore-read /local/domain/$domid/krata/loops /local/domain/$shell_domid/krata/loops; for b in /sys/block/loop*/loop/backing_file; do cat \$b; done 2>/dev/null | grep -c /var/lib/krata/" >"$out/loops.txt" || true
[ "$(sed -n 1p "$out/loops.txt")" = "$(sed -n 2p "$out/loops.txt")" ] || fail "web and shell do not share their image's loop device: $(tr '\n' ' ' <"$out/loops.txt")"
[ "$(sed -n 3p "$out/loops.txt")" = 1 ] || fail "not one loop device over the agent's files: $(tr '\n' ' ' <"$out/loops.txt")"
echo "web and shell share one loop device for their image ($(sed -n 1p "$out/loops.txt"))"

# Logs: the process's output through krata's console backend.
x "for i in \$(seq 150); do $k logs web | grep -q 'KRATA-E2E-HELLO web' && exit 0; sleep 0.2; done; exit 1" || fail "logs do not show the process's output"
x "$k logs web --tail 3" >"$out/logs.txt"

# Attach to the shell guest: a command typed in, its output read back, then Ctrl+] detaches. The command
# is typed once attach says it is attached, again if a guest still booting under TCG has not run it
# 10 s later (typed too early, it may be lost), and Ctrl+] follows its output.
x "f=/tmp/krata-e2e-attach; rm -f \$f.in \$f.out; mkfifo \$f.in; timeout 60 $k attach shell <\$f.in >\$f.out 2>&1 & exec 3>\$f.in
   for i in \$(seq 300); do grep -q 'attached to' \$f.out && break; sleep 0.1; done
   for try in 1 2 3; do
     printf 'echo ATTACH-\$((6*7))\n' >&3
     for i in \$(seq 100); do grep -q ATTACH-42 \$f.out && break 2; sleep 0.1; done
   done
   printf '\035' >&3; exec 3>&-; wait; cat \$f.out; rm -f \$f.in \$f.out" >"$out/attach.txt" 2>&1 || true
grep -q 'ATTACH-42' "$out/attach.txt" || { cat "$out/attach.txt" >&2; fail "attach did not run the command"; }

# An agent restart: the guests keep running and are adopted (same domain, same domid).
stop_agent || fail "the agent did not stop"
x "xl list | grep -q '^krata\.default\.web '" || fail "stopping the agent stopped the guest"
start_agent || fail "the agent did not start again"
running web 150 || fail "web is not Running after the restart"
x "$k get web -o json" >"$out/web-after.json"
[ "$(node -p "require('$out/web-after.json').status.domid")" = "$domid" ] || fail "web was not adopted (domid changed)"
[ "$(node -p "require('$out/web-after.json').status.phase")" = Running ] || fail "web is not Running after the restart"
x "for i in \$(seq 100); do $k logs web | grep -q tick && exit 0; sleep 0.2; done; exit 1" || fail "the adopted console shows no output"

# Bad input: clear status, nothing created, the agent keeps serving.
cat >"$stage/bad.yaml" <<'YAML'
apiVersion: krata.dev/v1alpha1
kind: Guest
metadata: {name: noimage}
spec: {image: 'e2e/does-not-exist:1', imagePullPolicy: Never, resources: {cpus: 1, memory: 64Mi}}
---
apiVersion: krata.dev/v1alpha1
kind: Guest
metadata: {name: huge}
spec: {image: 'e2e/busybox:1', resources: {cpus: 1, memory: 64Gi}}
YAML
x "$k apply -f /krata/guest-init/target/e2e-agent/bad.yaml" >/dev/null || fail "apply of the bad guests failed"
x "for i in \$(seq 100); do $k describe guest noimage | grep -q ErrImageNeverPull && $k describe guest huge | grep -q InsufficientMemory && exit 0; sleep 0.2; done; exit 1" \
  || fail "bad guests do not say why in status"
x "$k describe guest huge" >"$out/describe-huge.txt"
x "$k delete guest noimage huge --wait" >/dev/null || fail "deleting the bad guests failed"

# Delete: graceful stop, then nothing is left.
x "$k delete guest web shell --wait" >"$out/delete.txt" || fail "delete --wait failed"
x "! xl list | grep -qE '^krata[-.]' && [ -z \"\$(losetup -a)\" ] && ! xenstore-exists /local/domain/$domid && [ \"\$($k get -o name)\" = '' ]" \
  || fail "something was left after delete: $(x "xl list; losetup -a" 2>&1 | tr '\n' ' ')"
x "curl -s 127.0.0.1:9477/metrics 2>/dev/null | grep -c '^krata_' || true" >"$out/metrics.txt"
stop_agent || true
echo "node agent: apply → Running with addresses, logs, attach, adoption after restart, bad input in status, delete --wait leaves nothing"
