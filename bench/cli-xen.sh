#!/usr/bin/env bash
# `npm run bench -- cli-dom0`, run inside test/xenhost/boot.sh: the demo's kratactl commands in dom0 of
# the QEMU Xen host (version, apply -f hello.yaml, get) against `node -e 0` there, each timed in dom0
# (no SSH inside a measurement), runs interleaved, medians. kratactl as the demo installs it (the bundle
# on dom0's own file system: test/xenhost/dom0/install-kratactl.sh) and, for version, the same bundle
# read from the 9p share and the unbundled dist/kratactl/main.js. Prints "RESULT {json}".
set -euo pipefail
x() { "$KRATA_XENHOST_EXEC" "$@" </dev/null; }
runs=${KRATA_BENCH_RUNS:-5}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
x "set -e; mkdir -p /run/krata /var/lib/krata
sh /krata/test/xenhost/dom0/install-kratactl.sh
(setsid node /krata/dist/node-agent/main.js --kernel /opt/xenhost/guest/vmlinux --metrics off --log-level warn >>/tmp/agent.log 2>&1 </dev/null &)
for i in \$(seq 600); do node /krata/dist/kratactl/kratactl.cjs version >/dev/null 2>&1 && exit 0; sleep 0.2; done
echo 'the node agent did not start:' >&2; tail -20 /tmp/agent.log >&2; exit 1" >&2
# dom0 sees this checkout at /krata: the run script goes beside the build.
cat >"$repo/dist/bench/cli-dom0-run.sh" <<'SH'
# One run: each command's wall time in ms, as "name ms" lines.
t() {
  local name=$1 s e
  shift
  s=${EPOCHREALTIME/./}
  "$@" >/dev/null 2>&1 || { echo "$name failed: $*" >&2; exit 1; }
  e=${EPOCHREALTIME/./}
  echo "$name $(((e - s) / 1000))"
}
k=kratactl
t node node -e 0
t version $k version
t apply $k apply -f /krata/manifests/examples/hello.yaml
t get $k get
t version_share node /krata/dist/kratactl/kratactl.cjs version
t version_unbundled node /krata/dist/kratactl/main.js version
SH
out=$(for i in $(seq "$runs"); do x "bash /krata/dist/bench/cli-dom0-run.sh" | tee /dev/stderr; done)
median() { awk -v n="$1" '$1 == n {print $2}' <<<"$out" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
node=$(median node)
ratio() { awk -v a="$1" -v b="$node" 'BEGIN {printf "%.2f", a / b}'; }
v=$(median version) a=$(median apply) g=$(median get) s=$(median version_share) u=$(median version_unbundled)
echo "RESULT {\"version_ratio\":$(ratio "$v"),\"apply_ratio\":$(ratio "$a"),\"get_ratio\":$(ratio "$g"),\"node_ms\":$node,\"version_ms\":$v,\"apply_ms\":$a,\"get_ms\":$g,\"version_from_share_ms\":$s,\"version_unbundled_ms\":$u,\"runs\":$runs}"
