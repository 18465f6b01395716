#!/usr/bin/env bash
# Runs in dom0: what krata left behind that nothing live owns. Used by the fault scenarios (chaos,
# powercut, diskfull) after the agent has converged:
#   bash /krata/test/e2e/dom0/leaks.sh STATE [EXPECTED_KRATA_DOMAINS]
# Prints one "LEAK: ..." line per finding and a one-line summary; exits 1 if anything leaked (or the
# count of krata domains is not EXPECTED_KRATA_DOMAINS when given: N, or MIN-MAX while some Guests
# crash-loop and their domains come and go), else 0.
set -uo pipefail
state=${1:?usage: leaks.sh STATE [EXPECTED_KRATA_DOMAINS]}
expected=${2:-}
leaks=0
leak() { echo "LEAK: $*"; leaks=$((leaks + 1)); }

# Live domains (id, name, uuid) as Xen and xenstore see them.
declare -A live=() uuids=()
while read -r name id _; do
  [ "$id" = 0 ] && continue
  live[$id]=$name
done < <(xl list 2>/dev/null | awk 'NR > 1 {print $1, $2}')
# One xenstore-read per domain (each process started in dom0 costs a second or more when the host is
# loaded; xenstore-ls a round trip per node): it stops at the first missing key, so the keys come in order.
declare -A names=() served=()
krata=0
for id in "${!live[@]}"; do
  case ${live[$id]} in krata.* | krata-*) krata=$((krata + 1)) ;; esac
  h=/local/domain/$id
  mapfile -t v < <(xenstore-read "$h/name" "$h/vm" "$h/krata/loops" 2>/dev/null)
  [ -n "${v[0]:-}" ] && names[$id]=${v[0]}
  [ -n "${v[1]:-}" ] && uuids[${v[1]#/vm/}]=1
  v2=${v[2]:-} # no krata/loops yet: a domain being built
  for l in ${v2//,/ }; do served[$l]=1; done
done
if [ -n "$expected" ] && { [ "$krata" -lt "${expected%-*}" ] || [ "$krata" -gt "${expected#*-}" ]; }; then
  leak "$krata krata domains, expected $expected: $(for id in "${!live[@]}"; do printf '%s(%s) ' "${live[$id]}" "$id"; done)"
fi
# A domain without a xenstore name: a build cut before its xenstore entries (krata's keys) existed.
for id in "${!live[@]}"; do
  [ -n "${names[$id]:-}" ] || leak "domain $id (${live[$id]}) has no xenstore name: an interrupted build?"
done
# Two domains of one name: a Guest duplicated.
dups=$(for id in "${!live[@]}"; do echo "${live[$id]}"; done | sort | uniq -d)
[ -z "$dups" ] || leak "domains sharing a name: $dups"

# xenstore: homes, backend directories and /vm entries of domains that are gone.
for id in $(xenstore-list /local/domain 2>/dev/null); do
  [ "$id" = 0 ] || [ -n "${live[$id]:-}" ] || leak "xenstore /local/domain/$id of a domain that is gone"
done
for type in $(xenstore-list /local/domain/0/backend 2>/dev/null); do
  for id in $(xenstore-list "/local/domain/0/backend/$type" 2>/dev/null); do
    [ -n "${live[$id]:-}" ] || leak "xenstore /local/domain/0/backend/$type/$id of a domain that is gone"
  done
done
for uuid in $(xenstore-list /vm 2>/dev/null); do
  [ -n "${uuids[$uuid]:-}" ] || leak "xenstore /vm/$uuid of no live domain"
done

# Network interfaces of domains that are gone.
for dev in /sys/class/net/vif*; do
  [ -e "$dev" ] || continue
  n=${dev##*/vif}
  [ -n "${live[${n%%.*}]:-}" ] || leak "interface ${dev##*/} of a domain that is gone"
done

# Loop devices over krata's files: each must be one a live domain's krata/loops records (read above).
# (sysfs, not `losetup -a`: busybox's cuts the file name to its last 64 characters)
loops=0
for b in /sys/block/loop*/loop/backing_file; do
  [ -f "$b" ] || continue
  file=$(cat "$b")
  case $file in "$state"/*) ;; *) continue ;; esac
  loops=$((loops + 1))
  loopdev=/dev/$(basename "$(dirname "$(dirname "$b")")")
  [ -n "${served[$loopdev]:-}" ] || leak "loop device not serving a live domain: $loopdev over $file"
done

# Config disks: the launch config rides on the initrd; an older agent's disks go when the agent starts.
[ ! -e "$state/disks" ] || leak "config disks of an older agent left in $state/disks"

# Temporaries: interrupted atomic writes, image jobs.
while IFS= read -r f; do leak "temporary file $f"; done < <(find "$state" -name '*.tmp-*' 2>/dev/null)
while IFS= read -r f; do leak "image job left in $f"; done < <(find "$state/images/.partial" -mindepth 1 -maxdepth 1 2>/dev/null)

# kratanet: one process, the running agent's child (none left over from a killed agent).
agent=$(cat /run/krata/agent.pid 2>/dev/null || true)
# (One grep over every process: a fork per process costs seconds under emulation. [m] keeps grep
# from matching its own command line.)
for f in $(grep -ls 'node-agent/net/[m]ain\.js' /proc/[0-9]*/cmdline 2>/dev/null); do
  p=${f%/cmdline}
  read -r _ _ _ ppid _ <"$p/stat" 2>/dev/null || continue
  [ -n "$agent" ] && [ "$ppid" = "$agent" ] || leak "kratanet pid ${p#/proc/} not the agent's child (parent $ppid): $(tr '\0' ' ' <"$f")"
done

echo "leaks: $leaks found ($krata krata domains, $loops loop devices)"
[ "$leaks" -eq 0 ]
