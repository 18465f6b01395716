#!/usr/bin/env bash
# The cluster path on real Xen. On the host: kube-apiserver and etcd with the aggregation layer, Redis,
# the operator (with its PKI) and krata-api (test/e2e/cluster-control-plane.ts). In dom0: the node agent
# in cluster mode, reaching Redis over QEMU's user network and reached by krata-api over mutual TLS
# (through an SSH forward). Checked: kubectl apply of manifests/examples/hello.yaml → a real domain,
# Ready with its domid and addresses; `kubectl krata` logs, exec, attach (a typed command) and
# port-forward (a guest's httpd); RBAC (a viewer may read logs, not exec); the agent killed with
# SIGKILL and started again adopts the same domain; kubectl delete leaves no domain, loop device, vif
# or Guest behind.
# e2e-timeout: 1200
set -euo pipefail
. "$(dirname "$0")/lib/agent.sh"
. "$(dirname "$0")/lib/guest-init.sh"
cp_pid= pf_pid=
cleanup() {
  [ -n "$pf_pid" ] && kill "$pf_pid" 2>/dev/null || true
  if [ -n "$cp_pid" ]; then
    kill "$cp_pid" 2>/dev/null || true
    wait "$cp_pid" 2>/dev/null || true
  fi
  agent_cleanup
}
trap cleanup EXIT

stage_busybox cluster krata/busybox:demo
cleanup
import_busybox

# The control plane on the host.
node "$repo/dist/test/e2e/cluster-control-plane.js" "$out/cluster" 2>"$out/control-plane.log" &
cp_pid=$!
for i in $(seq 600); do
  [ -f "$out/cluster/cluster.json" ] && break
  kill -0 $cp_pid 2>/dev/null || fail "the control plane exited: $(tail -5 "$out/control-plane.log")"
  sleep 0.5
done
[ -f "$out/cluster/cluster.json" ] || fail "the control plane did not come up: $(tail -5 "$out/control-plane.log")"
cj() { node -e "console.log(require('$out/cluster/cluster.json')$1)"; }
export KUBECONFIG
KUBECONFIG=$(cj .kubeconfig)
host=$(cj .host)
echo "control plane: kube-apiserver, etcd, Redis, operator and krata-api up"

# kubectl finds the plugin on PATH, as a user's would.
mkdir -p "$out/bin"
ln -sf "$repo/dist/kubectl-krata/main.js" "$out/bin/kubectl-krata"
export PATH=$out/bin:$PATH

# The agent in dom0, in cluster mode: Redis is the host's loopback (10.0.2.2 in QEMU's user network);
# krata-api reaches its TLS listener through an SSH forward, the address it advertises.
fwd=$(node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")
ssh -F "$KRATA_XENHOST_SSH_CONFIG" -O forward -L "127.0.0.1:$fwd:127.0.0.1:9444" xenhost 2>/dev/null || fail "the SSH forward failed"
x "mkdir -p /run/krata && umask 077 && echo '$(cj .agentPassword)' >/run/krata/redis-agent"
agent="$agent --redis redis://krata-agent@10.0.2.2:$(cj .redisPort) --redis-password-file /run/krata/redis-agent --host $host --tls-listen 127.0.0.1:9444 --tls-advertise 127.0.0.1:$fwd"
start_agent || fail "the agent did not start in cluster mode"
for i in $(seq 120); do
  [ "$(kubectl get xenhost "$host" -o 'jsonpath={.status.agentEndpoint}' 2>/dev/null)" = "127.0.0.1:$fwd" ] && break
  sleep 1
done
[ "$(kubectl get xenhost "$host" -o 'jsonpath={.status.agentEndpoint}')" = "127.0.0.1:$fwd" ] ||
  fail "XenHost $host has no agentEndpoint (the agent's certificate or listener): $(kubectl get xenhost "$host" -o yaml | tail -20)"
echo "agent: XenHost $host Ready, certified by the operator, TLS listener advertised ($(kubectl get xenhost "$host" -o 'jsonpath={.status.agentKey}' | cut -c1-20)...)"

# The example, applied as a user would, becomes a real Xen domain.
fail_logs=hello
kubectl apply -f "$repo/manifests/examples/hello.yaml" >/dev/null || fail "kubectl apply failed"
# One more guest (the QEMU host has 2 CPUs, one a guest): a shell on its console, for attach, with
# an httpd in the background, for port-forward.
cat >"$out/guests.yaml" <<'YAML'
apiVersion: krata.dev/v1alpha1
kind: Guest
metadata: {name: shell}
spec:
  image: krata/busybox:demo
  tty: true
  command: [sh, -c, 'busybox mkdir -p /www && echo "served by $(hostname)" >/www/index.html && busybox httpd -p 8000 -h /www && exec sh']
  resources: {cpus: 1, memory: 96Mi}
  terminationGracePeriodSeconds: 2
YAML
kubectl apply -f "$out/guests.yaml" >/dev/null || fail "kubectl apply of shell failed"
kubectl wait --for=condition=Ready guest/hello guest/shell --timeout=600s >/dev/null || fail "the Guests did not become Ready"
domid=$(kubectl get guest hello -o 'jsonpath={.status.domid}')
addr=$(kubectl get guest hello -o 'jsonpath={.status.addresses.ipv4}')
[ -n "$domid" ] && [ -n "$addr" ] || fail "hello's status has no domid or address: $(kubectl get guest hello -o yaml | tail -30)"
[ "$(kubectl get guest hello -o 'jsonpath={.status.node}')" = "$host" ] || fail "hello is not placed on $host"
x "xl domid krata.default.hello" | grep -qx "$domid" || fail "no domain $domid named krata.default.hello: $(x 'xl list')"
echo "kubectl apply: hello Ready on $host as domain $domid ($addr)"

# kubectl krata, through the apiserver, krata-api and the agent's TLS listener.
for i in $(seq 30); do kubectl krata logs hello 2>"$out/logs.err" | grep -q 'hello from' && break; sleep 1; done
kubectl krata logs hello | grep -q 'hello from' || fail "kubectl krata logs: $(cat "$out/logs.err")"
uname=$(kubectl krata exec hello -- uname -a) || fail "kubectl krata exec -- uname -a failed"
case $uname in Linux\ *) ;; *) fail "exec -- uname -a said '$uname'" ;; esac
set +e
kubectl krata exec hello -- sh -c 'exit 7'
rc=$?
set -e
[ "$rc" = 7 ] || fail "kubectl krata exec -- sh -c 'exit 7' exited $rc"
echo "kubectl krata logs and exec: '$(echo "$uname" | cut -c1-40)...', exit code 7 passed on"

# attach: a command typed into the guest's console and its answer read back.
{ sleep 3; echo 'echo typed-$((6 * 7))'; sleep 10; } | timeout 25 kubectl krata attach shell >"$out/attach.txt" 2>&1 || true
grep -q 'typed-42' "$out/attach.txt" || fail "attach: no answer to the typed command: $(tail -c 400 "$out/attach.txt")"
echo "kubectl krata attach: a typed command answered"

# port-forward to the guest's httpd.
lport=$(node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")
kubectl krata port-forward guest/shell "$lport:8000" >"$out/port-forward.txt" 2>&1 &
pf_pid=$!
got=
for i in $(seq 30); do
  got=$(node -e "require('http').get('http://127.0.0.1:$lport/',r=>{let b='';r.on('data',d=>b+=d);r.on('end',()=>console.log(b.trim()))}).on('error',()=>process.exit(1))" 2>/dev/null) && break
  sleep 1
done
kill $pf_pid 2>/dev/null || true
pf_pid=
[ "$got" = "served by shell" ] || fail "port-forward: got '$got' ($(cat "$out/port-forward.txt"))"
echo "kubectl krata port-forward: the guest's httpd answered '$got'"

# RBAC on the subresources: bob (a viewer) reads logs but may not exec; alice (an editor) may.
KUBECONFIG=$(cj .kubeconfigs.bob) kubectl krata logs hello >/dev/null || fail "bob (viewer) cannot read logs"
if KUBECONFIG=$(cj .kubeconfigs.bob) kubectl krata exec hello -- true 2>"$out/bob.err"; then fail "bob (viewer) could exec"; fi
grep -q 'Forbidden' "$out/bob.err" || fail "bob's exec was refused without Forbidden: $(cat "$out/bob.err")"
KUBECONFIG=$(cj .kubeconfigs.alice) kubectl krata exec hello -- true || fail "alice (editor) cannot exec"
echo "RBAC: a viewer gets logs and Forbidden for exec; an editor may exec"

# The agent killed with SIGKILL and started again: it adopts the same domain.
x "kill -KILL \$(cat /run/krata/agent.pid)"
start_agent || fail "the agent did not start again"
for i in $(seq 60); do
  [ "$(kubectl krata exec hello -- echo again 2>/dev/null)" = again ] && break
  sleep 1
done
[ "$(kubectl krata exec hello -- echo again)" = again ] || fail "exec after the agent restarted failed"
[ "$(kubectl get guest hello -o 'jsonpath={.status.domid}')" = "$domid" ] || fail "hello's domain changed across the agent's restart"
[ "$(x "xl list | grep -c '^krata\.default\.hello '")" = 1 ] || fail "not exactly one domain for hello: $(x 'xl list')"
echo "agent killed and restarted: domain $domid adopted, exec works again"

# kubectl delete: the domain, loop devices and vifs go, the finalizer is cleared, the Guest is gone.
kubectl delete guest hello shell --timeout=180s >/dev/null || fail "kubectl delete failed"
[ -z "$(kubectl get guests -o name)" ] || fail "Guests left: $(kubectl get guests -o name)"
left() { x "! xl list | grep -qE '^krata[-.]' && [ -z \"\$(losetup -a)\" ] && ! xenstore-exists /local/domain/$domid && ! ip -o link show | grep -q ' vif'"; }
for i in $(seq 20); do left && break; sleep 1; done
left ||
  fail "something was left after delete: $(x "xl list; losetup -a; ip -o link show | grep vif" 2>&1 | tr '\n' ' ')"
echo "kubectl delete: domains, loop devices and vifs gone, finalizers cleared"
