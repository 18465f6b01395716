// Image pulls beside the reconcile workers, never in them: a reconcile that needs an image starts its
// pull (bounded by the host's pull slots; a cache hit skips the wait) and ends; when the pull
// settles, listeners hear the Guest's key (the controller requeues it) and the next reconcile takes
// the result, image or error.
import type { Clock } from '../../lib/clock.js';
import type { ImageConfig } from '../../lib/oci/manifest.js';
import type { PullAuth } from '../../lib/oci/registry.js';
import type { Semaphore } from '../../lib/semaphore.js';
import type { EventRecorder } from './events.js';

export type PullPolicy = 'Always' | 'IfNotPresent' | 'Never';

/** Where images come from (ImageStore in the agent; a double in tests). */
export interface ImageProvider {
  /**
   * The image for `reference` under the pull policy, with the Guest's credentials (`auth`, whose
   * namespace must have proved access to a cached image); throws ImageError on failure.
   */
  ensure(reference: string, policy: PullPolicy, auth?: PullAuth): Promise<{ digest: string; path: string; config: ImageConfig }>;
  /**
   * A hint: ensure() needs no registry and no pack (the image is cached, the policy lets it be used
   * and `auth`'s namespace has proved access), so it need not wait for a pull slot. Without it every
   * ensure() takes a slot.
   */
  cached?(reference: string, policy: PullPolicy, auth?: PullAuth): boolean;
}

export type PulledImage = Awaited<ReturnType<ImageProvider['ensure']>>;

/** An image failure with a Kubernetes-style reason (ErrImagePull, ErrImageNeverPull, InvalidImageName). */
export class ImageError extends Error {
  constructor(
    readonly reason: string,
    message: string,
    readonly permanent = false,
  ) {
    super(message);
  }
}

/**
 * The kubelet's image pull back-off: after a failed pull of a Guest's image the next one waits 10 s,
 * doubling to 5 min, so an unreachable registry or a full disk is not hammered by a pull every few
 * seconds. A success, a spec change or a delete forgets it.
 */
export const PULL_BACKOFF_INITIAL_MS = 10_000;
export const PULL_BACKOFF_MAX_MS = 300_000;

/** A pull not retried yet: `retryInMs` left of the back-off; the message keeps the last failure's words. */
export class PullBackOff extends ImageError {
  constructor(
    reference: string,
    readonly retryInMs: number,
    last: unknown,
  ) {
    const words = (last as Error)?.message ?? String(last);
    super('ImagePullBackOff', `back-off after a failed pull of ${reference}, retry in ${Math.ceil(retryInMs / 1000)} s: ${words}`);
  }
}

interface PullFailures {
  uid: string;
  reference: string;
  policy: string;
  count: number;
  /** No pull before this time (clock ms). */
  until: number;
  last: unknown;
}

/** A pull running outside the reconcile workers for one Guest (its uid and the spec it pulls for). */
interface PullJob {
  uid: string;
  reference: string;
  policy: string;
  result?: { image: PulledImage } | { error: unknown };
  /** Its reconcile returned without the result: requeue the Guest when it comes. */
  background?: boolean;
}

export class ImagePulls {
  /** Pulls by Guest key; the image store shares one job per digest among them. */
  private readonly jobs = new Map<string, PullJob>();
  private readonly listeners = new Set<(key: string) => void>();
  /** Failed pulls by Guest key, for the back-off. */
  private readonly failures = new Map<string, PullFailures>();

  constructor(
    private readonly images: ImageProvider,
    private readonly slots: Semaphore,
    private readonly recorder: EventRecorder,
    private readonly clock: Pick<Clock, 'now'>,
  ) {}

  /** Calls `listener` with the Guest's key when a pull its reconcile did not wait for settles. */
  onSettled(listener: (key: string) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * The Guest's image, or undefined while a pull runs for it in the background (bounded by the
   * slots; a cache hit skips the wait for a slot). Its result, image or error, is taken by the next
   * call after the pull settled.
   */
  async image(key: string, uid: string, reference: string, policy: PullPolicy, auth: PullAuth): Promise<PulledImage | undefined> {
    let job = this.jobs.get(key);
    // A job for an earlier spec or an earlier Guest of this name: its result is dropped.
    if (job && (job.uid !== uid || job.reference !== reference || job.policy !== policy)) job = undefined;
    if (!job) {
      const failed = this.failures.get(key);
      if (failed && (failed.uid !== uid || failed.reference !== reference || failed.policy !== policy)) this.failures.delete(key);
      else if (failed && failed.until > this.clock.now()) throw new PullBackOff(reference, failed.until - this.clock.now(), failed.last);
      const j: PullJob = { uid, reference, policy };
      job = j;
      this.jobs.set(key, j);
      // A Guest deleted (or changed) while its pull waited for a slot needs it no more.
      const ensure = () =>
        this.jobs.get(key) === j ? this.images.ensure(reference, policy, auth) : Promise.reject(new Error('pull dropped'));
      const p = this.images.cached?.(reference, policy, auth) ? ensure() : this.slots.run(ensure);
      const settled = p.then(
        (image) => void (j.result = { image }),
        (error: unknown) => void (j.result = { error }),
      );
      void settled.then(() => {
        if (j.background && this.jobs.get(key) === j) for (const l of this.listeners) l(key);
      });
      // A cache hit settles at once: it needs no round trip through the queue.
      await Promise.race([settled, new Promise((r) => setImmediate(r))]);
      if (!j.result) {
        j.background = true;
        this.recorder.normal(key, 'Pulling', `pulling image ${reference}`);
      }
    }
    if (!job.result) return undefined;
    this.jobs.delete(key);
    if ('error' in job.result) {
      const error = job.result.error;
      // Only a pull that went out backs off: a Never policy's missing image asks no registry (the
      // kubelet keeps saying ErrImageNeverPull too), and a permanent error stalls the Guest anyway.
      if (error instanceof ImageError && (error.permanent || error.reason === 'ErrImageNeverPull')) throw error;
      const count = (this.failures.get(key)?.count ?? 0) + 1;
      const wait = Math.min(PULL_BACKOFF_INITIAL_MS * 2 ** Math.min(count - 1, 20), PULL_BACKOFF_MAX_MS);
      this.failures.set(key, { uid, reference, policy, count, until: this.clock.now() + wait, last: error });
      throw error;
    }
    this.failures.delete(key);
    return job.result.image;
  }

  /** Forgets the Guest's pull: one still running is not waited for; its result is dropped. */
  drop(key: string): void {
    this.jobs.delete(key);
    this.failures.delete(key);
  }
}
