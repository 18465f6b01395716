# Sourced by bench/agent-xen.sh and bench/cold-launch-xen.sh (inside test/xenhost/boot.sh): runs ours and
# the baseline in dom0 in turn, $runs times, and prints what bench/agent.ts and bench/cold-launch.ts read.
#   alternate OURS_SCRIPT THEIRS_SCRIPT WHAT_OURS WHAT_THEIRS
# OURS_SCRIPT prints "<ms> <phases json>", THEIRS_SCRIPT "<ms>" (paths as dom0 sees them). Prints
# "PHASES <json>" per run of ours and last "RESULT <ours ms median> <baseline ms median>".
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
alternate() {
  local ours=() theirs=() out i
  for i in $(seq "$runs"); do
    out=$("$KRATA_XENHOST_EXEC" "bash $1" </dev/null)
    ours+=("${out%% *}")
    echo "PHASES ${out#* }"
    theirs+=("$("$KRATA_XENHOST_EXEC" "bash $2" </dev/null)")
    echo "run $i: $3 ${ours[-1]} ms, $4 ${theirs[-1]} ms" >&2
  done
  echo "RESULT $(median "${ours[@]}") $(median "${theirs[@]}")"
}
