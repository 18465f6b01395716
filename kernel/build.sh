#!/usr/bin/env bash
# Builds krata's guest kernel: x86_64 tinyconfig + kernel/guest.config, everything built in.
#   kernel/build.sh [--config-only] [SOURCE_TARBALL] OUT_DIR
# Source: Debian's linux-source-6.1 package (fetched with apt-get download, offline from the mirror)
# unless a kernel.org tarball (linux-*.tar.xz) is given. --config-only stops after the merged .config
# and checks that every option of the fragment survived (an option whose dependencies are missing is
# dropped silently by Kconfig); the build runs the same check first.
# Needs: gcc make flex bison bc libelf-dev libssl-dev xz-utils (scripts/install-deps).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
config_only=
[ "${1:-}" = --config-only ] && { config_only=1; shift; }
tarball=
[ $# -ge 2 ] && { tarball=$1; shift; }
out=${1:?"usage: $0 [--config-only] [SOURCE_TARBALL] OUT_DIR"}
mkdir -p "$out"
out=$(cd "$out" && pwd)
cache=${KRATA_CACHE:-$HOME/.cache/krata}/kernel-src
mkdir -p "$cache"

if [ -z "$tarball" ]; then
  deb=$(ls "$cache"/linux-source-6.1_*_all.deb 2>/dev/null | tail -n1 || true)
  if [ -z "$deb" ]; then (cd "$cache" && apt-get download -q linux-source-6.1 >/dev/null); deb=$(ls "$cache"/linux-source-6.1_*_all.deb | tail -n1); fi
  tarball=$cache/$(basename "$deb" .deb).tar.xz
  if [ ! -f "$tarball" ]; then
    dpkg-deb --fsys-tarfile "$deb" | tar -xOf - ./usr/src/linux-source-6.1.tar.xz >"$tarball.tmp"
    mv "$tarball.tmp" "$tarball"
  fi
fi
src=$cache/src-$(basename "$tarball" | sed 's/\.tar\..*//')
if [ ! -f "$src/Makefile" ]; then
  rm -rf "$src.tmp" && mkdir -p "$src.tmp"
  tar -xf "$tarball" -C "$src.tmp" --strip-components=1
  mv "$src.tmp" "$src"
fi

build=$out/build
mkdir -p "$build"
make -s -C "$src" O="$build" ARCH=x86_64 tinyconfig
"$src/scripts/kconfig/merge_config.sh" -m -O "$build" "$build/.config" "$here/guest.config" >/dev/null
make -s -C "$src" O="$build" ARCH=x86_64 olddefconfig
missing=$(grep -E '^CONFIG_[A-Z0-9_]+=' "$here/guest.config" | while IFS= read -r line; do grep -qx "$line" "$build/.config" || echo "$line"; done)
if [ -n "$missing" ]; then
  echo "kernel/build.sh: these options of guest.config did not survive Kconfig (dependencies missing):" >&2
  echo "$missing" | sed 's/^/  /' >&2
  exit 1
fi
cp "$build/.config" "$out/config"
[ -n "$config_only" ] && { echo "$out/config"; exit 0; }
make -s -C "$src" O="$build" ARCH=x86_64 -j"$(nproc)" bzImage
cp "$build/arch/x86/boot/bzImage" "$out/bzImage"
echo "$out/bzImage"
