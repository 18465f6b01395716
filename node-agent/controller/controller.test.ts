// The controller's queue (test-double hypervisor, fake clock): a failed reconcile is retried with
// exponential back-off, each failure a ReconcileError event and its reason in status; success clears them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Guest } from '../../crds/generated/types.js';
import { guest, harness, phase } from '../../test/harness/node-controller.js';
import { ImageError } from '../reconcile/pulls.js';

test('failures retry with exponential backoff and land in status; success clears them', async () => {
  const h = harness();
  h.hv.createFailures.push(new Error('no memory for page tables'), new Error('xenstore timeout'));
  h.images.failures.push(new ImageError('ErrImagePull', 'HTTP 503'));
  const seen: string[] = [];
  h.store.on('change', (e: { object: Guest }) => seen.push(`${e.object.status?.phase}/${e.object.status?.reason ?? ''}`));
  await h.agent.apply([guest('flaky')], false);
  // (The image's failure waits out the pull back-off, 10 s: larger clock steps.)
  await h.until(() => phase(h, 'flaky') === 'Running', 50);
  assert.equal(h.hv.calls.create, 3);
  assert.ok(seen.includes('Pending/ErrImagePull'), seen.join(' '));
  assert.ok(seen.includes('Pending/FailedCreate'), seen.join(' '));
  assert.match(
    h.recorder
      .list('default', 'flaky')
      .map((e) => e.message)
      .join('\n'),
    /creating the domain failed: no memory for page tables/,
  );
  assert.equal(h.agent.get('default', 'flaky')!.status!.reason, undefined);
  assert.equal(h.controller.queue.attempts('default/flaky'), 0);
  assert.equal(h.agent.events('default', 'flaky').filter((e) => e.reason === 'ReconcileError').length, 3);
  h.stop();
});
