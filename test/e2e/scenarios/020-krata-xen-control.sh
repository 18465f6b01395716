#!/usr/bin/env bash
# krata's own Xen layer against the real hypervisor: hypercalls through /dev/xen/privcmd (koffi), the
# domctl/sysctl interface versions it probes, and what it reads (Xen version, host CPUs and memory,
# the domain list from sysctl getdomaininfolist), compared with what xl says on the same host.
set -euo pipefail
x() { "$KRATA_XENHOST_EXEC" "$@" </dev/null; }
fail() { echo "FAIL: $*" >&2; exit 1; }
out=${KRATA_E2E_ARTIFACTS:-$(mktemp -d)}
[ -f "${KRATA_REPO:-.}/dist/node-agent/xen/probe-main.js" ] || fail "dist/ is not built (npm run build)"

x "node /krata/dist/node-agent/xen/probe-main.js" >"$out/probe.json"
x "xl info" >"$out/xl-info.txt"
x "xl list" >"$out/xl-list.txt"
j() { node -e "const r=JSON.parse(require('fs').readFileSync('$out/probe.json','utf8')); console.log($1)"; }
xl() { awk -F' *: ' -v k="$1" '$1==k {print $2}' "$out/xl-info.txt"; }

[ "$(j 'r.version.major+"."+r.version.minor+r.version.extra')" = "$(xl xen_version)" ] || fail "version $(j 'r.version.text') vs xl $(xl xen_version)"
[ "$(j 'r.interfaceVersions.domctl')" = "$((0x15))" ] || fail "domctl interface version $(j 'r.interfaceVersions.domctl') on Xen 4.17"
[ "$(j 'r.host.nrCpus')" = "$(xl nr_cpus)" ] || fail "nr_cpus $(j 'r.host.nrCpus') vs xl $(xl nr_cpus)"
[ "$(j 'Number(BigInt(r.host.totalBytes) >> 20n)')" = "$(xl total_memory)" ] || fail "total memory $(j 'r.host.totalBytes') vs xl $(xl total_memory) MiB"
grep -q "$(j 'r.capabilities.split(" ")[0]')" <<<"$(xl xen_caps)" || fail "capabilities $(j 'r.capabilities') vs xl $(xl xen_caps)"
ours=$(j 'r.domains.map(d=>d.domid).join(" ")')
theirs=$(awk 'NR>1 {print $2}' "$out/xl-list.txt" | sort -n | xargs)
[ "$ours" = "$theirs" ] || fail "domains [$ours] vs xl list [$theirs]"
[ "$(j 'r.domains[0].onlineVcpus')" = "$(awk '$1=="Domain-0" {print $4}' "$out/xl-list.txt")" ] || fail "dom0 vcpus differ from xl list"
echo "Xen $(j 'r.version.text'), domctl 0x$(printf %x "$(j 'r.interfaceVersions.domctl')"), $(j 'r.host.nrCpus') CPUs, domains [$ours]: as xl reports"
