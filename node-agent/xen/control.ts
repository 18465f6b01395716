// Domain control through domctl and sysctl hypercalls: Xen's version, the host's resources, the list
// of domains, pause/unpause/destroy. Interface versions are probed once, so one build of krata serves
// Xen 4.17 to 4.19.
import {
  DomInfoFlag,
  Domctl,
  Hypercall,
  PAGE_SIZE,
  Sysctl,
  XEN_CAPABILITIES_INFO_LEN,
  XEN_DOMINF_shutdownmask,
  XEN_DOMINF_shutdownshift,
  XEN_EXTRAVERSION_LEN,
  XenVer,
  domctl,
  getDomainInfo,
  getDomainInfoList,
  physinfo,
  sysctl,
} from './abi.js';
import { HypercallError, NotOnXenError, type Privcmd } from './privcmd.js';
import { getField, getNumber, setField } from '../../lib/c-layout.js';

/** domctl interface versions of Xen 4.17, 4.18, 4.19; sysctl's moved less. Newest first. */
export const DOMCTL_VERSIONS = [0x17, 0x16, 0x15];
export const SYSCTL_VERSIONS = [0x17, 0x16, 0x15];

export interface XenVersion {
  major: number;
  minor: number;
  extra: string;
  /** "4.17.5-pre" */
  text: string;
}

export interface DomainInfo {
  domid: number;
  /** The domain handle as a UUID string. */
  uuid: string;
  dying: boolean;
  shutdown: boolean;
  /** SHUTDOWN_* reason (0 poweroff, 1 reboot, 2 suspend, 3 crash, 4 watchdog, 5 soft reset) when shut down. */
  shutdownReason?: number;
  paused: boolean;
  blocked: boolean;
  running: boolean;
  hvm: boolean;
  totalPages: number;
  maxPages: number;
  onlineVcpus: number;
  maxVcpuId: number;
  cpuTimeNs: bigint;
  cpupool: number;
  /** Frame of the domain's shared_info page. */
  sharedInfoFrame: bigint;
}

export interface HostInfo {
  nrCpus: number;
  threadsPerCore: number;
  coresPerSocket: number;
  cpuKhz: number;
  totalBytes: bigint;
  freeBytes: bigint;
}

export class XenControl {
  private domctlVersion: number | undefined;
  private sysctlVersion: number | undefined;

  constructor(private readonly privcmd: Privcmd) {}

  version(): XenVersion {
    let raw: number;
    try {
      raw = this.privcmd.hypercall(Hypercall.xen_version, [XenVer.version, 0], 'xen_version');
    } catch (e) {
      throw new NotOnXenError(`the hypervisor does not answer (${(e as Error).message})`);
    }
    const buf = this.privcmd.buffer(XEN_EXTRAVERSION_LEN);
    try {
      this.privcmd.hypercall(Hypercall.xen_version, [XenVer.extraversion, buf.address], 'xen_version extraversion');
      const extra = cString(buf.bytes);
      const major = raw >>> 16;
      const minor = raw & 0xffff;
      return { major, minor, extra, text: `${major}.${minor}${extra}` };
    } finally {
      buf.release();
    }
  }

  capabilities(): string {
    const buf = this.privcmd.buffer(XEN_CAPABILITIES_INFO_LEN);
    try {
      this.privcmd.hypercall(Hypercall.xen_version, [XenVer.capabilities, buf.address], 'xen_version capabilities');
      return cString(buf.bytes);
    } finally {
      buf.release();
    }
  }

  /**
   * Run a domctl; `fill` writes the command's payload, `read` reads the answer from it (and gets the
   * header's domain field, where createdomain returns the new domid).
   */
  domctl<T>(cmd: number, domid: number, fill: (u: Buffer) => void, read: (u: Buffer, domain: number) => T, what = `domctl ${cmd}`): T {
    const version = this.domctlVersion ?? this.probeDomctl();
    return this.rawDomctl(version, cmd, domid, fill, read, what);
  }

  sysctl<T>(cmd: number, fill: (u: Buffer) => void, read: (u: Buffer) => T, what = `sysctl ${cmd}`): T {
    const version = this.sysctlVersion ?? this.probeSysctl();
    return this.rawSysctl(version, cmd, fill, read, what);
  }

  /** One domain by id, or undefined when there is none (getdomaininfo answers only for exact ids on 4.17+). */
  domain(domid: number): DomainInfo | undefined {
    try {
      return this.domctl(
        Domctl.getdomaininfo,
        domid,
        () => {},
        (u) => {
          const info = parseDomainInfo(u, 0);
          return info.domid === domid ? info : undefined;
        },
        `getdomaininfo ${domid}`,
      );
    } catch (e) {
      if (e instanceof HypercallError && e.code === 'ESRCH') return undefined;
      throw e;
    }
  }

  /** Every domain, dom0 included, through sysctl getdomaininfolist in batches. */
  listDomains(): DomainInfo[] {
    const batch = 64;
    const buf = this.privcmd.buffer(batch * getDomainInfo.size);
    try {
      const out: DomainInfo[] = [];
      let first = 0;
      for (;;) {
        const n = this.sysctl(
          Sysctl.getdomaininfolist,
          (u) => {
            setField(u, getDomainInfoList, 'first_domain', first);
            setField(u, getDomainInfoList, 'max_domains', batch);
            setField(u, getDomainInfoList, 'buffer', buf.address);
          },
          (u) => getNumber(u, getDomainInfoList, 'num_domains'),
          'getdomaininfolist',
        );
        if (n > batch) throw new HypercallError('getdomaininfolist', 'EIO', 5);
        for (let i = 0; i < n; i++) out.push(parseDomainInfo(buf.bytes, i * getDomainInfo.size));
        if (n < batch) return out;
        first = out.at(-1)!.domid + 1;
      }
    } finally {
      buf.release();
    }
  }

  host(): HostInfo {
    return this.sysctl(
      Sysctl.physinfo,
      () => {},
      (u) => ({
        nrCpus: getNumber(u, physinfo, 'nr_cpus'),
        threadsPerCore: getNumber(u, physinfo, 'threads_per_core'),
        coresPerSocket: getNumber(u, physinfo, 'cores_per_socket'),
        cpuKhz: getNumber(u, physinfo, 'cpu_khz'),
        totalBytes: (getField(u, physinfo, 'total_pages') as bigint) * BigInt(PAGE_SIZE),
        freeBytes: (getField(u, physinfo, 'free_pages') as bigint) * BigInt(PAGE_SIZE),
      }),
      'physinfo',
    );
  }

  pause(domid: number): void {
    this.domctl(
      Domctl.pausedomain,
      domid,
      () => {},
      () => undefined,
      `pause ${domid}`,
    );
  }

  unpause(domid: number): void {
    this.domctl(
      Domctl.unpausedomain,
      domid,
      () => {},
      () => undefined,
      `unpause ${domid}`,
    );
  }

  destroy(domid: number): void {
    this.domctl(
      Domctl.destroydomain,
      domid,
      () => {},
      () => undefined,
      `destroy ${domid}`,
    );
  }

  /** The domctl interface version this hypervisor speaks (EACCES means "not this version"). */
  get interfaceVersions(): { domctl: number; sysctl: number } {
    return { domctl: this.domctlVersion ?? this.probeDomctl(), sysctl: this.sysctlVersion ?? this.probeSysctl() };
  }

  private probeDomctl(): number {
    for (const v of DOMCTL_VERSIONS) {
      try {
        this.rawDomctl(
          v,
          Domctl.getdomaininfo,
          0,
          () => {},
          () => undefined,
          'probe domctl',
        );
        return (this.domctlVersion = v);
      } catch (e) {
        if (!(e instanceof HypercallError) || e.code !== 'EACCES') throw e;
      }
    }
    throw new NotOnXenError(
      `this Xen speaks none of the domctl interface versions ${DOMCTL_VERSIONS.map(hex).join(', ')} (Xen 4.17 to 4.19)`,
    );
  }

  private probeSysctl(): number {
    for (const v of SYSCTL_VERSIONS) {
      try {
        this.rawSysctl(
          v,
          Sysctl.physinfo,
          () => {},
          () => undefined,
          'probe sysctl',
        );
        return (this.sysctlVersion = v);
      } catch (e) {
        if (!(e instanceof HypercallError) || e.code !== 'EACCES') throw e;
      }
    }
    throw new NotOnXenError(`this Xen speaks none of the sysctl interface versions ${SYSCTL_VERSIONS.map(hex).join(', ')}`);
  }

  private rawDomctl<T>(
    version: number,
    cmd: number,
    domid: number,
    fill: (u: Buffer) => void,
    read: (u: Buffer, domain: number) => T,
    what: string,
  ): T {
    const buf = this.privcmd.buffer(domctl.size);
    try {
      setField(buf.bytes, domctl, 'cmd', cmd);
      setField(buf.bytes, domctl, 'interface_version', version);
      setField(buf.bytes, domctl, 'domain', domid);
      const u = buf.bytes.subarray(domctl.fields.u.offset, domctl.fields.u.offset + domctl.fields.u.length!);
      fill(u);
      this.privcmd.hypercall(Hypercall.domctl, [buf.address], what);
      return read(u, buf.bytes.readUInt16LE(domctl.fields.domain.offset));
    } finally {
      buf.release();
    }
  }

  private rawSysctl<T>(version: number, cmd: number, fill: (u: Buffer) => void, read: (u: Buffer) => T, what: string): T {
    const buf = this.privcmd.buffer(sysctl.size);
    try {
      setField(buf.bytes, sysctl, 'cmd', cmd);
      setField(buf.bytes, sysctl, 'interface_version', version);
      const u = buf.bytes.subarray(sysctl.fields.u.offset, sysctl.fields.u.offset + sysctl.fields.u.length!);
      fill(u);
      this.privcmd.hypercall(Hypercall.sysctl, [buf.address], what);
      return read(u);
    } finally {
      buf.release();
    }
  }
}

export function parseDomainInfo(buf: Buffer, base: number): DomainInfo {
  const flags = getNumber(buf, getDomainInfo, 'flags', base);
  const shutdown = (flags & DomInfoFlag.shutdown) !== 0;
  return {
    domid: getNumber(buf, getDomainInfo, 'domain', base),
    uuid: formatUuid(getField(buf, getDomainInfo, 'handle', base) as Buffer),
    dying: (flags & DomInfoFlag.dying) !== 0,
    shutdown,
    shutdownReason: shutdown ? (flags >>> XEN_DOMINF_shutdownshift) & XEN_DOMINF_shutdownmask : undefined,
    paused: (flags & DomInfoFlag.paused) !== 0,
    blocked: (flags & DomInfoFlag.blocked) !== 0,
    running: (flags & DomInfoFlag.running) !== 0,
    hvm: (flags & DomInfoFlag.hvm_guest) !== 0,
    totalPages: Number(getField(buf, getDomainInfo, 'tot_pages', base)),
    // dom0 without a limit reports ~0: a count this large is "unlimited", precision does not matter.
    maxPages: Number(getField(buf, getDomainInfo, 'max_pages', base)),
    onlineVcpus: getNumber(buf, getDomainInfo, 'nr_online_vcpus', base),
    maxVcpuId: getNumber(buf, getDomainInfo, 'max_vcpu_id', base),
    cpuTimeNs: getField(buf, getDomainInfo, 'cpu_time', base) as bigint,
    cpupool: getNumber(buf, getDomainInfo, 'cpupool', base),
    sharedInfoFrame: getField(buf, getDomainInfo, 'shared_info_frame', base) as bigint,
  };
}

export function formatUuid(bytes: Buffer): string {
  const h = bytes.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

function cString(bytes: Buffer): string {
  const end = bytes.indexOf(0);
  return bytes.subarray(0, end < 0 ? bytes.length : end).toString('latin1');
}

function hex(n: number): string {
  return `0x${n.toString(16)}`;
}
