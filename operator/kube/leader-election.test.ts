import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { LeaderElector } from './leader-election.js';
import type { KubeClient } from './client.js';
import { FreezableProxy, startKube, waitFor, type TestKube } from '../../test/kube/operator-env.js';

interface LeaseObj {
  spec: { holderIdentity?: string; leaseTransitions?: number; leaseDurationSeconds?: number; acquireTime?: string; renewTime?: string };
}

// Short periods so handovers take seconds: lease 3 s, renew deadline 2 s, retry 0.5 s.
const TIMING = { leaseDurationMs: 3000, renewDeadlineMs: 2000, retryPeriodMs: 500 };

describe('LeaderElector against kube-apiserver', () => {
  let kube: TestKube;
  const electors: LeaderElector[] = [];
  before(async () => {
    kube = await startKube();
  });
  after(async () => {
    await Promise.all(electors.map((e) => e.stop({ release: false })));
    await kube?.stop();
  });

  /** An elector that records when it started and stopped leading. */
  function elector(identity: string, name: string, client: KubeClient = kube.client) {
    const times = { started: [] as number[], stopped: [] as number[] };
    const e = new LeaderElector(client, {
      namespace: 'default',
      name,
      identity,
      ...TIMING,
      onStartedLeading: () => times.started.push(Date.now()),
      onStoppedLeading: () => times.stopped.push(Date.now()),
    });
    electors.push(e);
    void e.run();
    return { e, times };
  }

  const lease = (name: string) => kube.client.request<LeaseObj>('GET', `/apis/coordination.k8s.io/v1/namespaces/default/leases/${name}`);

  it('elects exactly one leader and hands over at once on release', async () => {
    const a = elector('a', 'release');
    const b = elector('b', 'release');
    const [leader, follower] = await waitFor(() => (a.e.isLeader ? [a, b] : b.e.isLeader ? [b, a] : undefined), 'a leader');
    // Over several renewals, never two leaders and no change of leader.
    for (let i = 0; i < 20; i++) {
      assert.ok(leader.e.isLeader && !follower.e.isLeader);
      await new Promise((r) => setTimeout(r, 100));
    }
    const held = await lease('release');
    assert.equal(held.spec.holderIdentity, leader === a ? 'a' : 'b');
    assert.equal(held.spec.leaseDurationSeconds, 3);
    assert.ok(held.spec.renewTime! > held.spec.acquireTime!, 'renewed since acquired');
    assert.match(held.spec.renewTime!, /\.\d{6}Z$/);
    const writes = kube.client.writes;

    const t0 = Date.now();
    await leader.e.stop();
    assert.equal(leader.e.isLeader, false);
    assert.equal(leader.times.stopped.length, 1);
    await waitFor(() => follower.e.isLeader, 'the follower to take over', 3000);
    const took = Date.now() - t0;
    assert.ok(took < 1500, `handover took ${took} ms; a release should need about one retry period`);
    const next = await lease('release');
    assert.equal(next.spec.holderIdentity, follower === a ? 'a' : 'b');
    assert.equal(next.spec.leaseTransitions, (held.spec.leaseTransitions ?? 0) + 1, 'the takeover is a transition');
    assert.ok(kube.client.writes > writes, 'lease writes are counted');
  });

  it('takes over an abandoned lease only after it expires by the local clock', async () => {
    const a = elector('a', 'crash');
    await waitFor(() => a.e.isLeader, 'a to lead');
    const b = elector('b', 'crash');
    await new Promise((r) => setTimeout(r, 1000));
    assert.ok(!b.e.isLeader, 'a renewing lease is not taken');

    const t0 = Date.now();
    await a.e.stop({ release: false }); // as if the process died
    await waitFor(() => b.e.isLeader, 'b to take over', 6000);
    const took = Date.now() - t0;
    assert.ok(took >= 2000, `took over after ${took} ms, before the 3 s lease could expire`);
    assert.ok(took < 4500, `took over after ${took} ms`);
    assert.equal((await lease('crash')).spec.holderIdentity, 'b');
  });

  it('steps down when it cannot renew for renewDeadline, before anyone else may lead', async () => {
    const proxy = await FreezableProxy.start(kube.env.server);
    try {
      const a = elector('a', 'partition', kube.clientVia(proxy.url, { timeoutMs: 60_000 }));
      await waitFor(() => a.e.isLeader, 'a to lead');
      const b = elector('b', 'partition');
      await new Promise((r) => setTimeout(r, 600));

      proxy.freeze(); // a can no longer reach the apiserver
      await waitFor(() => a.times.stopped.length === 1, 'a to step down', 4000);
      await waitFor(() => b.e.isLeader, 'b to take over', 6000);
      assert.ok(a.times.stopped[0] < b.times.started[0], 'a stopped leading before b started: no overlap');
      assert.equal(a.e.isLeader, false);

      proxy.unfreeze(); // a's renewals in flight now fail: b holds the lease
      await new Promise((r) => setTimeout(r, 1500));
      assert.ok(b.e.isLeader && !a.e.isLeader);
      assert.equal((await lease('partition')).spec.holderIdentity, 'b');
    } finally {
      await proxy.close();
    }
  });
});
