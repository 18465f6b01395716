// The operator against a real kube-apiserver and an ACL'd redis-server: it makes the Redis credentials
// (three Secrets that agree, written once, shared by racing replicas), connects as krata-operator, and
// turns heartbeats into XenHosts only for names the cluster vouches for (a Node labelled
// krata.dev/xen=true): a forged heartbeat makes no XenHost, and a report from one host about a Guest
// placed on another never becomes that Guest's status.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { STATUS_STREAM, heartbeatKey, statusKey, type Heartbeat, type StatusReport } from '../../contracts/redis/contract.js';
import { AGENT_USER, renderAclFile } from '../../contracts/redis/acl.js';
import type { Guest } from '../../crds/generated/types.js';
import { XEN_NODE_LABEL } from '../../operator/host-tracker.js';
import { isNotFound } from '../../operator/kube/client.js';
import { newGuest, startKube, waitFor, type TestKube } from '../kube/operator-env.js';
import {
  ACL_KEY,
  ACL_SECRET,
  AGENT_SECRET,
  OPERATOR_SECRET,
  PASSWORD_KEY,
  ensureRedisCredentials,
} from '../../operator/redis-credentials.js';
import { freePort } from '../free-port.js';
import { startRedis, type TestRedis } from '../redis.js';

const dist = join(fileURLToPath(import.meta.url), '../../..');
const NS = 'krata-creds';
let kube: TestKube;
let redis: TestRedis | undefined;
let operator: ChildProcess | undefined;
const logs: string[] = [];

interface Secret {
  metadata: { resourceVersion: string };
  data: Record<string, string>;
}
const secret = (name: string, ns = NS) => kube.client.request<Secret>('GET', `/api/v1/namespaces/${ns}/secrets/${name}`);
const decoded = (s: Secret, key: string) => Buffer.from(s.data[key]!, 'base64').toString('utf8');
const createNamespace = (name: string) =>
  kube.client.request('POST', '/api/v1/namespaces', { body: { apiVersion: 'v1', kind: 'Namespace', metadata: { name } } });
const createNode = (name: string, labels: Record<string, string>) =>
  kube.client.request('POST', '/api/v1/nodes', { body: { apiVersion: 'v1', kind: 'Node', metadata: { name, labels } } });
const xenHostExists = (name: string) =>
  kube.client.getXenHost(name).then(
    () => true,
    (e) => (isNotFound(e) ? false : Promise.reject(e as Error)),
  );

function heartbeat(host: string, cpus: number): Heartbeat {
  return {
    host,
    time: new Date().toISOString(),
    agentVersion: '0.1.0',
    xenVersion: '4.17',
    kernelVersion: '6.1',
    capacity: { cpus, memoryMiB: 8192 },
    freeMemoryMiB: 8192,
    guests: 0,
    running: 0,
    epoch: '',
  };
}

function dump(): string {
  return logs.slice(-40).join('\n');
}

before(async () => {
  kube = await startKube();
  await createNamespace(NS);
});

after(async () => {
  if (operator && operator.exitCode === null) {
    const gone = new Promise((r) => operator!.once('exit', r));
    operator.kill('SIGKILL');
    await gone;
  }
  await redis?.stop();
  await kube?.stop();
});

test(
  'the operator makes the Redis credentials once: three Secrets ' + 'that agree; racing replicas converge; a stale ACL is rewritten',
  async () => {
    const log: string[] = [];
    const [a, b] = await Promise.all([
      ensureRedisCredentials(kube.client, NS, (m) => log.push(m)),
      ensureRedisCredentials(kube.client, NS, (m) => log.push(m)),
    ]);
    assert.deepEqual(a, b, 'two replicas starting together agree');
    assert.equal(a.username, 'krata-operator');
    const op = decoded(await secret(OPERATOR_SECRET), PASSWORD_KEY);
    const agent = decoded(await secret(AGENT_SECRET), PASSWORD_KEY);
    assert.equal(op, a.password);
    assert.match(op, /^[\w-]{43}$/, '32 random bytes');
    assert.match(agent, /^[\w-]{43}$/);
    assert.notEqual(op, agent);
    const acl = decoded(await secret(ACL_SECRET), ACL_KEY);
    assert.equal(acl, renderAclFile({ operator: op, agent }));
    assert.ok(!acl.includes(op) && !acl.includes(agent), 'the ACL Secret holds no password');
    assert.equal(log.filter((l) => l.startsWith('created Secret')).length, 3, log.join('\n'));

    // Later starts read what is there and write nothing.
    const writes = kube.client.writes;
    assert.deepEqual(await ensureRedisCredentials(kube.client, NS), a);
    assert.equal(kube.client.writes, writes);

    // An ACL that does not match the passwords (tampered, or an older krata's rules) is replaced.
    const s = await secret(ACL_SECRET);
    await kube.client.request('PUT', `/api/v1/namespaces/${NS}/secrets/${ACL_SECRET}`, {
      body: {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name: ACL_SECRET, namespace: NS, resourceVersion: s.metadata.resourceVersion },
        data: { [ACL_KEY]: Buffer.from('user default on nopass ~* +@all\n').toString('base64') },
      },
    });
    await ensureRedisCredentials(kube.client, NS);
    assert.equal(decoded(await secret(ACL_SECRET), ACL_KEY), acl);

    // Passwords an administrator put there first are used as they are; bad ones are refused by name.
    await createNamespace('krata-admin-creds');
    await kube.client.request('POST', '/api/v1/namespaces/krata-admin-creds/secrets', {
      body: { apiVersion: 'v1', kind: 'Secret', metadata: { name: OPERATOR_SECRET }, stringData: { password: 'chosen-by-the-admin-0123' } },
    });
    assert.equal((await ensureRedisCredentials(kube.client, 'krata-admin-creds')).password, 'chosen-by-the-admin-0123');
    await createNamespace('krata-bad-creds');
    await kube.client.request('POST', '/api/v1/namespaces/krata-bad-creds/secrets', {
      body: { apiVersion: 'v1', kind: 'Secret', metadata: { name: AGENT_SECRET }, stringData: { password: 'short' } },
    });
    await assert.rejects(
      ensureRedisCredentials(kube.client, 'krata-bad-creds'),
      /Secret krata-bad-creds\/krata-redis-agent key "password": a Redis password must be 16 to 256/,
    );
  },
);

test('operator flags: a password in the URL or a different user next to --redis-credentials-namespace is refused by name', async () => {
  const run = (...args: string[]) =>
    new Promise<{ code: number | null; err: string }>((resolve) => {
      const p = spawn(
        process.execPath,
        [join(dist, 'operator/main.js'), '--kubeconfig', kube.env.kubeconfig, '--health-addr', 'off', '--metrics-addr', 'off', ...args],
        { stdio: ['ignore', 'ignore', 'pipe'] },
      );
      let err = '';
      p.stderr!.on('data', (d: Buffer) => (err += d.toString()));
      p.on('exit', (code) => resolve({ code, err }));
    });
  const inUrl = await run('--redis', 'redis://krata-operator:secret-in-the-url@127.0.0.1:1', '--redis-credentials-namespace', NS);
  assert.equal(inUrl.code, 1);
  assert.match(inUrl.err, /--redis has a password and .* was given too: keep it out of the URL/);
  assert.doesNotMatch(inUrl.err, /secret-in-the-url/);
  const other = await run('--redis', 'redis://admin@127.0.0.1:1', '--redis-credentials-namespace', NS);
  assert.equal(other.code, 1);
  assert.match(other.err, /--redis names user "admin"; with --redis-credentials-namespace the operator is krata-operator/);
});

test(
  'heartbeats make XenHosts only for labelled Nodes; a host cannot report for a Guest placed on another',
  { timeout: 120_000 },
  async () => {
    const passwords = {
      operator: decoded(await secret(OPERATOR_SECRET), PASSWORD_KEY),
      agent: decoded(await secret(AGENT_SECRET), PASSWORD_KEY),
    };
    redis = await startRedis({ acl: passwords });
    const agent = new Redis(redis.urlAs(AGENT_USER, passwords.agent), { enableReadyCheck: false });
    try {
      await createNode('xen-a', { [XEN_NODE_LABEL]: 'true' });
      await createNode('xen-b', { [XEN_NODE_LABEL]: 'true' });
      await createNode('worker-1', { 'kubernetes.io/os': 'linux' });
      // xen-b has no vCPU to give: placement can only choose xen-a.
      for (const [host, cpus] of [
        ['xen-a', 8],
        ['xen-b', 0],
        ['worker-1', 8],
        ['invented', 8],
      ] as const)
        await agent.set(heartbeatKey(host), JSON.stringify(heartbeat(host, cpus)), 'EX', 600);

      const metrics = await freePort();
      operator = spawn(
        process.execPath,
        [
          join(dist, 'operator/main.js'),
          '--kubeconfig',
          kube.env.kubeconfig,
          '--redis',
          `redis://krata-operator@127.0.0.1:${redis.port}`,
          '--redis-credentials-namespace',
          NS,
          '--health-addr',
          'off',
          '--metrics-addr',
          `127.0.0.1:${metrics}`,
          '--workers',
          '2',
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      for (const s of [operator.stdout!, operator.stderr!])
        s.on('data', (d: Buffer) => logs.push(...d.toString().split('\n').filter(Boolean)));
      const fail = (e: Error) => {
        throw new Error(`${e.message}\n${dump()}`);
      };

      await waitFor(
        async () => (await xenHostExists('xen-a')) && (await xenHostExists('xen-b')),
        'XenHosts for the labelled Nodes',
        30_000,
      ).catch(fail);
      await waitFor(
        () =>
          logs.some((l) => l.includes('ignoring heartbeats under \\"worker-1\\"')) &&
          logs.some((l) => l.includes('ignoring heartbeats under \\"invented\\"')),
        'the unattributable names logged',
        15_000,
      ).catch(fail);
      // Some polls later: still nothing for them, each logged once, and counted.
      await new Promise((r) => setTimeout(r, 11_000));
      assert.equal(await xenHostExists('worker-1'), false, 'a Node without the label registers nothing');
      assert.equal(await xenHostExists('invented'), false, 'a name with no Node registers nothing');
      assert.equal(logs.filter((l) => l.includes('ignoring heartbeats under')).length, 2, dump());
      const text = await (await fetch(`http://127.0.0.1:${metrics}/metrics`)).text();
      assert.match(text, /^krata_operator_unattributed_hosts 2$/m);

      // A Guest placed on xen-a; xen-b (a real host, with the shared agent user) reports it Running.
      const g = newGuest('web');
      g.spec = { image: 'example.test/app:1', resources: { cpus: 1, memory: '64Mi' } } as Guest['spec'];
      const created = await kube.client.createGuest(g);
      const uid = created.metadata.uid!;
      await waitFor(async () => (await kube.client.getGuest('default', 'web')).status?.node === 'xen-a', 'placed on xen-a', 20_000).catch(
        fail,
      );
      const report = (domid: number): StatusReport => ({
        uid,
        generation: 1,
        status: { phase: 'Running', observedGeneration: 1, domid } as StatusReport['status'],
        time: new Date().toISOString(),
      });
      const forged = JSON.stringify(report(666));
      await agent
        .multi()
        .hset(statusKey('xen-b'), 'default/web', forged)
        .xadd(STATUS_STREAM, '*', 'host', 'xen-b', 'key', 'default/web', 'report', forged)
        .exec();
      await new Promise((r) => setTimeout(r, 4000));
      const meanwhile = (await kube.client.getGuest('default', 'web')).status;
      assert.notEqual(meanwhile?.phase, 'Running', `xen-b's report is not xen-a's: ${JSON.stringify(meanwhile)}`);
      assert.notEqual(meanwhile?.domid, 666);
      // The host it is placed on is heard.
      const genuine = JSON.stringify(report(7));
      await agent
        .multi()
        .hset(statusKey('xen-a'), 'default/web', genuine)
        .xadd(STATUS_STREAM, '*', 'host', 'xen-a', 'key', 'default/web', 'report', genuine)
        .exec();
      const st = await waitFor(
        async () => {
          const s = (await kube.client.getGuest('default', 'web')).status;
          return s?.phase === 'Running' ? s : undefined;
        },
        'Running from xen-a',
        15_000,
      ).catch(fail);
      assert.equal(st.domid, 7);
      assert.equal(st.node, 'xen-a');
      assert.ok(!logs.some((l) => /NOPERM|WRONGPASS|NOAUTH/.test(l)), `the operator met no refusal:\n${dump()}`);
    } finally {
      agent.disconnect();
    }
  },
);
