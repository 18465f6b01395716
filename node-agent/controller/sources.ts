// Event sources: what puts a Guest's key on the controller's queue. Each is a hint, never the
// truth: reconcile reads the whole state again, and the periodic resync (resync.ts) catches whatever
// no event said.
import { domainGuestKey } from '../reconcile/identity.js';
import type { Hypervisor } from '../runtime/hypervisor.js';
import type { ImagePulls } from '../reconcile/pulls.js';
import type { GuestStore } from '../store/guest-store.js';
import type { DomainCache } from './domain-cache.js';

/** Where a source sends keys, and where work it starts outside the queue reports a failure. */
export interface SourceSink {
  add(key: string): void;
  /** A failure of `p` is a host event with `reason`, not a crash. */
  background(p: Promise<unknown>, reason: string): void;
}

export interface Source {
  /** Starts feeding `sink`; returns the function that stops it. */
  start(sink: SourceSink): () => void;
}

/** A Guest's desired state changed (applied, deleted, marked for deletion). */
export class StoreSource implements Source {
  constructor(private readonly store: Pick<GuestStore, 'on' | 'off'>) {}

  start(sink: SourceSink): () => void {
    const onStore = (key: string) => sink.add(key);
    this.store.on('desired', onStore);
    return () => this.store.off('desired', onStore);
  }
}

/**
 * A domain changed state or its guest reported an exit: the cached list is stale; the Guest whose
 * status names the domain is queued (a domain that vanished is in no list), and every listed domain's.
 */
export class DomainEventSource implements Source {
  constructor(
    private readonly hv: Pick<Hypervisor, 'events'>,
    private readonly store: Pick<GuestStore, 'keys' | 'get'>,
    private readonly cache: DomainCache,
  ) {}

  start(sink: SourceSink): () => void {
    const onDomain = (domid: number) => {
      this.cache.invalidate();
      for (const key of this.store.keys()) if (this.store.get(key)?.guest.status?.domid === domid) sink.add(key);
      sink.background(this.enqueueDomains(sink), 'DomainListFailed');
    };
    this.hv.events.on('change', onDomain);
    return () => this.hv.events.off('change', onDomain);
  }

  private async enqueueDomains(sink: SourceSink): Promise<void> {
    for (const d of await this.cache.list()) sink.add(domainGuestKey(d));
  }
}

/** An image pull a reconcile did not wait for has settled: the next reconcile takes its result. */
export class PullSource implements Source {
  constructor(private readonly pulls: Pick<ImagePulls, 'onSettled'>) {}

  start(sink: SourceSink): () => void {
    return this.pulls.onSettled((key) => sink.add(key));
  }
}

/** A probe result moved (or a liveness probe wants its domain stopped): the Guest's status and Ready follow. */
export class ProbeSource implements Source {
  constructor(private readonly probes: { onChange(cb: (key: string) => void): () => void }) {}

  start(sink: SourceSink): () => void {
    return this.probes.onChange((key) => sink.add(key));
  }
}
