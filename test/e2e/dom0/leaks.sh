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

# xenstore in one read, the lines that matter picked by one grep: every process started in dom0 costs
# a second or more when the emulated host is loaded, and a bash loop over all of xenstore is slower.
declare -A homes=() names=() vms=() backends=() vmdirs=() served=()
re_home='^/local/domain/([0-9]+)(/([a-z]+))? = "(.*)"$'
re_backend='^/local/domain/0/backend/([a-z]+)/([0-9]+)(/([0-9]+)/params)? = "(.*)"$'
re_vm='^/vm/([0-9a-f-]+) = '
while IFS= read -r line; do
  if [[ $line =~ $re_backend ]]; then
    backends[${BASH_REMATCH[1]}/${BASH_REMATCH[2]}]=${BASH_REMATCH[2]}
    case ${BASH_REMATCH[1]} in vbd | qdisk) [ -n "${BASH_REMATCH[4]}" ] && served[${BASH_REMATCH[5]}]=1 ;; esac
  elif [[ $line =~ $re_home ]]; then
    homes[${BASH_REMATCH[1]}]=1
    case ${BASH_REMATCH[3]} in
      name) names[${BASH_REMATCH[1]}]=${BASH_REMATCH[4]} ;;
      vm) vms[${BASH_REMATCH[1]}]=${BASH_REMATCH[4]#/vm/} ;;
    esac
  elif [[ $line =~ $re_vm ]]; then
    vmdirs[${BASH_REMATCH[1]}]=1
  fi
done < <({ xenstore-ls -f /local/domain; xenstore-ls -f /vm; } 2>/dev/null | grep -E '^/local/domain/[0-9]+(/name|/vm)? = |^/local/domain/0/backend/[a-z]+/[0-9]+(/[0-9]+/params)? = |^/vm/[0-9a-f-]+ = ')

# Live domains (id, name, uuid) as Xen and xenstore see them.
declare -A live=() uuids=()
while read -r name id _; do
  [ "$id" = 0 ] && continue
  live[$id]=$name
done < <(xl list 2>/dev/null | awk 'NR > 1 {print $1, $2}')
krata=0
for id in "${!live[@]}"; do
  case ${live[$id]} in krata.* | krata-*) krata=$((krata + 1)) ;; esac
  [ -n "${vms[$id]:-}" ] && uuids[${vms[$id]}]=1
done
if [ -n "$expected" ] && [ "$krata" != "$expected" ]; then
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
for id in "${!homes[@]}"; do
  [ "$id" = 0 ] || [ -n "${live[$id]:-}" ] || leak "xenstore /local/domain/$id of a domain that is gone"
done
for b in "${!backends[@]}"; do
  [ -n "${live[${backends[$b]}]:-}" ] || leak "xenstore /local/domain/0/backend/$b of a domain that is gone"
done
for uuid in "${!vmdirs[@]}"; do
  [ -n "${uuids[$uuid]:-}" ] || leak "xenstore /vm/$uuid of no live domain"
done

# Network interfaces of domains that are gone.
for dev in /sys/class/net/vif*; do
  [ -e "$dev" ] || continue
  n=${dev##*/vif}
  [ -n "${live[${n%%.*}]:-}" ] || leak "interface ${dev##*/} of a domain that is gone"
done

# Loop devices over krata's files: each must back a vbd of a live domain (served: read above).
while IFS= read -r line; do
  [ -n "$line" ] || continue
  loopdev=${line%%:*}
  case $line in *"$state"*) ;; *) continue ;; esac
  [ -n "${served[$loopdev]:-}" ] || leak "loop device not serving a live domain: $line"
done < <(losetup -a 2>/dev/null)

# Config disks: each of a Guest in the store (a crash-looping Guest keeps its disk between domains),
# none half-written.
declare -A uids=()
for u in $(cat "$state"/guests/*/*.json 2>/dev/null | grep -o '"uid": *"[^"]*"' | sed 's/.*"\([^"]*\)"$/\1/'); do uids[$u]=1; done
disks=0
for f in "$state"/disks/*; do
  [ -e "$f" ] || continue
  disks=$((disks + 1))
  u=${f##*/}
  case $u in
    *.sqfs) [ -n "${uids[${u%.sqfs}]:-}" ] || leak "config disk $f of no Guest in the store" ;;
    *) leak "config disk temporary $f" ;;
  esac
done

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

echo "leaks: $leaks found ($krata krata domains, $(losetup -a 2>/dev/null | grep -c "$state") loop devices, $disks config disks)"
[ "$leaks" -eq 0 ]
