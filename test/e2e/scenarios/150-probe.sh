#!/usr/bin/env bash
# Probes on Xen: a guest whose exec liveness probe fails is stopped and restarted (Events Unhealthy and
# Killing, restartCount 1, the same Guest on a new domid) and is Ready again once its probe passes; an
# httpd guest whose httpGet readiness probe flips Ready to False when its port closes and back when it
# opens again. httpGet reaches the guest through kratanet's GuestDialer: on an agent that binds none,
# that part says so and is skipped (the exec part still decides the scenario).
set -euo pipefail
. "$(dirname "$0")/lib/agent.sh"
cleanup() { agent_cleanup; }
trap cleanup EXIT

stage_busybox probe
cleanup
import_busybox
start_agent || fail "the agent did not start"

# status NAME JS: the JS expression over the Guest `g` and its Ready condition `r`, read in dom0.
status() {
  x "$k get $1 -o json" >"$out/$1.json" 2>/dev/null || return 1
  node -e "const g = require('$out/$1.json'); const r = (g.status?.conditions ?? []).find((c) => c.type === 'Ready') ?? {};
    process.stdout.write(String($2))"
}
# until_status NAME JS [TRIES]: polls (one kratactl call a try) until the expression is true.
until_status() {
  local i
  for i in $(seq "${3:-120}"); do [ "$(status "$1" "$2" || true)" = true ] && return 0; sleep 2; done
  return 1
}

cat >"$stage/probes.yaml" <<'YAML'
apiVersion: krata.dev/v1alpha1
kind: Guest
metadata: {name: live}
spec:
  image: e2e/busybox:1
  command: [sh, -c, 'echo ok >/tmp/alive; echo up; while :; do sleep 1; done']
  resources: {cpus: 1, memory: 96Mi}
  terminationGracePeriodSeconds: 2
  # A guest boots slowly under TCG: the startup probe holds liveness off until the channel answers.
  startupProbe: {exec: {command: [cat, /tmp/alive]}, periodSeconds: 2, timeoutSeconds: 10, failureThreshold: 90}
  livenessProbe: {exec: {command: [cat, /tmp/alive]}, periodSeconds: 2, timeoutSeconds: 10, failureThreshold: 2}
  readinessProbe: {exec: {command: [cat, /tmp/alive]}, periodSeconds: 2, timeoutSeconds: 10}
YAML
cat >"$stage/web.yaml" <<'YAML'
apiVersion: krata.dev/v1alpha1
kind: Guest
metadata: {name: web}
spec:
  image: e2e/busybox:1
  command: [sh, -c, 'mkdir -p /tmp/www; echo ok >/tmp/www/healthz; busybox httpd -f -p 8080 -h /tmp/www & echo $! >/tmp/httpd.pid; echo up; while :; do sleep 1; done']
  resources: {cpus: 1, memory: 96Mi}
  network: {ports: [{name: http, containerPort: 8080, hostPort: 18150}]}
  terminationGracePeriodSeconds: 2
  readinessProbe: {httpGet: {port: http, path: /healthz}, periodSeconds: 2, timeoutSeconds: 5, failureThreshold: 1}
YAML
# One guest at a time: two booting at once under TCG on a loaded host take longer than both in turn.
x "$k apply -f /krata/guest-init/target/e2e-probe/probes.yaml" >"$out/apply.txt" || fail "apply failed"
running live || fail "live did not reach Running"

# Liveness (exec over the control channel): Ready once the probe passes.
until_status live "r.status === 'True'" 300 || fail "live never became Ready: $(status live 'JSON.stringify(r)')"
[ "$(status live 'g.status.restartCount ?? 0')" = 0 ] || fail "live restarted before its probe was made to fail: $(status live 'JSON.stringify(g.status)')"
domid=$(status live 'g.status.domid')
echo "live: Ready on domain $domid ($(status live 'JSON.stringify(g.status.probes)'))"
x "$k exec live -- busybox rm /tmp/alive" || fail "exec rm failed"
until_status live "(g.status.restartCount ?? 0) >= 1" || fail "live was not restarted: $(status live 'JSON.stringify(g.status)')"
echo "live: restarted ($(status live 'g.status.reason + ": " + g.status.message'))"
until_status live "g.status.phase === 'Running' && g.status.domid !== $domid && r.status === 'True'" 300 \
  || fail "live did not come back Ready on a new domain: $(status live 'JSON.stringify(g.status)')"
[ "$(status live 'g.status.restartCount')" = 1 ] || fail "restartCount is $(status live 'g.status.restartCount'), not 1"
[ "$(status live 'g.status.probes.lastKill.probe')" = Liveness ] || fail "no lastKill in status.probes"
x "$k describe guest live" | tr -d '\r' >"$out/live-describe.txt" || fail "describe failed"
grep -Eq 'Warning +Unhealthy .*Liveness probe failed' "$out/live-describe.txt" || { cat "$out/live-describe.txt" >&2; fail "no Unhealthy event"; }
grep -Eq 'Normal +Killing .*failed liveness probe, will be restarted' "$out/live-describe.txt" || { cat "$out/live-describe.txt" >&2; fail "no Killing event"; }
grep -Eq '^Liveness: +exec \[cat /tmp/alive\] delay=0s timeout=10s period=2s #success=1 #failure=2' "$out/live-describe.txt" \
  || { cat "$out/live-describe.txt" >&2; fail "describe does not show the liveness probe"; }
echo "live: Unhealthy and Killing events, restartCount 1, Ready again on domain $(status live 'g.status.domid') (was $domid)"

x "$k delete guest live" >/dev/null || fail "delete live failed"

# Readiness (httpGet through kratanet): Ready follows the guest's port.
x "$k apply -f /krata/guest-init/target/e2e-probe/web.yaml" >"$out/apply-web.txt" || fail "apply web failed"
running web || fail "web did not reach Running"
if ! until_status web "r.status === 'True' || /no dialer/.test(r.message ?? '')" 300; then
  fail "web's readiness never settled: $(status web 'JSON.stringify(r)')"
fi
if [ "$(status web "/no dialer/.test(r.message ?? '')")" = true ]; then
  echo "web: SKIPPED the httpGet part: this agent binds no GuestDialer ($(status web 'r.message'))"
  exit 0
fi
echo "web: Ready through httpGet /healthz"
# Its pid, not killall: started as "busybox httpd" the server is named busybox, like the shell.
x "$k exec web -- sh -c 'kill \$(cat /tmp/httpd.pid)'" || fail "exec kill of httpd failed"
until_status web "r.status === 'False' && r.reason === 'ReadinessProbeFailed'" 60 || fail "web stayed Ready with its port closed: $(status web 'JSON.stringify(r)')"
echo "web: port closed -> Ready=False ($(status web 'r.message'))"
x "$k exec web -- busybox httpd -p 8080 -h /tmp/www" || fail "exec httpd failed"
until_status web "r.status === 'True'" 60 || fail "web did not become Ready again: $(status web 'JSON.stringify(r)')"
[ "$(status web 'g.status.restartCount ?? 0')" = 0 ] || fail "readiness restarted web"
echo "web: port open again -> Ready=True, no restart"
x "$k delete guest web" >/dev/null || fail "delete web failed"
