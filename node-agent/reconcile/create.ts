// The create step: a Guest that should run and has no domain gets one. Its image is resolved (pulled
// beside the workers: the step ends while the pull runs), its resources and boot files are checked
// against the host, its addresses reserved, its launch config composed (an archive loaded after the
// initrd: no disk of its own), and the domain launched through the Hypervisor. Each stage says itself
// in status; a failure is a retry (thrown) or Stalled.
import { existsSync, realpathSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Guest } from '../../crds/generated/types.js';
import { metaTime } from '../../crds/meta.js';
import { quantityValue } from '../../crds/quantity.js';
import type { PullAuth } from '../../lib/oci/registry.js';
import { noPhases, type PhaseTimer } from '../../lib/phase-timer.js';
import { faultPoint } from '../../lib/fault-points.js';
import { composeLaunchConfig, launchConfigArchive, LaunchConfigError, type GuestNetworkConfig } from '../guest/launch-config.js';
import type { DomainInfo, GuestDomainConfig, Hypervisor } from '../runtime/hypervisor.js';
import type { GuestRecord } from '../store/guest-store.js';
import type { EventRecorder } from './events.js';
import { domainName, specHash } from './identity.js';
import type { Ipam, Reservation } from './ipam.js';
import type { ObservedDomains } from './observed-domains.js';
import { ImageError, PullBackOff, type ImagePulls } from './pulls.js';
import { clearResources, Retrying, Stalled, statusAddresses, WaitFor, type StatusWriter } from './status.js';

export interface CreateOptions {
  /** This host's name in Guest status. */
  nodeName: string;
  /** The node's default guest kernel and initrd. */
  kernel: string;
  initrd: string;
  /** Appended to the guest kernel's command line. */
  cmdline?: string;
  nameservers?: string[];
  /**
   * Directories a Guest's kernel.path and initrd.path may point into (default: the directories of
   * the node's kernel and initrd): the agent reads those files as root for whoever may use its API.
   */
  bootFileDirs?: string[];
  /**
   * A Guest's pull credentials: its namespace's pull secrets (single host) or the operator's
   * repository tokens (cluster). Without it, pulls carry the namespace only (node credentials).
   */
  pullAuth?: (g: Guest) => PullAuth;
}

const MIB = 1024n * 1024n;

/** A memory quantity in MiB, rounded up; Stalled when it does not parse. */
export function mib(q: number | string | undefined, fallback: number): number {
  if (q === undefined) return fallback;
  const v = quantityValue(q);
  if (v === undefined) throw new Stalled('InvalidSpec', `memory quantity ${JSON.stringify(q)} is not valid`);
  return Number((v + MIB - 1n) / MIB);
}

export class CreateStep {
  constructor(
    private readonly hv: Pick<Hypervisor, 'host' | 'create'>,
    private readonly domains: ObservedDomains,
    private readonly pulls: ImagePulls,
    private readonly ipam: Ipam,
    private readonly status: StatusWriter,
    private readonly recorder: EventRecorder,
    private readonly opts: CreateOptions,
  ) {}

  /**
   * One step towards the Guest's domain: done (Running: its domid), waiting for its image (undefined),
   * or a throw. `phases` gets a mark per stage (launch-phases.ts).
   */
  async create(key: string, rec: GuestRecord, phases: PhaseTimer = noPhases): Promise<number | undefined> {
    const g = rec.guest;
    const uid = g.metadata.uid!;
    const { status } = this;
    // Image: pulled outside the workers; this reconcile ends while it runs.
    const untagged = !/[:@][^/]*$/.test(g.spec.image);
    const policy = g.spec.imagePullPolicy ?? (/:latest$/.test(g.spec.image) || untagged ? 'Always' : 'IfNotPresent');
    let image;
    try {
      // The namespace is always the Guest's own: a provider cannot make one Guest prove for another.
      const auth = { ...this.opts.pullAuth?.(g), namespace: g.metadata.namespace ?? 'default' };
      image = await this.pulls.image(key, uid, g.spec.image, policy, auth);
    } catch (e) {
      const reason = e instanceof ImageError ? e.reason : 'ErrImagePull';
      const message = `${g.spec.image}: ${(e as Error).message}`;
      status.set(key, (s) => {
        s.phase = 'Pending';
        s.reason = reason;
        s.message = message;
        status.condition(rec, s, 'ImageReady', 'False', reason, message);
      });
      if (e instanceof ImageError && e.permanent) throw new Stalled(reason, message);
      if (e instanceof PullBackOff) {
        // One stable message, so the recorder counts the waits rather than logging each.
        this.recorder.normal(key, 'BackOff', `back-off pulling image ${g.spec.image}`);
        throw new WaitFor(reason, message, e.retryInMs);
      }
      throw new Retrying(reason, message, { cause: e });
    }
    if (!image) {
      status.set(key, (s) => {
        s.phase = 'Pending';
        s.node = this.opts.nodeName;
        s.reason = 'ImagePulling';
        s.message = `pulling ${g.spec.image}`;
        status.condition(rec, s, 'ImageReady', 'False', 'ImagePulling', s.message);
        status.condition(rec, s, 'Reconciling', 'True', 'ImagePulling', s.message);
        status.condition(rec, s, 'Stalled', 'False', 'ImagePulling', '');
      });
      return undefined;
    }
    phases.mark('image lookup');
    const pulled = image;
    status.set(key, (s) => {
      s.phase = 'Creating';
      s.node = this.opts.nodeName;
      if (s.reason === 'ImagePulling') {
        delete s.reason;
        delete s.message;
      }
      s.imageDigest = pulled.digest;
      status.condition(rec, s, 'Reconciling', 'True', 'Creating', 'preparing the network and domain');
      status.condition(rec, s, 'Stalled', 'False', 'Creating', '');
      status.condition(rec, s, 'ImageReady', 'True', 'Pulled', `${g.spec.image} is ${pulled.digest}`);
    });
    phases.mark('status Creating');
    // Resources.
    const memoryMiB = mib(g.spec.resources.memory, 512);
    const maxMemoryMiB = Math.max(memoryMiB, mib(g.spec.resources.maxMemory, memoryMiB));
    const host = await this.hv.host();
    if (maxMemoryMiB > host.totalMemoryMiB) {
      throw new Stalled('InsufficientMemory', `maxMemory ${maxMemoryMiB} MiB is more than this host has (${host.totalMemoryMiB} MiB)`);
    }
    if (maxMemoryMiB > host.freeMemoryMiB) {
      status.set(key, (s) => {
        s.phase = 'Pending';
        s.reason = 'InsufficientMemory';
        s.message = `waiting for memory: ${maxMemoryMiB} MiB needed, ${host.freeMemoryMiB} MiB free`;
      });
      throw new Retrying('InsufficientMemory', `not enough free memory (${maxMemoryMiB} MiB needed, ${host.freeMemoryMiB} MiB free)`);
    }
    for (const [field, path] of [
      ['spec.kernel.path', g.spec.kernel?.path],
      ['spec.initrd.path', g.spec.initrd?.path],
    ] as const) {
      if (path !== undefined) this.checkBootFile(field, path);
    }
    if (g.spec.kernel?.image || g.spec.initrd?.image) {
      throw new Stalled(
        'KernelImageUnsupported',
        'kernel.image and initrd.image (kernels from OCI images) are not supported yet; use kernel.path/initrd.path or the node default',
      );
    }
    phases.mark('host and boot files');
    // Network.
    let reservation: Reservation | undefined;
    let network: GuestNetworkConfig | undefined;
    if (g.spec.network.enabled) {
      const r = this.ipam.reserve(key, uid);
      reservation = r;
      network = {
        // Offloads on (the kernel's defaults): kratanet takes and sends virtio-net headers, GSO
        // super-frames and partial checksums included, so the guest need not segment or checksum.
        interfaces: [{ name: 'eth0', addresses: [`${r.ipv4}/${r.prefix4}`, `${r.ipv6}/${r.prefix6}`], mtu: 1500, offloads: true }],
        routes: [
          { to: 'default', via: r.gateway4 },
          { to: 'default', via: r.gateway6 },
        ],
        nameservers: this.opts.nameservers ?? ['1.1.1.1', '2606:4700:4700::1111'],
        searches: [],
      };
      status.set(key, (s) => {
        s.addresses = statusAddresses(r);
        status.condition(rec, s, 'NetworkReady', 'True', 'AddressesAssigned', `${r.ipv4}, ${r.ipv6}`);
      });
    }
    phases.mark('addresses');
    // Launch config.
    let launchConfig;
    try {
      launchConfig = launchConfigArchive(composeLaunchConfig(g.metadata.name, g.spec, image.config.config, network));
    } catch (e) {
      if (e instanceof LaunchConfigError) throw new Stalled('InvalidSpec', e.message);
      throw e;
    }
    phases.mark('launch config');
    faultPoint('create.addresses-reserved'); // an address reservation, no domain
    // Domain.
    const launch: GuestDomainConfig = {
      name: domainName(g.metadata.namespace ?? 'default', g.metadata.name, uid),
      guest: { namespace: g.metadata.namespace ?? 'default', name: g.metadata.name, uid, specHash: specHash(g) },
      vcpus: g.spec.resources.cpus,
      maxVcpus: Math.max(g.spec.resources.cpus, g.spec.resources.maxCpus ?? g.spec.resources.cpus),
      memoryMiB,
      maxMemoryMiB,
      kernel: g.spec.kernel?.path ?? this.opts.kernel,
      initrd: g.spec.initrd?.path ?? this.opts.initrd,
      cmdline: ['console=hvc0', g.spec.kernel?.verbose ? '' : 'quiet loglevel=3', this.opts.cmdline ?? '', g.spec.kernel?.cmdline ?? '']
        .filter(Boolean)
        .join(' '),
      initrdAppend: launchConfig,
      disks: [{ file: image.path, vdev: 'xvda' }],
      nics: reservation ? [{ mac: reservation.mac }] : [],
    };
    let dom: DomainInfo;
    try {
      dom = await this.hv.create(launch, { phases });
    } catch (e) {
      const message = (e as Error).message;
      status.set(key, (s) => {
        s.phase = 'Pending';
        s.reason = 'FailedCreate';
        s.message = message;
        status.condition(rec, s, 'Ready', 'False', 'FailedCreate', message);
      });
      throw new Retrying('FailedCreate', `creating the domain failed: ${message}`, { cause: e });
    }
    faultPoint('create.domain-running'); // a running domain whose Guest's status does not name it
    this.domains.created(dom);
    this.recorder.normal(key, 'Started', `domain ${dom.domid} (${dom.name}) started with ${image.digest}`);
    status.set(key, (s) => {
      s.phase = 'Running';
      s.domid = dom.domid;
      s.uuid = dom.uuid;
      s.startTime = metaTime(dom.createdAt);
      clearResources(s);
      delete s.reason;
      delete s.message;
      status.condition(rec, s, 'Ready', 'True', 'Running', `domain ${dom.domid} is running`);
      status.condition(rec, s, 'Reconciling', 'False', 'Running', '');
    });
    phases.mark('status Running');
    return dom.domid;
  }

  private checkBootFile(field: string, path: string): void {
    const allowed = this.opts.bootFileDirs ?? [dirname(this.opts.kernel), dirname(this.opts.initrd)];
    const dirs = allowed.map((d) => (existsSync(d) ? realpathSync(d) : d));
    let real: string;
    try {
      real = realpathSync(path);
    } catch {
      throw new Stalled('InvalidSpec', `${field}: ${path} does not exist on this node`);
    }
    if (!dirs.some((d) => real.startsWith(`${d}/`))) {
      throw new Stalled('InvalidSpec', `${field}: ${path} is outside the directories this node boots guests from (${dirs.join(', ')})`);
    }
  }
}
