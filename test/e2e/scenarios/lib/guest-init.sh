# Staging for scenarios that boot krata's guest-init (sourced, not run: 090, 100). On the host:
# guest-init built static with Debian's toolchain, a busybox image (squashfs) and launch config
# archives (cpio, loaded after the initrd) under the repo (dom0 sees them at /krata); in dom0: krata's
# initrd for the stock guest kernel.
# Needs $repo (the repo root on the host) and x() (a command in dom0).

# gi_stage_image STAGE: builds guest-init; STAGE/image.sqfs holds busybox (sh id echo cat sleep),
# /etc/passwd and /etc/group with root and app (1000).
gi_stage_image() {
  local stage=$1 a
  (cd "$repo/guest-init" && PATH=/usr/bin:/bin /usr/bin/cargo build --offline --release --quiet)
  rm -rf "$stage" && mkdir -p "$stage/image/bin" "$stage/image/etc" "$stage/image/home/app"
  cp /bin/busybox "$stage/image/bin/busybox"
  for a in sh id echo cat sleep; do ln -s busybox "$stage/image/bin/$a"; done
  printf 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n' >"$stage/image/etc/passwd"
  printf 'root:x:0:\napp:x:1000:\n' >"$stage/image/etc/group"
  mksquashfs "$stage/image" "$stage/image.sqfs" -quiet -noappend -all-root >/dev/null
}

# gi_config STAGE OUT GUEST_NAME SPEC_JSON IMAGE_CONFIG_JSON: STAGE/OUT.cpio, the archive the agent
# appends to the initrd (launch-main --initrd-append), its krata/launch.json
# composeLaunchConfig(GUEST_NAME, SPEC, IMAGE_CONFIG) (needs dist/ built on the host).
gi_config() {
  GI_NAME=$3 GI_SPEC=$4 GI_IMAGE=$5 GI_OUT=$1/$2.cpio node --input-type=module -e "
import { composeLaunchConfig, launchConfigArchive } from '$repo/dist/node-agent/guest/launch-config.js';
import { writeFileSync } from 'node:fs';
const { GI_NAME, GI_SPEC, GI_IMAGE, GI_OUT } = process.env;
writeFileSync(GI_OUT, launchConfigArchive(composeLaunchConfig(GI_NAME, JSON.parse(GI_SPEC), JSON.parse(GI_IMAGE))));
"
}

# gi_initrd OUT: (in dom0) krata's initrd with the guest-init built by gi_stage_image; prints its JSON line.
gi_initrd() {
  x "node /krata/dist/test/e2e/dom0/krata-initrd.js /krata/guest-init/target/release/guest-init $1"
}
