// Xen's public headers are the ABI authority: compile a probe against them (gcc, libxen-dev) that prints
// every size, offset and constant we hard-code, and compare.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as abi from './abi.js';
import type { Layout } from '../../lib/c-layout.js';
import { layoutKey, layoutLines, runCProbe, valueLines } from '../../test/c-probe.js';

const layouts: Layout[] = [
  abi.privcmdHypercall,
  abi.privcmdMmapBatchV2,
  abi.privcmdMmapResource,
  abi.domctl,
  abi.sysctl,
  abi.getDomainInfo,
  abi.getDomainInfoList,
  abi.physinfo,
  abi.startInfo,
  abi.domctlCreateDomain,
  abi.domctlVcpuContext,
  abi.vcpuGuestContext,
  abi.memoryReservation,
  abi.mmuextOp,
  abi.evtchnAllocUnbound,
  abi.grantEntryV1,
  abi.loopConfig,
  abi.loopInfo64,
  abi.gntdevMapGrantRef,
  abi.gntdevUnmapGrantRef,
];

const constants: [string, number][] = [
  ...Object.entries(abi.Hypercall).map(([k, v]): [string, number] => [`__HYPERVISOR_${k}`, v]),
  ...Object.entries(abi.XenVer).map(([k, v]): [string, number] => [`XENVER_${k}`, v]),
  ...Object.entries(abi.Domctl).map(([k, v]): [string, number] => [`XEN_DOMCTL_${k}`, v]),
  ...Object.entries(abi.Sysctl).map(([k, v]): [string, number] => [`XEN_SYSCTL_${k}`, v]),
  ...Object.entries(abi.DomInfoFlag).map(([k, v]): [string, number] => [`XEN_DOMINF_${k}`, v]),
  ...Object.entries(abi.PrivcmdIoctl).map(([k, v]): [string, number] => [`IOCTL_PRIVCMD_${k}`, v]),
  ...Object.entries(abi.LoopIoctl).map(([k, v]): [string, number] => [`LOOP_${k}`, v]),
  ...Object.entries(abi.LoopFlag).map(([k, v]): [string, number] => [`LO_FLAGS_${k}`, v]),
  ...Object.entries(abi.GntdevIoctl).map(([k, v]): [string, number] => [`IOCTL_GNTDEV_${k}`, v]),
  ...Object.entries(abi.EvtchnIoctl).map(([k, v]): [string, number] => [`IOCTL_EVTCHN_${k}`, v]),
  ['XEN_DOMCTL_INTERFACE_VERSION', abi.XEN_DOMCTL_INTERFACE_VERSION],
  ['XEN_SYSCTL_INTERFACE_VERSION', abi.XEN_SYSCTL_INTERFACE_VERSION],
  ['XEN_DOMINF_shutdownshift', abi.XEN_DOMINF_shutdownshift],
  ['XEN_DOMINF_shutdownmask', abi.XEN_DOMINF_shutdownmask],
  ['DOMID_FIRST_RESERVED', abi.DOMID_FIRST_RESERVED],
  ['DOMID_SELF', abi.DOMID_SELF],
  ['DOMID_IO', abi.DOMID_IO],
  ['XEN_EXTRAVERSION_LEN', abi.XEN_EXTRAVERSION_LEN],
  ['XEN_CAPABILITIES_INFO_LEN', abi.XEN_CAPABILITIES_INFO_LEN],
  ['XEN_PAGE_SIZE', abi.PAGE_SIZE],
  ...Object.entries(abi.BuildConst),
  ['sizeof(struct vcpu_info)', abi.VCPU_INFO_SIZE],
  ['XEN_LEGACY_MAX_VCPUS', abi.XEN_LEGACY_MAX_VCPUS],
  ['SIF_MOD_START_PFN', abi.SIF_MOD_START_PFN],
  ['MAX_GUEST_CMDLINE', abi.MAX_GUEST_CMDLINE],
];

function probe(): Map<string, number> {
  return runCProbe(
    [
      '#define __XEN_TOOLS__ 1',
      '#include <stdio.h>',
      '#include <stddef.h>',
      '#include <stdint.h>',
      '#include <sys/ioctl.h>',
      '#include <xen/xen.h>',
      '#include <xen/domctl.h>',
      '#include <xen/sysctl.h>',
      '#include <xen/version.h>',
      '#include <xen/sys/privcmd.h>',
      '#include <xen/memory.h>',
      '#include <xen/event_channel.h>',
      '#include <xen/grant_table.h>',
      '#include <xen/sys/evtchn.h>',
      '#include <linux/loop.h>',
      '#include <xen/sys/gntdev.h>',
      '#ifndef XEN_PAGE_SIZE',
      '#define XEN_PAGE_SIZE 4096',
      '#endif',
    ],
    [...layoutLines(layouts), ...valueLines(constants.map(([name]) => [name, name]))],
  );
}

const key = layoutKey;
const facts = probe();
const widths: Record<string, number> = { u8: 1, u16: 2, u32: 4, i32: 4, u64: 8, i64: 8 };

for (const l of layouts) {
  test(`${l.c} matches the headers`, () => {
    assert.equal(l.size, facts.get(`sizeof ${key(l)}`), 'size');
    for (const [name, f] of Object.entries(l.fields)) {
      assert.equal(f.offset, facts.get(`offsetof ${key(l)}.${name}`), `offset of ${name}`);
      if (f.type === 'bytes') assert.equal(f.length, facts.get(`sizeof ${key(l)}.${name}`), `length of ${name}`);
      else assert.equal(widths[f.type], facts.get(`width ${key(l)}.${name}`), `width of ${name}`);
    }
  });
}

test('hypercall numbers, commands, flags, ioctl requests and versions match the headers', () => {
  for (const [name, value] of constants) assert.equal(value, facts.get(`const ${name.replace(/ /g, '_')}`), name);
});
