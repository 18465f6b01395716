#!/usr/bin/env bash
# `npm run xenhost`: boots the xenhost and opens an interactive root shell in dom0 (repo at /krata,
# read-only). Leaving the shell (exit, Ctrl-D, or `poweroff`) stops QEMU.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
echo "xenhost: booting Xen + dom0 under QEMU (about 30 s; first run builds the image)..." >&2
exec "$here/boot.sh" "$here/agent-demo.sh"
