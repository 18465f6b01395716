// A test double for Xen: domains in memory, with scripted behaviour (how long a guest's process runs
// and how it ends, failures of create), host capacity, consoles and change events. The reconciler
// tests and the agent benchmark inject it in place of XenHypervisor. A FakeHypervisor can outlive an
// agent (restart tests hand the same instance to a new agent: the domains "keep running").
import { EventEmitter } from 'node:events';
import { randomUUID } from 'node:crypto';
import { FakeConsole } from './fake-console.js';
import {
  type Console,
  type DomainInfo,
  type DomainStats,
  type GuestDomainConfig,
  type Hypervisor,
  type ResizeResult,
  type ResourceTargets,
} from './hypervisor.js';
import type { GuestChannel } from '../channel/types.js';
import { type HostInfo } from '../../contracts/agent-api/types.js';
import { systemClock, type Clock } from '../../lib/clock.js';

/** How a fake guest behaves: its process ends after `runMs` with `exitCode` or `signal`. */
export interface FakeBehaviour {
  runMs?: number;
  exitCode?: number;
  signal?: number;
  /** Output written to its console when it starts. */
  output?: string;
  /** Ignores control/shutdown (only destroy stops it). */
  ignoreShutdown?: boolean;
}

export interface FakeSnapshot {
  nextDomid: number;
  domains: { info: DomainInfo; launch: GuestDomainConfig }[];
}

interface FakeDomain {
  info: DomainInfo;
  launch: GuestDomainConfig;
  console: FakeConsole;
  timer?: { cancel(): void };
  behaviour: FakeBehaviour;
}

export class FakeHypervisor implements Hypervisor {
  readonly events = new EventEmitter();
  private readonly domains = new Map<number, FakeDomain>();
  private nextDomid = 1;
  /** Calls made, for assertions. */
  readonly calls = { create: 0, shutdown: 0, destroy: 0, list: 0, resize: 0 };
  /** Errors the next create calls throw, in order. */
  readonly createFailures: Error[] = [];
  /** Loop devices / vifs "left" by a crashed agent, removed by cleanupOrphans. */
  orphans: string[] = [];
  behaviour: (launch: GuestDomainConfig) => FakeBehaviour = () => ({});
  createDelayMs = 0;
  /** Called after every change of the domain set, with what `restore` takes (simulated hosts persist it). */
  onChange?: (snapshot: FakeSnapshot) => void;

  constructor(
    readonly capacity: { cpus: number; memoryMiB: number } = { cpus: 64, memoryMiB: 1 << 20 },
    private readonly clock: Clock = systemClock,
  ) {
    this.events.setMaxListeners(0);
  }

  async host(): Promise<HostInfo> {
    const used = [...this.domains.values()].reduce((s, d) => s + d.launch.maxMemoryMiB, 0);
    return {
      xenVersion: '4.17.0-fake',
      cpus: this.capacity.cpus,
      totalMemoryMiB: this.capacity.memoryMiB,
      freeMemoryMiB: this.capacity.memoryMiB - used,
      kernelVersion: 'fake',
    };
  }

  async list(): Promise<DomainInfo[]> {
    this.calls.list++;
    return [...this.domains.values()].map((d) => structuredClone(d.info));
  }

  async create(launch: GuestDomainConfig): Promise<DomainInfo> {
    this.calls.create++;
    if (this.createDelayMs) await new Promise((r) => setTimeout(r, this.createDelayMs));
    const failure = this.createFailures.shift();
    if (failure) throw failure;
    const free = (await this.host()).freeMemoryMiB;
    if (launch.maxMemoryMiB > free) throw new Error(`out of memory: ${launch.maxMemoryMiB} MiB asked, ${free} MiB free`);
    if ([...this.domains.values()].some((d) => d.info.name === launch.name)) throw new Error(`domain name ${launch.name} is in use`);
    const domid = this.nextDomid++;
    const info: DomainInfo = {
      domid,
      uuid: randomUUID(),
      name: launch.name,
      guest: { ...launch.guest },
      state: 'running',
      createdAt: this.clock.now(),
    };
    const behaviour = this.behaviour(launch);
    const dom: FakeDomain = { info, launch, console: new FakeConsole(), behaviour };
    this.domains.set(domid, dom);
    if (behaviour.output) dom.console.emit(behaviour.output);
    this.changed();
    if (behaviour.runMs !== undefined)
      dom.timer = this.clock.setTimeout(
        () => this.exit(domid, behaviour.signal !== undefined ? { signal: behaviour.signal } : { exitCode: behaviour.exitCode ?? 0 }),
        behaviour.runMs,
      );
    return structuredClone(info);
  }

  /** The guest's process ends: guest-init reports and powers off. */
  exit(domid: number, exit: { exitCode?: number; signal?: number }): void {
    const d = this.domains.get(domid);
    if (!d || d.info.state !== 'running') return;
    d.timer?.cancel();
    d.info.exit = exit;
    d.info.state = 'shutdown';
    this.changed();
    this.events.emit('change', domid);
  }

  async shutdown(domid: number, graceMs: number): Promise<'graceful' | 'forced'> {
    this.calls.shutdown++;
    const d = this.domains.get(domid);
    if (!d) return 'graceful';
    if (!d.behaviour.ignoreShutdown && d.info.state === 'running') this.exit(domid, { exitCode: 0 });
    const graceful = d.info.state !== 'running';
    if (!graceful) await new Promise((r) => this.clock.setTimeout(() => r(undefined), graceMs));
    await this.destroy(domid);
    return graceful ? 'graceful' : 'forced';
  }

  async destroy(domid: number): Promise<void> {
    this.calls.destroy++;
    const d = this.domains.get(domid);
    if (!d) return;
    d.timer?.cancel();
    this.domains.delete(domid);
    this.changed();
    this.events.emit('change', domid);
  }

  console(domid: number): Console | undefined {
    return this.domains.get(domid)?.console;
  }

  /** Channels tests install per domid (none by default: like a domain started by an older agent). */
  readonly channels = new Map<number, GuestChannel>();

  channel(domid: number): GuestChannel | undefined {
    return this.domains.has(domid) ? this.channels.get(domid) : undefined;
  }

  /** A resize moves the domain's launch targets (vcpus, memoryMiB): the fake guest follows them at once. */
  async resize(domid: number, targets: ResourceTargets): Promise<ResizeResult> {
    this.calls.resize++;
    const d = this.domains.get(domid);
    if (!d || d.info.state !== 'running') throw new Error(`domain ${domid} is not running`);
    const { vcpus, memoryMiB, maxVcpus, maxMemoryMiB } = d.launch;
    if (targets.vcpus < 1 || targets.vcpus > maxVcpus)
      throw new RangeError(`domain ${domid}: ${targets.vcpus} vCPUs asked, it has ${maxVcpus}`);
    if (targets.memoryMiB < 1 || targets.memoryMiB > maxMemoryMiB)
      throw new RangeError(`domain ${domid}: memory ${targets.memoryMiB} MiB asked, its maximum is ${maxMemoryMiB} MiB`);
    const changed = vcpus !== targets.vcpus || memoryMiB !== targets.memoryMiB;
    d.launch = { ...d.launch, vcpus: targets.vcpus, memoryMiB: targets.memoryMiB };
    if (changed) this.changed();
    return { before: { vcpus, memoryMiB }, changed };
  }

  /** Figures tests set per domid over what `stats` derives from the launch (CPU time 0, memory and vCPUs at their targets). */
  readonly domainStats = new Map<number, Partial<DomainStats>>();

  stats(domid: number): DomainStats | undefined {
    const d = this.domains.get(domid);
    if (!d) return undefined;
    const derived = {
      cpuSeconds: 0,
      memoryBytes: d.launch.memoryMiB * 1024 * 1024,
      maxMemoryBytes: d.launch.maxMemoryMiB * 1024 * 1024,
      vcpusOnline: d.launch.vcpus,
      vcpusMax: d.launch.maxVcpus,
    };
    return { ...derived, ...this.domainStats.get(domid) };
  }

  async cleanupOrphans(): Promise<string[]> {
    const removed = this.orphans;
    this.orphans = [];
    return removed;
  }

  /** Test access to the configuration a domain was created with (vcpus and memoryMiB as resized since), and its console. */
  domain(domid: number): { launch: GuestDomainConfig; console: FakeConsole; info: DomainInfo } | undefined {
    const d = this.domains.get(domid);
    return d && { launch: d.launch, console: d.console, info: d.info };
  }

  private changed(): void {
    this.onChange?.(this.snapshot());
  }

  /** The domains, as Xen would still hold them after the agent's process dies. */
  snapshot(): FakeSnapshot {
    // Without the launch config's archive: saved as JSON on every change by the simulated hosts.
    const launch = ({ initrdAppend: _, ...rest }: GuestDomainConfig) => rest;
    return { nextDomid: this.nextDomid, domains: [...this.domains.values()].map((d) => ({ info: d.info, launch: launch(d.launch) })) };
  }

  /** Domains from a snapshot keep "running" (their scripted behaviour is not re-armed). */
  restore(s: FakeSnapshot): void {
    this.nextDomid = Math.max(this.nextDomid, s.nextDomid);
    for (const d of s.domains)
      this.domains.set(d.info.domid, { info: d.info, launch: d.launch, console: new FakeConsole(), behaviour: {} });
  }

  get count(): number {
    return this.domains.size;
  }
}
