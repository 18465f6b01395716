#!/usr/bin/env bash
# Boots the xenhost (Xen 4.17 + Debian PV dom0 under QEMU/TCG), waits until dom0 is ready, runs
#   boot.sh COMMAND [ARGS...]
# with KRATA_XENHOST_EXEC (exec.sh), KRATA_XENHOST_STATE (per-run dir) and KRATA_XENHOST_SSH_CONFIG
# (`ssh -F $KRATA_XENHOST_SSH_CONFIG xenhost`, for scp or port forwards) in its environment, then
# stops QEMU. Exit status: COMMAND's, or 125 if the host could not be built or booted.
#
# dom0 gets a persistent state disk: a sparse ext4 image in the state dir (KRATA_XENHOST_STATE_DISK_SIZE,
# 2G by default), mounted at /mnt/state. It is the only storage that outlives a power cut:
# KRATA_XENHOST_POWERCUT (powercut.sh) asks this script (SIGUSR1) to SIGKILL QEMU and boot the same
# image with the same disks on the same control port; it returns once dom0 is ready again.
#
# The control channel is SSH to dropbear in dom0 through QEMU's hostfwd on a free 127.0.0.1 port:
# exit status, separate stdout/stderr, stdin, concurrent commands and a real pty for free.
# QEMU never outlives this script: EXIT/INT/TERM/HUP traps stop it, PR_SET_PDEATHSIG kills it if
# this script is SIGKILLed, and a detached `flock` watcher deletes the state dir as soon as neither
# this script nor QEMU holds the state dir's lock any more.
set -euo pipefail
# shellcheck source=test/xenhost/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
[ $# -gt 0 ] || { echo "usage: $0 COMMAND [ARGS...]" >&2; exit 2; }
xh_require qemu-system-x86_64:qemu-system-x86 ssh:openssh-client pgrep:procps setpriv:util-linux \
  mkfs.ext4:e2fsprogs
boot_timeout=${KRATA_XENHOST_BOOT_TIMEOUT:-300}
logdir=${KRATA_XENHOST_LOG_DIR:-$xh_cache/logs}
t0=$SECONDS

[[ $xh_repo != *,* ]] || xh_die "repository path contains a comma: $xh_repo"
state=$(mktemp -d "${TMPDIR:-/tmp}/krata-xenhost.XXXXXX")
exec {lock}>"$state/lock"
flock "$lock"
setsid -f flock "$state/lock" rm -rf "$state" {lock}>&- </dev/null >/dev/null 2>&1
qemu='' master='' child='' ready=''
alive() { local s; s=$(cut -d' ' -f3 "/proc/${1:-none}/stat" 2>/dev/null) && [ "$s" != Z ]; }
# reap PID SECONDS: wait for our child PID, SIGKILLing it if it has not exited in time.
reap() {
  local i
  for ((i = 0; i < $2 * 10; i++)); do alive "$1" || break; sleep 0.1; done
  kill -KILL "$1" 2>/dev/null || true   # (bash may have reaped it already)
  wait "$1" 2>/dev/null || true
}

cleanup() {
  local rc=$?
  set +e
  trap '' INT TERM HUP   # finish cleaning up even when signalled again
  if [ -n "$child" ]; then xh_kill_tree "$child" TERM; reap "$child" 10; fi
  if [ -n "$master" ]; then kill "$master" 2>/dev/null; reap "$master" 5; fi
  if alive "$qemu"; then kill -TERM "$qemu"; reap "$qemu" 10; fi   # nothing in dom0 needs flushing
  if [ "$rc" -ne 0 ] && [ -s "$state/serial.log" ]; then
    mkdir -p "$logdir"
    local log; log=$logdir/serial-$(date +%Y%m%d-%H%M%S)-$$.log
    # (serial-N.log: the boots before each power cut)
    cat $(ls "$state"/serial-*.log 2>/dev/null | sort -t- -k2n) "$state/serial.log" "$state/qemu.log" \
      "$state/ssh-master.log" "$state/failure" >"$log" 2>/dev/null
    [ -n "$ready" ] || { xh_log "last lines of the serial log:"; tail -n 40 "$log" | sed 's/^/  | /' >&2; }
    xh_log "exit status $rc; Xen/dom0 serial log saved as $log"
    [ -s "$state/failure" ] && xh_log "$(cat "$state/failure")"
    ls -1t "$logdir"/serial-*.log | tail -n +21 | xargs -r rm -f
  fi
  rm -rf "$state"
  [ -n "$ready" ] || [ "$rc" -eq 0 ] || [ "$rc" -gt 128 ] || rc=125   # unexpected errors while booting
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP
fail() { echo "boot failed: $*" >"$state/failure"; exit 125; }   # reported last by cleanup

# The image (cached after the first build). In the background so a signal interrupts it at once.
"$xh_dir/build.sh" >"$state/image.path" </dev/null {lock}>&- &
child=$!
wait "$child" || fail "could not build the image"
child=''
image=$(cat "$state/image.path")
ln -s "$image" "$state/image"     # short path without commas for QEMU's multiboot module list

# The state disk: sparse, so its size costs nothing until written.
truncate -s "${KRATA_XENHOST_STATE_DISK_SIZE:-2G}" "$state/state.img"
mkfs.ext4 -q -F -L krata-state "$state/state.img" >/dev/null 2>"$state/mkfs.log" \
  || fail "mkfs.ext4 of the state disk: $(cat "$state/mkfs.log")"

start_qemu() {
  : >"$state/serial.log"
  # Xen options per test/xenhost docs: smap=0 smep=0 are required under TCG, bootscrub=false
  # saves ~1.9 GiB of host RSS. -no-reboot turns a Xen/dom0 crash into a QEMU exit.
  # CPU model qemu64, not max: under `-cpu max`, dom0 processes that run while a PV guest boots get
  # whole pages of their memory zeroed (malloc arenas, V8's heap: SIGSEGV, "corrupted double-linked
  # list", TurboFan errors), with xl-built guests as well as krata-built ones; with qemu64 none of it
  # happens (test/e2e/README.md, "The test bed's CPU model"). KRATA_XENHOST_CPU overrides it.
  setpriv --pdeathsig KILL -- qemu-system-x86_64 \
    -accel tcg -machine q35 -cpu "${KRATA_XENHOST_CPU:-qemu64}" -smp "${KRATA_XENHOST_SMP:-2}" -m "${KRATA_XENHOST_MEM:-3072}" \
    -nodefaults -display none -no-reboot \
    -chardev file,id=con0,path="$state/serial.log" -serial chardev:con0 \
    -kernel "$state/image/xen" \
    -append "console=com1 com1=115200,8n1 dom0_mem=1024M,max:1024M dom0_max_vcpus=2 bootscrub=false smap=0 smep=0 loglvl=all guest_loglvl=all ${KRATA_XENHOST_XEN_ARGS:-}" \
    -initrd "$state/image/vmlinuz console=hvc0 earlyprintk=xen loglevel=4,$state/image/dom0-initrd.zst" \
    -drive file="$state/image/data.sqfs",if=none,id=data,format=raw,readonly=on \
    -device virtio-blk-pci,drive=data \
    -drive file="$state/state.img",if=none,id=state,format=raw \
    -device virtio-blk-pci,drive=state,serial=krata-state \
    -virtfs local,path="$xh_repo",mount_tag=krata,security_model=none,readonly=on \
    -netdev user,id=net0,hostfwd=tcp:127.0.0.1:"$1"-:22 -device virtio-net-pci,netdev=net0,romfile= \
    </dev/null >"$state/qemu.log" 2>&1 &
  qemu=$!
  echo "$qemu" >"$state/qemu.pid"
}

write_ssh_config() {
  cat >"$state/ssh_config" <<EOF
Host xenhost
  HostName 127.0.0.1
  Port $1
  User root
  IdentityFile $image/ssh/id_ed25519
  IdentitiesOnly yes
  UserKnownHostsFile $image/ssh/known_hosts
  HostKeyAlias krata-xenhost
  StrictHostKeyChecking yes
  BatchMode yes
  LogLevel ERROR
  ConnectTimeout 10
  ServerAliveInterval 5
  ServerAliveCountMax 12
  ControlMaster auto
  ControlPath $state/ssh.ctl
  ControlPersist no
EOF
}

# boot_qemu [PORT]: starts QEMU with the control channel on PORT, else on a free-looking port (if another
# process grabs it first QEMU fails to bind and we retry). On failure: returns 1 with the cause in $why.
why=''
boot_qemu() {
  local want=${1:-} _
  qemu=''
  for _ in 1 2 3 4 5 6; do
    if [ -n "$want" ]; then
      port=$want want=''
    else
      port=$((20000 + RANDOM % 40000))
      (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && continue
    fi
    start_qemu "$port"
    while alive "$qemu" && [ ! -s "$state/serial.log" ]; do sleep 0.2; done
    alive "$qemu" && break
    reap "$qemu" 1; qemu=''
    grep -qi forward "$state/qemu.log" || { why="QEMU did not start: $(cat "$state/qemu.log")"; return 1; }
  done
  [ -n "$qemu" ] || { why="no free port for the control channel"; return 1; }
  write_ssh_config "$port"
  xh_log "booting (QEMU pid $qemu, control port $port, serial log $state/serial.log)"
}

# await_ready: waits until dom0 says it is ready, the SSH control master is up and the readiness check
# passes (sets $node_version). On failure: returns 1 with the cause in $why.
await_ready() {
  local deadline=$((SECONDS + boot_timeout))
  until grep -q KRATA-DOM0-READY "$state/serial.log"; do
    alive "$qemu" || { why="QEMU exited during boot"; return 1; }
    ! grep -q KRATA-DOM0-FAILED "$state/serial.log" || { why=$(grep -a -m1 KRATA-DOM0-FAILED "$state/serial.log"); return 1; }
    [ $SECONDS -lt $deadline ] || { why="dom0 not ready after ${boot_timeout}s"; return 1; }
    sleep 0.5
  done
  # One multiplexed SSH connection; every exec.sh is a cheap channel on it.
  until [ -n "$master" ] && ssh -F "$state/ssh_config" -O check xenhost 2>/dev/null; do
    alive "$qemu" || { why="QEMU exited during boot"; return 1; }
    [ $SECONDS -lt $deadline ] || { why="no SSH control channel after ${boot_timeout}s"; return 1; }
    if ! alive "$master"; then
      [ -z "$master" ] || { reap "$master" 1; sleep 0.5; }
      setpriv --pdeathsig TERM -- ssh -F "$state/ssh_config" -M -N xenhost \
        </dev/null 2>>"$state/ssh-master.log" {lock}>&- &
      master=$!
    fi
    sleep 0.3
  done
  local check='pidof xenstored >/dev/null || { echo "xenstored not running"; exit 1; }
for d in privcmd evtchn gntdev xenbus; do [ -c /dev/xen/$d ] || { echo "/dev/xen/$d missing"; exit 1; }; done
grep -q " /mnt/state ext4 " /proc/mounts || { echo "the state disk is not mounted"; exit 1; }
node --version'
  node_version=$(KRATA_XENHOST_STATE=$state "$xh_dir/exec.sh" "$check" 2>&1 </dev/null) \
    || { why="readiness check: $node_version"; return 1; }
}

# power_cut: SIGKILL QEMU (dom0 gets no shutdown; its page cache is lost) and boot the same image and
# disks again, on the same control port if it is still free. A write survives if dom0 had handed it to
# the virtual disk: QEMU puts what it accepts into the host's file at once, so this does not model a
# drive that loses its own volatile cache. Result ("ok SECONDS" or "failed: CAUSE") in
# $state/powercut.result, for powercut.sh.
cuts=0
power_cut() {
  local t=$SECONDS result
  cuts=$((cuts + 1))
  xh_log "power cut $cuts: SIGKILL QEMU (pid $qemu)"
  kill -KILL "$qemu" 2>/dev/null || true; reap "$qemu" 5; qemu=''
  if [ -n "$master" ]; then kill "$master" 2>/dev/null || true; reap "$master" 5; master=''; fi
  rm -f "$state/ssh.ctl"
  mv "$state/serial.log" "$state/serial-$cuts.log"
  if boot_qemu "$port" && await_ready; then
    result="ok $((SECONDS - t))"
    xh_log "power cut $cuts: dom0 ready again after $((SECONDS - t))s"
  else
    result="failed: $why"
    xh_log "power cut $cuts: the host did not come back: $why"
    echo "power cut $cuts: $why" >"$state/failure"
  fi
  echo "$result" >"$state/powercut.result.tmp" && mv "$state/powercut.result.tmp" "$state/powercut.result"
}

boot_qemu || fail "$why"
await_ready || fail "$why"
ready=1
xh_log "ready after $((SECONDS - t0))s (dom0 node $node_version; KRATA_XENHOST_STATE=$state); running: $*"

export KRATA_XENHOST_STATE=$state KRATA_XENHOST_EXEC=$xh_dir/exec.sh KRATA_XENHOST_SSH_CONFIG=$state/ssh_config \
  KRATA_XENHOST_POWERCUT=$xh_dir/powercut.sh
echo $$ >"$state/boot.pid"
cut_requested=''
trap 'cut_requested=1' USR1   # from powercut.sh
"$@" <&0 {lock}>&- &   # background + wait, so the traps run at once on a signal
child=$!
while :; do
  rc=0
  wait "$child" || rc=$?
  [ -n "$cut_requested" ] || break
  cut_requested=''
  power_cut
done
child=''
exit "$rc"
