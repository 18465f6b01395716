// What the reconcile steps read of a Guest's probes (the prober in probe/ implements it; controller/
// wires the two and queues the Guest whenever a result changes): whether the running domain has
// started, whether it is ready, and whether a liveness or startup probe wants it stopped.
import type { Guest, GuestProbes } from '../../crds/generated/types.js';

/** The probes' word on one running domain, thresholds applied. */
export interface ProbeVerdict {
  /** The startup probe has succeeded (or there is none): readiness and liveness run. */
  started: boolean;
  /** Started, and the readiness probe passes (or there is none). */
  ready: boolean;
  /** Why not ready: a CamelCase reason (ProbesPending, ReadinessProbeFailed) and a message. */
  reason?: string;
  message?: string;
  /** Not ready and never was since the domain started: the Guest is still coming up (Reconciling, for kstatus). */
  coming?: boolean;
  /** A liveness or startup probe failed failureThreshold times in a row: the domain must be stopped. */
  kill?: { probe: 'Liveness' | 'Startup'; message: string };
  /** status.probes for this domain (without lastKill); undefined when the Guest has no probes. */
  status?: Omit<GuestProbes, 'lastKill'>;
}

export interface GuestProber {
  /** Probes the running domain `dom` of Guest `key` as `guest.spec` says (started on first sight); what they found so far. */
  observe(key: string, guest: Guest, dom: { domid: number; createdAt: number }): ProbeVerdict;
  /** The Guest has no running domain (any more): its probes stop. */
  stop(key: string): void;
}

/** No prober: every running domain is started and ready, as before probes existed. */
export const NO_PROBES: GuestProber = {
  observe: () => ({ started: true, ready: true }),
  stop: () => undefined,
};
