// Live resources: the spec's targets against what status records and what Xen observes (pure), and the
// reconciler on the test-double hypervisor: cpus and memory applied to the running domain (same domid,
// status, condition, Event), a guest that has not ballooned reported and looked at again, a change of
// the maximums recreating the domain, and an agent restart that applies nothing again.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { guest, harness, phase, type Harness } from '../../test/harness/node-controller.js';
import { describeChange, desiredTargets, recordedAsApplied, RESIZE_RECHECK_MS, resourceStatus } from './resize.js';

const MiB = 1024 * 1024;
const stats = (vcpusOnline: number, memoryMiB: number) => ({
  cpuSeconds: 0,
  memoryBytes: memoryMiB * MiB,
  maxMemoryBytes: 192 * MiB,
  vcpusOnline,
  vcpusMax: 2,
});

test('the targets a spec asks for, and whether status already records them for this domain', () => {
  const g = guest('a', { resources: { cpus: 1, maxCpus: 2, memory: '100000Ki', maxMemory: '192Mi' } });
  assert.deepEqual(desiredTargets(g), { vcpus: 1, memoryMiB: 98 }, 'memory rounded up to MiB as create rounds it');
  const dom = { domid: 4, uuid: 'u-4' };
  const s = { domid: 4, uuid: 'u-4', resources: { cpus: 1, memory: '98Mi' } };
  assert.equal(recordedAsApplied(s, dom, { vcpus: 1, memoryMiB: 98 }), true);
  assert.equal(recordedAsApplied(s, dom, { vcpus: 2, memoryMiB: 98 }), false);
  assert.equal(recordedAsApplied(s, dom, { vcpus: 1, memoryMiB: 96 }), false);
  assert.equal(recordedAsApplied(s, { domid: 4, uuid: 'u-5' }, { vcpus: 1, memoryMiB: 98 }), false, 'another domain');
  assert.equal(recordedAsApplied(undefined, dom, { vcpus: 1, memoryMiB: 98 }), false);
});

test('status says where the guest is: followed, not ballooned, not taken memory back, vCPUs pending', () => {
  const want = { vcpus: 2, memoryMiB: 96 };
  assert.deepEqual(resourceStatus(want, stats(2, 97)), { cpus: 2, memory: '96Mi', vcpusOnline: 2, memoryActual: '97Mi' });
  const balloon = resourceStatus(want, stats(2, 150));
  assert.equal(balloon.reason, 'BalloonPending');
  assert.equal(balloon.message, 'the guest holds 150Mi of its 96Mi target: it has not ballooned yet');
  assert.match(resourceStatus({ vcpus: 2, memoryMiB: 160 }, stats(2, 96)).message!, /holds 96Mi of its 160Mi target: it has not taken/);
  const cpus = resourceStatus(want, stats(1, 96));
  assert.equal(cpus.reason, 'VcpusPending');
  assert.equal(cpus.message, '1 of 2 vCPUs online: the guest has not brought the rest online yet');
  const both = resourceStatus({ vcpus: 1, memoryMiB: 96 }, stats(2, 150));
  assert.equal(both.reason, 'BalloonPending');
  assert.match(both.message!, /not ballooned yet; 2 vCPUs online, 1 asked/);
  assert.deepEqual(resourceStatus(want, undefined), { cpus: 2, memory: '96Mi' }, 'no figures: targets only');
  assert.equal(describeChange({ vcpus: 1, memoryMiB: 128 }, { vcpus: 2, memoryMiB: 96 }), 'vCPUs 1 → 2, memory 128Mi → 96Mi');
  assert.equal(describeChange({ vcpus: 2, memoryMiB: 128 }, { vcpus: 2, memoryMiB: 1024 }), 'memory 128Mi → 1Gi');
  assert.equal(describeChange({}, { vcpus: 2, memoryMiB: 96 }), 'vCPUs ? → 2, memory ? → 96Mi');
});

const sized = (cpus: number, memory: string, maxMemory = '192Mi', maxCpus = 2) =>
  guest('web', { resources: { cpus, maxCpus, memory, maxMemory } });
const web = (h: Harness) => h.agent.get('default', 'web')!;
const applied = (h: Harness) => web(h).status?.conditions?.find((c) => c.type === 'ResourcesApplied');

test('cpus and memory changed within the maximums are applied to the running domain: same domid, status, Event', async () => {
  const h = harness();
  await h.agent.apply([sized(1, '128Mi')], false);
  await h.until(() => phase(h, 'web') === 'Running' && applied(h)?.status === 'True');
  const domid = web(h).status!.domid!;
  assert.deepEqual(web(h).status!.resources, { cpus: 1, memory: '128Mi', vcpusOnline: 1, memoryActual: '128Mi' });
  assert.equal(h.hv.calls.resize, 1, 'checked once against xenstore');
  assert.ok(!h.recorder.list('default', 'web').some((e) => e.reason === 'Resized'), 'a new domain already has its targets');
  const creates = h.hv.calls.create;

  await h.agent.apply([sized(1, '96Mi')], false);
  await h.until(() => web(h).status?.resources?.memory === '96Mi');
  assert.equal(h.hv.domain(domid)!.launch.memoryMiB, 96);
  await h.agent.apply([sized(2, '160Mi')], false);
  await h.until(() => web(h).status?.resources?.cpus === 2);
  const s = web(h).status!;
  assert.equal(s.domid, domid, 'the same domain');
  assert.equal(h.hv.calls.create, creates, 'nothing recreated');
  assert.deepEqual(
    { ...s.resources, lastResizeTime: undefined },
    {
      cpus: 2,
      memory: '160Mi',
      vcpusOnline: 2,
      memoryActual: '160Mi',
      lastResizeTime: undefined,
    },
  );
  assert.ok(s.resources!.lastResizeTime);
  assert.equal(applied(h)?.status, 'True');
  assert.equal(applied(h)?.message, '2 vCPUs, memory 160Mi');
  assert.equal(s.observedGeneration, web(h).metadata.generation);
  const resized = h.recorder
    .list('default', 'web')
    .filter((e) => e.reason === 'Resized')
    .map((e) => e.message);
  assert.deepEqual(resized, [`domain ${domid}: memory 128Mi → 96Mi`, `domain ${domid}: vCPUs 1 → 2, memory 96Mi → 160Mi`]);
  assert.ok(!h.recorder.list('default', 'web').some((e) => e.reason === 'Killing'));
  h.stop();
});

test('a guest that has not ballooned: ResourcesApplied False with the reason, looked at again until it has', async () => {
  const h = harness();
  await h.agent.apply([sized(1, '128Mi')], false);
  await h.until(() => applied(h)?.status === 'True');
  const domid = web(h).status!.domid!;
  // The guest ignores the new target: it keeps holding 150Mi.
  h.hv.domainStats.set(domid, { memoryBytes: 150 * MiB });
  await h.agent.apply([sized(1, '96Mi')], false);
  await h.until(() => applied(h)?.status === 'False');
  assert.equal(applied(h)!.reason, 'BalloonPending');
  assert.equal(web(h).status!.resources!.message, 'the guest holds 150Mi of its 96Mi target: it has not ballooned yet');
  assert.equal(web(h).status!.phase, 'Running', 'still running and Ready');
  const resizes = h.hv.calls.resize;
  // It balloons: the next look (a short requeue, no event from the hypervisor) sees it.
  h.hv.domainStats.delete(domid);
  await h.until(() => applied(h)?.status === 'True', RESIZE_RECHECK_MS);
  assert.equal(web(h).status!.resources!.memoryActual, '96Mi');
  assert.equal(web(h).status!.resources!.reason, undefined);
  assert.equal(h.hv.calls.resize, resizes, 'the targets are not written again');
  h.stop();
});

test('a change of maxMemory or maxCpus recreates the domain', async () => {
  const h = harness();
  await h.agent.apply([sized(1, '128Mi')], false);
  await h.until(() => applied(h)?.status === 'True');
  const first = web(h).status!.domid!;
  await h.agent.apply([sized(1, '128Mi', '256Mi')], false);
  await h.until(() => phase(h, 'web') === 'Running' && web(h).status!.domid !== first && applied(h)?.status === 'True');
  const second = web(h).status!.domid!;
  assert.equal(h.hv.domain(second)!.launch.maxMemoryMiB, 256);
  assert.ok(h.recorder.list('default', 'web').some((e) => e.reason === 'Killing' && /spec changed/.test(e.message)));
  await h.agent.apply([sized(2, '128Mi', '256Mi', 3)], false);
  await h.until(() => phase(h, 'web') === 'Running' && web(h).status!.domid !== second && applied(h)?.status === 'True');
  assert.deepEqual(web(h).status!.resources, { cpus: 2, memory: '128Mi', vcpusOnline: 2, memoryActual: '128Mi' });
  assert.equal(h.hv.count, 1);
  assert.ok(!h.recorder.list('default', 'web').some((e) => e.reason === 'Resized'));
  h.stop();
});

test('an agent restart keeps the applied targets: nothing written again, no Event', async () => {
  let h = harness();
  await h.agent.apply([sized(1, '128Mi')], false);
  await h.until(() => applied(h)?.status === 'True');
  await h.agent.apply([sized(2, '96Mi')], false);
  await h.until(() => web(h).status?.resources?.cpus === 2 && applied(h)?.status === 'True');
  const domid = web(h).status!.domid!;
  const resizes = h.hv.calls.resize;
  h.stop();
  h = h.restart();
  await h.controller.resync();
  await h.until(() => phase(h, 'web') === 'Running');
  h.clock.advance(60_000);
  await h.until(() => true);
  assert.equal(web(h).status!.domid, domid);
  assert.equal(h.hv.calls.resize, resizes, 'status vouches for the targets: xenstore is not written');
  assert.deepEqual(h.hv.domain(domid)!.launch.vcpus, 2);
  assert.equal(h.recorder.list('default', 'web').filter((e) => e.reason === 'Resized').length, 0, 'a new recorder: no Resized');
  h.stop();
});
