#!/usr/bin/env bash
# `npm run xenhost`, inside boot.sh: makes dom0 a krata host, then opens the interactive shell.
# On this machine: guest-init (static, Debian's toolchain) and a demo image (busybox, as a docker save
# archive written by krata's image code). In dom0: krata's initrd for the stock guest kernel, the image
# imported into the cache, krata-node-agent started (log in /var/log/krata-node-agent.log), and
# `kratactl` on the PATH.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
x() { "$KRATA_XENHOST_EXEC" "$@" </dev/null; }
stage=$repo/guest-init/target/demo
echo "xenhost: preparing the node agent (guest-init, demo image, agent)..." >&2
(cd "$repo/guest-init" && PATH=/usr/bin:/bin /usr/bin/cargo build --offline --release --quiet)
mkdir -p "$stage"
node "$repo/dist/test/e2e/busybox-image.js" "$stage/busybox.tar" krata/busybox:demo
x "set -e
sh /krata/test/xenhost/dom0/install-kratactl.sh
mkdir -p /var/lib/krata/guest /run/krata
node /krata/dist/test/e2e/dom0/krata-initrd.js /krata/guest-init/target/release/guest-init /var/lib/krata/guest/initrd >/dev/null
cp /opt/xenhost/guest/vmlinux /var/lib/krata/guest/vmlinuz
kratactl image import --offline -q /krata/guest-init/target/demo/busybox.tar >/dev/null
(setsid node /krata/dist/node-agent/main.js --log-format text >>/var/log/krata-node-agent.log 2>&1 </dev/null &)
for i in \$(seq 600); do kratactl host status >/dev/null 2>&1 && break; sleep 0.2; done
kratactl host status >/dev/null" || { echo "xenhost: the node agent did not start (see /var/log/krata-node-agent.log in dom0)" >&2; }
cat >&2 <<'MSG'
xenhost: krata-node-agent is running in dom0. Try:
  kratactl apply -f /krata/manifests/examples/hello.yaml && kratactl get -w     (Ctrl-C to stop watching)
  kratactl logs hello -f                kratactl run krata/busybox:demo --rm -t -- sh
  kratactl describe guest hello         kratactl delete guest hello --wait
MSG
exec "$KRATA_XENHOST_EXEC"
