// The create step through the controller (test-double hypervisor, fake clock): a Guest's domain gets
// its spec, image, launch config and addresses; bad input (memory beyond the host, boot files outside
// the node's directories, an invalid batch) lands in status with no domain; domain names never collide.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { guest, harness, phase } from '../../test/harness/node-controller.js';
import { specHash } from './identity.js';
import { ImageError } from './pulls.js';
import type { Guest } from '../../crds/generated/types.js';

test('apply → Running: the domain gets the spec, the image, a launch config, addresses; status and events say so', async () => {
  const h = harness();
  await h.agent.apply([guest('web', { env: [{ name: 'A', value: 'b' }] })], false);
  await h.until(() => phase(h, 'web') === 'Running');
  const g = h.agent.get('default', 'web')!;
  const dom = h.hv.domain(g.status!.domid!)!;
  assert.equal(dom.launch.name, 'krata.default.web');
  assert.equal(dom.launch.vcpus, 2);
  assert.equal(dom.launch.memoryMiB, 256);
  assert.equal(dom.launch.kernel, '/k/vmlinuz');
  assert.deepEqual(
    dom.launch.disks.map((d) => d.vdev),
    ['xvda'],
    'one disk: the launch config rides on the initrd',
  );
  assert.equal(dom.launch.disks[0]!.file, h.images.path);
  assert.equal(dom.launch.nics[0]!.mac, g.status!.addresses!.mac);
  assert.equal(g.status!.addresses!.ipv4, '10.75.0.2');
  assert.equal(g.status!.observedGeneration, 1);
  assert.equal(g.status!.imageDigest, `sha256:${'ab'.repeat(32)}`);
  const ready = g.status!.conditions!.find((c) => c.type === 'Ready')!;
  assert.equal(ready.status, 'True');
  const archive = dom.launch.initrdAppend!;
  const launch = JSON.parse(execFileSync('cpio', ['-i', '--quiet', '--to-stdout', 'krata/launch.json'], { input: archive }).toString());
  assert.deepEqual(launch.process.env, [{ name: 'A', value: 'b' }]);
  assert.equal(launch.image.user, 'app');
  assert.equal(launch.network.interfaces[0].addresses[0], '10.75.0.2/16');
  assert.equal(launch.network.interfaces[0].offloads, true); // kratanet handles GSO and partial checksums
  assert.ok(h.agent.events('default', 'web').some((e) => e.reason === 'Started'));
  // Level-triggered: reconciling again changes nothing.
  const rv = g.metadata.resourceVersion;
  h.controller.queue.add('default/web');
  await h.until(() => true);
  assert.equal(h.agent.get('default', 'web')!.metadata.resourceVersion, rv);
  assert.equal(h.hv.calls.create, 1);
  h.stop();
});

test('bad input lands in status, not in a crash: memory beyond the host, an invalid batch', async () => {
  const h = harness();
  await h.agent.apply([guest('huge', { resources: { cpus: 1, memory: '64Gi' } })], false);
  await h.until(() => phase(h, 'huge') === 'Failed');
  const s = h.agent.get('default', 'huge')!.status!;
  assert.equal(s.reason, 'InsufficientMemory');
  assert.equal(s.conditions!.find((c) => c.type === 'Stalled')!.status, 'True');
  assert.equal(h.hv.calls.create, 0);
  await assert.rejects(
    h.agent.apply(
      [guest('fine'), { apiVersion: 'krata.dev/v1alpha1', kind: 'Guest', metadata: { name: 'Bad_Name' }, spec: {} } as unknown as Guest],
      false,
    ),
    (e: Error & { errors?: unknown[] }) => {
      assert.match(e.message, /nothing was applied/);
      assert.ok((e.errors ?? []).length >= 2);
      return true;
    },
  );
  assert.equal(h.agent.get('default', 'fine'), undefined, 'all or nothing');
  h.images.failures.push(new ImageError('InvalidImageName', 'bad reference', true));
  await h.agent.apply([guest('badimage')], false);
  await h.until(() => phase(h, 'badimage') === 'Failed');
  assert.equal(h.agent.get('default', 'badimage')!.status!.reason, 'InvalidImageName');
  assert.ok(existsSync(h.dir));
  h.stop();
});

test('kernel and initrd paths must lie where the node keeps boot files; a new spec forgets the old back-off', async () => {
  const h = harness();
  await h.agent.apply([guest('sneaky', { kernel: { path: '/etc/shadow' } })], false);
  await h.until(() => phase(h, 'sneaky') === 'Failed');
  assert.match(h.agent.get('default', 'sneaky')!.status!.message!, /spec\.kernel\.path: \/etc\/shadow is outside the directories/);
  assert.equal(h.hv.calls.create, 0);
  h.hv.behaviour = (l) => (l.guest.specHash === specHash(guest('fixme')) ? { runMs: 10, exitCode: 1 } : {});
  await h.agent.apply([guest('fixme')], false);
  await h.until(() => (h.store.get('default/fixme')?.internal.failures ?? 0) >= 1);
  await h.agent.apply([guest('fixme', { args: ['--fixed'] })], false);
  assert.deepEqual(h.store.get('default/fixme')!.internal, {});
  await h.until(() => phase(h, 'fixme') === 'Running', 10);
  h.stop();
});

test('domain names cannot collide across namespaces: a-b/c and a/b-c both run, under distinct names', async () => {
  const h = harness();
  const inNs = (ns: string, name: string) => ({ ...guest(name), metadata: { ...guest(name).metadata, namespace: ns } });
  await h.agent.apply([inNs('a-b', 'c'), inNs('a', 'b-c')], false);
  await h.until(() => h.agent.get('a-b', 'c')?.status?.phase === 'Running' && h.agent.get('a', 'b-c')?.status?.phase === 'Running');
  const names = [h.agent.get('a-b', 'c')!, h.agent.get('a', 'b-c')!].map((g) => h.hv.domain(g.status!.domid!)!.info.name);
  assert.deepEqual(names, ['krata.a-b.c', 'krata.a.b-c']);
  // Too long to be readable: the uid names it, which no readable name (with its dots) can equal.
  const long = inNs('n'.repeat(40), 'g'.repeat(30));
  await h.agent.apply([long], false);
  await h.until(() => h.agent.get('n'.repeat(40), 'g'.repeat(30))?.status?.phase === 'Running');
  const g = h.agent.get('n'.repeat(40), 'g'.repeat(30))!;
  assert.equal(h.hv.domain(g.status!.domid!)!.info.name, `krata-${g.metadata.uid}`);
  // Adoption goes by the keys in xenstore, not by names: a restarted agent keeps all three domains.
  const creates = h.hv.calls.create;
  const h2 = h.restart();
  await h2.controller.resync();
  await h2.until(() => true);
  assert.equal(h2.hv.calls.create, creates);
  assert.equal(h2.hv.count, 3);
  h2.stop();
});
