// What an ended domain means (test-double hypervisor, fake clock): restart policies, with
// CrashLoopBackOff delays that double, and Guests that end for good.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { guest, harness, phase } from '../../test/harness/node-controller.js';

test('restart policies: Always restarts with CrashLoopBackOff delays, OnFailure stops on success, Never never restarts', async () => {
  const h = harness();
  h.hv.behaviour = (l) =>
    l.guest.name === 'ok'
      ? { runMs: 1000, exitCode: 0 }
      : l.guest.name === 'sig'
        ? { runMs: 1000, signal: 9 }
        : { runMs: 1000, exitCode: 3 };
  await h.agent.apply(
    [
      guest('crash'),
      guest('ok', { restartPolicy: 'OnFailure' }),
      guest('never', { restartPolicy: 'Never' }),
      guest('sig', { restartPolicy: 'OnFailure' }),
    ],
    false,
  );
  await h.until(() => ['crash', 'ok', 'never', 'sig'].every((x) => phase(h, x) === 'Running'));
  h.clock.advance(1000);
  await h.until(() => phase(h, 'crash') === 'Pending' && phase(h, 'ok') === 'Succeeded' && phase(h, 'never') === 'Failed');
  let crash = h.agent.get('default', 'crash')!.status!;
  assert.equal(crash.reason, 'CrashLoopBackOff');
  assert.equal(crash.restartCount, 1);
  assert.equal(crash.exitCode, 3);
  assert.match(crash.message!, /back-off 10s/);
  assert.equal(h.agent.get('default', 'never')!.status!.exitCode, 3);
  assert.equal(h.agent.get('default', 'ok')!.status!.reason, 'Completed');
  // The restart waits its back-off: not at 9 s, at 10 s.
  h.clock.advance(9000);
  await h.until(() => true);
  assert.equal(phase(h, 'crash'), 'Pending');
  // Small steps: both run for 1 s of fake time, and a loaded machine must not step past that window.
  await h.until(() => phase(h, 'crash') === 'Running' && phase(h, 'sig') === 'Running', 10);
  // Second crash: 20 s.
  h.clock.advance(1000);
  await h.until(() => h.agent.get('default', 'crash')!.status!.restartCount === 2);
  assert.match(h.agent.get('default', 'crash')!.status!.message!, /back-off 20s/);
  crash = h.agent.get('default', 'sig')!.status!;
  assert.equal(crash.signal, 9);
  assert.equal(crash.exitCode, undefined);
  // Nothing is left of ended domains; a Succeeded guest stays so.
  assert.equal(h.hv.count, 0);
  const creates = h.hv.calls.create;
  h.clock.advance(60_000);
  await h.until(() => h.hv.calls.create > creates, 1000);
  assert.equal(phase(h, 'ok'), 'Succeeded');
  h.stop();
});
