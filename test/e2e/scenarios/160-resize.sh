#!/usr/bin/env bash
# Live resources: a Guest with maxMemory 192Mi and maxCpus 2 has its memory moved 128Mi → 96Mi → 160Mi
# and its vCPUs 1 → 2 → 1 while it runs. Each change is seen inside the guest (MemTotal in
# /proc/meminfo follows the balloon target, `nproc` the vCPUs online), by Xen (status.resources:
# vcpusOnline, memoryActual; ResourcesApplied True) and keeps the same domain; a change of maxMemory
# then recreates it. kratactl runs on the host, as in 140-exec (socket relays and an SSH forward).
set -euo pipefail
. "$(dirname "$0")/lib/agent.sh"
relays=()
cleanup() {
  for p in "${relays[@]}"; do kill "$p" 2>/dev/null || true; done
  agent_cleanup /run/krata-e2e-resize
}
trap cleanup EXIT

stage_busybox resize
cleanup
import_busybox
start_agent || fail "the agent did not start"

host_kratactl 9479 /run/krata-e2e-resize
fail_logs=sized

# apply CPUS MEMORY [MAXMEMORY]: the Guest with these resources (maxCpus 2).
apply() {
  cat >"$stage/guest.yaml" <<YAML
apiVersion: krata.dev/v1alpha1
kind: Guest
metadata: {name: sized}
spec:
  image: e2e/busybox:1
  command: [sh, -c, 'echo up; while :; do sleep 1; done']
  resources: {cpus: $1, maxCpus: 2, memory: $2, maxMemory: ${3:-192Mi}}
  terminationGracePeriodSeconds: 2
YAML
  kh apply -f "$stage/guest.yaml" >>"$out/apply.txt" || fail "apply $* failed"
}

# The guest's view: MemTotal (KiB) and nproc; Xen's through status.
guest_view() { kh exec sized -- sh -c 'busybox grep MemTotal /proc/meminfo; busybox nproc' 2>>"$out/exec.err" | tr -s ' ' | tr '\n' ' '; }
status_json() { kh get sized -o json; }
field() {
  node -e "const g=JSON.parse(require('fs').readFileSync(0,'utf8')); const v=($1);
    console.log(v===undefined?'':typeof v==='object'?JSON.stringify(v):v)"
}

apply 1 128Mi
running sized || fail "sized did not reach Running"
ok=
for i in $(seq 90); do
  if kh exec sized -- true 2>"$out/first-exec.err"; then ok=1; break; fi
  # "not up" (guest-init has not opened it) or "did not come up within 5 s" (the guest is still booting).
  grep -Eq 'not up|did not come up' "$out/first-exec.err" || { cat "$out/first-exec.err" >&2; fail "exec -- true failed"; }
  sleep 1
done
[ -n "$ok" ] || fail "the channel of sized never came up"
domid=$(status_json | field 'g.status.domid')
echo "sized runs as domain $domid"

# expect MEMORY_MIB CPUS: waits (up to ~3 min) until the guest and status show them, the same domain.
# MemTotal is the balloon target less what the kernel keeps for itself (reserved), a constant taken at
# the first step: later steps must be within 8 MiB of target - reserved.
reserved=
expect() {
  local mem=$1 cpus=$2 view total n s res cond i
  for i in $(seq 60); do
    view=$(guest_view)
    total=$(echo "$view" | sed -n 's/.*MemTotal: \([0-9]*\) kB.*/\1/p')
    n=$(echo "$view" | awk '{print $NF}')
    s=$(status_json)
    res=$(echo "$s" | field 'g.status.resources')
    cond=$(echo "$s" | field '(g.status.conditions||[]).find((c)=>c.type==="ResourcesApplied")?.status')
    echo "  want ${mem}Mi/${cpus}: guest MemTotal ${total:-?} kB, nproc ${n:-?}; status $res, ResourcesApplied $cond" >>"$out/steps.txt"
    if [ -n "$total" ] && [ "$n" = "$cpus" ] && [ "$cond" = True ]; then
      local gap=$((mem * 1024 - total))
      if [ -z "$reserved" ]; then
        [ "$gap" -ge 0 ] && [ "$gap" -le $((64 * 1024)) ] || fail "MemTotal $total kB is not just under the ${mem}Mi target"
        reserved=$gap
      fi
      if [ $((gap - reserved)) -le 8192 ] && [ $((reserved - gap)) -le 8192 ]; then
        local now_domid
        now_domid=$(echo "$s" | field 'g.status.domid')
        [ "$now_domid" = "$domid" ] || fail "the domain changed: $now_domid is not $domid"
        [ "$(echo "$s" | field 'g.status.resources.cpus')" = "$cpus" ] || fail "status.resources.cpus is not $cpus: $res"
        [ "$(echo "$s" | field 'g.status.resources.vcpusOnline')" = "$cpus" ] || fail "Xen does not see $cpus vCPUs online: $res"
        [ "$(echo "$s" | field 'g.status.resources.memory')" = "${mem}Mi" ] || fail "status.resources.memory is not ${mem}Mi: $res"
        echo "${mem}Mi, $cpus vCPU(s): guest MemTotal $total kB (target - $((gap / 1024)) MiB), nproc $n; Xen: $res"
        return 0
      fi
    fi
    sleep 2
  done
  tail -5 "$out/steps.txt" >&2
  fail "the guest did not reach ${mem}Mi and $cpus vCPU(s)"
}

expect 128 1
apply 1 96Mi
expect 96 1
apply 1 160Mi
expect 160 1
apply 2 160Mi
expect 160 2
apply 1 160Mi
expect 160 1
kh get sized -o json | field 'g.status.resources' >"$out/resources.json"
kh describe guest sized >"$out/describe.txt" || fail "describe failed"
grep -Eq '^ +Resources: +1 vCPU \(1 online\), memory 160Mi \(guest holds [0-9]+Mi\)$' "$out/describe.txt" \
  || { cat "$out/describe.txt" >&2; fail "describe does not show the applied resources"; }
resized=$(grep -c 'Resized' "$out/describe.txt" || true)
[ "$resized" -ge 1 ] || fail "no Resized event"
echo "describe: $(grep -E '^ +Resources:' "$out/describe.txt" | tr -s ' ')"

# Beyond the maximum: a new domain.
apply 1 160Mi 256Mi
for i in $(seq 150); do
  d=$(status_json | field 'g.status.domid')
  [ -n "$d" ] && [ "$d" != "$domid" ] && break
  sleep 1
done
[ -n "$d" ] && [ "$d" != "$domid" ] || fail "a change of maxMemory did not recreate the domain"
running sized || fail "sized did not run again"
x "xl list $d" >"$out/xl.txt" || fail "xl list $d failed"
echo "maxMemory 256Mi: recreated as domain $d"

kh delete guest sized --wait >/dev/null || fail "delete --wait failed"
