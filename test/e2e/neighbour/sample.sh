# (dom0) bash sample.sh OUT AGENT_PID KRATANET_PID: once a second, a line
# "MS AGENT_RSS_KIB KRATANET_RSS_KIB AGENT_FDS KRATANET_FDS AGENT_CPU_TICKS KRATANET_CPU_TICKS"
# (0 for a process that is gone; CPU ticks are utime + stime, USER_HZ).
# Bash builtins only, but for the sleep: a fork costs a lot under TCG, more so while guests flood.
out=$1 agent=$2 kratanet=$3
rss() {
  local k v _
  while read -r k v _; do [ "$k" = VmRSS: ] && { echo "$v"; return; }; done <"/proc/$1/status" 2>/dev/null
  echo 0
}
fds() {
  local f=("/proc/$1/fd/"*)
  [ -e "${f[0]}" ] && echo ${#f[@]} || echo 0
}
cpu() {
  local s
  read -r s <"/proc/$1/stat" 2>/dev/null || { echo 0; return; }
  s=${s##*) } # past the command name, which may hold spaces
  read -r -a f <<<"$s"
  echo $((f[11] + f[12]))
}
while :; do
  t=${EPOCHREALTIME/./}
  echo "$((t / 1000)) $(rss "$agent") $(rss "$kratanet") $(fds "$agent") $(fds "$kratanet") $(cpu "$agent") $(cpu "$kratanet")"
  sleep 1
done >>"$out"
