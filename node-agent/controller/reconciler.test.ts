// The reconciler with the test-double hypervisor and a fake clock: creation, failures with backoff,
// restart policies with CrashLoopBackOff, adoption after an agent restart, orphan cleanup, deletion in
// every phase, spec changes. Config disks are real squashfs files (mksquashfs).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Guest } from '../../crds/generated/types.js';
import { validateObject } from '../../crds/validate.js';
import { buildImage, writeOciLayout } from '../../test/oci-images.js';
import { importImage } from '../image/import.js';
import { ImageStore } from '../image/store.js';
import { buildTar } from '../image/tar.js';
import { Agent, CachedImages } from '../service/agent-service.js';
import { EventRecorder } from './events.js';
import { FakeClock } from '../../test/doubles/fake-clock.js';
import { FakeHypervisor } from '../runtime/fake-hypervisor.js';
import { GuestStore } from '../store/guest-store.js';
import { Ipam } from './ipam.js';
import { ImageError, Reconciler, specHash, type ImageProvider } from './reconciler.js';

const work = mkdtempSync(join(tmpdir(), 'krata-reconciler-test-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));
let n = 0;

class FakeImages implements ImageProvider {
  failures: Error[] = [];
  calls = 0;
  readonly path: string;
  constructor(dir: string) {
    this.path = join(dir, 'image.sqfs');
    writeFileSync(this.path, 'not a real image');
  }
  /** References whose pulls wait until release() (registry.example/slow:*), and pulls running now. */
  readonly held = new Map<string, Array<(err?: Error) => void>>();
  running = 0;
  maxRunning = 0;
  readonly asked: string[] = [];
  async ensure(reference: string, _policy: string) {
    this.calls++;
    this.asked.push(reference);
    if (!this.cached(reference)) {
      this.maxRunning = Math.max(this.maxRunning, ++this.running);
      try {
        await new Promise<void>((resolve, reject) => this.held.set(reference, [...(this.held.get(reference) ?? []), (err) => (err ? reject(err) : resolve())]));
      } finally {
        this.running--;
      }
    }
    const f = this.failures.shift();
    if (f) throw f;
    return { digest: `sha256:${'ab'.repeat(32)}`, path: this.path, config: { architecture: 'amd64', os: 'linux', config: { Cmd: ['/bin/sh'], User: 'app' }, diffIds: [] } };
  }
  cached(reference: string): boolean {
    return !reference.startsWith('registry.example/slow:');
  }
  /** Ends the pulls of `reference` (with `err`, a failure). */
  release(reference: string, err?: Error): void {
    for (const done of this.held.get(reference) ?? []) done(err);
    this.held.delete(reference);
  }
}

interface Harness {
  dir: string;
  clock: FakeClock;
  hv: FakeHypervisor;
  images: FakeImages;
  store: GuestStore;
  reconciler: Reconciler;
  agent: Agent;
  recorder: EventRecorder;
  ipam: Ipam;
  /** Runs the queue until `pred` holds, moving the clock `step` ms between rounds. */
  until(pred: () => boolean, step?: number, rounds?: number): Promise<void>;
  restart(): Harness;
  stop(): void;
}

function harness(dir = join(work, `state-${++n}`), hv = new FakeHypervisor({ cpus: 8, memoryMiB: 4096 }, undefined), clock = new FakeClock()): Harness {
  const images = new FakeImages(work);
  // The fake hypervisor's timers run on the same fake clock.
  (hv as unknown as { clock: FakeClock }).clock = clock;
  const store = new GuestStore(dir);
  const recorder = new EventRecorder(clock);
  const ipam = new Ipam(dir);
  const reconciler = new Reconciler(store, hv, images, ipam, recorder, clock, { stateDir: dir, kernel: '/k/vmlinuz', initrd: '/k/initrd', nodeName: 'host-1', resyncMs: 15_000 });
  const agent = new Agent(store, hv, recorder, undefined, clock);
  reconciler.run();
  const h: Harness = {
    dir,
    clock,
    hv,
    images,
    store,
    reconciler,
    agent,
    recorder,
    ipam,
    async until(pred, step = 5, rounds = 400) {
      for (let i = 0; i < rounds; i++) {
        // A handler may wait on the fake clock (a grace period): do not wait for idle forever.
        await Promise.race([reconciler.queue.idle(), new Promise((r) => setTimeout(r, 20))]);
        await new Promise((r) => setImmediate(r));
        if (pred()) return;
        clock.advance(step);
      }
      assert.fail(`condition not reached; statuses: ${JSON.stringify(store.list().map((g) => [g.metadata.name, g.status?.phase, g.status?.reason, g.status?.message]))}`);
    },
    restart() {
      reconciler.stop();
      return harness(dir, hv, clock);
    },
    stop() {
      reconciler.stop();
    },
  };
  return h;
}

function guest(name: string, spec: Record<string, unknown> = {}): Guest {
  const r = validateObject({ apiVersion: 'krata.dev/v1alpha1', kind: 'Guest', metadata: { name }, spec: { image: 'registry.example/app:1.0', resources: { cpus: 2, memory: '256Mi' }, ...spec } });
  assert.deepEqual(r.errors, []);
  return r.object as Guest;
}

const phase = (h: Harness, name: string) => h.agent.get('default', name)?.status?.phase;

test('apply → Running: the domain gets the spec, the image, a config disk, addresses; status and events say so', async () => {
  const h = harness();
  await h.agent.apply([guest('web', { env: [{ name: 'A', value: 'b' }] })], false);
  await h.until(() => phase(h, 'web') === 'Running');
  const g = h.agent.get('default', 'web')!;
  const dom = h.hv.domain(g.status!.domid!)!;
  assert.equal(dom.launch.name, 'krata.default.web');
  assert.equal(dom.launch.vcpus, 2);
  assert.equal(dom.launch.memoryMiB, 256);
  assert.equal(dom.launch.kernel, '/k/vmlinuz');
  assert.deepEqual(dom.launch.disks.map((d) => d.vdev), ['xvda', 'xvdb']);
  assert.equal(dom.launch.disks[0]!.file, h.images.path);
  assert.equal(dom.launch.nics[0]!.mac, g.status!.addresses!.mac);
  assert.equal(g.status!.addresses!.ipv4, '10.75.0.2');
  assert.equal(g.status!.observedGeneration, 1);
  assert.equal(g.status!.imageDigest, `sha256:${'ab'.repeat(32)}`);
  const ready = g.status!.conditions!.find((c) => c.type === 'Ready')!;
  assert.equal(ready.status, 'True');
  const launch = JSON.parse(execFileSync('unsquashfs', ['-cat', dom.launch.disks[1]!.file, 'launch.json']).toString());
  assert.deepEqual(launch.process.env, [{ name: 'A', value: 'b' }]);
  assert.equal(launch.image.user, 'app');
  assert.equal(launch.network.interfaces[0].addresses[0], '10.75.0.2/16');
  assert.equal(launch.network.interfaces[0].offloads, true); // kratanet handles GSO and partial checksums
  assert.ok(h.agent.events('default', 'web').some((e) => e.reason === 'Started'));
  // Level-triggered: reconciling again changes nothing.
  const rv = g.metadata.resourceVersion;
  h.reconciler.queue.add('default/web');
  await h.until(() => true);
  assert.equal(h.agent.get('default', 'web')!.metadata.resourceVersion, rv);
  assert.equal(h.hv.calls.create, 1);
  h.stop();
});

test('failures retry with exponential backoff and land in status; success clears them', async () => {
  const h = harness();
  h.hv.createFailures.push(new Error('no memory for page tables'), new Error('xenstore timeout'));
  h.images.failures.push(new ImageError('ErrImagePull', 'HTTP 503'));
  const seen: string[] = [];
  h.store.on('change', (e: { object: Guest }) => seen.push(`${e.object.status?.phase}/${e.object.status?.reason ?? ''}`));
  await h.agent.apply([guest('flaky')], false);
  await h.until(() => phase(h, 'flaky') === 'Running', 5);
  assert.equal(h.hv.calls.create, 3);
  assert.ok(seen.includes('Pending/ErrImagePull'), seen.join(' '));
  assert.ok(seen.includes('Pending/FailedCreate'), seen.join(' '));
  assert.match(h.recorder.list('default', 'flaky').map((e) => e.message).join('\n'), /creating the domain failed: no memory for page tables/);
  assert.equal(h.agent.get('default', 'flaky')!.status!.reason, undefined);
  assert.equal(h.reconciler.queue.attempts('default/flaky'), 0);
  assert.equal(h.agent.events('default', 'flaky').filter((e) => e.reason === 'ReconcileError').length, 3);
  h.stop();
});

test('restart policies: Always restarts with CrashLoopBackOff delays, OnFailure stops on success, Never never restarts', async () => {
  const h = harness();
  h.hv.behaviour = (l) => (l.guest.name === 'ok' ? { runMs: 1000, exitCode: 0 } : l.guest.name === 'sig' ? { runMs: 1000, signal: 9 } : { runMs: 1000, exitCode: 3 });
  await h.agent.apply([guest('crash'), guest('ok', { restartPolicy: 'OnFailure' }), guest('never', { restartPolicy: 'Never' }), guest('sig', { restartPolicy: 'OnFailure' })], false);
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
  await h.until(() => phase(h, 'crash') === 'Running' && phase(h, 'sig') === 'Running', 100);
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

test('an agent restart adopts running domains without restarting them, and removes what belongs to no Guest', async () => {
  let h = harness();
  await h.agent.apply([guest('keep'), guest('gone')], false);
  await h.until(() => phase(h, 'keep') === 'Running' && phase(h, 'gone') === 'Running');
  const domid = h.agent.get('default', 'keep')!.status!.domid!;
  h.hv.domain(domid)!.console.emit('hello from the guest\n');
  // The agent dies; meanwhile 'gone' is removed from its store (as if deleted before a crash).
  h.stop();
  rmSync(join(h.dir, 'guests/default/gone.json'));
  writeFileSync(join(h.dir, 'disks/stray-uid.sqfs'), 'left by a crash');
  h.hv.orphans = ['/dev/loop7'];
  const creates = h.hv.calls.create;
  h = h.restart();
  await h.until(() => h.hv.count === 1);
  const keep = h.agent.get('default', 'keep')!;
  assert.equal(keep.status!.phase, 'Running');
  assert.equal(keep.status!.domid, domid, 'same domain');
  assert.equal(h.hv.calls.create, creates, 'nothing was recreated');
  assert.equal(h.agent.console('default', 'keep')!.history().toString(), 'hello from the guest\n');
  assert.deepEqual(readdirSync(join(h.dir, 'disks')), [`${keep.metadata.uid}.sqfs`]);
  assert.ok(h.recorder.list().some((e) => e.reason === 'OrphanRemoved' && e.message.includes('/dev/loop7')));
  assert.deepEqual(h.ipam.keys(), ['default/keep']);
  h.stop();
});

test('deletion in every phase leaves nothing: no domain, reservation, config disk or record', async () => {
  const h = harness();
  h.images.failures.push(...Array.from({ length: 50 }, () => new ImageError('ErrImagePull', 'registry down')));
  await h.agent.apply([guest('pending')], false);
  await h.until(() => h.agent.get('default', 'pending')?.status?.reason === 'ErrImagePull', 1);
  await h.agent.delete('default', 'pending', {});
  await h.until(() => !h.agent.get('default', 'pending'));
  h.images.failures = [];

  h.hv.behaviour = (l) => (l.guest.name === 'stubborn' ? { ignoreShutdown: true } : l.guest.name === 'crashing' ? { runMs: 10, exitCode: 1 } : l.guest.name === 'done' ? { runMs: 10, exitCode: 0 } : {});
  await h.agent.apply([guest('running'), guest('stubborn', { terminationGracePeriodSeconds: 5 }), guest('crashing'), guest('done', { restartPolicy: 'Never' })], false);
  await h.until(() => phase(h, 'running') === 'Running' && phase(h, 'stubborn') === 'Running' && phase(h, 'done') === 'Succeeded' && h.agent.get('default', 'crashing')?.status?.reason === 'CrashLoopBackOff');
  const waits = ['running', 'stubborn', 'crashing', 'done'].map((x) => h.agent.delete('default', x, { wait: true }));
  await h.until(() => h.store.list().length === 0, 1000);
  await Promise.all(waits);
  assert.equal(h.hv.count, 0);
  assert.deepEqual(h.ipam.keys(), []);
  assert.deepEqual(readdirSync(join(h.dir, 'disks')), []);
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

test('spec changes recreate the domain (and say why); a new uid under the same name is a new guest', async () => {
  const h = harness();
  await h.agent.apply([guest('app')], false);
  await h.until(() => phase(h, 'app') === 'Running');
  const first = h.agent.get('default', 'app')!.status!.domid;
  assert.deepEqual(await h.agent.apply([guest('app')], false), [{ kind: 'Guest', metadata: { name: 'app', namespace: 'default' }, action: 'unchanged' }]);
  await h.agent.apply([guest('app', { args: ['--verbose'] })], false);
  await h.until(() => phase(h, 'app') === 'Running' && h.agent.get('default', 'app')!.status!.domid !== first);
  const g = h.agent.get('default', 'app')!;
  assert.equal(g.metadata.generation, 2);
  assert.equal(g.status!.observedGeneration, 2);
  assert.ok(h.agent.events('default', 'app').some((e) => e.reason === 'Killing' && /spec changed/.test(e.message)));
  assert.equal(h.hv.count, 1);
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
  await assert.rejects(h.agent.apply([guest('fine'), { apiVersion: 'krata.dev/v1alpha1', kind: 'Guest', metadata: { name: 'Bad_Name' }, spec: {} } as unknown as Guest], false), (e: Error & { errors?: unknown[] }) => {
    assert.match(e.message, /nothing was applied/);
    assert.ok((e.errors ?? []).length >= 2);
    return true;
  });
  assert.equal(h.agent.get('default', 'fine'), undefined, 'all or nothing');
  h.images.failures.push(new ImageError('InvalidImageName', 'bad reference', true));
  await h.agent.apply([guest('badimage')], false);
  await h.until(() => phase(h, 'badimage') === 'Failed');
  assert.equal(h.agent.get('default', 'badimage')!.status!.reason, 'InvalidImageName');
  assert.ok(existsSync(h.dir));
  h.stop();
});

test('what happens behind the agent\'s back: a lost domain counts as a failed exit, duplicates and paused leftovers are destroyed', async () => {
  const h = harness();
  await h.agent.apply([guest('once', { restartPolicy: 'Never' }), guest('dup')], false);
  await h.until(() => phase(h, 'once') === 'Running' && phase(h, 'dup') === 'Running');
  // xl destroy of a Never guest's domain: Failed, not run again.
  await h.hv.destroy(h.agent.get('default', 'once')!.status!.domid!);
  await h.until(() => phase(h, 'once') === 'Failed');
  assert.match(h.agent.get('default', 'once')!.status!.message!, /disappeared without reporting an exit/);
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
  await h.reconciler.resync();
  await h.until(() => h.hv.count === 1);
  assert.equal(h.hv.domain(g.status!.domid!)?.info.state, 'running', 'the domain status names is kept');
  assert.ok(h.recorder.list('default', 'dup').some((e) => e.reason === 'DuplicateDomain' && e.message.includes(String(extra.domid))));
  assert.ok(h.recorder.list('default', 'dup').some((e) => e.reason === 'IncompleteDomain'));
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
  h.store.on('change', (e: { object: Guest }) => e.object.metadata.name === failing && seen.push(`${e.object.status?.reason}: ${e.object.status?.message}`));
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
  await h2.reconciler.resync();
  await h2.until(() => true);
  assert.equal(h2.hv.calls.create, creates);
  assert.equal(h2.hv.count, 3);
  h2.stop();
});
