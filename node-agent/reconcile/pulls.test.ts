// Image pulls beside the reconcile workers (test-double hypervisor, fake clock): pulls that never end
// hold up no other Guest, are bounded by the pull slots, and requeue their Guest when they end; the
// image cache says which pulls need no slot.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { Guest } from '../../crds/generated/types.js';
import { buildImage, writeOciLayout } from '../../test/oci-images.js';
import { guest, harness, phase, work } from '../../test/harness/node-controller.js';
import { importImage } from '../image/import.js';
import { ImageStore } from '../image/store.js';
import { buildTar } from '../../lib/tar.js';
import { CachedImages } from '../service/agent-service.js';
import { ImageError } from './pulls.js';

let n = 0;

test('pulls run beside the reconcile workers: ten pulls that never end hold up no other Guest, and each ends with a requeue', async () => {
  const h = harness();
  const slow = Array.from({ length: 10 }, (_, i) => guest(`slow-${i}`, { image: `registry.example/slow:${i}` }));
  await h.agent.apply([...slow, guest('running')], false);
  const pulling = (name: string) => h.agent.get('default', name)?.status?.reason === 'ImagePulling';
  await h.until(() => slow.every((g) => pulling(g.metadata.name)) && phase(h, 'running') === 'Running');
  const s = h.agent.get('default', 'slow-3')!.status!;
  assert.equal(s.phase, 'Pending');
  assert.equal(s.message, 'pulling registry.example/slow:3');
  assert.equal(s.conditions!.find((c) => c.type === 'ImageReady')!.reason, 'ImagePulling');
  assert.ok(h.agent.events('default', 'slow-3').some((e) => e.reason === 'Pulling'));
  // Bounded: four pulls at once (the default), the others wait for a slot, not in a worker.
  assert.equal(h.images.running, 4);
  assert.equal(h.images.maxRunning, 4);
  // Which four got a slot depends on the workers' order.
  const [ok, failing, gone] = [...h.images.held.keys()].map((ref) => `slow-${ref.split(':').pop()}`) as [string, string, string];
  // A Guest with a cached image starts; deletes finish, of a running Guest and of one whose pull runs.
  await h.agent.apply([guest('fast')], false);
  await h.until(() => phase(h, 'fast') === 'Running');
  // A Guest whose pull still waits for a slot is deleted too: its pull never starts.
  const waiting = slow.map((g) => g.metadata.name).find((name) => !h.images.asked.includes(`registry.example/slow:${name.slice(5)}`))!;
  await h.agent.delete('default', 'running', {});
  await h.agent.delete('default', gone, {});
  await h.agent.delete('default', waiting, {});
  await h.until(() => !h.agent.get('default', 'running') && !h.agent.get('default', gone) && !h.agent.get('default', waiting));
  // A pull that ends requeues its Guest at once (no resync within these few fake seconds): a failure
  // lands in status, a success starts the domain; the deleted Guest's pull ends unnoticed.
  const ref = (name: string) => `registry.example/slow:${name.slice(5)}`;
  const seen: string[] = [];
  h.store.on(
    'change',
    (e: { object: Guest }) => e.object.metadata.name === failing && seen.push(`${e.object.status?.reason}: ${e.object.status?.message}`),
  );
  h.images.release(ref(gone));
  h.images.release(ref(failing), new ImageError('ErrImagePull', 'manifest unknown'));
  h.images.release(ref(ok));
  await h.until(() => seen.length > 0 && phase(h, ok) === 'Running');
  // (Retried with back-off: the next pull waits for a slot again.)
  assert.equal(seen[0], `ErrImagePull: ${ref(failing)}: manifest unknown`);
  assert.equal(h.agent.get('default', gone), undefined);
  // The freed slots went to the waiting pulls, not to the deleted Guest's.
  await h.until(() => h.images.running === 4);
  assert.equal(h.images.maxRunning, 4);
  assert.ok(!h.images.asked.includes(`registry.example/slow:${waiting.slice(5)}`), `${waiting} was deleted before its pull started`);
  for (let i = 0; i < 10; i++) h.images.release(`registry.example/slow:${i}`);
  h.stop();
});

test('the image cache tells the reconciler which ensure() calls need no pull slot', async () => {
  const store = new ImageStore({ root: join(work, `images-${++n}`) });
  const layout = join(work, `layout-${n}`);
  const img = buildImage({ layers: [{ compression: 'gzip', tar: buildTar([{ path: 'hello', data: Buffer.from('hi') }]) }] });
  writeOciLayout(layout, img, 'registry.example/cached:1');
  await importImage(store, layout);
  const images = new CachedImages(store);
  assert.equal(images.cached('registry.example/cached:1', 'IfNotPresent'), true);
  assert.equal(images.cached('registry.example/cached:1', 'Always'), false, 'Always asks the registry');
  assert.equal(images.cached('registry.example/other:1', 'IfNotPresent'), false);
  assert.equal(images.cached('registry.example/other:1', 'Never'), true, 'refused at once');
  assert.equal((await images.ensure('registry.example/cached:1', 'IfNotPresent')).digest, img.manifestDigest);
});

test('a failed pull is retried after the back-off, 10 s doubling, not at once; success or a new spec forgets it', async () => {
  const h = harness();
  const ref = 'registry.example/slow:backoff';
  const pulls = () => h.images.asked.filter((r) => r === ref).length;
  const reason = () => h.agent.get('default', 'bo')?.status?.reason;
  await h.agent.apply([guest('bo', { image: ref })], false);
  await h.until(() => pulls() === 1);
  h.images.release(ref, new ImageError('ErrImagePull', 'no space left on device (ENOSPC) writing image'));
  // The failure is in status, then the back-off with the failure's words; no second pull for 10 s.
  await h.until(() => reason() === 'ImagePullBackOff');
  assert.match(
    h.agent.get('default', 'bo')!.status!.message!,
    /back-off after a failed pull of registry\.example\/slow:backoff, retry in \d+ s: no space left on device \(ENOSPC\)/,
  );
  assert.ok(h.agent.events('default', 'bo').some((e) => e.reason === 'BackOff'));
  await h.until(() => h.clock.now() >= 9_000, 500, 40);
  assert.equal(pulls(), 1, 'no pull during the back-off');
  await h.until(() => pulls() === 2, 500, 40);
  // The second failure doubles the wait: 20 s.
  const failedAt = h.clock.now();
  h.images.release(ref, new ImageError('ErrImagePull', 'cannot reach the registry'));
  await h.until(() => pulls() === 3, 1000, 60);
  assert.ok(h.clock.now() - failedAt >= 20_000, `the third pull came ${h.clock.now() - failedAt} ms after the second failed`);
  h.images.release(ref);
  await h.until(() => phase(h, 'bo') === 'Running');
  // A new spec (image) is not held back by the old image's failures.
  const other = 'registry.example/slow:other';
  await h.agent.apply([guest('bo', { image: other })], false);
  await h.until(() => h.images.asked.includes(other), 5, 400);
  h.images.release(other);
  h.stop();
});
