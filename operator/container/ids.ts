// Every service of the operator's container, with the type bound to it. The modules (modules.ts) bind
// them; main.ts and the in-process tests get and rebind them.
import type { Registry } from 'prom-client';
import { id } from '../../lib/container.js';
import type { Component } from '../../lib/lifecycle.js';
import type { ReconcileMetrics } from '../../lib/reconcile-metrics.js';
import type { Guest, GuestSet, XenHost } from '../../crds/generated/types.js';
import type { ClusterGuestSets } from '../guestsets.js';
import type { KubeClient } from '../kube/client.js';
import type { Informer } from '../kube/informer.js';
import type { StartLeading } from '../leader.js';
import type { Operator } from '../operator.js';
import type { OperatorPki } from '../pki/pki.js';
import type { OperatorConfig } from './config.js';

/** The slice of pino the operator's wiring logs with. */
export interface OperatorLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export const CONFIG = id<OperatorConfig>('OperatorConfig');
export const LOG = id<OperatorLog>('OperatorLog');
/** How the controllers log: a message, and the error that came with it. */
export const SAY = id<(msg: string, err?: unknown) => void>('Say');
export const KUBE = id<KubeClient>('KubeClient');
/** Who the operator is to Redis: the URL's user, a password file, or the Secrets it manages. */
export const REDIS_AUTH = id<{ redisUsername?: string; redisPassword?: string }>('RedisAuth');
export const GUEST_INFORMER = id<Informer<Guest>>('GuestInformer');
export const HOST_INFORMER = id<Informer<XenHost>>('XenHostInformer');
export const GUESTSET_INFORMER = id<Informer<GuestSet>>('GuestSetInformer');
/** The GuestSet controller (workloads/guestset/) on the leader. */
export const GUESTSETS = id<ClusterGuestSets>('ClusterGuestSets');
/** Makes what the leader runs (Redis connections, controllers), each time this replica starts leading. */
export const START_LEADING = id<StartLeading>('StartLeading');
export const OPERATOR = id<Operator>('Operator');
/** Whether the informers have synced (/readyz). */
export const READINESS = id<{ synced: boolean }>('Readiness');
/** Leader election, or leading at once: `ended` says the exit code when leadership is lost. */
export const LEADERSHIP = id<Leadership>('Leadership');
/** The certificate authority (operator/pki/), on the leader. */
export const PKI = id<OperatorPki>('OperatorPki');
export const METRICS_REGISTRY = id<Registry>('MetricsRegistry');
/** The controllers' krata_reconcile_* series (bound with the metrics listener only). */
export const RECONCILE_METRICS = id<ReconcileMetrics>('ReconcileMetrics');
/** Multi-bound: what the operator starts, in binding order, and stops in reverse. */
export const COMPONENTS = id<Component>('Component');

export interface Leadership {
  start(): void;
  stop(): Promise<void>;
  /** Resolves with 1 when leading failed to start or the Lease was lost. */
  readonly ended: Promise<number>;
  /** Resolves when this replica leads (Operator.lead() done). */
  readonly leading: Promise<void>;
}
