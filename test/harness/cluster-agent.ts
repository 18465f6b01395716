// For the cluster-mode tests: a node agent (store, reconciler on the FakeHypervisor, cluster mode) on
// a real redis-server, and an operator double that writes desired state and jobs the way the operator
// does (contracts/redis/contract.ts) and reads back status.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import {
  COMPLETE_FIELD,
  EPOCH_KEY,
  QUEUE_PREFIX,
  STATUS_STREAM,
  desiredKey,
  fieldOf,
  jobId,
  parseStatusReport,
  queueName,
  statusKey,
  type DesiredGuest,
  type StatusReport,
} from '../../contracts/redis/contract.js';
import type { GuestSpec } from '../../crds/generated/types.js';
import { startRedis, type TestRedis } from '../redis.js';
import type { NodeAgentService } from '../../node-agent/service/agent-service.js';
import { FakeHypervisor } from '../../node-agent/runtime/fake-hypervisor.js';
import type { GuestStore } from '../../node-agent/store/guest-store.js';
import type { GuestController } from '../../node-agent/controller/controller.js';
import type { ImageProvider } from '../../node-agent/reconcile/pulls.js';
import type { PullAuth } from '../../lib/oci/registry.js';
import type { PullTokens } from '../../node-agent/follower/pull-tokens.js';
import type { ClusterMode, ClusterModeOptions } from '../../node-agent/follower/cluster-mode.js';
import { type Log } from '../../node-agent/follower/redis-link.js';
import { redisOptions } from '../../contracts/redis/options.js';
import { replace, resolve } from '../../lib/container.js';
import { agentContainer, startAgent } from '../../node-agent/container/agent.js';
import { testAgentConfig } from './node-agent.js';
import {
  AGENT,
  CLUSTER_MODE,
  GUEST_STORE,
  HYPERVISOR,
  IMAGE_PROVIDER,
  IMAGE_STORE,
  PULL_TOKENS,
  GUEST_CONTROLLER,
  TLS_LISTENER,
} from '../../node-agent/container/ids.js';
import type { AgentConfig } from '../../node-agent/container/config.js';
import type { TlsApiListener } from '../../node-agent/api/tls-listener.js';

export const HOST = 'xen-1.example';

const work = mkdtempSync(join(tmpdir(), 'krata-cluster-test-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));
let n = 0;

class FakeImages implements ImageProvider {
  readonly path = join(work, 'image.sqfs');
  /** The credentials each ensure() was given, by image reference. */
  readonly auths: Array<{ reference: string; auth?: PullAuth }> = [];
  constructor() {
    writeFileSync(this.path, 'not a real image');
  }
  async ensure(reference: string, _policy: string, auth?: PullAuth) {
    this.auths.push({ reference, auth });
    return {
      digest: `sha256:${'ab'.repeat(32)}`,
      path: this.path,
      config: { architecture: 'amd64', os: 'linux', config: { Cmd: ['/bin/sh'] }, diffIds: [] },
    };
  }
}

export interface LogLine {
  level: string;
  obj: Record<string, unknown>;
  msg: string;
}

export function captureLog(): Log & { lines: LogLine[] } {
  const lines: LogLine[] = [];
  const at = (level: string) => (obj: object, msg: string) => void lines.push({ level, obj: obj as Record<string, unknown>, msg });
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

/** A desired entry as the operator writes it (spec defaulted by the agent's validator). */
export function desired(name: string, spec: Partial<GuestSpec> = {}, extra: Partial<DesiredGuest> = {}): DesiredGuest {
  return {
    namespace: 'default',
    name,
    uid: randomUUID(),
    generation: 1,
    spec: { image: 'registry.example/app:1.0', resources: { cpus: 1, memory: '128Mi' }, ...spec } as GuestSpec,
    ...extra,
  };
}

/** Writes what the operator writes; reads what the operator reads. */
export class OperatorDouble {
  readonly client: Redis;
  readonly queue: Queue;

  constructor(url: string) {
    // Commands wait out a Redis restart (retries every 50 ms), but not forever.
    // As the operator connects: its Redis user may not run INFO (no ready check, no BullMQ version check).
    this.client = new Redis(url, { retryStrategy: () => 50, enableReadyCheck: false });
    this.client.on('error', () => undefined);
    this.queue = new Queue(queueName(HOST), {
      connection: { url, maxRetriesPerRequest: null, retryStrategy: () => 50, enableReadyCheck: false },
      prefix: QUEUE_PREFIX,
      skipVersionCheck: true,
    });
    this.queue.on('error', () => undefined);
  }

  async put(...guests: DesiredGuest[]): Promise<void> {
    for (const g of guests) await this.client.hset(desiredKey(HOST), fieldOf(g.namespace, g.name), JSON.stringify(g));
  }

  /** Marks the hash complete for `epoch` and makes it the current epoch. */
  async complete(epoch: string): Promise<void> {
    await this.client.multi().hset(desiredKey(HOST), COMPLETE_FIELD, epoch).set(EPOCH_KEY, epoch).exec();
  }

  async nudge(g: DesiredGuest): Promise<void> {
    await this.queue.add(
      'reconcile',
      { namespace: g.namespace, name: g.name, uid: g.uid, generation: g.generation },
      { jobId: jobId(g.uid, g.deleting ? 'delete' : g.generation) },
    );
  }

  async status(name: string): Promise<StatusReport | undefined> {
    const raw = await this.client.hget(statusKey(HOST), fieldOf('default', name));
    return raw === null ? undefined : parseStatusReport(raw);
  }

  /** The stream's reports for one Guest, oldest first. */
  async streamed(name: string): Promise<StatusReport[]> {
    const entries = await this.client.xrange(STATUS_STREAM, '-', '+');
    const asRecord = (fields: string[]) =>
      Object.fromEntries(fields.flatMap((f, i) => (i % 2 ? [] : [[f, fields[i + 1]!]]))) as Record<string, string>;
    return entries
      .map(([, fields]) => asRecord(fields))
      .filter((f) => f.host === HOST && f.key === fieldOf('default', name))
      .map((f) => parseStatusReport(f.report!));
  }

  async close(): Promise<void> {
    await this.queue.close();
    this.client.disconnect();
  }
}

export interface Harness {
  redis: TestRedis;
  op: OperatorDouble;
  dir: string;
  hv: FakeHypervisor;
  store: GuestStore;
  controller: GuestController;
  agent: NodeAgentService;
  cluster: ClusterMode;
  log: ReturnType<typeof captureLog>;
  images: FakeImages;
  pullTokens: PullTokens;
  /** With `tls`: the agent's TLS listener. */
  tls?: TlsApiListener;
  /** Stops the agent only (Redis and the operator double stay), as a restart would. */
  stopAgent(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Short intervals unless a test wants the poll out of the way; `url` and `passwordFile` say how the agent
 * reaches `redis`, `opUrl` how the operator double does.
 */
export async function harness(
  opts: Partial<Pick<ClusterModeOptions, 'pollMs' | 'resyncMs' | 'heartbeatMs' | 'coalesceMs'>> & {
    redis?: TestRedis;
    url?: string;
    passwordFile?: string;
    opUrl?: string;
    /** The TLS listener (its certificate asked for every 100 ms while waiting); `dir` reuses a state directory. */
    tls?: AgentConfig['tls'];
    dir?: string;
  } = {},
): Promise<Harness> {
  const redis = opts.redis ?? (await startRedis());
  const dir = opts.dir ?? join(work, `agent-${++n}`);
  const log = captureLog();
  // The agent main.ts runs in cluster mode, with no API socket, metrics or network.
  const container = agentContainer(
    testAgentConfig(dir, {
      nodeName: HOST,
      cluster: {
        redis: redisOptions(opts.url ?? redis.url, opts.passwordFile),
        redisName: redis.url,
        host: HOST,
        pollMs: opts.pollMs ?? 100,
        resyncMs: opts.resyncMs ?? 1000,
        heartbeatMs: opts.heartbeatMs ?? 200,
        coalesceMs: opts.coalesceMs ?? 20,
        certWaitMs: 100,
      },
      ...(opts.tls ? { tls: opts.tls } : {}),
    }),
    log,
  );
  // The doubles: the hypervisor, and images that stand in for pulls (no image cache for the API).
  const hv = new FakeHypervisor({ cpus: 8, memoryMiB: 8192 });
  const images = new FakeImages();
  replace(container, HYPERVISOR, hv);
  replace(container, IMAGE_PROVIDER, images);
  container.unbind(IMAGE_STORE);
  // Built before the components start, as in main.ts: its watch history misses no change.
  const agent = await resolve(container, AGENT);
  const running = await startAgent(container);
  const store = await resolve(container, GUEST_STORE);
  const controller = await resolve(container, GUEST_CONTROLLER);
  const pullTokens = await resolve(container, PULL_TOKENS);
  const { mode: cluster } = await resolve(container, CLUSTER_MODE);
  const tls = opts.tls ? await resolve(container, TLS_LISTENER) : undefined;
  const op = new OperatorDouble(opts.opUrl ?? redis.url);
  let stopping: Promise<void> | undefined;
  const stopAgent = () => (stopping ??= running.stop());
  return {
    redis,
    op,
    dir,
    hv,
    store,
    controller,
    agent,
    cluster: cluster!,
    log,
    images,
    pullTokens,
    ...(tls ? { tls } : {}),
    stopAgent,
    async stop() {
      await stopAgent();
      await op.close();
      await redis.stop();
    },
  };
}

/** Waits (real time) until `pred` holds. */
export async function until(pred: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await pred())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
