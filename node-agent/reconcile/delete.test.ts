// The delete step (test-double hypervisor, fake clock): deleting a Guest in any phase, or while its
// domain is being created, leaves no domain, reservation or record.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { guest, harness, phase } from '../../test/harness/node-controller.js';
import { ImageError } from './pulls.js';

test('deletion in every phase leaves nothing: no domain, reservation or record', async () => {
  const h = harness();
  h.images.failures.push(...Array.from({ length: 50 }, () => new ImageError('ErrImagePull', 'registry down')));
  await h.agent.apply([guest('pending')], false);
  await h.until(() => /^(ErrImagePull|ImagePullBackOff)$/.test(h.agent.get('default', 'pending')?.status?.reason ?? ''), 1);
  await h.agent.delete('default', 'pending', {});
  await h.until(() => !h.agent.get('default', 'pending'));
  h.images.failures = [];

  h.hv.behaviour = (l) =>
    l.guest.name === 'stubborn'
      ? { ignoreShutdown: true }
      : l.guest.name === 'crashing'
        ? { runMs: 10, exitCode: 1 }
        : l.guest.name === 'done'
          ? { runMs: 10, exitCode: 0 }
          : {};
  await h.agent.apply(
    [
      guest('running'),
      guest('stubborn', { terminationGracePeriodSeconds: 5 }),
      guest('crashing'),
      guest('done', { restartPolicy: 'Never' }),
    ],
    false,
  );
  await h.until(
    () =>
      phase(h, 'running') === 'Running' &&
      phase(h, 'stubborn') === 'Running' &&
      phase(h, 'done') === 'Succeeded' &&
      h.agent.get('default', 'crashing')?.status?.reason === 'CrashLoopBackOff',
  );
  const waits = ['running', 'stubborn', 'crashing', 'done'].map((x) => h.agent.delete('default', x, { wait: true }));
  await h.until(() => h.store.list().length === 0, 1000);
  await Promise.all(waits);
  assert.equal(h.hv.count, 0);
  assert.deepEqual(h.ipam.keys(), []);
  assert.deepEqual(readdirSync(join(h.dir, 'guests/default')), []);
  assert.ok(h.recorder.list().length >= 0);
  await assert.rejects(h.agent.delete('default', 'running', {}), /not found/);

  // Deleted while its domain is being created.
  h.hv.createDelayMs = 50;
  await h.agent.apply([guest('creating')], false);
  await new Promise((r) => setTimeout(r, 10));
  await h.agent.delete('default', 'creating', {});
  await h.until(() => !h.agent.get('default', 'creating') && h.hv.count === 0, 5, 200);
  h.stop();
});
