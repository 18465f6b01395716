// A host restart (test-double hypervisor, fake clock): the agent starts with a boot id other than the
// one its state dir recorded, on a hypervisor with no domains. Guests that had a domain are settled by
// restartPolicy with reason HostRestarted: Always and OnFailure run again without CrashLoopBackOff,
// Never ends Failed. The same boot id (an agent restart) or none recorded changes nothing of that.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { guest, harness, phase, type Harness } from '../../test/harness/node-controller.js';
import { FakeHypervisor } from '../runtime/fake-hypervisor.js';
import { readBootId } from './host-restart.js';

const policies = { always: 'Always', onfailure: 'OnFailure', never: 'Never' } as const;

async function runningThree(bootId?: string): Promise<Harness> {
  const h = harness(undefined, undefined, undefined, undefined, bootId ? { bootId } : {});
  await h.agent.apply(
    Object.entries(policies).map(([name, restartPolicy]) => guest(name, { restartPolicy })),
    false,
  );
  await h.until(() => Object.keys(policies).every((n) => phase(h, n) === 'Running'));
  return h;
}

/** The host goes down with its domains; the agent starts again on the new boot. */
function powerCut(h: Harness, bootId?: string): Harness {
  h.stop();
  return harness(h.dir, new FakeHypervisor({ cpus: 8, memoryMiB: 4096 }, undefined), h.clock, undefined, bootId ? { bootId } : {});
}

test('after a host restart, Always and OnFailure Guests start again at once and Never ends Failed, all with HostRestarted', async () => {
  let h = await runningThree('boot-1');
  assert.equal(readFileSync(join(h.dir, 'boot-id'), 'utf8'), 'boot-1\n');
  const before = h.agent.get('default', 'always')!.status!;
  h = powerCut(h, 'boot-2');
  // Settled before the controller's first reconcile: status says why at once.
  for (const name of ['always', 'onfailure']) {
    const s = h.agent.get('default', name)!.status!;
    assert.equal(s.phase, 'Pending', name);
    assert.equal(s.reason, 'HostRestarted', name);
    assert.match(s.message!, /the host restarted: domain \d+ ended with it; starting the Guest again/);
    assert.equal(s.domid, undefined);
    assert.equal(s.restartCount, 1);
    assert.equal(s.conditions!.find((c) => c.type === 'Ready')!.reason, 'HostRestarted');
  }
  const never = h.agent.get('default', 'never')!.status!;
  assert.equal(never.phase, 'Failed');
  assert.equal(never.reason, 'HostRestarted');
  assert.match(never.message!, /not restarted \(restartPolicy Never\)/);
  assert.equal(never.conditions!.find((c) => c.type === 'Stalled')!.status, 'True');
  assert.deepEqual(
    h.recorder
      .list()
      .filter((e) => e.reason === 'HostRestarted')
      .map((e) => [e.name, e.type])
      .sort(),
    [
      ['always', 'Warning'],
      ['never', 'Warning'],
      ['onfailure', 'Warning'],
    ],
  );
  assert.equal(readFileSync(join(h.dir, 'boot-id'), 'utf8'), 'boot-2\n');
  // No back-off: CrashLoopBackOff would wait 10 s; the fake clock moves at most 2 s here.
  const t0 = h.clock.now();
  await h.until(() => phase(h, 'always') === 'Running' && phase(h, 'onfailure') === 'Running', 5, 400);
  assert.ok(h.clock.now() - t0 < 10_000);
  assert.equal(h.hv.count, 2, 'one domain each for Always and OnFailure, none for Never');
  assert.equal(h.agent.get('default', 'always')!.status!.restartCount, 1);
  assert.notEqual(h.agent.get('default', 'always')!.status!.startTime, undefined);
  assert.equal(h.agent.get('default', 'never')!.status!.phase, 'Failed');
  assert.ok(!h.recorder.list().some((e) => e.reason === 'Failed'), 'no failed exit recorded for the lost domains');
  assert.equal(before.restartCount ?? 0, 0);
  // A later agent restart on the same boot is not a host restart: the domains are adopted.
  const domids = ['always', 'onfailure'].map((n) => h.agent.get('default', n)!.status!.domid);
  h.stop();
  h = harness(h.dir, h.hv, h.clock, undefined, { bootId: 'boot-2' });
  await h.until(() => phase(h, 'always') === 'Running' && phase(h, 'onfailure') === 'Running');
  assert.deepEqual(
    ['always', 'onfailure'].map((n) => h.agent.get('default', n)!.status!.domid),
    domids,
  );
  assert.equal(h.agent.get('default', 'always')!.status!.restartCount, 1);
  assert.ok(!h.recorder.list().some((e) => e.reason === 'HostRestarted'));
  h.stop();
});

test('without a recorded boot id, a Guest whose domain is gone counts as a failed exit, as before', async () => {
  let h = await runningThree();
  h = powerCut(h, 'boot-1');
  // The first start that records a boot id cannot know whether the host restarted.
  assert.equal(h.agent.get('default', 'always')!.status!.phase, 'Running');
  await h.until(() => phase(h, 'never') === 'Failed');
  assert.match(h.agent.get('default', 'never')!.status!.message!, /disappeared without reporting an exit/);
  assert.ok(!h.recorder.list().some((e) => e.reason === 'HostRestarted'));
  assert.equal(readFileSync(join(h.dir, 'boot-id'), 'utf8'), 'boot-1\n');
  h.stop();
});

test('a Guest being deleted or without a domain is left to the reconciler; a settled Guest is not settled twice', async () => {
  let h = harness(undefined, undefined, undefined, undefined, { bootId: 'boot-1' });
  await h.agent.apply([guest('run'), guest('later', { image: 'registry.example/slow:1' })], false);
  await h.until(() => phase(h, 'run') === 'Running' && h.images.running === 1);
  h = powerCut(h, 'boot-2');
  assert.equal(h.agent.get('default', 'run')!.status!.reason, 'HostRestarted');
  assert.notEqual(h.agent.get('default', 'later')!.status!.reason, 'HostRestarted');
  // The agent dies before the Guest runs again, on the same boot: nothing more to settle.
  h = powerCut(h, 'boot-2');
  assert.equal(h.agent.get('default', 'run')!.status!.restartCount, 1);
  await h.until(() => phase(h, 'run') === 'Running');
  h.stop();
});

test('readBootId reads the kernel boot id and refuses anything else', () => {
  assert.match(readBootId(), /^[0-9a-f]{8}-[0-9a-f]{4}-/);
  const file = join(mkdtempSync(join(tmpdir(), 'krata-boot-id-')), 'boot_id');
  writeFileSync(file, 'not a boot id\n');
  assert.throws(() => readBootId(file), /not a boot id/);
});
