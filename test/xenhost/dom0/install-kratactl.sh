#!/bin/sh
# Installs kratactl in dom0 the way a host has it: the launcher, the bundle and its code cache
# (dist/kratactl/kratactl.cjs, kratactl.bundle.cjs, kratactl.bundle.cache) and package.json on dom0's
# own root file system under /opt/krata, on the PATH as /usr/bin/kratactl. Run from the 9p share
# instead, every start reads 1.7 MB across QEMU's virtio-9p (mounted with no page cache).
# `image --offline` runs the agent's image code as a child: dist/node-agent stays on the share.
set -e
mkdir -p /opt/krata/dist/kratactl
cp /krata/package.json /opt/krata/package.json
for f in kratactl.cjs kratactl.bundle.cjs kratactl.bundle.cache; do
  cp /krata/dist/kratactl/$f /opt/krata/dist/kratactl/$f.tmp
  mv /opt/krata/dist/kratactl/$f.tmp /opt/krata/dist/kratactl/$f
done
ln -sfn /krata/dist/node-agent /opt/krata/dist/node-agent
ln -sf /opt/krata/dist/kratactl/kratactl.cjs /usr/bin/kratactl
