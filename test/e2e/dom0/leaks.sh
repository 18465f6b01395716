#!/usr/bin/env bash
# Runs in dom0: what krata left behind that nothing live owns. Used by the fault scenarios (chaos,
# powercut, diskfull) after the agent has converged:
#   bash /krata/test/e2e/dom0/leaks.sh STATE [EXPECTED_KRATA_DOMAINS]
# Prints one "LEAK: ..." line per finding and a one-line summary; exits 1 if anything leaked (or the
# count of krata domains is not EXPECTED_KRATA_DOMAINS when given), else 0.
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
krata=0
for id in "${!live[@]}"; do
  case ${live[$id]} in krata.* | krata-*) krata=$((krata + 1)) ;; esac
  vm=$(xenstore-read "/local/domain/$id/vm" 2>/dev/null) && uuids[${vm#/vm/}]=1
done
if [ -n "$expected" ] && [ "$krata" != "$expected" ]; then
  leak "$krata krata domains, expected $expected: $(for id in "${!live[@]}"; do printf '%s(%s) ' "${live[$id]}" "$id"; done)"
fi
# A domain without a xenstore name: a build cut before its xenstore entries (krata's keys) existed.
for id in "${!live[@]}"; do
  xenstore-read "/local/domain/$id/name" >/dev/null 2>&1 || leak "domain $id (${live[$id]}) has no xenstore name: an interrupted build?"
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

# Loop devices over krata's files: each must back a vbd of a live domain.
declare -A served=()
for type in vbd qdisk; do
  for id in $(xenstore-list "/local/domain/0/backend/$type" 2>/dev/null); do
    for dev in $(xenstore-list "/local/domain/0/backend/$type/$id" 2>/dev/null); do
      p=$(xenstore-read "/local/domain/0/backend/$type/$id/$dev/params" 2>/dev/null) && served[$p]=1
    done
  done
done
while IFS= read -r line; do
  [ -n "$line" ] || continue
  loopdev=${line%%:*}
  case $line in *"$state"*) ;; *) continue ;; esac
  [ -n "${served[$loopdev]:-}" ] || leak "loop device not serving a live domain: $line"
done < <(losetup -a 2>/dev/null)

# Config disks: one per live krata domain at most.
disks=$(find "$state/disks" -maxdepth 1 -type f 2>/dev/null | wc -l)
[ "$disks" -le "$krata" ] || leak "$disks config disks in $state/disks for $krata krata domains: $(ls "$state/disks" | tr '\n' ' ')"

# Temporaries: interrupted atomic writes, image jobs.
while IFS= read -r f; do leak "temporary file $f"; done < <(find "$state" -name '*.tmp-*' 2>/dev/null)
while IFS= read -r f; do leak "image job left in $f"; done < <(find "$state/images/.partial" -mindepth 1 -maxdepth 1 2>/dev/null)

# kratanet: one process, the running agent's child (none left over from a killed agent).
agent=$(cat /run/krata/agent.pid 2>/dev/null || true)
for p in /proc/[0-9]*; do
  args=$(tr '\0' ' ' <"$p/cmdline" 2>/dev/null) || continue
  case $args in
    *node-agent/net/main.js*)
      ppid=$(awk '{print $4}' "$p/stat" 2>/dev/null)
      [ -n "$agent" ] && [ "$ppid" = "$agent" ] || leak "kratanet pid ${p#/proc/} not the agent's child (parent $ppid): $args"
      ;;
  esac
done

echo "leaks: $leaks found ($krata krata domains, $(losetup -a 2>/dev/null | grep -c "$state") loop devices, $disks config disks)"
[ "$leaks" -eq 0 ]
