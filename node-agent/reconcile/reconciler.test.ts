// The reconciler's comparison of what is stored with what runs (test-double hypervisor, fake clock):
// an agent restart adopts domains and removes what belongs to no Guest; a spec change recreates the
// domain; a domain lost, duplicated or left paused behind the agent's back is dealt with.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { guest, harness, phase } from '../../test/harness/node-controller.js';

test('an agent restart adopts running domains without restarting them, and removes what belongs to no Guest', async () => {
  let h = harness();
  await h.agent.apply([guest('keep'), guest('gone')], false);
  await h.until(() => phase(h, 'keep') === 'Running' && phase(h, 'gone') === 'Running');
  const domid = h.agent.get('default', 'keep')!.status!.domid!;
  h.hv.domain(domid)!.console.emit('hello from the guest\n');
  // The agent dies; meanwhile 'gone' is removed from its store (as if deleted before a crash).
  h.stop();
  rmSync(join(h.dir, 'guests/default/gone.json'));
  mkdirSync(join(h.dir, 'disks'));
  writeFileSync(join(h.dir, 'disks/stray-uid.sqfs'), 'a config disk of an agent before launch configs rode on the initrd');
  h.hv.orphans = ['/dev/loop7'];
  const creates = h.hv.calls.create;
  h = h.restart();
  await h.until(() => h.hv.count === 1);
  const keep = h.agent.get('default', 'keep')!;
  assert.equal(keep.status!.phase, 'Running');
  assert.equal(keep.status!.domid, domid, 'same domain');
  assert.equal(h.hv.calls.create, creates, 'nothing was recreated');
  assert.equal(h.agent.console('default', 'keep')!.history().toString(), 'hello from the guest\n');
  assert.equal(existsSync(join(h.dir, 'disks')), false, "an older agent's config disks are gone");
  assert.ok(h.recorder.list().some((e) => e.reason === 'OrphanRemoved' && e.message.includes('/dev/loop7')));
  assert.deepEqual(h.ipam.keys(), ['default/keep']);
  h.stop();
});

test('spec changes recreate the domain (and say why); a new uid under the same name is a new guest', async () => {
  const h = harness();
  await h.agent.apply([guest('app')], false);
  await h.until(() => phase(h, 'app') === 'Running');
  const first = h.agent.get('default', 'app')!.status!.domid;
  assert.deepEqual(await h.agent.apply([guest('app')], false), [
    { kind: 'Guest', metadata: { name: 'app', namespace: 'default' }, action: 'unchanged' },
  ]);
  await h.agent.apply([guest('app', { args: ['--verbose'] })], false);
  await h.until(() => phase(h, 'app') === 'Running' && h.agent.get('default', 'app')!.status!.domid !== first);
  const g = h.agent.get('default', 'app')!;
  assert.equal(g.metadata.generation, 2);
  assert.equal(g.status!.observedGeneration, 2);
  assert.ok(h.agent.events('default', 'app').some((e) => e.reason === 'Killing' && /spec changed/.test(e.message)));
  assert.equal(h.hv.count, 1);
  h.stop();
});

test("behind the agent's back: a lost domain counts as a failed exit, duplicates and paused leftovers are destroyed", async () => {
  const h = harness();
  await h.agent.apply([guest('once', { restartPolicy: 'Never' }), guest('dup')], false);
  await h.until(() => phase(h, 'once') === 'Running' && phase(h, 'dup') === 'Running');
  // xl destroy of a Never guest's domain: Failed, not run again.
  await h.hv.destroy(h.agent.get('default', 'once')!.status!.domid!);
  await h.until(() => phase(h, 'once') === 'Failed');
  assert.match(h.agent.get('default', 'once')!.status!.message!, /disappeared without reporting an exit/);
  const stalled = h.agent.get('default', 'once')!.status!.conditions!.find((c) => c.type === 'Stalled');
  assert.equal(stalled?.status, 'True', 'a failure that is not retried is Stalled (kstatus: failed)');
  const creates = h.hv.calls.create;
  h.clock.advance(60_000);
  await h.until(() => true);
  assert.equal(h.hv.calls.create, creates, 'a Never guest is not recreated');
  // A second domain for the same Guest (a race in an earlier agent) and a paused, half-built one.
  const g = h.agent.get('default', 'dup')!;
  const launch = h.hv.domain(g.status!.domid!)!.launch;
  const extra = await h.hv.create({ ...launch, name: 'krata-default-dup-2' });
  const paused = await h.hv.create({ ...launch, name: 'krata-default-dup-3' });
  h.hv.domain(paused.domid)!.info.state = 'paused';
  await h.controller.resync();
  await h.until(() => h.hv.count === 1);
  assert.equal(h.hv.domain(g.status!.domid!)?.info.state, 'running', 'the domain status names is kept');
  assert.ok(h.recorder.list('default', 'dup').some((e) => e.reason === 'DuplicateDomain' && e.message.includes(String(extra.domid))));
  assert.ok(h.recorder.list('default', 'dup').some((e) => e.reason === 'IncompleteDomain'));
  h.stop();
});
