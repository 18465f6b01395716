// Xen and Linux ABI: hypercall numbers, ioctl requests and struct layouts, as in Xen 4.17's public
// headers (/usr/include/xen) and Linux's xen/privcmd.h. abi.test.ts compiles a C probe against those
// headers and fails on any difference.
import { IOC_NONE, ioc, layout } from '../../lib/c-layout.js';

export const PAGE_SIZE = 4096;
export const PAGE_SHIFT = 12;

/** __HYPERVISOR_* (xen.h). */
export const Hypercall = {
  memory_op: 12,
  multicall: 13,
  xen_version: 17,
  console_io: 18,
  grant_table_op: 20,
  vcpu_op: 24,
  mmuext_op: 26,
  sched_op: 29,
  event_channel_op: 32,
  physdev_op: 33,
  hvm_op: 34,
  sysctl: 35,
  domctl: 36,
} as const;

/** XENVER_* (version.h). */
export const XenVer = {
  version: 0,
  extraversion: 1,
  capabilities: 3,
  changeset: 4,
} as const;
export const XEN_EXTRAVERSION_LEN = 16;
export const XEN_CAPABILITIES_INFO_LEN = 1024;

/** XEN_DOMCTL_* commands (domctl.h). */
export const Domctl = {
  createdomain: 1,
  destroydomain: 2,
  pausedomain: 3,
  unpausedomain: 4,
  getdomaininfo: 5,
  max_mem: 11,
  setvcpucontext: 12,
  getvcpucontext: 13,
  max_vcpus: 15,
  setdomainhandle: 17,
  hypercall_init: 22,
  set_address_size: 35,
} as const;

/** XEN_SYSCTL_* commands (sysctl.h). */
export const Sysctl = {
  readconsole: 1,
  physinfo: 3,
  getdomaininfolist: 6,
} as const;

/** Interface versions of Xen 4.17 (the version our layouts are checked against) and the ones we probe. */
export const XEN_DOMCTL_INTERFACE_VERSION = 0x15;
export const XEN_SYSCTL_INTERFACE_VERSION = 0x15;

/** XEN_DOMINF_* flags of getdomaininfo. */
export const DomInfoFlag = {
  dying: 1 << 0,
  hvm_guest: 1 << 1,
  shutdown: 1 << 2,
  paused: 1 << 3,
  blocked: 1 << 4,
  running: 1 << 5,
  debugged: 1 << 6,
  xs_domain: 1 << 7,
  hap: 1 << 8,
} as const;
export const XEN_DOMINF_shutdownshift = 16;
export const XEN_DOMINF_shutdownmask = 255;

/** DOMID_FIRST_RESERVED and friends (xen.h). */
export const DOMID_FIRST_RESERVED = 0x7ff0;
export const DOMID_SELF = 0x7ff0;
export const DOMID_IO = 0x7ff1;

export const privcmdHypercall = layout('privcmd_hypercall_t', 48, {
  op: { offset: 0, type: 'u64' },
  arg0: { offset: 8, type: 'u64', c: 'arg[0]' },
  arg1: { offset: 16, type: 'u64', c: 'arg[1]' },
  arg2: { offset: 24, type: 'u64', c: 'arg[2]' },
  arg3: { offset: 32, type: 'u64', c: 'arg[3]' },
  arg4: { offset: 40, type: 'u64', c: 'arg[4]' },
});

export const privcmdMmapBatchV2 = layout('privcmd_mmapbatch_v2_t', 32, {
  num: { offset: 0, type: 'u32' },
  dom: { offset: 4, type: 'u16' },
  addr: { offset: 8, type: 'u64' },
  arr: { offset: 16, type: 'u64' },
  err: { offset: 24, type: 'u64' },
});

export const privcmdMmapResource = layout('privcmd_mmap_resource_t', 32, {
  dom: { offset: 0, type: 'u16' },
  type: { offset: 4, type: 'u32' },
  id: { offset: 8, type: 'u32' },
  idx: { offset: 12, type: 'u32' },
  num: { offset: 16, type: 'u64' },
  addr: { offset: 24, type: 'u64' },
});

/** IOCTL_PRIVCMD_* (xen/privcmd.h): _IOC(_IOC_NONE, 'P', nr, sizeof(struct)). */
export const PrivcmdIoctl = {
  HYPERCALL: ioc(IOC_NONE, 'P', 0, privcmdHypercall.size),
  MMAPBATCH_V2: ioc(IOC_NONE, 'P', 4, privcmdMmapBatchV2.size),
  MMAP_RESOURCE: ioc(IOC_NONE, 'P', 7, privcmdMmapResource.size),
} as const;

/** struct xen_domctl: a 16-byte header, then a 128-byte union of per-command payloads. */
export const domctl = layout('struct xen_domctl', 144, {
  cmd: { offset: 0, type: 'u32' },
  interface_version: { offset: 4, type: 'u32' },
  domain: { offset: 8, type: 'u16' },
  u: { offset: 16, type: 'bytes', length: 128 },
});

export const sysctl = layout('struct xen_sysctl', 136, {
  cmd: { offset: 0, type: 'u32' },
  interface_version: { offset: 4, type: 'u32' },
  u: { offset: 8, type: 'bytes', length: 128 },
});

export const getDomainInfo = layout('struct xen_domctl_getdomaininfo', 112, {
  domain: { offset: 0, type: 'u16' },
  flags: { offset: 4, type: 'u32' },
  tot_pages: { offset: 8, type: 'u64' },
  max_pages: { offset: 16, type: 'u64' },
  outstanding_pages: { offset: 24, type: 'u64' },
  shr_pages: { offset: 32, type: 'u64' },
  paged_pages: { offset: 40, type: 'u64' },
  shared_info_frame: { offset: 48, type: 'u64' },
  cpu_time: { offset: 56, type: 'u64' },
  nr_online_vcpus: { offset: 64, type: 'u32' },
  max_vcpu_id: { offset: 68, type: 'u32' },
  ssidref: { offset: 72, type: 'u32' },
  handle: { offset: 76, type: 'bytes', length: 16 },
  cpupool: { offset: 92, type: 'u32' },
  gpaddr_bits: { offset: 96, type: 'u8' },
});

export const getDomainInfoList = layout('struct xen_sysctl_getdomaininfolist', 24, {
  first_domain: { offset: 0, type: 'u16' },
  max_domains: { offset: 4, type: 'u32' },
  buffer: { offset: 8, type: 'u64' },
  num_domains: { offset: 16, type: 'u32' },
});

export const physinfo = layout('struct xen_sysctl_physinfo', 112, {
  threads_per_core: { offset: 0, type: 'u32' },
  cores_per_socket: { offset: 4, type: 'u32' },
  nr_cpus: { offset: 8, type: 'u32' },
  max_cpu_id: { offset: 12, type: 'u32' },
  nr_nodes: { offset: 16, type: 'u32' },
  max_node_id: { offset: 20, type: 'u32' },
  cpu_khz: { offset: 24, type: 'u32' },
  capabilities: { offset: 28, type: 'u32' },
  total_pages: { offset: 40, type: 'u64' },
  free_pages: { offset: 48, type: 'u64' },
  scrub_pages: { offset: 56, type: 'u64' },
  outstanding_pages: { offset: 64, type: 'u64' },
  max_mfn: { offset: 72, type: 'u64' },
});

/** struct start_info (xen.h), the page a PV kernel finds in %rsi at entry. */
export const startInfo = layout('struct start_info', 1168, {
  magic: { offset: 0, type: 'bytes', length: 32 },
  nr_pages: { offset: 32, type: 'u64' },
  shared_info: { offset: 40, type: 'u64' },
  flags: { offset: 48, type: 'u32' },
  store_mfn: { offset: 56, type: 'u64' },
  store_evtchn: { offset: 64, type: 'u32' },
  console_mfn: { offset: 72, type: 'u64', c: 'console.domU.mfn' },
  console_evtchn: { offset: 80, type: 'u32', c: 'console.domU.evtchn' },
  pt_base: { offset: 88, type: 'u64' },
  nr_pt_frames: { offset: 96, type: 'u64' },
  mfn_list: { offset: 104, type: 'u64' },
  mod_start: { offset: 112, type: 'u64' },
  mod_len: { offset: 120, type: 'u64' },
  cmd_line: { offset: 128, type: 'bytes', length: 1024 },
  first_p2m_pfn: { offset: 1152, type: 'u64' },
  nr_p2m_frames: { offset: 1160, type: 'u64' },
});
export const SIF_MOD_START_PFN = 1 << 3;
export const MAX_GUEST_CMDLINE = 1024;

export const domctlCreateDomain = layout('struct xen_domctl_createdomain', 64, {
  ssidref: { offset: 0, type: 'u32' },
  handle: { offset: 4, type: 'bytes', length: 16 },
  flags: { offset: 20, type: 'u32' },
  iommu_opts: { offset: 24, type: 'u32' },
  max_vcpus: { offset: 28, type: 'u32' },
  max_evtchn_port: { offset: 32, type: 'u32' },
  max_grant_frames: { offset: 36, type: 'i32' },
  max_maptrack_frames: { offset: 40, type: 'i32' },
  grant_opts: { offset: 44, type: 'u32' },
  vmtrace_size: { offset: 48, type: 'u32' },
  cpupool_id: { offset: 52, type: 'u32' },
  arch: { offset: 56, type: 'bytes', length: 8 },
});

export const domctlVcpuContext = layout('struct xen_domctl_vcpucontext', 16, {
  vcpu: { offset: 0, type: 'u32' },
  ctxt: { offset: 8, type: 'u64' },
});

/** struct vcpu_guest_context for x86_64 (arch-x86/xen.h): the registers a vCPU starts with. */
export const vcpuGuestContext = layout('struct vcpu_guest_context', 5168, {
  flags: { offset: 512, type: 'u64' },
  rsi: { offset: 624, type: 'u64', c: 'user_regs.rsi' },
  rip: { offset: 648, type: 'u64', c: 'user_regs.rip' },
  cs: { offset: 656, type: 'u16', c: 'user_regs.cs' },
  rflags: { offset: 664, type: 'u64', c: 'user_regs.rflags' },
  rsp: { offset: 672, type: 'u64', c: 'user_regs.rsp' },
  ss: { offset: 680, type: 'u16', c: 'user_regs.ss' },
  es: { offset: 688, type: 'u16', c: 'user_regs.es' },
  ds: { offset: 696, type: 'u16', c: 'user_regs.ds' },
  fs: { offset: 704, type: 'u16', c: 'user_regs.fs' },
  gs: { offset: 712, type: 'u16', c: 'user_regs.gs' },
  kernel_ss: { offset: 4968, type: 'u64' },
  kernel_sp: { offset: 4976, type: 'u64' },
  cr3: { offset: 4984 + 3 * 8, type: 'u64', c: 'ctrlreg[3]' },
  dr6: { offset: 5048 + 6 * 8, type: 'u64', c: 'debugreg[6]' },
  dr7: { offset: 5048 + 7 * 8, type: 'u64', c: 'debugreg[7]' },
});

export const memoryReservation = layout('struct xen_memory_reservation', 32, {
  extent_start: { offset: 0, type: 'u64' },
  nr_extents: { offset: 8, type: 'u64' },
  extent_order: { offset: 16, type: 'u32' },
  mem_flags: { offset: 20, type: 'u32' },
  domid: { offset: 24, type: 'u16' },
});

export const mmuextOp = layout('struct mmuext_op', 24, {
  cmd: { offset: 0, type: 'u32' },
  mfn: { offset: 8, type: 'u64', c: 'arg1.mfn' },
});

export const evtchnAllocUnbound = layout('struct evtchn_alloc_unbound', 8, {
  dom: { offset: 0, type: 'u16' },
  remote_dom: { offset: 2, type: 'u16' },
  port: { offset: 4, type: 'u32' },
});

export const grantEntryV1 = layout('struct grant_entry_v1', 8, {
  flags: { offset: 0, type: 'u16' },
  domid: { offset: 2, type: 'u16' },
  frame: { offset: 4, type: 'u32' },
});

export const VCPU_INFO_SIZE = 64;
export const XEN_LEGACY_MAX_VCPUS = 32;

/** Constants the builder uses, each checked against its C name in abi.test.ts. */
export const BuildConst = {
  FLAT_KERNEL_CS: 0xe033,
  FLAT_KERNEL_SS: 0xe02b,
  FLAT_KERNEL_DS: 0,
  VGCF_in_kernel: 4,
  VGCF_online: 32,
  MMUEXT_PIN_L4_TABLE: 3,
  XENMEM_populate_physmap: 6,
  XENMEM_claim_pages: 24,
  EVTCHNOP_alloc_unbound: 6,
  XENMEM_resource_grant_table: 1,
  GTF_permit_access: 1,
  GNTTAB_RESERVED_CONSOLE: 0,
  GNTTAB_RESERVED_XENSTORE: 1,
  XEN_DOMCTL_CDF_iommu: 32,
} as const;

/** IOCTL_EVTCHN_* (xen/evtchn.h): each argument is one or two unsigned ints. */
export const EvtchnIoctl = {
  BIND_VIRQ: ioc(IOC_NONE, 'E', 0, 4),
  BIND_INTERDOMAIN: ioc(IOC_NONE, 'E', 1, 8),
  BIND_UNBOUND_PORT: ioc(IOC_NONE, 'E', 2, 4),
  UNBIND: ioc(IOC_NONE, 'E', 3, 4),
  NOTIFY: ioc(IOC_NONE, 'E', 4, 4),
  RESET: ioc(IOC_NONE, 'E', 5, 0),
} as const;

/** Loop devices (linux/loop.h): LOOP_CONFIGURE attaches a file and sets flags in one step. */
export const loopConfig = layout('struct loop_config', 304, {
  fd: { offset: 0, type: 'u32' },
  block_size: { offset: 4, type: 'u32' },
  lo_flags: { offset: 8 + 52, type: 'u32', c: 'info.lo_flags' },
  lo_file_name: { offset: 8 + 56, type: 'bytes', length: 64, c: 'info.lo_file_name' },
});
/** What LOOP_GET_STATUS64 reports: the backing file's device and inode, and the flags. */
export const loopInfo64 = layout('struct loop_info64', 232, {
  lo_device: { offset: 0, type: 'u64' },
  lo_inode: { offset: 8, type: 'u64' },
  lo_flags: { offset: 52, type: 'u32' },
});
export const LoopIoctl = { CLR_FD: 0x4c01, GET_STATUS64: 0x4c05, CONFIGURE: 0x4c0a, CTL_GET_FREE: 0x4c82 } as const;
export const LoopFlag = { READ_ONLY: 1, AUTOCLEAR: 4 } as const;

/** gntdev (xen/gntdev.h): map other domains' grants into our address space. */
export const gntdevMapGrantRef = layout('struct ioctl_gntdev_map_grant_ref', 24, {
  count: { offset: 0, type: 'u32' },
  index: { offset: 8, type: 'u64' },
  ref0_domid: { offset: 16, type: 'u32', c: 'refs[0].domid' },
  ref0_ref: { offset: 20, type: 'u32', c: 'refs[0].ref' },
});
export const gntdevUnmapGrantRef = layout('struct ioctl_gntdev_unmap_grant_ref', 16, {
  index: { offset: 0, type: 'u64' },
  count: { offset: 8, type: 'u32' },
});
export const GntdevIoctl = {
  MAP_GRANT_REF: ioc(IOC_NONE, 'G', 0, gntdevMapGrantRef.size),
  UNMAP_GRANT_REF: ioc(IOC_NONE, 'G', 1, gntdevUnmapGrantRef.size),
} as const;
