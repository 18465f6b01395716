// Every service of the node agent's container, with the type bound to it. The modules (modules.ts)
// bind them; main.ts, the test harnesses and the benchmarks get and rebind them.
import { id } from '../../lib/container.js';
import type { Clock } from '../../lib/clock.js';
import type { Component } from '../../lib/lifecycle.js';
import type { PullAuth } from '../../lib/oci/registry.js';
import type { Semaphore } from '../../lib/semaphore.js';
import type { Guest } from '../../crds/generated/types.js';
import type { ApiServer } from '../api/server.js';
import type { TlsApiListener } from '../api/tls-listener.js';
import type { AgentIdentity } from '../follower/agent-identity.js';
import type { EventRecorder } from '../reconcile/events.js';
import type { Ipam } from '../reconcile/ipam.js';
import type { AgentMetrics } from '../controller/metrics.js';
import type { GuestController } from '../controller/controller.js';
import type { ImageProvider } from '../reconcile/pulls.js';
import type { ClusterMode } from '../follower/cluster-mode.js';
import type { PullTokens } from '../follower/pull-tokens.js';
import type { Log } from '../follower/redis-link.js';
import type { ImageStore } from '../image/store.js';
import type { GuestDialer } from '../net/guest-dialer.js';
import type { NetSupervisor } from '../net/supervisor.js';
import type { Hypervisor } from '../runtime/hypervisor.js';
import type { NodeAgentService } from '../service/agent-service.js';
import type { GuestStore } from '../store/guest-store.js';
import type { GuestSetStore } from '../store/guestset-store.js';
import type { HostGuestSets } from '../controller/guestsets.js';
import type { SecretStore } from '../store/secret-store.js';
import type { ApplySetStore } from '../store/applyset-store.js';
import type { UsageSampler } from '../usage/sampler.js';
import type { Prober } from '../probe/prober.js';
import type { AgentConfig } from './config.js';

export const CONFIG = id<AgentConfig>('AgentConfig');
export const LOG = id<Log>('Log');
/** The daemon's time: tests rebind a fake one. */
export const CLOCK = id<Clock>('Clock');
export const HYPERVISOR = id<Hypervisor>('Hypervisor');
export const GUEST_STORE = id<GuestStore>('GuestStore');
export const IPAM = id<Ipam>('Ipam');
/** Single host: the GuestSets, and their controller. */
export const GUESTSET_STORE = id<GuestSetStore>('GuestSetStore');
export const GUESTSET_CONTROLLER = id<HostGuestSets>('HostGuestSets');
export const IMAGE_STORE = id<ImageStore>('ImageStore');
/** What the reconciler pulls images through: the image store, or a stand-in in tests. */
export const IMAGE_PROVIDER = id<ImageProvider>('ImageProvider');
/** One bound for every pull on the host: the reconciler's and the API's. */
export const PULL_SLOTS = id<Semaphore>('PullSlots');
/** A Guest's pull credentials: its namespace's Secrets (single host) or the operator's tokens (cluster). */
export const PULL_AUTH = id<(g: Guest) => PullAuth>('PullAuth');
export const SECRET_STORE = id<SecretStore>('SecretStore');
/** Single host: ApplySet parents (kratactl apply --prune). */
export const APPLYSET_STORE = id<ApplySetStore>('ApplySetStore');
export const PULL_TOKENS = id<PullTokens>('PullTokens');
export const EVENT_RECORDER = id<EventRecorder>('EventRecorder');
export const METRICS = id<AgentMetrics>('AgentMetrics');
export const GUEST_CONTROLLER = id<GuestController>('GuestController');
/** The node's probes of running guests; the controller reads their verdicts. */
export const PROBER = id<Prober>('Prober');
/** Per-guest usage, one sampler for the local API and /metrics. */
export const USAGE_SAMPLER = id<UsageSampler>('UsageSampler');
/** The local API's implementation. */
export const AGENT = id<NodeAgentService>('NodeAgentService');
export const API_SERVER = id<Component & { readonly server?: ApiServer }>('ApiServer');
export const NET_SUPERVISOR = id<NetSupervisor>('NetSupervisor');
/** TCP to a guest's port from dom0 (tcpSocket and httpGet probes): through kratanet, or Unavailable without it. */
export const GUEST_DIALER = id<GuestDialer>('GuestDialer');
/** Cluster mode with a TLS listener: the agent's key and certificate (STATE/tls), and the listener. */
export const AGENT_IDENTITY = id<AgentIdentity>('AgentIdentity');
export const TLS_LISTENER = id<TlsApiListener>('TlsApiListener');
/** Cluster mode once started: the Redis follower, status publisher and heartbeat. */
export const CLUSTER_MODE = id<Component & { readonly mode?: ClusterMode }>('ClusterMode');
/** Multi-bound: what the agent starts, in binding order, and stops in reverse. */
export const COMPONENTS = id<Component>('Component');
