// The hosts as the operator sees them: XenHost objects (labels, spec) joined with the agents'
// heartbeats from Redis. Polls the heartbeat keys (one MGET for all hosts), registers a XenHost for an
// agent that heartbeats under a name Kubernetes does not know yet (agents have no credentials, so the
// operator registers them, as a kubelet registers its Node), notices readiness changes, and writes
// each XenHost's status when it changes (the heartbeat time and guest count at most once a minute).
// A heartbeat proves nothing about who wrote it (every agent shares one Redis user): a name is
// registered only if the cluster vouches for it, i.e. a Node of that name carries krata.dev/xen=true,
// the label that also puts the node agent there; a XenHost an administrator created counts as known.
// Other names are ignored (one log line per name, rechecked every minute) and never reach placement.
import { isIPv6 } from 'node:net';
import { isDeepStrictEqual } from 'node:util';
import type { Redis } from 'ioredis';
import { HEARTBEAT_TTL_S, checkHostName, heartbeatKey, parseHeartbeat, type Heartbeat } from '../contracts/redis/contract.js';
import type { Condition, XenHost, XenHostStatus } from '../crds/generated/types.js';
import { quantityValue } from '../crds/quantity.js';
import { DEFAULT_HOST_PORTS } from '../crds/host-ports.js';
import type { HostPolicy, HostView } from './placement.js';
import { metaTime } from '../crds/meta.js';

export interface HostState {
  heartbeat?: Heartbeat;
  /** When this process last saw the host's heartbeat key (ms). */
  seenAt?: number;
  ready: boolean;
  /** When readiness last changed, as this process observed it (ms). */
  since: number;
}

/** The Node label that makes a heartbeating name a XenHost (the node agent's DaemonSet selects it too). */
export const XEN_NODE_LABEL = 'krata.dev/xen';
/** How often an ignored name is looked up again (its Node may have been labelled meanwhile). */
const RECHECK_IGNORED_MS = 60_000;
/** Unknown names looked up per poll; the rest wait for the next poll. */
const LOOKUPS_PER_POLL = 20;

function validHostName(name: string): boolean {
  try {
    checkHostName(name);
    return true;
  } catch {
    return false;
  }
}

/** How stale a written heartbeatTime (and guest count) may get before it is refreshed anyway. */
const HEARTBEAT_WRITE_MS = 60_000;
const MiB = 1024n * 1024n;

export class HostTracker {
  private readonly states = new Map<string, HostState>();
  /** Heartbeating names nobody vouches for, with when they were last checked (ms). */
  private readonly ignored = new Map<string, number>();

  constructor(
    private readonly redis: Redis,
    private readonly opts: {
      hosts: () => readonly XenHost[];
      getHost: (name: string) => XenHost | undefined;
      /** Whether the cluster vouches for a heartbeating name it has no XenHost for (a labelled Node). */
      vouched: (name: string) => Promise<boolean>;
      register: (name: string) => Promise<void>;
      writeStatus: (name: string, status: XenHostStatus) => Promise<void>;
      /** A host's readiness changed (or it was first seen). */
      onReadyChange: (name: string, ready: boolean) => void;
      now?: () => number;
      log?: (msg: string, err?: unknown) => void;
    },
  ) {}

  private now(): number {
    return this.opts.now?.() ?? Date.now();
  }

  state(name: string): HostState | undefined {
    return this.states.get(name);
  }

  /** Names that heartbeat without a XenHost or a labelled Node (a metric). */
  get ignoredHosts(): number {
    return this.ignored.size;
  }

  ready(name: string): boolean {
    return this.states.get(name)?.ready ?? false;
  }

  /** How long the host has been not ready (0 when ready or never seen ready or not). */
  notReadyForMs(name: string): number {
    const s = this.states.get(name);
    return s && !s.ready ? this.now() - s.since : 0;
  }

  /** One poll: heartbeats in, readiness changes out, registration of new hosts, status writes. */
  async poll(): Promise<void> {
    const known = this.opts.hosts().map((h) => h.metadata.name);
    const names = new Set(known);
    // Agents that heartbeat without a XenHost yet.
    const heartbeating = new Set<string>();
    let cursor = '0';
    do {
      const [next, keys] = await this.redis.scan(cursor, 'MATCH', 'krata:host:*:heartbeat', 'COUNT', 1000);
      cursor = next;
      for (const k of keys) heartbeating.add(k.slice('krata:host:'.length, -':heartbeat'.length));
    } while (cursor !== '0');
    // At most a few Node lookups per poll: heartbeat keys are cheap to forge, API requests are not.
    let lookups = 0;
    for (const name of heartbeating) {
      if (names.has(name) || lookups >= LOOKUPS_PER_POLL) continue;
      const r = await this.attribute(name);
      if (r === 'registered' || r === 'ignored') lookups++;
      if (r === 'registered') names.add(name);
    }
    for (const name of this.ignored.keys()) if (!heartbeating.has(name) || names.has(name)) this.ignored.delete(name);
    const list = [...names];
    const raw = list.length ? await this.redis.mget(list.map(heartbeatKey)) : [];
    const now = this.now();
    list.forEach((name, i) => {
      let hb: Heartbeat | undefined;
      try {
        hb = raw[i] ? parseHeartbeat(raw[i]!) : undefined;
        if (hb && hb.host !== name) hb = undefined;
      } catch {
        this.opts.log?.(`malformed heartbeat from ${name}`);
      }
      const old = this.states.get(name);
      // A key that just vanished is not yet a silent host: Redis may have restarted (every key gone at
      // once) before the agents reconnected. Ready ends when the key's own lifetime would have.
      const seenAt = hb ? now : old?.seenAt;
      const ready = !!hb || (seenAt !== undefined && now - seenAt < HEARTBEAT_TTL_S * 1000);
      this.states.set(name, {
        heartbeat: hb ?? old?.heartbeat,
        ...(seenAt !== undefined ? { seenAt } : {}),
        ready,
        since: old && old.ready === ready ? old.since : now,
      });
      if (!old || old.ready !== ready) this.opts.onReadyChange(name, ready);
    });
    for (const name of [...this.states.keys()]) if (!names.has(name)) this.states.delete(name);
    await Promise.all(known.map((name) => this.writeStatus(name).catch((e) => this.opts.log?.(`status of XenHost ${name}`, e))));
  }

  /**
   * Registers a XenHost for a heartbeating name the cluster vouches for. 'ignored' after a lookup that
   * did not vouch; 'skipped' (no lookup) when looked up less than a minute ago or not a host name at all.
   */
  private async attribute(name: string): Promise<'registered' | 'ignored' | 'skipped'> {
    const checked = this.ignored.get(name);
    if (checked !== undefined && this.now() - checked < RECHECK_IGNORED_MS) return 'skipped';
    let why = 'not a DNS subdomain';
    let result: 'ignored' | 'skipped' = 'skipped';
    if (validHostName(name)) {
      result = 'ignored';
      let vouched: boolean;
      try {
        vouched = await this.opts.vouched(name);
        if (vouched) await this.opts.register(name);
      } catch (e) {
        // Retried at the next poll.
        this.opts.log?.(`registering XenHost ${name} failed`, e);
        return 'ignored';
      }
      if (vouched) {
        this.ignored.delete(name);
        return 'registered';
      }
      why = `no XenHost and no Node labelled ${XEN_NODE_LABEL}=true has that name`;
    }
    if (checked === undefined)
      this.opts.log?.(
        `ignoring heartbeats under ${JSON.stringify(name.slice(0, 253))}: ` +
          `${why}; an administrator may label the Node or create the XenHost`,
      );
    this.ignored.set(name, this.now());
    return result;
  }

  private async writeStatus(name: string): Promise<void> {
    const host = this.opts.getHost(name);
    const st = this.states.get(name);
    if (!host || !st) return;
    const next = hostStatus(host, st, metaTime(this.now()));
    const cur = host.status ?? {};
    // The heartbeat time and the running-guest count change all the time; they ride along with other
    // changes and are refreshed on their own at most once a minute (100 hosts × every poll would be
    // most of the operator's writes while Guests start).
    const { heartbeatTime: curTime, guests: _curGuests, ...curRest } = cur;
    const { heartbeatTime: nextTime, guests: _nextGuests, ...nextRest } = next;
    const stale = !curTime || !nextTime || Date.parse(nextTime) - Date.parse(curTime) >= HEARTBEAT_WRITE_MS;
    // Key order differs between what we build and what the server returns (it sorts): compare deeply.
    if (
      isDeepStrictEqual(JSON.parse(JSON.stringify(curRest)), JSON.parse(JSON.stringify(nextRest))) &&
      (!st.ready || !stale || curTime === nextTime)
    )
      return;
    await this.opts.writeStatus(name, next);
  }

  /** Placement's view of every host. `allocated` and `usedPorts` come from the caller (the Guests it placed). */
  views(
    allocated: (name: string) => { cpus: number; memoryMiB: number },
    usedPorts: (name: string) => ReadonlySet<string> = () => new Set(),
  ): HostView[] {
    return this.opts.hosts().map((h) => {
      const st = this.states.get(h.metadata.name);
      return {
        name: h.metadata.name,
        labels: h.metadata.labels ?? {},
        unschedulable: h.spec.unschedulable,
        ready: st?.ready ?? false,
        allocatable: allocatable(h, st?.heartbeat),
        allocated: allocated(h.metadata.name),
        policy: hostPolicy(h),
        usedPorts: usedPorts(h.metadata.name),
      };
    });
  }
}

/** The XenHost's spec.guestPolicy; the API server defaults it, and so does this for objects it did not. */
export function hostPolicy(h: XenHost): HostPolicy {
  const p = h.spec.guestPolicy;
  return { allowNodeName: p?.allowNodeName ?? true, hostPorts: p?.hostPorts ?? [...DEFAULT_HOST_PORTS] };
}

/** capacity − spec.reserved; nothing before the first heartbeat. */
export function allocatable(h: XenHost, hb: Heartbeat | undefined): { cpus: number; memoryMiB: number } {
  if (!hb) return { cpus: 0, memoryMiB: 0 };
  const reservedMiB = Number((quantityValue(h.spec.reserved?.memory ?? 0) ?? 0n) / MiB);
  return {
    cpus: Math.max(0, hb.capacity.cpus - (h.spec.reserved?.cpus ?? 0)),
    memoryMiB: Math.max(0, hb.capacity.memoryMiB - reservedMiB),
  };
}

const ENDPOINT_HOST = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$/i;

/**
 * A heartbeat's apiEndpoint as XenHost status.agentEndpoint takes it: "host:port" ("[v6]:port" for an
 * IPv6 address), a DNS name or IPv4 address, port 1..65535, at most 261 characters; anything else is
 * dropped (undefined): krata-api dials what this says.
 */
export function agentEndpoint(value: unknown): string | undefined {
  if (typeof value !== 'string' || value.length > 261) return undefined;
  const m = /^(?:\[([0-9a-f:.]+)\]|([^:[\]]+)):(\d{1,5})$/i.exec(value);
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port < 1 || port > 65535 || m[3]!.startsWith('0')) return undefined;
  if (m[1] !== undefined ? !isIPv6(m[1]) : m[2]!.length > 253 || !ENDPOINT_HOST.test(m[2]!)) return undefined;
  return value;
}

export function hostStatus(h: XenHost, st: HostState, now: string): XenHostStatus {
  const hb = st.heartbeat;
  const old = h.status?.conditions?.find((c) => c.type === 'Ready');
  const status: Condition['status'] = st.ready ? 'True' : 'Unknown';
  const reason = st.ready ? 'AgentReporting' : 'AgentNotReporting';
  const ready: Condition = {
    type: 'Ready',
    status,
    lastTransitionTime: old && old.status === status ? old.lastTransitionTime : now,
    reason,
    message: st.ready ? `krata-node-agent ${hb!.agentVersion} is reporting` : 'no heartbeat from the node agent in the last 40 s',
  };
  if (!hb) return { ...(h.status ?? {}), conditions: [ready] };
  const a = allocatable(h, hb);
  const endpoint = agentEndpoint(hb.apiEndpoint);
  return {
    // The operator's PKI pins it (operator/pki/agent-certs.ts); the heartbeat's status carries it on.
    ...(h.status?.agentKey ? { agentKey: h.status.agentKey } : {}),
    ...(endpoint ? { agentEndpoint: endpoint } : {}),
    capacity: { cpus: hb.capacity.cpus, memory: `${hb.capacity.memoryMiB}Mi` },
    allocatable: { cpus: a.cpus, memory: `${a.memoryMiB}Mi` },
    xenVersion: hb.xenVersion,
    agentVersion: hb.agentVersion,
    kernelVersion: hb.kernelVersion,
    guests: hb.running,
    heartbeatTime: hb.time.replace(/\.\d+Z$/, 'Z'),
    conditions: [ready],
  };
}
