#!/usr/bin/env bash
# The guest channel's Xen plumbing (node-agent/xen/console/channel-*.ts through XenHypervisor, driven by
# test/e2e/dom0/channel.ts): a busybox guest's console device 1 (type krata-channel) reaches state 4 on
# both ends, what the guest writes to /dev/hvc1 reaches the transport in order (64 KiB among it), what
# the host writes reaches the guest, stats() reads Xen's figures, and destroy leaves no console backend.
set -euo pipefail
x() { "$KRATA_XENHOST_EXEC" "$@" </dev/null; }
fail() { echo "FAIL: $*" >&2; exit 1; }
out=${KRATA_E2E_ARTIFACTS:-$(mktemp -d)}
sd=/tmp/krata-channel-state
name=e2e-xen-channel
launch="node /krata/dist/node-agent/xen/launch-main.js"
trap 'x "d=\$(xl domid $name 2>/dev/null) && $launch --destroy \$d; rm -rf $sd" >/dev/null 2>&1 || true' EXIT

x "rm -rf $sd && mkdir -p $sd" || fail "cannot create $sd"
x "node /krata/dist/test/e2e/dom0/channel.js '{\"stateDir\":\"$sd\",\"name\":\"$name\"}'" >"$out/channel.json" 2>"$out/channel.err" \
  || { cat "$out/channel.json" "$out/channel.err" >&2; fail "the channel check failed"; }
cat "$out/channel.json"
x "! xl domid $name >/dev/null 2>&1" || fail "domain still there"
