// What a node agent is told: main.ts makes it from the flags (flags.ts), the test harnesses and
// benchmarks write it. Every module of the container reads its part from here and nothing else.
import type { PortRange } from '../../crds/generated/types.js';
import type { ClusterModeOptions } from '../follower/cluster-mode.js';
import type { IpamOptions } from '../reconcile/ipam.js';
import type { ImageStoreOptions } from '../image/store.js';
import type { DesiredNetworkOptions } from '../net/desired.js';
import type { XenHypervisorOptions } from '../runtime/xen-hypervisor.js';

export interface AgentConfig {
  /** Durable state: guests, images, IP reservations, pull Secrets. */
  stateDir: string;
  /** The guests' domains: Xen, or the in-memory test double with this capacity. */
  hypervisor: { xen: Pick<XenHypervisorOptions, 'consoleLimits'> } | { fake: { cpus: number; memoryMiB: number } };
  /**
   * The host's boot id, to tell a host restart (reconcile/host-restart.ts); with Xen, the kernel's when
   * absent. The fake hypervisor's domains end with the agent, so it has none unless a test gives one.
   */
  bootId?: string;
  /** The default guest kernel and initrd, and this host's name in Guest status. */
  kernel: string;
  initrd: string;
  nodeName: string;
  /** DNS servers for guests (the reconciler's default when absent). */
  nameservers?: string[];
  ipam: IpamOptions;
  /** Reconciles at once, image pulls at once (reconciler's and API's), full resync period. */
  concurrency?: number;
  pullConcurrency?: number;
  resyncMs?: number;
  /** Host ports Guests may publish (the reconciler's default when absent). */
  hostPorts?: readonly PortRange[];
  /** The image cache below stateDir/images: registries, credentials files, pack bounds. */
  images: Omit<ImageStoreOptions, 'root' | 'registry' | 'now'> & {
    insecure: string[];
    mirrors: Record<string, string[]>;
    /** Docker config files read for registry credentials. */
    dockerConfigs: string[];
  };
  /** The local API's socket and the group that may use it; none without it. */
  api?: { socketPath: string; group?: string };
  /** Prometheus endpoint (HOST:PORT); no metrics without it. */
  metrics?: string;
  /** kratanet, the guests' userspace network, with these policies; none without it. */
  network?: DesiredNetworkOptions;
  /** Cluster mode: the desired state comes from Redis. Without it, from the local API. */
  cluster?: Omit<ClusterModeOptions, 'store' | 'hv' | 'log' | 'clock' | 'pullTokens' | 'identity' | 'apiEndpoint'>;
  /**
   * Cluster mode: the TLS listener krata-api reaches the agent on (port 0 picks one), and what the
   * heartbeat advertises; none without it. Its key and certificate are kept in stateDir/tls.
   */
  tls?: { host: string; port: number; advertise?: string };
  /** Events kept per Guest (EventRecorder's default when absent). */
  eventsPerGuest?: number;
  /** Whether events are written to the log too (the daemon's journal), not only kept for the API. */
  logEvents?: boolean;
}
