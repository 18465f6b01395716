// The one record of a domain's configuration: the reconciler fills it, the Hypervisor boundary passes
// it on, the builder builds from it, and what of it xenstore holds (name, guest identity) is read back
// by krata-keys.ts. Types only.

/** The Guest a domain runs: kept in the domain's krata/ keys, so a restarted agent adopts the domain. */
export interface GuestIdentity {
  /** The Guest's namespace and name: DNS labels (crds/meta.ts). */
  namespace: string;
  name: string;
  /** The Guest's metadata.uid: a domain of an earlier Guest with the same name is not adopted. */
  uid: string;
  /** Hash of the spec fields the domain was built from; a different hash means recreate. */
  specHash: string;
}

/** A file served to the guest as a read-only disk, through a loop device and blkback. */
export interface DiskConfig {
  file: string;
  /** xvda, xvdb, ... */
  vdev: string;
}

/** A network interface, served by netback (vif<domid>.<index> in dom0). */
export interface NicConfig {
  mac: string;
}

export interface DomainConfig {
  /** Xen domain name: "krata.<namespace>.<name>", or "krata-<uid>" when that is too long (unique on the host). */
  name: string;
  /** The Guest it runs. A domain without one (launch-main's) is not krata's: never listed or adopted. */
  guest?: GuestIdentity;
  vcpus: number;
  /** vCPUs the guest may bring online later (at least `vcpus`). */
  maxVcpus: number;
  /** Memory the guest starts with and the most it may balloon to. */
  memoryMiB: number;
  maxMemoryMiB: number;
  /** dom0 paths of the kernel (bzImage or ELF) and the initrd. */
  kernel: string;
  initrd?: string;
  /**
   * A cpio archive loaded after the initrd (builder/initrd-parts.ts) and unpacked over it: for
   * krata's guests, guest-init's krata/launch.json.
   */
  initrdAppend?: Buffer;
  cmdline: string;
  /** In order: for krata's guests xvda = the image squashfs. */
  disks: DiskConfig[];
  nics: NicConfig[];
}
