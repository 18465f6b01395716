// What the node agent offers its local API (api/server.ts) and kratactl: the reconciler's store and
// operations, free of HTTP. The API server is a thin translation of this interface.
import type { ApplyResult, GuestEvent, HostStatus, WatchEvent } from '../../contracts/agent-api/types.js';
import type { Guest, GuestSet } from '../../crds/generated/types.js';
import type { KratObject } from '../../crds/validate.js';
import type { PruneResult, PullEvent, StoredImage } from '../../contracts/agent-api/types.js';
import type { PullSecret } from '../../contracts/agent-api/pull-secret.js';
import type { Console } from '../runtime/hypervisor.js';
import type { ExecRequest, ExecSession, ExecSink } from '../channel/index.js';
import type { GuestUsage } from '../../contracts/agent-api/types.js';
import type { Duplex } from 'node:stream';
import type { ApplySetParent } from '../../contracts/agent-api/applyset.js';
import type { SecretInfo } from '../store/secret-store.js';

/** Refused input: nothing was stored. `errors` locate each problem (index into the batch, field path). */
export class InvalidRequest extends Error {
  constructor(
    message: string,
    readonly errors: { index?: number; path?: string; message: string }[] = [],
    readonly status = 422,
  ) {
    super(message);
  }
}

/**
 * A full disk or quota, said by name (ENOSPC, EDQUOT), or undefined for any other error. The API
 * answers it with 507 Insufficient Storage: the request was fine, the host cannot store it now.
 */
export function storageFull(e: unknown): string | undefined {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ENOSPC') return "the node agent's state directory is full (ENOSPC: no space left on device)";
  if (code === 'EDQUOT') return "the node agent's state directory is over its disk quota (EDQUOT)";
  return undefined;
}

export class NotFound extends Error {
  readonly status = 404;
}

export interface AgentService {
  /**
   * All objects or none are accepted; Guests, GuestSets and image pull Secrets only on a single host
   * (XenHost objects are refused with a message). Secrets are stored before the Guests that may name them.
   */
  apply(objects: (KratObject | PullSecret)[], dryRun: boolean): Promise<ApplyResult[]>;
  list(namespace?: string): Guest[];
  listGuestSets(namespace?: string): GuestSet[];
  getGuestSet(namespace: string, name: string): GuestSet | undefined;
  /** Removes the set at once; its Guests are then deleted (ownerReferences), as background deletion does. NotFound when absent. */
  deleteGuestSet(namespace: string, name: string): void;
  /** The scale subresource: sets spec.replicas (0 to 1000); NotFound when absent. */
  scaleGuestSet(namespace: string, name: string, replicas: number): GuestSet;
  get(namespace: string, name: string): Guest | undefined;
  /** Marks the Guest deleted; with `wait`, resolves when its domain and resources are gone. */
  delete(namespace: string, name: string, opts: { wait?: boolean; gracePeriodSeconds?: number }): Promise<void>;
  /** Changes after `since` (0: the current state as ADDED first); returns an unsubscribe function. */
  watch(since: number, cb: (e: WatchEvent) => void): () => void;
  events(namespace?: string, name?: string): GuestEvent[];
  /** The console of the Guest's current domain (logs and attach); undefined when none runs. */
  console(namespace: string, name: string): Console | undefined;
  /**
   * Opens an exec session in the Guest's current domain. Rejects with NotFound (no such Guest), or
   * ChannelUnavailable (409) when it has no running domain or its channel is not up within a few seconds.
   */
  exec(namespace: string, name: string, req: ExecRequest, sink: ExecSink): Promise<ExecSession>;
  /**
   * A TCP connection to `port` of the Guest's running domain through kratanet (as the kubelet reaches a
   * Pod IP): NotFound, InvalidRequest 409 (no running domain, no network), 502 (refused, timed out).
   */
  portForward(namespace: string, name: string, port: number): Promise<Duplex>;
  /** The console's window size for attach; false when the Guest's channel is not up (the size is dropped). */
  resizeConsole(namespace: string, name: string, rows: number, cols: number): boolean;
  /**
   * Usage of the running Guests (in `namespace` when given; one when `name` is given too): NotFound
   * for a named Guest that does not exist, none for one without a running domain.
   */
  usage(namespace?: string, name?: string): Promise<GuestUsage[]>;
  /** A pull, with `pullSecrets` (names in `namespace`, default "default") when given. */
  pullImage(
    reference: string,
    onEvent: (e: PullEvent) => void,
    opts?: { namespace?: string; pullSecrets?: string[] },
  ): Promise<StoredImage>;
  /**
   * Imports a tar stream (a docker save archive, or an OCI layout as a tarball), named `name` or as
   * the archive says; `source` (the client's file name) names it in messages and when it has no name.
   */
  importImage(
    archive: AsyncIterable<Buffer>,
    opts: { name?: string; source: string },
    onEvent: (e: PullEvent) => void,
  ): Promise<StoredImage>;
  images(): StoredImage[];
  /** Removes an image pull Secret (single host); NotFound when there is none. Its data is never returned. */
  deleteSecret(namespace: string, name: string): void;
  /** The image pull Secrets (single host): name, type, registries and labels, never data. */
  listSecrets(namespace?: string): SecretInfo[];
  /** ApplySet parents (single host, kratactl apply --prune). */
  listApplySets(namespace?: string): ApplySetParent[];
  getApplySet(namespace: string, name: string): ApplySetParent | undefined;
  /** Checks and stores a parent (InvalidRequest with its field errors); refused in cluster mode. */
  putApplySet(namespace: string, name: string, parent: unknown): { parent: ApplySetParent; action: 'created' | 'configured' | 'unchanged' };
  /** NotFound when absent; the set's members are not touched. */
  deleteApplySet(namespace: string, name: string): void;
  removeImage(refOrDigest: string): StoredImage;
  /** Removes images no Guest uses, least recently used first, until the cache fits (0: all of them). */
  pruneImages(budgetBytes: number): PruneResult;
  host(): Promise<HostStatus>;
}
