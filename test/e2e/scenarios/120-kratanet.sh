#!/usr/bin/env bash
# kratanet, the guests' userspace network, on a real Xen host: the node agent (with --host-loopback)
# forks kratanet, which serves a Guest's netback interface vif<domid>.0. From inside the guest: ping
# of the gateway over IPv4 and IPv6, HTTP to dom0's loopback at the gateway address (IPv4 and IPv6), a
# 20 MiB download with a matching checksum; from dom0: the guest's httpd through a published port
# (a small file and an 8 MiB one, checksummed); delete --wait leaves no domain, vif, listener or
# packet socket, and kratanet (the agent's child, not restarted) keeps running.
set -euo pipefail
. "$(dirname "$0")/lib/agent.sh"
agent="$agent --host-loopback"
fail_logs=net
www=/tmp/krata-e2e-120        # dom0: the files dom0's httpd serves, and its pid files
port4=18080 port6=18081       # dom0's httpd on 127.0.0.1 and on ::1
hostport=18000                # the guest's httpd, published on dom0
marker="KRATA-E2E-MARKER-$RANDOM$RANDOM"
cleanup() { agent_cleanup $www; }
trap cleanup EXIT
# kratanet: the agent's child running node-agent/net/main.js (pid; empty when there is none).
kratanet_pid() { x "a=\$(cat /run/krata/agent.pid); for p in /proc/[0-9]*; do tr '\\0' ' ' <\$p/cmdline 2>/dev/null | grep -q 'node-agent/net/main.js' || continue; [ \"\$(awk '{print \$4}' \$p/stat)\" = \"\$a\" ] && echo \${p#/proc/}; done; true"; }
# The packet sockets a process holds: lines of /proc/net/packet whose inode is one of its fds.
packet_sockets() { x "for f in /proc/$1/fd/*; do readlink \$f; done 2>/dev/null | sed -n 's/^socket:\\[\\([0-9]*\\)\\]\$/\\1/p' >/tmp/krata-e2e-120.inodes; awk 'NR == FNR {s[\$1] = 1; next} FNR > 1 && (\$9 in s)' /tmp/krata-e2e-120.inodes /proc/net/packet"; }

# The image and initrd: as scenario 110 (busybox from a docker save archive, krata's initrd).
stage_busybox kratanet
cleanup
import_busybox

# dom0's loopback services: busybox httpd on 127.0.0.1 and ::1, a marker file and 20 MiB of random bytes.
x "mkdir -p $www/www && echo $marker >$www/www/marker.txt && dd if=/dev/urandom of=$www/www/big.bin bs=1M count=20 2>/dev/null && sha256sum $www/www/big.bin | cut -d' ' -f1 >$www/big.sha256" \
  || fail "staging dom0's files failed"
x "(busybox httpd -f -p 127.0.0.1:$port4 -h $www/www </dev/null >$www/httpd4.log 2>&1 & echo \$! >$www/httpd4.pid); (busybox httpd -f -p '[::1]:$port6' -h $www/www </dev/null >$www/httpd6.log 2>&1 & echo \$! >$www/httpd6.pid); for i in \$(seq 50); do wget -q -O- http://127.0.0.1:$port4/marker.txt | grep -q $marker && wget -q -O- 'http://[::1]:$port6/marker.txt' | grep -q $marker && exit 0; sleep 0.1; done; exit 1" \
  || fail "dom0's httpd does not serve on 127.0.0.1:$port4 and [::1]:$port6"
big_sha=$(x "cat $www/big.sha256")

log0=$(x "cat /tmp/agent.log 2>/dev/null | wc -l")   # this run's part of the agent log starts after it
start_agent || fail "the agent did not start"
kpid=$(kratanet_pid)
[ -n "$kpid" ] || fail "the agent has no kratanet child"

# The guest: ping the gateway (v4, v6), fetch from dom0's loopback at the gateway address, download
# 20 MiB and print its checksum, then serve 8 MiB of its own random bytes with httpd on port 8000.
cat >"$stage/net.yaml" <<YAML
apiVersion: krata.dev/v1alpha1
kind: Guest
metadata: {name: net}
spec:
  image: e2e/busybox:1
  command:
  - sh
  - -c
  - |
    b=busybox
    if ping -c 2 10.75.0.1; then echo NET-PING4-OK; else echo NET-PING4-FAILED; fi
    if ping -6 -c 2 fdd4:1476:6c7e::1; then echo NET-PING6-OK; else echo NET-PING6-FAILED; fi
    echo "NET-WGET4 \$(\$b timeout 20 wget -q -O - http://10.75.0.1:$port4/marker.txt)"
    echo "NET-WGET6 \$(\$b timeout 20 wget -q -O - 'http://[fdd4:1476:6c7e::1]:$port6/marker.txt')"
    t0=\$(\$b date +%s)
    s=\$(\$b timeout 60 wget -q -O - http://10.75.0.1:$port4/big.bin | \$b sha256sum | \$b cut -d' ' -f1)
    echo "NET-BIG-IN \$s \$((\$(\$b date +%s) - t0))s"
    \$b mkdir -p /tmp/www
    echo GUEST-HTTPD-$marker >/tmp/www/hello.txt
    \$b dd if=/dev/urandom of=/tmp/www/big.bin bs=1M count=8 2>/dev/null
    echo "NET-BIG-OUT \$(\$b sha256sum /tmp/www/big.bin | \$b cut -d' ' -f1)"
    echo NET-HTTPD-START
    exec \$b httpd -f -p 8000 -h /tmp/www
  resources: {cpus: 1, memory: 128Mi}
  network:
    ports: [{containerPort: 8000, hostPort: $hostport}]
  terminationGracePeriodSeconds: 5
YAML
x "$k apply -f /krata/guest-init/target/e2e-kratanet/net.yaml" >"$out/apply.txt" || fail "apply failed"
running net || fail "net did not reach Running"
x "$k get net -o json" >"$out/net.json"
domid=$(node -p "require('$out/net.json').status.domid")
vif=vif$domid.0
x "[ -e /sys/class/net/$vif ]" || fail "no $vif in dom0"

# The guest's own view, through its console log: everything up to the httpd.
t=$(date +%s)
x "for i in \$(seq 900); do $k logs net | grep -q -e NET-HTTPD-START -e KRATA-EXIT && exit 0; sleep 0.2; done; exit 1" || true
x "$k logs net" | tr -d '\r' >"$out/guest.log" || true   # (the console ends lines with CR LF)
grep -q NET-HTTPD-START "$out/guest.log" || { cat "$out/guest.log" >&2; fail "the guest did not get to its httpd (see its log above)"; }
grep -q '^NET-PING4-OK' "$out/guest.log" || fail "ping of the IPv4 gateway failed"
grep -q '^NET-PING6-OK' "$out/guest.log" || fail "ping of the IPv6 gateway failed"
grep -q "^NET-WGET4 $marker" "$out/guest.log" || fail "HTTP from the guest to dom0's 127.0.0.1 (at 10.75.0.1) failed"
grep -q "^NET-WGET6 $marker" "$out/guest.log" || fail "HTTP from the guest to dom0's ::1 (at fdd4:1476:6c7e::1) failed"
grep -q "^NET-BIG-IN $big_sha " "$out/guest.log" || fail "20 MiB from dom0 to the guest: checksum $(grep NET-BIG-IN "$out/guest.log"), want $big_sha"
echo "guest: pings, wget over IPv4 and IPv6, 20 MiB in: $(grep '^NET-BIG-IN' "$out/guest.log" | cut -d' ' -f3) (guest ready $(($(date +%s) - t)) s after Running)"

# Inbound: dom0 → published port 18000 → the guest's httpd.
x "netstat -ltn | grep -q ':$hostport '" || fail "nothing listens on port $hostport in dom0"
x "for i in \$(seq 50); do timeout 10 wget -q -O- http://127.0.0.1:$hostport/hello.txt 2>/dev/null | grep -q GUEST-HTTPD-$marker && exit 0; sleep 0.2; done; exit 1" \
  || fail "dom0 does not reach the guest's httpd at 127.0.0.1:$hostport"
out_sha=$(grep '^NET-BIG-OUT' "$out/guest.log" | cut -d' ' -f2)
t0=$(date +%s%N)
got=$(x "timeout 60 wget -q -O- http://127.0.0.1:$hostport/big.bin | sha256sum | cut -d' ' -f1")
echo "dom0: 8 MiB out of the guest through port $hostport in $((($(date +%s%N) - t0) / 1000000)) ms"
[ -n "$out_sha" ] && [ "$got" = "$out_sha" ] || fail "8 MiB from the guest to dom0: checksum $got, want $out_sha"

# The vif's counters (dom0's RX = frames from the guest): an average above 1514 bytes means the guest
# sent GSO super-frames (its offloads are on and kratanet took them).
x "cat /sys/class/net/$vif/statistics/rx_bytes /sys/class/net/$vif/statistics/rx_packets /sys/class/net/$vif/statistics/tx_bytes /sys/class/net/$vif/statistics/tx_packets" >"$out/vif-stats.txt" || true
echo "$vif: $(awk 'NR == 1 {rb = $1} NR == 2 {rp = $1} NR == 3 {tb = $1} NR == 4 {tp = $1} END {printf "from the guest %d frames, %d bytes on average; to the guest %d frames, %d bytes on average", rp, rp ? rb / rp : 0, tp, tp ? tb / tp : 0}' "$out/vif-stats.txt")"

# kratanet's side while the guest runs: a packet socket on the vif.
packet_sockets "$kpid" >"$out/packet-before.txt"
[ -s "$out/packet-before.txt" ] || fail "kratanet ($kpid) holds no packet socket while the guest runs"

# Delete: no domain, no vif, no listener on 18000, no packet socket; kratanet keeps running.
x "$k delete guest net --wait" >"$out/delete.txt" || fail "delete --wait failed"
x "for i in \$(seq 50); do ! xl list | grep -qE '^krata[-.]' && [ ! -e /sys/class/net/$vif ] && ! netstat -ltn | grep -q ':$hostport ' && exit 0; sleep 0.2; done; exit 1" \
  || fail "something was left after delete: $(x "xl list; ls /sys/class/net; netstat -ltn" 2>&1 | tr '\n' ' ')"
x "for i in \$(seq 50); do tail -n +$((log0 + 1)) /tmp/agent.log | grep -q 'kratanet: guest default/net: stopped' && exit 0; sleep 0.2; done; exit 1" \
  || fail "kratanet did not say it stopped the guest's backend"
[ "$(kratanet_pid)" = "$kpid" ] || fail "kratanet is not the same child after delete (was $kpid, now '$(kratanet_pid)')"
packet_sockets "$kpid" >"$out/packet-after.txt"
[ ! -s "$out/packet-after.txt" ] || fail "kratanet still holds packet sockets after delete: $(cat "$out/packet-after.txt")"
x "tail -n +$((log0 + 1)) /tmp/agent.log" >"$out/agent.log" || true
stop_agent || true
echo "kratanet: gateway pings (v4, v6), guest → dom0 loopback over HTTP (v4, v6, 20 MiB), published port (8 MiB), delete leaves no domain, vif, listener or packet socket"
