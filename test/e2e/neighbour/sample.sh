# (dom0) bash sample.sh OUT: once a second, a line "MS AGENT_RSS_KIB KRATANET_RSS_KIB AGENT_FDS KRATANET_FDS"
# for the agent (/run/krata/agent.pid) and its kratanet child; 0 for a process that is not there.
out=$1
kratanet() {
  local a=$1 p
  for p in /proc/[0-9]*; do
    [ "$(awk '{print $4}' "$p/stat" 2>/dev/null)" = "$a" ] || continue
    tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -q 'node-agent/net/main.js' && echo "${p#/proc/}" && return
  done
}
rss() { awk '/^VmRSS:/ {print $2; f = 1} END {if (!f) print 0}' "/proc/$1/status" 2>/dev/null || echo 0; }
fds() { ls "/proc/$1/fd" 2>/dev/null | wc -l; }
n=
while :; do
  a=$(cat /run/krata/agent.pid 2>/dev/null)
  [ -n "$n" ] && [ -d "/proc/$n" ] || n=$(kratanet "$a")
  echo "$(($(date +%s%N) / 1000000)) $(rss "$a") $(rss "${n:-0}") $(fds "$a") $(fds "${n:-0}")"
  sleep 1
done >>"$out"
