#!/usr/bin/env bash
# Isolation on a real Xen host (issue 16): the node agent runs as in 110/120 (no --host-loopback, no
# allow rules) with two Guests. From inside guest a: dom0's own address (its SSH, an httpd and a real
# redis-server with protected mode off, as manifests/base ran it) is refused, so is Redis at the
# gateway address, and so is QEMU's user-network gateway 10.0.2.2 (on dom0's subnet); guest b's httpd
# is out of reach; while a listener on the QEMU host, at the host's own address (routed by dom0's
# default route, through QEMU's user network), is reached. dom0 itself reaches every one of them (the
# controls), and the agent's log names the rule of a refusal. Deleting both leaves no domain or vif.
set -euo pipefail
. "$(dirname "$0")/lib/agent.sh"
fail_logs=a
tmp=/tmp/krata-e2e-130           # dom0: redis and httpd files
httpport=18090                   # dom0's httpd on every address
bport=18001                      # guest b's httpd, published on dom0 (the control that b serves)
marker="KRATA-E2E-WORLD-$RANDOM$RANDOM"
listener=
cleanup() { agent_cleanup $tmp; }
trap '[ -n "$listener" ] && kill "$listener" 2>/dev/null; cleanup' EXIT

# "The outside world": a listener on this machine (the QEMU host) at its own address, which dom0
# reaches through its default route (QEMU's user network connects from this machine).
hostip=$(hostname -I 2>/dev/null | tr ' ' '\n' | grep -E '^[0-9]+(\.[0-9]+){3}$' | grep -vE '^(127|10\.0\.2|10\.75)\.' | head -n1 || true)
[ -n "$hostip" ] || { echo "SKIP: this machine has no IPv4 address outside 10.0.2.0/24 for the guest to reach" >&2; exit 77; }
node -e "const s = require('net').createServer((c) => c.on('error', () => {}).end(process.argv[1] + '\n')).listen(0, '0.0.0.0', () => console.log(s.address().port))" "$marker" >"$out/listener.port" &
listener=$!
for _ in $(seq 50); do [ -s "$out/listener.port" ] && break; sleep 0.1; done
hport=$(cat "$out/listener.port")
[ -n "$hport" ] || fail "the listener on this machine did not start"

stage_busybox isolation
cleanup
import_busybox

# dom0's services on every address: a Redis as the old manifests ran it, and an httpd.
dom0ip=$(x "node -p \"Object.values(require('os').networkInterfaces()).flat().find((a) => a.family === 'IPv4' && !a.internal)?.address ?? ''\"")
[ -n "$dom0ip" ] || fail "dom0 has no global IPv4 address"
x "command -v redis-server >/dev/null" || fail "no redis-server in dom0 (test/xenhost/build.sh copies the host's)"
x "mkdir -p $tmp/www && echo dom0-httpd >$tmp/www/index.html && (busybox httpd -f -p $httpport -h $tmp/www </dev/null >/dev/null 2>&1 & echo \$! >$tmp/httpd.pid) && redis-server --port 6379 --protected-mode no --save '' --appendonly no --dir $tmp --daemonize yes --pidfile $tmp/redis.pid --logfile $tmp/redis.log" \
  || fail "starting dom0's httpd and Redis failed"
# The controls: dom0 reaches all of them, and QEMU's user network reaches this machine both ways.
x "for i in \$(seq 50); do echo PING | nc -w 2 $dom0ip 6379 2>/dev/null | grep -q PONG && exit 0; sleep 0.2; done; exit 1" || fail "dom0 does not reach its own Redis at $dom0ip:6379"
x "wget -q -O- http://$dom0ip:$httpport/ | grep -q dom0-httpd" || fail "dom0 does not reach its httpd at $dom0ip:$httpport"
x "echo PING | nc -w 5 $hostip $hport | grep -q $marker" || fail "dom0 does not reach this machine at $hostip:$hport"
x "echo PING | nc -w 5 10.0.2.2 $hport | grep -q $marker" || fail "dom0 does not reach this machine at 10.0.2.2:$hport"

log0=$(x "cat /tmp/agent.log 2>/dev/null | wc -l")
start_agent || fail "the agent did not start"

# Guest b: an httpd on port 8000, published on dom0's $bport.
cat >"$stage/b.yaml" <<YAML
apiVersion: krata.dev/v1alpha1
kind: Guest
metadata: {name: b}
spec:
  image: e2e/busybox:1
  command: [sh, -c, 'busybox mkdir -p /tmp/www && echo guest-b >/tmp/www/index.html && exec busybox httpd -f -p 8000 -h /tmp/www']
  resources: {cpus: 1, memory: 96Mi}
  network:
    ports: [{containerPort: 8000, hostPort: $bport}]
  terminationGracePeriodSeconds: 5
YAML
x "$k apply -f /krata/guest-init/target/e2e-isolation/b.yaml" >"$out/apply-b.txt" || fail "apply b failed"
running b || fail "b did not reach Running"
x "$k get b -o json" >"$out/b.json"
bip=$(node -p "require('$out/b.json').status.addresses.ipv4")
bdom=$(node -p "require('$out/b.json').status.domid")
x "for i in \$(seq 300); do wget -q -O- http://127.0.0.1:$bport/ 2>/dev/null | grep -q guest-b && exit 0; sleep 0.2; done; exit 1" \
  || fail "b's httpd is not reached through its published port $bport (the control)"

# Guest a: each probe sends PING and prints what came back (a second apart: the agent logs at most one
# refusal a second per guest).
cat >"$stage/a.yaml" <<YAML
apiVersion: krata.dev/v1alpha1
kind: Guest
metadata: {name: a}
spec:
  image: e2e/busybox:1
  command:
  - sh
  - -c
  - |
    b=busybox
    p() { o=\$(echo PING | \$b timeout 10 \$b nc -w 3 \$2 \$3 2>&1); echo "ISO \$1 [\$(echo \$o | \$b tr -d '\r\n' | \$b head -c 120)]"; \$b sleep 1.2; }
    p dom0-ssh $dom0ip 22
    p dom0-redis $dom0ip 6379
    p dom0-http $dom0ip $httpport
    p gateway-redis 10.75.0.1 6379
    p slirp-gateway 10.0.2.2 $hport
    p guest-b $bip 8000
    p world $hostip $hport
    echo ISO-DONE
    exec \$b sleep 3600
  resources: {cpus: 1, memory: 96Mi}
  network: {}
  terminationGracePeriodSeconds: 5
YAML
x "$k apply -f /krata/guest-init/target/e2e-isolation/a.yaml" >"$out/apply-a.txt" || fail "apply a failed"
running a || fail "a did not reach Running"
x "$k get a -o json" >"$out/a.json"
adom=$(node -p "require('$out/a.json').status.domid")
x "for i in \$(seq 900); do $k logs a | grep -q -e ISO-DONE -e KRATA-EXIT && exit 0; sleep 0.2; done; exit 1" || true
x "$k logs a" | tr -d '\r' >"$out/guest-a.log" || true
grep -q ISO-DONE "$out/guest-a.log" || { cat "$out/guest-a.log" >&2; fail "guest a did not finish its probes (see its log above)"; }
line() { grep "^ISO $1 " "$out/guest-a.log" || echo "ISO $1 (missing)"; }
said() { line "$1" | sed 's/^ISO [^ ]* //'; }   # what came back, without the probe's name
grep -q "^ISO world .*$marker" "$out/guest-a.log" || fail "the guest does not reach the outside world at $hostip:$hport: $(line world)"
for probe in dom0-ssh dom0-redis dom0-http gateway-redis slirp-gateway; do
  # Refused by kratanet at once (an RST), and nothing came back.
  said "$probe" | grep -qi 'refused' || fail "$probe was not refused: $(line "$probe")"
  said "$probe" | grep -qE "SSH-|PONG|HTTP/|$marker" && fail "$probe answered: $(line "$probe")"
done
# Another guest's address is on the guest's own link: nobody answers its ARP (no RST to wait for).
said guest-b | grep -qE 'HTTP/|guest-b' && fail "guest a reached guest b: $(line guest-b)"
x "tail -n +$((log0 + 1)) /tmp/agent.log" >"$out/agent.log" || true
grep -q "refused TCP to $dom0ip:6379: dom0's own address" "$out/agent.log" || fail "the agent log does not name the rule refusing Redis"
grep -q "refused TCP to 10.0.2.2:$hport: node network 10.0.2.0/24" "$out/agent.log" || fail "the agent log does not name the rule refusing 10.0.2.2"
sed -n 's/^ISO /  /p' "$out/guest-a.log"

# Delete: no domain, no vif left.
x "$k delete guest a b --wait" >"$out/delete.txt" || fail "delete --wait failed"
x "for i in \$(seq 50); do ! xl list | grep -qE '^krata[-.]' && [ ! -e /sys/class/net/vif$adom.0 ] && [ ! -e /sys/class/net/vif$bdom.0 ] && exit 0; sleep 0.2; done; exit 1" \
  || fail "something was left after delete: $(x "xl list; ls /sys/class/net" 2>&1 | tr '\n' ' ')"
stop_agent || true
echo "isolation: guest a reaches $hostip (the world) but not dom0 ($dom0ip: ssh, httpd, Redis), Redis at its gateway, 10.0.2.2 or guest b ($bip); delete leaves no domain or vif"
