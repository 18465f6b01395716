// One node's Guest controller put together from its parts: the decisions (reconcile/) over the
// store, the hypervisor and the image provider, and the machinery that runs them (this folder).
// main.ts, the test harnesses and the benchmarks build it here, so the parts are wired once.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import type { PortRange } from '../../crds/generated/types.js';
import { DEFAULT_HOST_PORTS } from '../../crds/host-ports.js';
import type { Clock } from '../../lib/clock.js';
import { Semaphore } from '../../lib/semaphore.js';
import { CreateStep, type CreateOptions } from '../reconcile/create.js';
import { DeleteStep } from '../reconcile/delete.js';
import type { EventRecorder } from '../reconcile/events.js';
import { HostPortGuard } from '../reconcile/host-ports.js';
import { SpecHashes } from '../reconcile/identity.js';
import type { Ipam } from '../reconcile/ipam.js';
import { ObserveStep } from '../reconcile/observe.js';
import { ResizeStep } from '../reconcile/resize.js';
import { ImagePulls, type ImageProvider } from '../reconcile/pulls.js';
import { NO_PROBES, type GuestProber } from '../reconcile/probes.js';
import { GuestReconciler } from '../reconcile/reconciler.js';
import { settleHostRestart, type HostRestart } from '../reconcile/host-restart.js';
import { LaunchPhases, type LaunchReport } from '../reconcile/launch-phases.js';
import { StatusWriter } from '../reconcile/status.js';
import type { Hypervisor } from '../runtime/hypervisor.js';
import type { GuestStore } from '../store/guest-store.js';
import { GuestController, type ControllerOptions } from './controller.js';
import { DomainCache } from './domain-cache.js';
import { PeriodicResync } from './resync.js';
import { DomainEventSource, ProbeSource, PullSource, StoreSource, type Source } from './sources.js';

export interface GuestControllerDeps {
  store: GuestStore;
  hv: Hypervisor;
  images: ImageProvider;
  ipam: Ipam;
  recorder: EventRecorder;
  clock: Clock;
  /** The node's prober (probe/): Ready follows readiness, liveness restarts; a moved result queues the Guest. */
  probes?: GuestProber & { onChange(cb: (key: string) => void): () => void };
}

export interface GuestControllerOptions extends CreateOptions, ControllerOptions {
  /** The agent's state directory (host-restart.ts keeps the boot id there). */
  stateDir: string;
  /** Image pulls at once (default 4): they run beside the reconcile workers, never in them. */
  pullConcurrency?: number;
  /** The host's pull slots, shared with the API's pulls (then pullConcurrency is ignored). */
  pullSlots?: Semaphore;
  /** Full resync period (default 15 s). */
  resyncMs?: number;
  /** Host ports Guests may publish here (--host-ports; default 1024-65535). */
  hostPorts?: readonly PortRange[];
  /** Each launch's breakdown, queued → Running (reconcile/launch-phases.ts): metrics and the debug log. */
  onLaunch?: (r: LaunchReport) => void;
  /**
   * The host's boot id (reconcile/host-restart.ts): when it differs from the one the state dir
   * recorded, the Guests the host restart ended are settled (HostRestarted) before the controller runs.
   */
  bootId?: string;
  /** What settling a host restart did (for the log). */
  onHostRestart?: (r: HostRestart) => void;
}

export function assembleGuestController(deps: GuestControllerDeps, opts: GuestControllerOptions): GuestController {
  const { store, hv, images, ipam, recorder, clock } = deps;
  if (opts.bootId !== undefined) {
    const settled = settleHostRestart(opts.stateDir, opts.bootId, store, recorder, clock);
    opts.onHostRestart?.(settled);
  }
  const cache = new DomainCache(hv, clock);
  const hashes = new SpecHashes();
  const status = new StatusWriter(store, clock);
  // Agents before the launch config rode on the initrd kept a config disk per Guest here. A guest
  // still running from one keeps the file open through its loop device until it stops.
  rmSync(join(opts.stateDir, 'disks'), { recursive: true, force: true });
  const pulls = new ImagePulls(images, opts.pullSlots ?? new Semaphore(opts.pullConcurrency ?? 4), recorder, clock);
  const launches = new LaunchPhases(opts.onLaunch);
  const deleter = new DeleteStep(store, hv, cache, pulls, ipam, status, recorder);
  const reconciler = new GuestReconciler(
    store,
    cache,
    hashes,
    new HostPortGuard(store, opts.hostPorts ?? DEFAULT_HOST_PORTS),
    new CreateStep(hv, cache, pulls, ipam, status, recorder, opts),
    deleter,
    new ObserveStep(store, ipam, deleter, status, recorder, clock, opts.nodeName, deps.probes ?? NO_PROBES),
    new ResizeStep(store, hv, status, recorder, clock),
    status,
    recorder,
    clock,
    deps.probes ?? NO_PROBES,
    launches,
  );
  const sources: Source[] = [new StoreSource(store), new DomainEventSource(hv, store, cache), new PullSource(pulls)];
  if (deps.probes) sources.push(new ProbeSource(deps.probes));
  const resync = new PeriodicResync(store, cache, hashes, deleter, clock, opts.resyncMs);
  return new GuestController(reconciler, sources, resync, recorder, clock, { ...opts, launches });
}
