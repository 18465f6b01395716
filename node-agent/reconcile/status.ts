// Writing a Guest's status the way every reconcile step does: edits to a copy stamped with
// observedGeneration, conditions whose lastTransitionTime moves only when their status does, and
// Stalled, the failure that status records instead of a retry; Retrying, one retried with the reason status shows.
import type { Condition, GuestStatus } from '../../crds/generated/types.js';
import { metaTime } from '../../crds/meta.js';
import type { Clock } from '../../lib/clock.js';
import type { GuestRecord, GuestStore } from '../store/guest-store.js';
import type { Reservation } from './ipam.js';

/** A failure that stops progress until the spec changes: status says so; no retry. */
export class Stalled extends Error {
  constructor(
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

/** A failure retried with back-off, with the reason status shows for it (the metrics count by it). */
export class Retrying extends Error {
  constructor(
    readonly reason: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** A step that must wait (an image pull's back-off): no error, the Guest is looked at again in `afterMs`. */
export class WaitFor extends Error {
  constructor(
    readonly reason: string,
    message: string,
    readonly afterMs: number,
  ) {
    super(message);
  }
}

/** Whether the Guest's status carries Stalled=True. */
export function isStalled(rec: GuestRecord): boolean {
  return rec.guest.status?.conditions?.some((c) => c.type === 'Stalled' && c.status === 'True') ?? false;
}

export class StatusWriter {
  constructor(
    private readonly store: GuestStore,
    private readonly clock: Clock,
  ) {}

  /** Applies `edit` to a copy of the status, with observedGeneration, and stores it if it changed. */
  set(key: string, edit: (s: GuestStatus) => void, internal?: GuestRecord['internal']): void {
    const rec = this.store.get(key);
    if (!rec) return;
    const s: GuestStatus = structuredClone(rec.guest.status ?? {});
    edit(s);
    s.observedGeneration = rec.guest.metadata.generation ?? 1;
    this.store.setStatus(key, s, internal);
  }

  /** Sets a condition; lastTransitionTime moves only when its status changes. */
  condition(rec: GuestRecord, s: GuestStatus, type: string, status: Condition['status'], reason: string, message: string): void {
    const list = (s.conditions ??= []);
    const old = list.find((c) => c.type === type);
    const next: Condition = {
      type,
      status,
      observedGeneration: rec.guest.metadata.generation ?? 1,
      lastTransitionTime: old && old.status === status ? old.lastTransitionTime : metaTime(this.clock.now()),
      reason,
      message,
    };
    if (old) Object.assign(old, next);
    else list.push(next);
  }
}

/** What a domain that is gone leaves of its resources in status (resize.ts): nothing. */
export function clearResources(s: GuestStatus): void {
  delete s.resources;
  if (s.conditions) s.conditions = s.conditions.filter((c) => c.type !== 'ResourcesApplied');
}

/** The status form of a Guest's address reservation. */
export function statusAddresses(r: Reservation): NonNullable<GuestStatus['addresses']> {
  return { ipv4: r.ipv4, ipv6: r.ipv6, mac: r.mac, gatewayIPv4: r.gateway4, gatewayIPv6: r.gateway6 };
}
