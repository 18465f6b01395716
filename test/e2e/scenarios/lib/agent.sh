# The node agent in dom0 for scenarios that drive it (sourced, not run: 110, 120, 130).
# Defines x() (a command in dom0), $k (kratactl in dom0), $agent (the agent's command line in dom0: a
# scenario appends its own flags), $out and $repo, and fail() (which shows the agent's log, the Guests,
# the domains and Xen's log, and the events and console of each Guest named in $fail_logs if a scenario sets it).
# dom0's busybox has no pkill/pgrep: the agent's pid is kept in a file.
x() { "$KRATA_XENHOST_EXEC" "$@" </dev/null; }
k="node /krata/dist/kratactl/kratactl.cjs"
agent="node /krata/dist/node-agent/main.js --state /var/lib/krata --kernel /opt/xenhost/guest/vmlinux --initrd /tmp/krata-initrd.cpio --metrics 127.0.0.1:9477"
out=${KRATA_E2E_ARTIFACTS:-$(mktemp -d)}
repo=${KRATA_REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../../../.." && pwd)}
fail_logs=
fail() {
  echo "FAIL: $*" >&2
  local g shown=''
  for g in $fail_logs; do shown="$shown echo '== $g'; $k describe guest $g | tail -15; $k logs $g --tail 40;"; done
  x "tail -60 /tmp/agent.log; $k get -o wide; $shown xl list; echo '== xl dmesg'; xl dmesg | tail -20" >&2 || true
  exit 1
}

# stage_busybox NAME [REF]: guest-init built and its initrd in dom0 (/tmp/krata-initrd.cpio, the
# agent's --initrd), and busybox (REF, default e2e/busybox:1) as a docker save archive in
# $stage = guest-init/target/e2e-NAME, which dom0 sees under /krata. Sets $stage.
stage_busybox() {
  . "$repo/test/e2e/scenarios/lib/guest-init.sh"
  stage=$repo/guest-init/target/e2e-$1
  gi_stage_image "$stage"
  node "$repo/dist/test/e2e/busybox-image.js" "$stage/busybox.tar" "${2:-e2e/busybox:1}"
  gi_initrd /tmp/krata-initrd.cpio >"$out/initrd.json" || fail "building the initrd failed"
}

# import_busybox: stage_busybox's image into the agent's store (/var/lib/krata), offline.
import_busybox() {
  x "$k image import --offline --store /var/lib/krata -q /krata/${stage#"$repo"/}/busybox.tar" >"$out/import.txt" || fail "image import failed"
}

# start_agent: starts $agent (log /tmp/agent.log) and waits until its API answers.
start_agent() { x "mkdir -p /run/krata; (setsid $agent >>/tmp/agent.log 2>&1 </dev/null & echo \$! >/run/krata/agent.pid); for i in \$(seq 600); do [ -S /run/krata/agent.sock ] && $k host status >/dev/null 2>&1 && exit 0; sleep 0.2; done; exit 1"; }

# stop_agent: SIGTERM, and waits up to 10 s for it to end.
stop_agent() { x "p=\$(cat /run/krata/agent.pid); kill -TERM \$p || true; for i in \$(seq 100); do kill -0 \$p 2>/dev/null || exit 0; sleep 0.1; done; exit 1"; }

# agent_cleanup [DIR...]: kills the agent and every process whose pid file is in DIR, destroys krata's
# domains (krata.NS.NAME and krata-UID), removes backends of gone domains (a killed agent leaves them),
# releases loop devices (busybox's losetup has no -D), removes the state and the DIRs.
agent_cleanup() {
  local dirs="$*"
  x "[ -f /run/krata/agent.pid ] && kill -KILL \$(cat /run/krata/agent.pid); for d in $dirs; do for f in \$d/*.pid; do [ -f \$f ] && kill \$(cat \$f); done; done; for d in \$(xl list | awk '/^krata[-.]/ {print \$2}'); do xl destroy \$d; done; for t in vbd vif console; do for d in \$(xenstore-list /local/domain/0/backend/\$t 2>/dev/null); do xl list \$d >/dev/null 2>&1 || xenstore-rm /local/domain/0/backend/\$t/\$d; done; done; for l in \$(losetup -a | cut -d: -f1); do losetup -d \$l; done; rm -rf /var/lib/krata /run/krata $dirs" >/dev/null 2>&1 || true
}

# running NAME [TRIES]: waits (0.2 s between tries, 600 by default) until the Guest's phase is Running.
# One kratactl call a try, read with grep: every node started in dom0 costs seconds under TCG.
running() { x "for i in \$(seq ${2:-600}); do $k get $1 -o json | grep -q '\"phase\": \"Running\"' && exit 0; sleep 0.2; done; exit 1"; }

# host_kratactl DOM0_PORT RUN_DIR: `kh` runs kratactl on the host (fast to start; a real terminal through
# `script`), reaching the agent in dom0: host socket → relay → SSH forward (dom0's dropbear forwards TCP
# only) → a relay in dom0 on DOM0_PORT (pid file in RUN_DIR, which agent_cleanup RUN_DIR kills) → the
# agent's socket. The host relay's pid is added to `relays`: kill those in the scenario's cleanup.
kh() { node "$repo/dist/kratactl/main.js" "$@"; }
host_kratactl() {
  local dom0_port=$1 dir=$2 port
  x "mkdir -p $dir; (setsid node /krata/dist/test/e2e/dom0/socket-relay.js 127.0.0.1:$dom0_port /run/krata/agent.sock \
     >$dir/relay.log 2>&1 </dev/null & echo \$! >$dir/relay.pid)"
  port=$(node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")
  ssh -F "$KRATA_XENHOST_SSH_CONFIG" -O forward -L "127.0.0.1:$port:127.0.0.1:$dom0_port" xenhost 2>/dev/null || fail "the SSH forward failed"
  export KRATA_AGENT_SOCKET=$out/agent.sock
  node "$repo/dist/test/e2e/dom0/socket-relay.js" "$KRATA_AGENT_SOCKET" "127.0.0.1:$port" >"$out/relay.log" 2>&1 &
  relays+=($!)
  for i in $(seq 150); do kh host status >/dev/null 2>&1 && break; sleep 0.2; done
  kh host status >/dev/null || fail "kratactl on the host cannot reach the agent"
}
