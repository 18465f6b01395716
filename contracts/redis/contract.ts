// The Redis contract between the operator and the node agents (cluster mode). Both sides import the
// key names and record shapes from here, so they cannot drift. contracts/README.md ("The Redis contract")
// explains the protocol; the short version:
//  - the operator alone writes desired state: one hash per host, field "{namespace}/{name}";
//  - BullMQ jobs on the host's queue only nudge the agent (it always rereads the hash: level-triggered);
//  - the agent alone writes status: a hash per host (the level) plus an entry on one stream (the edge);
//  - the agent's heartbeat is a key with a TTL: its absence means the host is not reporting;
//  - `krata:epoch` missing means Redis lost its data: the operator republishes everything from
//    Kubernetes, and marks each host's hash complete for the new epoch before agents trust absences.
import type { GuestSpec, GuestStatus } from '../../crds/generated/types.js';

export const EPOCH_KEY = 'krata:epoch';
/** Notifications of status changes, all hosts (trimmed to about this many entries). */
export const STATUS_STREAM = 'krata:status';
export const STATUS_STREAM_MAXLEN = 100_000;
/** Field of a host's desired hash that says which epoch the hash is complete for. */
export const COMPLETE_FIELD = '__complete__';
/** BullMQ's key prefix for krata's queues (queues are `{prefix}:{queue}:*`). */
export const QUEUE_PREFIX = 'krata:bull';

export const HEARTBEAT_INTERVAL_MS = 10_000;
/** A heartbeat key lives this long: three missed beats and the host is not reporting. */
export const HEARTBEAT_TTL_S = 40;

/** XenHost names are DNS subdomains (the API server checks); this guards keys against anything else. */
const HOST_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

export function checkHostName(host: string): string {
  if (host.length > 253 || !HOST_NAME.test(host))
    throw new Error(`host name ${JSON.stringify(host)}: expected a DNS subdomain (lower-case letters, digits, '-' and '.')`);
  return host;
}

export const desiredKey = (host: string) => `krata:host:${checkHostName(host)}:desired`;
export const statusKey = (host: string) => `krata:host:${checkHostName(host)}:status`;
export const heartbeatKey = (host: string) => `krata:host:${checkHostName(host)}:heartbeat`;
/** The agent's certificate request for its TLS listener (CertRequest JSON); written by the agent only. */
export const certRequestKey = (host: string) => `krata:host:${checkHostName(host)}:cert-request`;
/** The certificate the operator issued for that request (IssuedCertificate JSON); written by the operator only. */
export const certKey = (host: string) => `krata:host:${checkHostName(host)}:cert`;
/** BullMQ queue names may not contain ':'. */
export const queueName = (host: string) => `krata-host-${checkHostName(host)}`;

export const fieldOf = (namespace: string, name: string) => `${namespace}/${name}`;

/** The value of a desired-hash field: what one Guest should be on the host. */
export interface DesiredGuest {
  namespace: string;
  name: string;
  uid: string;
  generation: number;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  /** The Guest's controller ownerReference, if any (a GuestSet's replicas on one host share host ports). */
  owner?: { kind: string; name: string; uid: string };
  spec: GuestSpec;
  /** Set once the Guest is being deleted: the agent stops the domain (grace period) and reports it gone. */
  deleting?: { since: string; gracePeriodSeconds?: number };
  /** Credentials for the image, when the Guest names imagePullSecrets: tokens only, never the Secrets. */
  pullAuth?: DesiredPullAuth;
}

/**
 * What crosses Redis for a Guest's spec.imagePullSecrets: short-lived, pull-only bearer tokens for
 * the one repository its image is in, which the operator obtained from the registry's token service
 * with the Secrets' credentials. Passwords, identity tokens and docker configs never do; registries
 * that only take Basic auth get no token (the problem says so, and the pull fails with it).
 */
export interface DesiredPullAuth {
  tokens: PullToken[];
  /** Why a Secret gave no token (not found, not a pull secret, refused, Basic only), for the pull's error. */
  problems?: string[];
}

export interface PullToken {
  /** As the image reference names it ("docker.io", "registry.example:5000"). */
  registry: string;
  repository: string;
  token: string;
  /** ISO 8601: the agent does not send it after this. */
  expiresAt: string;
}

/** Bounds on a desired record's pullAuth (an agent refuses anything larger). */
export const PULL_AUTH_LIMITS = { tokens: 8, tokenBytes: 16 * 1024, problems: 8, problemBytes: 1024 } as const;

/** BullMQ job data; the job name is "reconcile". jobId `{uid}_{generation}` (or `{uid}_delete`) collapses duplicates. */
export interface ReconcileJob {
  namespace: string;
  name: string;
  uid: string;
  generation: number;
}
/** BullMQ refuses custom job ids with one ':' ("Custom Id cannot contain :"), hence '_'. */
export const jobId = (uid: string, generation: number | 'delete') => `${uid}_${generation}`;

/** The value of a status-hash field and of a stream entry's `report`: what the agent observes. */
export interface StatusReport {
  uid: string;
  /** The desired generation the agent holds (status.observedGeneration says what it acted on). */
  generation: number;
  /** null: the Guest and everything it had on the host are gone (the operator may drop its finalizer). */
  status: GuestStatus | null;
  /** When the agent wrote this report (ISO 8601). */
  time: string;
}

/** Stream entry fields: host, key ("{namespace}/{name}"), report (JSON StatusReport). */
export interface StatusStreamEntry {
  host: string;
  key: string;
  report: StatusReport;
}

/**
 * An agent asks for a serving certificate: its public key (SPKI PEM, ECDSA P-256) and proof that it holds
 * the private key, a signature (ECDSA with SHA-256, DER, base64) over certRequestProof(host, publicKey).
 * The key never leaves the host; the host name comes from the Redis key, which only that agent may write.
 */
export interface CertRequest {
  publicKey: string;
  proof: string;
  /** When the agent wrote it (ISO 8601): a new request (a new key) supersedes an issued certificate. */
  time: string;
}

/** What the proof signs: binds the key to the host, so a request cannot be replayed for another. */
export function certRequestProof(host: string, publicKey: string): Buffer {
  return Buffer.from(`krata-agent-certificate-request\n${checkHostName(host)}\n${publicKey}`);
}

/** The operator's answer: a certificate for the requested key (DNS name agentServerName(host)), and the CA. */
export interface IssuedCertificate {
  /** PEM, for the public key of the request it answers. */
  certificate: string;
  /** The krata CA (PEM): what the agent trusts krata-api's client certificate by. */
  ca: string;
  /** ISO 8601; the agent asks again (same key) before it passes. */
  notAfter: string;
}

/** The value of a host's heartbeat key. */
export interface Heartbeat {
  host: string;
  time: string;
  agentVersion: string;
  xenVersion: string;
  kernelVersion: string;
  capacity: { cpus: number; memoryMiB: number };
  /** Memory Xen has free for new domains, MiB. */
  freeMemoryMiB: number;
  /** Guests the agent holds (any phase) and those running. */
  guests: number;
  running: number;
  /** The epoch whose complete desired state the agent has applied ('' before the first). */
  epoch: string;
  /** Where krata-api reaches the agent's TLS listener ("address:port", `--tls-advertise`); absent without one. */
  apiEndpoint?: string;
}

export function parseStatusReport(raw: string): StatusReport {
  const r = JSON.parse(raw) as StatusReport;
  if (
    typeof r !== 'object' ||
    r === null ||
    typeof r.uid !== 'string' ||
    typeof r.generation !== 'number' ||
    (r.status !== null && typeof r.status !== 'object')
  ) {
    throw new Error('malformed status report');
  }
  return r;
}

export function parseDesired(raw: string): DesiredGuest {
  const d = JSON.parse(raw) as DesiredGuest;
  if (
    typeof d !== 'object' ||
    d === null ||
    typeof d.uid !== 'string' ||
    typeof d.generation !== 'number' ||
    typeof d.name !== 'string' ||
    typeof d.namespace !== 'string' ||
    typeof d.spec !== 'object'
  ) {
    throw new Error('malformed desired guest');
  }
  return d;
}

export function parseHeartbeat(raw: string): Heartbeat {
  const h = JSON.parse(raw) as Heartbeat;
  if (
    typeof h !== 'object' ||
    h === null ||
    typeof h.host !== 'string' ||
    typeof h.capacity !== 'object' ||
    typeof h.freeMemoryMiB !== 'number'
  )
    throw new Error('malformed heartbeat');
  return h;
}
