// The shared GuestSet controller in cluster mode, against a real kube-apiserver: Guests created with
// the set's ownerReference, status through the status subresource, `kubectl scale` through the scale
// subresource (labelSelectorPath included), a rolling update driven by the Guests' Ready condition, and
// Deployment-like printer columns. (envtest runs no controller-manager, so garbage collection of the
// Guests when their set is deleted is Kubernetes' and not exercised here.)
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { Guest, GuestSet } from '../crds/generated/types.js';
import { metaTime } from '../crds/meta.js';
import { startKube, waitFor, type TestKube } from '../test/kube/operator-env.js';
import { GuestSetController, HASH_LABEL } from '../workloads/guestset/controller.js';
import { KubeGuestSetClient } from './guestset-client.js';

const KUBECTL = process.env.KRATA_KUBECTL ?? 'kubectl';

const SET = `apiVersion: krata.dev/v1alpha1
kind: GuestSet
metadata: {name: web, namespace: default}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {image: 'app:1'}
`;

describe('GuestSets on a real kube-apiserver', { timeout: 180_000 }, () => {
  let kube: TestKube;
  before(async () => {
    kube = await startKube();
  });
  after(async () => {
    await kube?.stop();
  });

  function kubectl(args: string[], input?: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
    return new Promise((resolve, reject) => {
      const c = spawn(KUBECTL, ['--kubeconfig', kube.env.kubeconfig, '--request-timeout=30s', ...args], {
        stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      });
      c.stdin?.end(input);
      let stdout = '';
      let stderr = '';
      c.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
      c.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
      c.on('error', reject);
      c.on('close', (code) => resolve({ code, stdout, stderr }));
    });
  }
  const guests = async () =>
    (await kube.client.listGuestsIn('default', 'krata.dev/guestset=web')).filter((g) => !g.metadata.deletionTimestamp);
  /** What an agent reports once a Guest's domain runs: Ready=True (through the status subresource). */
  const markReady = async (gs: Guest[]) => {
    for (const g of gs)
      if (!g.status?.conditions?.length)
        await kube.client.applyGuestStatus('default', g.metadata.name, {
          phase: 'Running',
          conditions: [{ type: 'Ready', status: 'True', reason: 'Running', message: '', lastTransitionTime: metaTime(Date.now()) }],
        });
  };

  test('kubectl apply, reconcile, kubectl scale, a rollout', async () => {
    const r = await kubectl(['apply', '-f', '-'], SET);
    assert.equal(r.code, 0, r.stderr);
    const controller = new GuestSetController(new KubeGuestSetClient(kube.client), { now: () => Date.now() });

    await controller.reconcile('default', 'web');
    const made = await guests();
    assert.equal(made.length, 3);
    const set = await kube.client.getGuestSet('default', 'web');
    for (const g of made) {
      assert.deepEqual(g.metadata.ownerReferences, [
        {
          apiVersion: 'krata.dev/v1alpha1',
          kind: 'GuestSet',
          name: 'web',
          uid: set.metadata.uid,
          controller: true,
          blockOwnerDeletion: true,
        },
      ]);
      assert.equal(g.metadata.labels?.app, 'web');
    }
    assert.equal(set.status?.replicas, 3);
    assert.equal(set.status?.conditions?.find((c) => c.type === 'Ready')?.status, 'False');

    await markReady(made);
    await controller.reconcile('default', 'web');
    let got = await kubectl(['get', 'gs', 'web']);
    assert.equal(got.code, 0, got.stderr);
    assert.match(got.stdout, /^NAME\s+DESIRED\s+READY\s+UP-TO-DATE\s+AVAILABLE\s+AGE\nweb\s+3\s+3\s+3\s+3\s+\S+\n$/);
    got = await kubectl(['get', 'krata']);
    assert.match(got.stdout, /guestset\.krata\.dev\/web/);

    // kubectl scale goes through the scale subresource; its selector is status.selector.
    const scaled = await kubectl(['scale', 'guestset', 'web', '--replicas=1']);
    assert.equal(scaled.code, 0, scaled.stderr);
    const scale = JSON.parse(
      (await kubectl(['get', '--raw', '/apis/krata.dev/v1alpha1/namespaces/default/guestsets/web/scale'])).stdout,
    ) as {
      spec: { replicas: number };
      status: { replicas: number; selector: string };
    };
    assert.deepEqual(scale.spec, { replicas: 1 });
    assert.deepEqual(scale.status, { replicas: 3, selector: 'app=web' });
    await controller.reconcile('default', 'web');
    assert.equal((await guests()).length, 1);

    // A new template rolls out: reconcile as the events would, the new Guests turning Ready each round.
    const patched = await kubectl([
      'patch',
      'gs',
      'web',
      '--type',
      'merge',
      '-p',
      '{"spec":{"replicas":2,"template":{"spec":{"image":"app:2"}}}}',
    ]);
    assert.equal(patched.code, 0, patched.stderr);
    const updated = await waitFor(
      async () => {
        await controller.reconcile('default', 'web');
        await markReady(await guests());
        const s: GuestSet = await kube.client.getGuestSet('default', 'web');
        const ready = s.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True';
        return ready && s.status?.observedGeneration === s.metadata.generation ? s : undefined;
      },
      'the rollout to finish',
      60_000,
    );
    const now = await guests();
    assert.equal(now.length, 2);
    for (const g of now) {
      assert.equal(g.spec.image, 'app:2');
      assert.equal(g.metadata.labels?.[HASH_LABEL], updated.status?.updateRevision);
    }
    assert.equal(updated.status?.availableReplicas, 2);
  });
});
