#!/usr/bin/env bash
# Builds the xenhost image and prints its directory on stdout. Everything comes from Debian packages
# (apt-get download + dpkg -x: nothing Xen-related is installed on the host, no loop mounts) plus the
# host's node, bash, flock and stat. The image is cached by content in $KRATA_CACHE/xenhost/<hash>/:
# the hash covers the exact .deb versions, the host binaries copied in and these build inputs.
#
# Image: xen (gunzipped, QEMU's multiboot loader needs that), vmlinuz (Debian kernel, dom0),
# dom0-initrd.zst (busybox init, xenstored/xl/..., modules, dropbear), data.sqfs (the dom0 data disk:
# node, and the PV guest's kernel as Debian ships it (vmlinuz) and uncompressed (vmlinux), busybox
# initrd and a tiny squashfs disk), ssh/ (keys).
set -euo pipefail
# shellcheck source=test/xenhost/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

xh_require cpio:cpio depmod:kmod mksquashfs:squashfs-tools xz:xz-utils zstd:zstd \
  ssh-keygen:openssh-client faketime:faketime redis-server:redis-server skopeo:skopeo umoci:umoci
node_bin=$(readlink -f "$(command -v node)") || xh_die "node is not installed on this machine"

pkgs=(xen-hypervisor-4.17-amd64 xen-utils-4.17 xen-utils-common xenstore-utils
  libxencall1 libxendevicemodel1 libxenevtchn1 libxenforeignmemory1 libxengnttab1 libxenhypfs1
  libxenmisc4.17 libxenstore4 libxentoollog1 libxentoolcore1 libyajl2
  busybox-static dropbear-bin libtomcrypt1 libtommath1)
dom0_mods="xen-evtchn xen-privcmd xen-gntdev xen-gntalloc xenfs xen-blkback xen-netback loop
  squashfs overlay bridge tun virtio_pci virtio_blk virtio_net 9pnet_virtio 9p ext4"
guest_mods="xen-blkfront xen-netfront squashfs"

# The exact .debs (URL, file, size, checksum) apt would fetch now; the kernel is the one
# linux-image-amd64 points at.
resolve() {
  kpkg=${KRATA_XENHOST_KERNEL_PKG:-$(apt-cache depends linux-image-amd64 2>/dev/null \
    | sed -n 's/^ *Depends: \(linux-image-[0-9].*\)$/\1/p' | head -n1)}
  [ -n "$kpkg" ] && uris=$(apt-get download --print-uris "${pkgs[@]}" "$kpkg" 2>/dev/null | sort)
}
image_hash() {
  { printf '%s\n' "$uris"
    dpkg-query -W bash util-linux coreutils libc6 libgcc-s1 libstdc++6 ncurses-base 2>/dev/null || true
    sha256sum "$node_bin" | cut -d' ' -f1
    cd "$xh_dir" && cat build.sh dom0/* guest/*
  } | sha256sum | cut -c1-16
}

resolve || { xh_apt_update && resolve; } || xh_die "apt cannot resolve ${pkgs[*]} $kpkg"
out=$xh_cache/$(image_hash)
if [ -f "$out/manifest.txt" ]; then echo "$out"; exit 0; fi

mkdir -p "$xh_cache"
exec {lock}>"$xh_cache/build.lock"   # flock: released by the kernel even if the holder is killed
flock -w 1800 "$lock" || xh_die "timed out waiting for $xh_cache/build.lock"
# Building: refresh apt metadata first so the download cannot 404 on superseded versions.
xh_apt_update || xh_log "apt-get update failed; using the package lists as they are"
resolve || xh_die "apt cannot resolve ${pkgs[*]} $kpkg"
out=$xh_cache/$(image_hash)
if [ -f "$out/manifest.txt" ]; then echo "$out"; exit 0; fi   # another build just finished it
rm -rf "$xh_cache"/.build.*                                   # leftovers of killed builds
tmp=$(mktemp -d "$xh_cache/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
t0=$SECONDS
xh_log "building image $(basename "$out") (kernel $kpkg)"

# Download (into a shared, name-versioned .deb cache) and unpack.
debs=$xh_cache/debs
mkdir -p "$debs" "$tmp/dl" "$tmp/x"
todo=$(while read -r _ file _; do [ -f "$debs/$file" ] || echo "${file%%_*}"; done <<<"$uris")
if [ -n "$todo" ]; then
  # shellcheck disable=SC2086
  (cd "$tmp/dl" && apt-get download -q=2 -o APT::Sandbox::User=root $todo) || xh_die "apt-get download failed"
  mv "$tmp/dl"/*.deb "$debs/"
fi
while read -r _ file _; do dpkg -x "$debs/$file" "$tmp/x"; done <<<"$uris"
x=$tmp/x
kver=${kpkg#linux-image-}
libpath=$x/usr/lib/x86_64-linux-gnu:$x/lib/x86_64-linux-gnu

# --- helpers: copy files into root $r, ELF files with the libraries ldd resolves for them -----------
put() { mkdir -p "$(dirname "$r$2")"; rm -f "$r$2"; cp -L "$1" "$r$2"; }
put_libs() {
  local name arrow path dest
  while read -r name arrow path _; do
    case "$name" in linux-vdso.so.*|"") continue ;; esac
    [ "$arrow" = "=>" ] || path=$name                     # the ld.so line has no "=>"
    [ "$path" = "not" ] && xh_die "$1 needs $name, which no package provides"
    dest=$(dirname "${path#"$x"}")/${name##*/}
    [ -e "$r$dest" ] || put "$path" "$dest"
  done < <(LD_LIBRARY_PATH=$libpath ldd "$1" 2>/dev/null || true)
}
put_elf() { put "$1" "$2"; put_libs "$1"; }
# Merged-/usr skeleton, like the Debian host whose libraries we copy.
skeleton() {
  mkdir -p "$r"/usr/{bin,sbin,lib,lib64} "$r"/{dev,proc,sys,run,tmp,etc,root,mnt}
  for d in bin sbin lib lib64; do ln -s "usr/$d" "$r/$d"; done
  put "$x/bin/busybox" /usr/bin/busybox
  "$x/bin/busybox" --list-full | while read -r a; do
    [ -e "$r/$a" ] || ln -s /usr/bin/busybox "$r/$a"
  done
}
# Kernel modules plus their dependencies, with modules.dep for modprobe.
put_modules() {
  local ko
  for ko in $(modprobe -d "$x" -S "$kver" --show-depends -a "$@" | awk '$1 == "insmod" {print $2}'); do
    put "$ko" "${ko#"$x"}"
  done
  cp "$x/lib/modules/$kver"/modules.{order,builtin,builtin.modinfo} "$r/lib/modules/$kver/"
  depmod -b "$r" "$kver"
}
depmod -b "$x" "$kver"

# --- dom0 root (initramfs) ----------------------------------------------------------------------
r=$tmp/dom0
skeleton
for b in xl xenstored xenconsoled xenconsole xen-init-dom0 libxl-save-helper xenstore-control; do
  put_elf "$x/usr/lib/xen-4.17/bin/$b" "/usr/lib/xen-4.17/bin/$b"
done
# Debian's /usr/sbin/xl etc. are wrappers around these (pitfall 3 of the recipe): link directly.
for b in xl xenstored xenconsoled xen-init-dom0; do ln -sf "/usr/lib/xen-4.17/bin/$b" "$r/usr/sbin/$b"; done
ln -sf /usr/lib/xen-4.17/bin/xenstore-control "$r/usr/bin/xenstore-control"
put_elf "$x/usr/bin/xenstore" /usr/bin/xenstore
for b in chmod exists list ls read rm watch write; do ln -sf xenstore "$r/usr/bin/xenstore-$b"; done
put "$x/usr/lib/xen-4.17/boot/hvmloader" /usr/lib/xen-4.17/boot/hvmloader
cp -a "$x/etc/xen" "$r/etc/"
# Xen's bash hotplug scripts need bash, util-linux flock and a coreutils stat (pitfall 4); xl needs
# libgcc_s (dlopen'ed, pitfall 5). Take them from the host (same Debian release).
put_elf "$(readlink -f "$(command -v bash)")" /usr/bin/bash
put_elf "$(readlink -f "$(command -v flock)")" /usr/bin/flock
put_elf "$(readlink -f "$(command -v stat)")" /usr/bin/stat
# A real Redis in dom0 for e2e 130 (a guest must not reach it); taken from the host like bash. The
# Debian binary is shared with redis-check-rdb and picks its role by name: it must be named redis-server.
put_elf "$(readlink -f "$(command -v redis-server)")" /usr/bin/redis-server
put_libs "$node_bin"   # libstdc++, libgcc_s...; the node binary itself lives on the data disk
# Loaded at run time by krata (koffi), as on any Debian dom0: kernel payload decompressors.
for lib in liblzma.so.5 libzstd.so.1 liblz4.so.1; do
  f=$(readlink -f "/usr/lib/x86_64-linux-gnu/$lib") || xh_die "$lib is missing on this machine"
  put_elf "$f" "/usr/lib/x86_64-linux-gnu/$lib"
done
# krata's image cache and config disks: mksquashfs -tar (with libfaketime for reproducible images),
# unsquashfs, and zstd for zstd-compressed layers, as the node agent finds them on a Debian dom0.
for b in mksquashfs unsquashfs zstd; do put_elf "$(readlink -f "$(command -v $b)")" "/usr/bin/$b"; done
# The cold-launch benchmark's baseline (bench/cold-launch-xen.sh): skopeo copy + umoci unpack.
for b in skopeo umoci; do put_elf "$(readlink -f "$(command -v $b)")" "/usr/bin/$b"; done
put_elf /usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1 /usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1
ln -s /opt/xenhost/node/bin/node "$r/usr/bin/node"
cp -a /lib/terminfo "$r/usr/lib/"   # line editing in the interactive shell
put_elf "$x/usr/sbin/dropbear" /usr/sbin/dropbear
mkdir -p "$r/lib/modules/$kver"
# shellcheck disable=SC2086
put_modules $dom0_mods

# Configuration: init, accounts for the SSH control channel, keys.
ln -s /usr/bin/busybox "$r/init"          # busybox init, configured by /etc/inittab
install -m 644 "$xh_dir/dom0/inittab" "$r/etc/inittab"
install -D -m 755 "$xh_dir/dom0/rcS" "$r/etc/init.d/rcS"
install -m 644 "$xh_dir/dom0/profile" "$r/etc/profile"
echo 'root::0:0:root:/root:/bin/bash' >"$r/etc/passwd"
printf 'root:x:0:\ntty:x:5:\n' >"$r/etc/group"
printf '/bin/sh\n/bin/bash\n/usr/bin/bash\n' >"$r/etc/shells"   # dropbear rejects shells not listed
printf '127.0.0.1 localhost dom0\n' >"$r/etc/hosts"
mkdir -p "$r/var/lib" "$r/var/log" "$r/etc/dropbear" "$r/root/.ssh" "$tmp/out/ssh"
ln -s ../run "$r/var/run"
ln -s ../run/lock "$r/var/lock"
chmod 700 "$r/root" "$r/root/.ssh"
LD_LIBRARY_PATH=$libpath "$x/usr/bin/dropbearkey" -t ed25519 \
  -f "$r/etc/dropbear/dropbear_ed25519_host_key" >/dev/null 2>&1
echo "krata-xenhost $(LD_LIBRARY_PATH=$libpath "$x/usr/bin/dropbearkey" -y \
  -f "$r/etc/dropbear/dropbear_ed25519_host_key" | grep '^ssh-ed25519' | cut -d' ' -f1,2)" \
  >"$tmp/out/ssh/known_hosts"
ssh-keygen -q -t ed25519 -N '' -C krata-xenhost -f "$tmp/out/ssh/id_ed25519"
install -m 600 "$tmp/out/ssh/id_ed25519.pub" "$r/root/.ssh/authorized_keys"

# --- PV guest: busybox initrd and a tiny squashfs disk ---------------------------------------------
r=$tmp/guest
skeleton
mkdir -p "$r/lib/modules/$kver"
# shellcheck disable=SC2086
put_modules $guest_mods
install -m 755 "$xh_dir/guest/init" "$r/init"
mkdir -p "$tmp/data/guest" "$tmp/disk" "$tmp/data/node/bin"
(cd "$r" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) | gzip -9 >"$tmp/data/guest/initrd.gz"
echo "hello-from-xvda" >"$tmp/disk/hello"
mksquashfs "$tmp/disk" "$tmp/data/guest/disk.sqfs" -all-root -no-progress -quiet >/dev/null
# The modules krata's guest-init loads with this stock kernel (its own initrd is built per test), in
# load order: krata-modules/order lists their file names. xen-netfront: guests with a network wait for eth0;
# xen-evtchn and xen-gntalloc: the channel's bulk ring (guest-init grants its pages to dom0).
mkdir -p "$tmp/data/guest/krata-modules"
for ko in $(modprobe -d "$x" -S "$kver" --show-depends -a xen-blkfront xen-netfront squashfs overlay xen-evtchn xen-gntalloc | awk '$1 == "insmod" {print $2}'); do
  cp "$ko" "$tmp/data/guest/krata-modules/"
  basename "$ko" >>"$tmp/data/guest/krata-modules/order"
done
# Uncompressed ELF: xl would otherwise spend 5-8 s un-xz-ing the bzImage in dom0 (pitfall 7).
off=$(LC_ALL=C grep -m1 -obUaP '\xfd7zXZ\x00' "$x/boot/vmlinuz-$kver" | cut -d: -f1)
(tail -c +$((off + 1)) "$x/boot/vmlinuz-$kver" || true) | xz -dc --single-stream >"$tmp/data/guest/vmlinux"
[ "$(head -c4 "$tmp/data/guest/vmlinux" | od -An -tx1 | tr -d ' ')" = 7f454c46 ] || xh_die "vmlinux extraction failed"
# And the stock bzImage itself, which krata's own builder must load (setup header, xz payload).
cp "$x/boot/vmlinuz-$kver" "$tmp/data/guest/vmlinuz"

# --- outputs ---------------------------------------------------------------------------------------
cp "$node_bin" "$tmp/data/node/bin/node"
# Uncompressed squashfs: node and the guest kernel are read at full speed by the emulated dom0.
mksquashfs "$tmp/data" "$tmp/out/data.sqfs" -noI -noD -noF -noX -all-root -no-progress -quiet >/dev/null
(cd "$tmp/dom0" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) | zstd -q -12 -T0 >"$tmp/out/dom0-initrd.zst"
zcat "$x/boot/xen-4.17-amd64.gz" >"$tmp/out/xen"   # pitfall 2: QEMU hangs on the .gz
cp "$x/boot/vmlinuz-$kver" "$tmp/out/vmlinuz"
{ echo "# krata xenhost image $(basename "$out"), built $(date -u +%FT%TZ)"
  echo "node $("$node_bin" --version) $node_bin"
  while read -r _ file _; do echo "deb $file"; done <<<"$uris"
} >"$tmp/out/manifest.txt"     # written last: its presence marks a complete image
mv -T "$tmp/out" "$out"        # atomic publish
xh_log "built $out in $((SECONDS - t0))s"
# Drop superseded .debs.
for f in "$debs"/*.deb; do grep -qF " ${f##*/} " <<<"$uris" || rm -f "$f"; done

# Keep the two newest images besides this one (a running QEMU keeps its open files anyway).
# shellcheck disable=SC2010  # (hex names only)
ls -1dt "$xh_cache"/???????????????? 2>/dev/null | grep -E "/[0-9a-f]{16}$" | grep -v -x "$out" | tail -n +3 | xargs -r rm -rf || true
echo "$out"
