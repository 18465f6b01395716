// Cluster mode end to end, every component real except the hypervisor: a kube-apiserver on etcd,
// Redis with krata's ACL (the operator and the agents authenticate as in the install), two operator replicas
// with leader election, and five node agents in cluster mode on the test
// double (one process each, fake domains saved as Xen would keep them). 100 Guests are placed, run and
// report addresses while Redis, the leading operator and an agent are killed and restarted; then
// everything is deleted and every finalizer clears and every host is empty.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import type { Guest } from '../../crds/generated/types.js';
import type { FakeSnapshot } from '../../node-agent/runtime/fake-hypervisor.js';
import { FINALIZER } from '../../operator/guest-controller.js';
import { newGuest, startKube, waitFor, type TestKube } from '../kube/operator-env.js';
import { AGENT_USER, OPERATOR_USER } from '../../contracts/redis/acl.js';
import { heartbeatKey } from '../../contracts/redis/contract.js';
import { AGENT_SECRET, ensureRedisCredentials } from '../../operator/redis-credentials.js';
import { startRedis } from '../redis.js';
import { createXenNodes } from './xen-nodes.js';

const dist = join(fileURLToPath(import.meta.url), '../../..');
const HOSTS = ['xen-a', 'xen-b', 'xen-c', 'xen-d', 'xen-e'];
const GUESTS = 100;

let kube: TestKube;
let redis: Awaited<ReturnType<typeof startRedis>>;
let agentPassword: string;
const work = mkdtempSync(join(tmpdir(), 'krata-cluster-test-'));
const procs = new Map<string, ChildProcess>();
const logs = new Map<string, string[]>();

function start(name: string, args: string[]): ChildProcess {
  const p = spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  const lines: string[] = logs.get(name) ?? [];
  logs.set(name, lines);
  const keep = (d: Buffer) => {
    lines.push(...d.toString().split('\n').filter(Boolean));
    if (lines.length > 400) lines.splice(0, lines.length - 400);
  };
  p.stdout!.on('data', keep);
  p.stderr!.on('data', keep);
  procs.set(name, p);
  return p;
}

async function kill(name: string): Promise<void> {
  const p = procs.get(name);
  if (!p || p.exitCode !== null || p.signalCode !== null) return;
  const gone = new Promise((r) => p.once('exit', r));
  p.kill('SIGKILL');
  await gone;
}

const startAgent = (host: string) =>
  start(host, [
    join(dist, 'test/cluster/sim-hosts.js'),
    '--redis',
    redis.urlAs(AGENT_USER, agentPassword),
    '--state',
    join(work, 'hosts'),
    '--hosts',
    host,
    '--persist',
  ]);
const startOperator = (id: string) =>
  start(id, [
    join(dist, 'operator/main.js'),
    '--kubeconfig',
    kube.env.kubeconfig,
    '--redis',
    `redis://${OPERATOR_USER}@127.0.0.1:${redis.port}`,
    '--redis-credentials-namespace',
    'default',
    '--leader-elect',
    '--lease-namespace',
    'default',
    '--identity',
    id,
    '--health-addr',
    'off',
    '--metrics-addr',
    'off',
    '--workers',
    '8',
    '--reschedule-after',
    '15s',
    '--force-delete-after',
    '20s',
  ]);

function domains(host: string): FakeSnapshot['domains'] {
  const f = join(work, 'hosts', host, 'fake-domains.json');
  return existsSync(f) ? (JSON.parse(readFileSync(f, 'utf8')) as FakeSnapshot).domains : [];
}

async function guests(): Promise<Guest[]> {
  const out: Guest[] = [];
  let cont: string | undefined;
  do {
    const page = await kube.client.listGuests({ limit: 500, ...(cont ? { continue: cont } : {}) });
    out.push(...page.items);
    cont = page.continue;
  } while (cont);
  return out;
}

async function leader(): Promise<string | undefined> {
  const lease = await kube.client
    .request<{ spec?: { holderIdentity?: string } }>('GET', '/apis/coordination.k8s.io/v1/namespaces/default/leases/krata-operator')
    .catch(() => undefined);
  return lease?.spec?.holderIdentity || undefined;
}

function dump(): string {
  return [...logs].map(([n, l]) => `--- ${n}\n${l.slice(-30).join('\n')}`).join('\n');
}

before(async () => {
  kube = await startKube();
  // As in a cluster: the Xen nodes are labelled, and Redis runs the ACL from the Secrets the operator
  // makes on its first start (done here first, so Redis can start with them).
  await createXenNodes(kube.client, HOSTS);
  const { password } = await ensureRedisCredentials(kube.client, 'default');
  const agentSecret = await kube.client.request<{ data: Record<string, string> }>(
    'GET',
    `/api/v1/namespaces/default/secrets/${AGENT_SECRET}`,
  );
  agentPassword = Buffer.from(agentSecret.data.password!, 'base64').toString('utf8');
  redis = await startRedis({ acl: { operator: password, agent: agentPassword } });
  for (const h of HOSTS) startAgent(h);
  startOperator('op-1');
  startOperator('op-2');
});

after(async () => {
  for (const n of procs.keys()) await kill(n);
  await redis?.stop();
  await kube?.stop();
  rmSync(work, { recursive: true, force: true });
});

test(
  '100 Guests across 5 agents converge through Redis, operator and agent failures, and are deleted cleanly',
  { timeout: 600_000 },
  async () => {
    // The agents register their XenHosts through the operator (they hold no Kubernetes credentials),
    // which vouches for them by their labelled Nodes.
    await waitFor(
      async () =>
        (await kube.client.listXenHosts()).items.filter((h) => h.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'))
          .length === HOSTS.length,
      'five ready XenHosts',
      60_000,
    ).catch((e) => {
      throw new Error(`${(e as Error).message}\n${dump()}`);
    });

    const creates: Promise<unknown>[] = [];
    for (let i = 0; i < GUESTS; i++) {
      const g = newGuest(`g-${i}`);
      g.spec = { image: 'example.test/app:1', resources: { cpus: 1, memory: '64Mi' } } as Guest['spec'];
      if (i === 7) g.spec.nodeName = 'xen-c';
      creates.push(kube.client.createGuest(g));
    }
    await Promise.all(creates);

    // Mid-way: once some Guests run, kill everything but the apiserver, one piece at a time.
    await waitFor(async () => (await guests()).filter((g) => g.status?.phase === 'Running').length >= 20, '20 running', 120_000).catch(
      (e) => {
        throw new Error(`${(e as Error).message}\n${dump()}`);
      },
    );
    // Domains running now must survive everything below untouched (same domain, not a new one).
    const before = new Map<string, number>();
    for (const h of HOSTS) for (const d of domains(h)) if (d.info.state === 'running') before.set(d.info.guest.uid, d.info.domid);
    assert.ok(before.size >= 20);
    await redis.kill();
    await redis.restart(); // empty: the operator must republish from Kubernetes
    const first = await leader();
    assert.ok(first, 'a leader holds the lease');
    await kill(first!);
    await kill('xen-b');
    startAgent('xen-b');
    startOperator(first!);

    const all = await waitFor(
      async () => {
        const list = await guests();
        return list.length === GUESTS &&
          list.every(
            (g) => g.status?.phase === 'Running' && g.status.addresses?.ipv4 && g.status.observedGeneration === g.metadata.generation,
          )
          ? list
          : undefined;
      },
      'all 100 guests Running with addresses',
      240_000,
    ).catch((e) => {
      throw new Error(`${(e as Error).message}\n${dump()}`);
    });
    assert.notEqual(await leader(), undefined);
    // Placement: spread over all five hosts, the pinned one where it was pinned, each status naming its host.
    const byHost = new Map<string, number>();
    for (const g of all) byHost.set(g.status!.node!, (byHost.get(g.status!.node!) ?? 0) + 1);
    assert.deepEqual([...byHost.keys()].sort(), HOSTS);
    assert.equal(all.find((g) => g.metadata.name === 'g-7')!.status!.node, 'xen-c');
    for (const g of all) {
      assert.ok(g.metadata.finalizers?.includes(FINALIZER));
      assert.ok(g.status!.conditions!.some((c) => c.type === 'Ready' && c.status === 'True'));
      assert.ok(g.status!.conditions!.some((c) => c.type === 'Scheduled' && c.status === 'True'));
    }
    // Nothing duplicated, nothing lost: exactly one domain per Guest, on the host its status names.
    await waitFor(() => HOSTS.reduce((n, h) => n + domains(h).length, 0) === GUESTS, 'one domain per guest', 30_000);
    const seen = new Map<string, string>();
    for (const h of HOSTS) {
      for (const d of domains(h)) {
        assert.equal(seen.has(d.info.guest.uid), false, `guest ${d.info.guest.namespace}/${d.info.guest.name} has two domains`);
        seen.set(d.info.guest.uid, h);
      }
    }
    for (const g of all) assert.equal(seen.get(g.metadata.uid!), g.status!.node, `${g.metadata.name}'s domain is on its node`);
    const after = new Map<string, number>();
    for (const h of HOSTS) for (const d of domains(h)) after.set(d.info.guest.uid, d.info.domid);
    for (const [uid, domid] of before) assert.equal(after.get(uid), domid, `guest ${uid} kept its domain ${domid}`);

    // kubectl wait reads the Ready condition (GitOps tools read the same conditions).
    const wait = spawnSync(
      'kubectl',
      ['--kubeconfig', kube.env.kubeconfig, 'wait', '--for=condition=Ready', 'guest/g-1', 'guest/g-99', '--timeout=30s'],
      { encoding: 'utf8' },
    );
    assert.equal(wait.status, 0, wait.stderr);

    // Delete everything: finalizers clear once each host has torn its guest down, and hosts end empty.
    const del = spawnSync('kubectl', ['--kubeconfig', kube.env.kubeconfig, 'delete', 'guests', '--all', '--wait=false'], {
      encoding: 'utf8',
    });
    assert.equal(del.status, 0, del.stderr);
    await waitFor(async () => (await guests()).length === 0, 'every Guest gone', 180_000).catch((e) => {
      throw new Error(`${(e as Error).message}\n${dump()}`);
    });
    await waitFor(() => HOSTS.every((h) => domains(h).length === 0), 'every host empty', 30_000);
  },
);

test(
  'a Guest nothing fits waits with a reason; a silent host loses its Guests to others; deletion does not wait forever',
  { timeout: 300_000 },
  async () => {
    const events = async (name: string) =>
      (
        await kube.client.request<{ items: { reason: string; message: string; involvedObject: { name: string } }[] }>(
          'GET',
          '/api/v1/namespaces/default/events',
        )
      ).items.filter((e) => e.involvedObject.name === name);
    const nowhere = newGuest('nowhere');
    nowhere.spec = {
      image: 'example.test/app:1',
      resources: { cpus: 1, memory: '64Mi' },
      nodeSelector: { zone: 'moon' },
    } as unknown as Guest['spec'];
    const roaming = newGuest('roaming');
    roaming.spec = { image: 'example.test/app:1', resources: { cpus: 1, memory: '64Mi' } } as Guest['spec'];
    const pinned = newGuest('pinned');
    pinned.spec = { image: 'example.test/app:1', resources: { cpus: 1, memory: '64Mi' }, nodeName: 'xen-e' } as Guest['spec'];
    // What the API server cannot check (no CEL in 1.20) the operator does: never placed, Stalled.
    const invalid = newGuest('invalid');
    invalid.spec = { image: 'example.test/app:1', resources: { cpus: 2, maxCpus: 1, memory: '64Mi' } } as Guest['spec'];
    await Promise.all([nowhere, pinned, invalid].map((g) => kube.client.createGuest(g)));
    // It runs wherever placement puts it; that host is then taken away.
    await kube.client.createGuest(roaming);
    const placed = await waitFor(
      async () => {
        const g = await kube.client.getGuest('default', 'roaming');
        return g.status?.phase === 'Running' ? g.status.node : undefined;
      },
      'roaming running',
      60_000,
    );
    await waitFor(async () => (await kube.client.getGuest('default', 'pinned')).status?.phase === 'Running', 'pinned running', 60_000);

    const unplaced = await waitFor(
      async () => {
        const g = await kube.client.getGuest('default', 'nowhere');
        return g.status?.conditions?.find((c) => c.type === 'Scheduled' && c.status === 'False');
      },
      'Scheduled=False',
      30_000,
    );
    assert.equal(unplaced.reason, 'Unschedulable');
    assert.equal(unplaced.message, "0/5 hosts are available: 5 didn't match nodeSelector");
    assert.ok((await events('nowhere')).some((e) => e.reason === 'FailedScheduling'));
    const stalled = await waitFor(
      async () => {
        const g = await kube.client.getGuest('default', 'invalid');
        return g.status?.conditions?.find((c) => c.type === 'Stalled' && c.status === 'True');
      },
      'Stalled=True',
      30_000,
    );
    assert.equal(stalled.reason, 'InvalidSpec');
    assert.match(stalled.message, /maxCpus/);
    assert.equal((await kube.client.getGuest('default', 'invalid')).status?.node, undefined);
    await kube.client.deleteGuest('default', 'invalid');

    // The roaming Guest's host goes silent for good, and with it xen-e (the pinned Guest's host, below):
    // killed together, their silences overlap instead of adding up. Their heartbeat keys are removed as
    // their TTL (up to 40 s later) would: the operator still counts a host ready for the TTL after it last
    // saw the key, then after --reschedule-after (15 s) the Guest runs elsewhere.
    const silent = placed === 'xen-e' ? [placed] : [placed!, 'xen-e'];
    await Promise.all(silent.map(kill));
    const r = new Redis(redis.urlAs(AGENT_USER, agentPassword), { enableReadyCheck: false });
    await r.del(...silent.map(heartbeatKey)).finally(() => r.quit());
    const moved = await waitFor(
      async () => {
        const g = await kube.client.getGuest('default', 'roaming');
        return g.status?.phase === 'Running' && g.status.node !== placed ? g.status.node : undefined;
      },
      'roaming running on another host',
      120_000,
    ).catch((e) => {
      throw new Error(`${(e as Error).message}\n${dump()}`);
    });
    assert.notEqual(moved, placed);
    assert.ok((await events('roaming')).some((e) => e.reason === 'Rescheduling'));

    // Deleting a Guest pinned to a host that never came back finishes after --force-delete-after.
    await kube.client.deleteGuest('default', 'pinned');
    await kube.client.deleteGuest('default', 'nowhere');
    await kube.client.deleteGuest('default', 'roaming');
    await waitFor(async () => (await guests()).length === 0, 'the Guests gone', 120_000).catch((e) => {
      throw new Error(`${(e as Error).message}\n${dump()}`);
    });
    assert.ok((await events('pinned')).some((e) => e.reason === 'ForceDeleted'));
  },
);
