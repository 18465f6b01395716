#!/bin/sh
# Installs kratactl in dom0 the way a host has it: the bundle (dist/kratactl/kratactl.mjs) and
# package.json on dom0's own root file system under /opt/krata, on the PATH as /usr/bin/kratactl.
# Run from the 9p share instead, every start reads the 900 KB bundle across QEMU's virtio-9p (no page
# cache: the share is mounted cache=none), which in dom0 costs more than everything else kratactl does.
# `image --offline` runs the agent's image code as a child: dist/node-agent stays on the share.
set -e
mkdir -p /opt/krata/dist/kratactl
cp /krata/package.json /opt/krata/package.json
cp /krata/dist/kratactl/kratactl.mjs /opt/krata/dist/kratactl/kratactl.mjs.tmp
mv /opt/krata/dist/kratactl/kratactl.mjs.tmp /opt/krata/dist/kratactl/kratactl.mjs
ln -sfn /krata/dist/node-agent /opt/krata/dist/node-agent
ln -sf /opt/krata/dist/kratactl/kratactl.mjs /usr/bin/kratactl
