// The boundary between the reconciler and Xen. The real implementation (xen-hypervisor.ts) drives
// node-agent/xen/; tests and the agent benchmark inject a test double (fake-hypervisor.ts) through
// inversify. xenstore is the truth about domains: `list()` reads it, so an agent that restarts finds
// (adopts) the domains it started before, by the guest key each domain carries.
import type { HostInfo } from '../../contracts/agent-api/types.js';
import type { DomainConfig, GuestExit, GuestIdentity, KrataDomainRecord, ResizeResult, ResourceTargets } from '../xen/index.js';
import type { EventEmitter } from 'node:events';
import type { GuestChannel } from '../channel/types.js';
import type { PhaseTimer } from '../../lib/phase-timer.js';

export type { DiskConfig, DomainConfig, GuestExit, GuestIdentity, NicConfig, ResizeResult, ResourceTargets } from '../xen/index.js';

/** What create() takes: a domain configuration that names its Guest (xenstore krata/ keys). */
export type GuestDomainConfig = DomainConfig & { guest: GuestIdentity };

export interface CreateOptions {
  phases?: PhaseTimer;
}

export type DomainState = 'running' | 'paused' | 'shutdown' | 'crashed' | 'dying';

/**
 * A krata domain as xenstore and Xen describe it: what xenstore holds of its DomainConfig (name, guest,
 * and when it was created, in ms since the epoch) with its ids and state.
 */
export interface DomainInfo extends KrataDomainRecord {
  domid: number;
  uuid: string;
  state: DomainState;
  /** What guest-init reported (krata/guest/...): set once the process ended. */
  exit?: GuestExit;
}

/** A guest's console: bounded history plus live output, and input. */
export interface Console {
  /** What the guest printed so far (bounded; oldest bytes dropped). */
  history(): Buffer;
  /** Live output; returns an unsubscribe function. */
  onData(cb: (data: Buffer) => void): () => void;
  /**
   * Queues input for the guest (never dropped); false when the queue is over its bound (64 KiB): the
   * writer should stop (pause its socket) until `onDrain`.
   */
  write(data: Buffer): boolean;
  /** Runs `cb` whenever queued input has gone down after a `write` returned false; returns an unsubscribe function. */
  onDrain(cb: () => void): () => void;
}

/** Xen's figures for one domain (getdomaininfo). */
export interface DomainStats {
  /** CPU time used since the domain started, all vCPUs, seconds. */
  cpuSeconds: number;
  /** Pages held now (tot_pages) and the cap (max_pages), as bytes. */
  memoryBytes: number;
  maxMemoryBytes: number;
  vcpusOnline: number;
  vcpusMax: number;
}

export interface Hypervisor {
  host(): Promise<HostInfo>;
  /** krata's domains (those with a well-formed guest key), with their state and reported exit. */
  list(): Promise<DomainInfo[]>;
  /**
   * Builds and starts a domain; on failure nothing (domain, loop devices, xenstore) is left. `phases`
   * gets the launch's phases from here on (the domain builder's included).
   */
  create(config: GuestDomainConfig, opts?: CreateOptions): Promise<DomainInfo>;
  /** control/shutdown, then destroy after `graceMs`; devices cleaned up either way. */
  shutdown(domid: number, graceMs: number): Promise<'graceful' | 'forced'>;
  /** Forced teardown with device cleanup; a domain that is already gone is not an error. */
  destroy(domid: number): Promise<void>;
  /** Emits 'change' (domid) when a domain changes state or its guest reports an exit. */
  readonly events: EventEmitter;
  /** The console of a running domain (attached on create or adoption). */
  console(domid: number): Console | undefined;
  /**
   * The control channel of a running domain (console device 1, contracts/guest-channel/PROTOCOL.md);
   * undefined when the domain has none (an older agent started it) or is not served by this process.
   */
  channel(domid: number): GuestChannel | undefined;
  /**
   * Asks a running domain's guest for `vcpus` vCPUs online and a balloon target of `memoryMiB`, within
   * the maximums it was created with (beyond them: a RangeError, nothing changed). Idempotent: the same
   * targets again write nothing. The guest acts on them in its own time; stats() shows when it has.
   */
  resize(domid: number, targets: ResourceTargets): Promise<ResizeResult>;
  /** Xen's figures for a domain; undefined when it is gone. */
  stats(domid: number): DomainStats | undefined;
  /** Removes loop devices and vifs that belong to no domain in `list()` (after a crash). */
  cleanupOrphans(): Promise<string[]>;
}
