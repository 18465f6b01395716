// Cluster mode when Redis misbehaves: lost with all its data and republished by the operator (no domain
// restarts), unreachable while statuses change (reports delivered on reconnection), down at start;
// and the heartbeat, ACL authentication, and the local API refusing writes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { desiredKey, EPOCH_KEY, HEARTBEAT_TTL_S, heartbeatKey, parseHeartbeat } from '../../contracts/redis/contract.js';
import { packageVersion } from '../../lib/version.js';
import { freePort } from '../../test/free-port.js';
import { startRedis } from '../../test/redis.js';
import { startApiServer } from '../api/server.js';
import { redactedUrl, redisOptions } from '../../contracts/redis/options.js';
import { HOST, desired, harness, until, type Harness } from '../../test/harness/cluster-agent.js';

/** A hang fails the test by name instead of stalling the file. */
const limit = { timeout: 45_000 };
const phase = (h: Harness, name: string) => h.agent.get('default', name)?.status?.phase;

/** A TCP relay to Redis that the test can cut (a network partition: Redis keeps its data) and heal. */
async function partitionable(
  target: number,
): Promise<{ url: string; cut(): Promise<void>; heal(): Promise<void>; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  let server: Server;
  const listen = (port: number) =>
    new Promise<number>((resolve) => {
      server = createServer((client) => {
        const upstream = connect(target, '127.0.0.1');
        for (const s of [client, upstream]) {
          sockets.add(s);
          s.on('close', () => sockets.delete(s));
          s.on('error', () => (client.destroy(), upstream.destroy()));
        }
        client.pipe(upstream).pipe(client);
      }).listen(port, '127.0.0.1', () => resolve((server.address() as { port: number }).port));
    });
  // heal() listens on it again: a port from below the ephemeral range, which no outbound connection takes meanwhile.
  const port = await listen(await freePort());
  let listening = true;
  const cut = async () => {
    if (!listening) return;
    listening = false;
    const closed = new Promise((r) => server.close(r));
    for (const s of sockets) s.destroy();
    await closed;
  };
  return {
    url: `redis://127.0.0.1:${port}`,
    cut,
    async heal() {
      await listen(port);
      listening = true;
    },
    close: cut,
  };
}

test(
  'Redis restarted empty: the operator republishes; no domain restarts, statuses and the heartbeat come back, jobs flow again',
  limit,
  async () => {
    const h = await harness({ resyncMs: 60_000 });
    try {
      const a = desired('a');
      const b = desired('b', { restartPolicy: 'Never' });
      await h.op.put(a, b);
      await h.op.complete('e1');
      await until(
        () => phase(h, 'a') === 'Running' && phase(h, 'b') === 'Running' && h.cluster.follower.appliedEpoch === 'e1',
        'Running in epoch e1',
      );
      await until(async () => (await h.op.status('b'))?.status?.phase === 'Running', 'status published');
      const domids = [h.agent.get('default', 'a')!.status!.domid, h.agent.get('default', 'b')!.status!.domid];
      const creates = h.hv.calls.create;

      await h.redis.restart();
      // Only the operator writes these (the agent may already have reconnected and republished its status).
      assert.equal(await h.op.client.exists(desiredKey(HOST), EPOCH_KEY), 0, 'Redis is empty');
      await until(() => h.cluster.link.up, 'the agent reconnected', 10_000);
      // The operator finds krata:epoch missing and rewrites every host's hash from Kubernetes.
      await h.op.put(a, b);
      await h.op.complete('e2');
      await until(() => h.cluster.follower.appliedEpoch === 'e2', 'epoch e2 applied');
      await until(
        async () => (await h.op.status('a'))?.status?.phase === 'Running' && (await h.op.status('b'))?.status?.phase === 'Running',
        'statuses republished',
      );
      assert.deepEqual([h.agent.get('default', 'a')!.status!.domid, h.agent.get('default', 'b')!.status!.domid], domids, 'same domains');
      assert.equal(h.hv.calls.create, creates, 'nothing was recreated');
      assert.equal(h.hv.calls.shutdown + h.hv.calls.destroy, 0, 'nothing was stopped');
      assert.equal((await h.op.status('a'))!.uid, a.uid);
      await until(async () => parseHeartbeat((await h.op.client.get(heartbeatKey(HOST))) ?? '{}').epoch === 'e2', 'heartbeat with e2');
      // The job worker is back too: a new Guest arrives by its job (the full read is 60 s away).
      const c = desired('c');
      await h.op.put(c);
      await h.op.nudge(c);
      await until(() => phase(h, 'c') === 'Running', 'c Running by its job', 10_000);
    } finally {
      await h.stop();
    }
  },
);

test(
  'Redis unreachable while statuses change: one log line per outage; the latest reports are delivered on reconnection',
  limit,
  async () => {
    const redis = await startRedis();
    const relay = await partitionable(redis.port);
    const h = await harness({ redis, url: relay.url });
    try {
      const a = desired('a');
      const b = desired('b', { restartPolicy: 'Never' });
      await h.op.put(a, b);
      await h.op.complete('e1');
      await until(() => phase(h, 'a') === 'Running' && phase(h, 'b') === 'Running', 'Running');
      await until(async () => (await h.op.status('b'))?.status?.phase === 'Running', 'status published');

      await relay.cut();
      await until(() => !h.cluster.link.up, 'the agent noticed');
      h.hv.exit(h.agent.get('default', 'b')!.status!.domid!, { exitCode: 3 });
      h.hv.exit(h.agent.get('default', 'a')!.status!.domid!, { exitCode: 1 });
      await until(
        () => phase(h, 'b') === 'Failed' && h.agent.get('default', 'a')!.status!.reason === 'CrashLoopBackOff',
        'statuses changed locally',
      );
      await new Promise((r) => setTimeout(r, 1500)); // retries fail meanwhile
      assert.equal((await h.op.status('b'))!.status!.phase, 'Running', 'the operator has not heard yet');
      assert.ok(
        h.cluster.publisher.backlog > 0 && h.cluster.publisher.backlog <= 2,
        `backlog ${h.cluster.publisher.backlog}: one report per Guest at most`,
      );
      const outage = h.log.lines.filter((l) => l.level === 'warn' || l.level === 'error');
      assert.deepEqual(
        outage.map((l) => l.msg),
        ['Redis is unreachable: guests keep running; reconnecting until it is back'],
      );

      await relay.heal();
      await until(
        async () => (await h.op.status('b'))?.status?.phase === 'Failed' && (await h.op.status('a'))?.status?.reason === 'CrashLoopBackOff',
        'reports delivered',
        10_000,
      );
      assert.equal((await h.op.status('b'))!.status!.exitCode, 3);
      // The operator may read a report before the publisher has counted its write done.
      await until(() => h.cluster.publisher.backlog === 0, 'the backlog drained');
      assert.equal(h.log.lines.filter((l) => l.msg === 'Redis is reachable again').length, 1);
    } finally {
      await h.stop();
      await relay.close();
    }
  },
);

test('Redis down at start: the agent runs and serves its API; it catches up once Redis is there', limit, async () => {
  const redis = await startRedis();
  const relay = await partitionable(redis.port);
  await relay.cut();
  const h = await harness({ redis, url: relay.url });
  try {
    const a = desired('a');
    await h.op.put(a);
    await h.op.complete('e1');
    await new Promise((r) => setTimeout(r, 500));
    assert.deepEqual(h.agent.list(), []);
    assert.equal((await h.agent.host()).guests.total, 0);
    assert.equal(h.log.lines.filter((l) => l.level === 'warn').length, 1);
    await relay.heal();
    await until(() => phase(h, 'a') === 'Running' && h.cluster.follower.appliedEpoch === 'e1', 'caught up');
    await until(async () => (await h.op.status('a'))?.status?.phase === 'Running', 'status published');
  } finally {
    await h.stop();
    await relay.close();
  }
});

test('heartbeat: a key with a TTL, and what the operator needs for placement', limit, async () => {
  const h = await harness();
  try {
    const a = desired('a');
    await h.op.put(a, desired('b', { resources: { cpus: 1, memory: '64Gi' } }));
    await h.op.complete('e7');
    await until(() => phase(h, 'a') === 'Running' && phase(h, 'b') === 'Failed', 'a Running, b too big');
    await until(async () => {
      const raw = await h.op.client.get(heartbeatKey(HOST));
      return raw !== null && parseHeartbeat(raw).running === 1 && parseHeartbeat(raw).epoch === 'e7';
    }, 'heartbeat up to date');
    const beat = parseHeartbeat((await h.op.client.get(heartbeatKey(HOST)))!);
    const ttl = await h.op.client.ttl(heartbeatKey(HOST));
    assert.ok(ttl > HEARTBEAT_TTL_S - 5 && ttl <= HEARTBEAT_TTL_S, `ttl ${ttl}`);
    assert.equal(beat.host, HOST);
    assert.equal(beat.agentVersion, packageVersion());
    assert.equal(beat.xenVersion, '4.17.0-fake');
    assert.equal(beat.kernelVersion, 'fake');
    assert.deepEqual(beat.capacity, { cpus: 8, memoryMiB: 8192 });
    assert.equal(beat.freeMemoryMiB, 8192 - 128);
    assert.equal(beat.guests, 2);
    assert.ok(Math.abs(Date.parse(beat.time) - Date.now()) < 5000);
  } finally {
    await h.stop();
  }
});

test('ACL authentication: user from the URL, password from a file; the password never shows in names', limit, async () => {
  const redis = await startRedis();
  const dir = mkdtempSync(join(tmpdir(), 'krata-acl-'));
  const passwordFile = join(dir, 'password');
  writeFileSync(passwordFile, 's3cret\n');
  const admin = new Redis(redis.url);
  await admin.call('ACL', 'SETUSER', 'agent-1', 'on', '>s3cret', '~krata:*', '&*', '+@all');
  admin.disconnect();
  const url = `redis://agent-1@127.0.0.1:${redis.port}`;
  assert.deepEqual(redisOptions(url, passwordFile), {
    host: '127.0.0.1',
    port: redis.port,
    db: 0,
    username: 'agent-1',
    password: 's3cret',
  });
  const h = await harness({ redis, url, passwordFile });
  try {
    const a = desired('a');
    await h.op.put(a);
    await h.op.complete('e1');
    await until(() => phase(h, 'a') === 'Running', 'a Running');
    await until(async () => (await h.op.client.exists(heartbeatKey(HOST))) === 1, 'heartbeat written');
  } finally {
    await h.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  assert.deepEqual(redisOptions('rediss://u:p%40ss@[::1]:7000/3'), {
    host: '::1',
    port: 7000,
    db: 3,
    username: 'u',
    password: 'p@ss',
    tls: {},
  });
  assert.equal(redactedUrl('redis://u:p%40ss@host:7000/3'), 'redis://u@host:7000/3');
  assert.throws(() => redisOptions('http://host'), /expected redis:\/\/ or rediss:\/\//);
  assert.throws(() => redisOptions('redis://host/x'), /database number/);
  assert.throws(() => redisOptions('redis://u:p@host', passwordFile), /keep it in the file only/);
  const bad = mkdtempSync(join(tmpdir(), 'krata-acl-'));
  try {
    assert.throws(() => redisOptions('redis://u@host', join(bad, 'missing')), /--redis-password-file .*missing: ENOENT/);
    writeFileSync(join(bad, 'empty'), '\n');
    assert.throws(() => redisOptions('redis://u@host', join(bad, 'empty')), /--redis-password-file .*empty: the file is empty/);
  } finally {
    rmSync(bad, { recursive: true, force: true });
  }
});

test('the local API refuses apply and delete in cluster mode (409) and serves everything else', limit, async () => {
  const h = await harness();
  const dir = mkdtempSync(join(tmpdir(), 'krata-cluster-api-'));
  const socketPath = join(dir, 'agent.sock');
  const api = await startApiServer(h.agent, { socketPath, log: () => undefined });
  const call = (method: string, path: string, body?: unknown) =>
    new Promise<{ status: number; json: { message?: string; items?: unknown[] } }>((resolve, reject) => {
      const data = body === undefined ? undefined : JSON.stringify(body);
      const req = request(
        {
          socketPath,
          method,
          path,
          headers: data ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } : {},
        },
        (res) => {
          let text = '';
          res.on('data', (c) => (text += c));
          res.on('end', () => resolve({ status: res.statusCode!, json: JSON.parse(text) }));
        },
      );
      req.on('error', reject);
      req.end(data);
    });
  try {
    const a = desired('a');
    await h.op.put(a);
    await h.op.nudge(a);
    await until(() => phase(h, 'a') === 'Running', 'a Running');
    const guest = { apiVersion: 'krata.dev/v1alpha1', kind: 'Guest', metadata: { name: 'local' }, spec: { image: 'alpine:3.19' } };
    for (const [method, path, body] of [
      ['POST', '/v1/apply', { objects: [guest], dryRun: false }],
      ['POST', '/v1/apply', { objects: [guest], dryRun: true }],
      ['DELETE', '/v1/namespaces/default/guests/a', undefined],
    ] as const) {
      const r = await call(method, path, body);
      assert.equal(r.status, 409, `${method} ${path}`);
      assert.equal(r.json.message, `this host is managed by the cluster (Redis ${h.redis.url}); use kubectl`);
    }
    assert.equal(phase(h, 'a'), 'Running');
    assert.equal(h.agent.get('default', 'local'), undefined);
    assert.equal((await call('GET', '/v1/guests')).json.items!.length, 1);
    assert.equal((await call('GET', '/v1/namespaces/default/guests/a')).status, 200);
    assert.equal((await call('GET', '/v1/host')).status, 200);
    assert.equal((await call('GET', '/v1/events')).status, 200);
  } finally {
    await api.close();
    rmSync(dir, { recursive: true, force: true });
    await h.stop();
  }
});
