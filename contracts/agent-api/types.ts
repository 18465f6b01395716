// The node agent's local API on the wire: the JSON kratactl sends and reads back (node-agent/api/ serves it).
import type { Guest } from '../../crds/generated/types.js';
import type { ImageConfig } from '../../lib/oci/manifest.js';

export interface ApplyResult {
  kind: string;
  metadata: { name: string; namespace?: string };
  action: 'created' | 'configured' | 'unchanged';
}

/** PUT /v1/namespaces/NS/guestsets/NAME/scale: the scale subresource's body. */
export interface ScaleRequest {
  replicas: number;
}

/** The most replicas a GuestSet may ask for (its schema's maximum). */
export const MAX_REPLICAS = 1000;

export interface WatchEvent {
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  object: Guest;
  revision: number;
}

/** A Kubernetes-style Event about a Guest. */
export interface GuestEvent {
  namespace: string;
  name: string;
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
  count: number;
  firstTime: string;
  lastTime: string;
}

export interface HostInfo {
  xenVersion: string;
  cpus: number;
  totalMemoryMiB: number;
  freeMemoryMiB: number;
  kernelVersion: string;
}

/** GET /v1/version: the agent's release, the krata APIs it serves and its Node.js. */
export interface AgentVersion {
  agentVersion: string;
  apiVersions: string[];
  node: string;
}

export interface HostStatus extends HostInfo {
  agentVersion: string;
  guests: { total: number; running: number };
  /** Memory of the host's guests (their maxMemory), MiB. */
  allocatedMemoryMiB: number;
  allocatedCpus: number;
  /** Cluster mode: the TLS listener krata-api reaches the agent on (absent with `--tls-listen off`). */
  tls?: HostTlsStatus;
}

export interface HostTlsStatus {
  /** The listen address ("address:port") and what the heartbeat advertises, if anything. */
  listen: string;
  advertise?: string;
  /** False until the operator has issued a certificate, or while the address cannot be bound (`problem`). */
  listening: boolean;
  problem?: string;
  /** The certificate in use: its end of validity (ISO 8601). */
  notAfter?: string;
  /** Clients refused since the agent started: failed handshakes, and certificates that are not krata-api's. */
  refused: number;
}

/** The image cache's on-disk format. */
export const FORMAT = 'squashfs';

export interface StoredImage {
  /** Manifest digest: the image's identity. */
  digest: string;
  format: typeof FORMAT;
  /** References it was pulled or imported as ("docker.io/library/alpine:3.19"). */
  names: string[];
  /** Absolute path of the squashfs. */
  path: string;
  /** Bytes on disk. */
  size: number;
  config: ImageConfig;
  /** Where it came from: "registry" or "import". */
  source: 'registry' | 'import';
  createdAt: string;
  lastUsedAt: string;
}

/** One progress event of a pull: kratactl draws bars from these. */
export type PullEvent =
  | { kind: 'resolved'; ref: string; digest: string; layers: Array<{ digest: string; size: number }> }
  | { kind: 'cached'; ref: string; digest: string }
  | { kind: 'download'; layer: string; bytes: number; total: number }
  | { kind: 'downloaded'; layer: string }
  | { kind: 'unpack'; layer: string; bytes: number; total: number }
  | { kind: 'unpacked'; layer: string }
  | { kind: 'done'; digest: string; size: number };

/** What a prune removed: the least recently used images no Guest uses, until the cache fits. */
export interface PruneResult {
  removed: StoredImage[];
  freedBytes: number;
  keptBytes: number;
}

/** The import endpoint's body: a tar stream (a docker save archive, or an OCI layout as a tarball). */
export const IMPORT_CONTENT_TYPE = 'application/x-tar';

/**
 * One Guest's use of the host (GET /v1/usage, kratactl top and describe). Xen's figures are there
 * whenever a domain runs; the guest's own (`guest`) only while its control channel is up.
 */
export interface GuestUsage {
  namespace: string;
  name: string;
  domid: number;
  /** When the figures were read (ISO 8601). */
  timestamp: string;
  /** CPU time used since the domain started, seconds (all vCPUs). */
  cpuSeconds: number;
  /** CPU in use over the last sampling interval, in cores (1 = one physical CPU's worth); absent on the first sample. */
  cpuCores?: number;
  /** Over how long cpuCores was measured, seconds. */
  windowSeconds?: number;
  vcpus: { online: number; max: number };
  /** Memory Xen has given the domain now, and its maximum, bytes. */
  memory: { domainBytes: number; maxBytes: number };
  /**
   * The control channel: up, connecting, incompatible or closed, with why when not up; when up, what it
   * runs over (the console device, or the guest's bulk ring) and why a bulk ring offered was not used.
   */
  channel: {
    phase: 'connecting' | 'up' | 'incompatible' | 'closed';
    reason?: string;
    transport?: 'console' | 'bulk';
    bulkRefused?: string;
  };
  guest?: {
    memoryTotalBytes: number;
    memoryAvailableBytes: number;
    /** Total minus available: what the guest's processes and kernel hold. */
    memoryUsedBytes: number;
    load: [number, number, number];
    processes: number;
    uptimeSeconds: number;
  };
}
