// The usage sampler on the test-double hypervisor and a fake clock: CPU in cores from two samples, a new
// domain starting over, guests' answers shared and cached, a guest that never answers costing the others
// no more than the timeout, hostile answers dropped, and gone Guests forgotten.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Guest } from '../../crds/generated/types.js';
import type { GuestUsage } from '../../contracts/agent-api/types.js';
import { FakeClock } from '../../test/doubles/fake-clock.js';
import type { ChannelState, GuestChannel, GuestReportedMetrics } from '../channel/index.js';
import { FakeHypervisor } from '../runtime/fake-hypervisor.js';
import type { GuestStore } from '../store/guest-store.js';
import { UsageSampler } from './sampler.js';

const MiB = 1024 * 1024;

const FIGURES: GuestReportedMetrics = {
  memoryTotalBytes: 1000 * MiB,
  memoryAvailableBytes: 700 * MiB,
  memoryFreeBytes: 600 * MiB,
  load1: 0.5,
  load5: 0.25,
  load15: 0.1,
  processes: 12,
  runningProcesses: 1,
  uptimeSeconds: 60,
};

/** Just what the sampler uses of a channel: its state and metrics requests, answered as the test says. */
class TestChannel {
  phase: ChannelState['phase'] = 'up';
  calls = 0;
  answer: () => Promise<GuestReportedMetrics> = () => Promise.resolve(FIGURES);
  state(): ChannelState {
    return this.phase === 'up'
      ? { phase: 'up', version: 1, guestSoftware: 'test', transport: 'console' }
      : ({ phase: this.phase, reason: 'test' } as ChannelState);
  }
  metrics(_timeoutMs: number): Promise<GuestReportedMetrics> {
    this.calls++;
    return this.answer();
  }
}

/** The store's view the sampler reads: Guests with the domid in their status. */
function fakeStore() {
  const guests = new Map<string, Guest>();
  const store = {
    list: (namespace?: string) => [...guests.values()].filter((g) => namespace === undefined || g.metadata.namespace === namespace),
    get: (key: string) => (guests.has(key) ? { guest: guests.get(key)!, internal: {} } : undefined),
  } as unknown as GuestStore;
  const put = (name: string, domid: number | undefined, namespace = 'default') =>
    guests.set(`${namespace}/${name}`, {
      apiVersion: 'krata.dev/v1alpha1',
      kind: 'Guest',
      metadata: { name, namespace },
      spec: {} as Guest['spec'],
      status: domid === undefined ? { phase: 'Pending' } : { phase: 'Running', domid },
    } as Guest);
  return { store, put, remove: (name: string, namespace = 'default') => guests.delete(`${namespace}/${name}`) };
}

async function setup(opts: { concurrency?: number } = {}) {
  const clock = new FakeClock();
  const hv = new FakeHypervisor({ cpus: 8, memoryMiB: 8192 }, clock);
  const { store, put, remove } = fakeStore();
  const sampler = new UsageSampler(store, hv, { clock, ...opts });
  /** A domain for the Guest, with a channel; returns its domid and channel. */
  const start = async (name: string, namespace = 'default') => {
    const d = await hv.create({
      name: `krata.${namespace}.${name}`,
      guest: { namespace, name, uid: `uid-${name}`, specHash: 'h' },
      vcpus: 2,
      maxVcpus: 4,
      memoryMiB: 1024,
      maxMemoryMiB: 2048,
      kernel: '/k',
      cmdline: '',
      disks: [],
      nics: [],
    });
    const channel = new TestChannel();
    hv.channels.set(d.domid, channel as unknown as GuestChannel);
    put(name, d.domid, namespace);
    return { domid: d.domid, channel };
  };
  return { clock, hv, sampler, put, remove, start };
}

/** Lets settled promises run their callbacks (the fake clock does not move). */
const flush = () => new Promise((r) => setImmediate(r));

test('Xen figures of running Guests; CPU in cores from two samples over the window, none on the first', async () => {
  const { clock, hv, sampler, put, start } = await setup();
  const web = await start('web');
  put('pending', undefined);
  hv.domainStats.set(web.domid, { cpuSeconds: 10 });
  const [first, ...others] = await sampler.sample();
  assert.equal(others.length, 0, 'a Guest without a domain has no usage');
  assert.equal(first!.name, 'web');
  assert.equal(first!.domid, web.domid);
  assert.equal(first!.cpuSeconds, 10);
  assert.equal(first!.cpuCores, undefined);
  assert.deepEqual(first!.vcpus, { online: 2, max: 4 });
  assert.deepEqual(first!.memory, { domainBytes: 1024 * MiB, maxBytes: 2048 * MiB }, 'the fake guest holds its balloon target');
  assert.equal(first!.timestamp, new Date(clock.now()).toISOString());

  clock.advance(10_000);
  hv.domainStats.set(web.domid, { cpuSeconds: 15 });
  const [second] = await sampler.sample();
  assert.equal(second!.cpuCores, 0.5);
  assert.equal(second!.windowSeconds, 10);

  // A second reader a moment later gets the same rate rather than one over a few milliseconds.
  clock.advance(100);
  hv.domainStats.set(web.domid, { cpuSeconds: 15.1 });
  const [third] = await sampler.sample();
  assert.equal(third!.cpuCores, 0.5);
  clock.advance(1900);
  hv.domainStats.set(web.domid, { cpuSeconds: 17 });
  const [fourth] = await sampler.sample();
  assert.equal(fourth!.cpuCores, 1); // (17 - 15) over the 2 s since the last base
  assert.equal(fourth!.windowSeconds, 2);
});

test('background reads keep a base, so the first reader after a while gets a rate over the last period', async () => {
  const { clock, hv, sampler, start } = await setup();
  const web = await start('web');
  hv.domainStats.set(web.domid, { cpuSeconds: 1 });
  sampler.start();
  clock.advance(10_000); // the first background read: the base
  hv.domainStats.set(web.domid, { cpuSeconds: 100 });
  clock.advance(60_000); // six more: the base moves with them
  hv.domainStats.set(web.domid, { cpuSeconds: 104 });
  clock.advance(4000);
  const [u] = await sampler.sample();
  assert.equal(u!.cpuCores, 1); // 4 s of CPU over the 4 s since the last background read
  assert.equal(u!.windowSeconds, 4);
  sampler.stop();
  assert.equal(clock.pending, 0);
});

test('a new domain for the Guest starts its CPU window over', async () => {
  const { clock, hv, sampler, start } = await setup();
  const a = await start('web');
  hv.domainStats.set(a.domid, { cpuSeconds: 100 });
  await sampler.sample();
  clock.advance(5000);
  await hv.destroy(a.domid);
  const b = await start('web');
  hv.domainStats.set(b.domid, { cpuSeconds: 1 });
  const [u] = await sampler.sample();
  assert.equal(u!.domid, b.domid);
  assert.equal(u!.cpuCores, undefined, 'no rate across two domains');
  clock.advance(5000);
  hv.domainStats.set(b.domid, { cpuSeconds: 6 });
  assert.equal((await sampler.sample())[0]!.cpuCores, 1);
});

test("the guest's figures while its channel is up; the channel's phase otherwise", async () => {
  const { hv, sampler, start } = await setup();
  const web = await start('web');
  const [up] = await sampler.sample();
  assert.deepEqual(up!.channel, { phase: 'up', transport: 'console' });
  assert.deepEqual(up!.guest, {
    memoryTotalBytes: 1000 * MiB,
    memoryAvailableBytes: 700 * MiB,
    memoryUsedBytes: 300 * MiB,
    load: [0.5, 0.25, 0.1],
    processes: 12,
    uptimeSeconds: 60,
  });
  web.channel.phase = 'connecting';
  const [connecting] = await sampler.sample();
  assert.deepEqual(connecting!.channel, { phase: 'connecting', reason: 'test' });
  assert.equal(connecting!.guest, undefined);
  hv.channels.delete(web.domid);
  const [none] = await sampler.sample();
  assert.equal(none!.channel.phase, 'closed');
  assert.match(none!.channel.reason!, /no control channel/);
});

test("a guest's answer is shared by readers at once and cached briefly", async () => {
  const { clock, sampler, start } = await setup();
  const web = await start('web');
  const [a, b] = await Promise.all([sampler.sample(), sampler.sample('default', 'web')]);
  assert.equal(web.channel.calls, 1);
  assert.equal(a[0]!.guest?.processes, 12);
  assert.equal(b[0]!.guest?.processes, 12);
  clock.advance(1500);
  await sampler.sample();
  assert.equal(web.channel.calls, 1, 'still fresh');
  clock.advance(600);
  await sampler.sample();
  assert.equal(web.channel.calls, 2, 'asked again once the answer is 2 s old');
});

test('a guest that never answers costs the others no more than the timeout, even with every slot taken', async () => {
  const { clock, sampler, start } = await setup({ concurrency: 1 });
  const slow = await start('a-slow');
  const fast = await start('b-fast');
  slow.channel.answer = () => new Promise(() => {}); // never settles
  let got: GuestUsage[] | undefined;
  void sampler.sample().then((r) => (got = r));
  const current = () => got;
  await flush();
  clock.advance(999);
  await flush();
  assert.equal(current(), undefined, 'waits for the answers up to the timeout');
  clock.advance(1);
  await flush();
  const result = current();
  assert.ok(result, 'answered at the timeout');
  assert.equal(result.length, 2);
  assert.equal(result[0]!.guest, undefined, 'the silent guest has no figures');
  // The fast guest waited for the one slot: its answer came after the timeout and serves the next reader.
  assert.equal(result[1]!.guest, undefined);
  assert.equal(fast.channel.calls, 1);
  const next = await sampler.sample();
  assert.equal(next[1]!.guest?.processes, 12);
  assert.equal(fast.channel.calls, 1, 'from the cache');
});

test('hostile or failing answers leave the guest without figures and the sampler unharmed', async () => {
  const { clock, sampler, start } = await setup();
  const answers: (() => Promise<GuestReportedMetrics>)[] = [
    () => Promise.resolve({ ...FIGURES, processes: Number.NaN }),
    () => Promise.resolve({ ...FIGURES, memoryTotalBytes: -1 }),
    () => Promise.resolve({ ...FIGURES, load1: '1' as unknown as number }),
    () => Promise.resolve(null as unknown as GuestReportedMetrics),
    () => Promise.reject(new Error('channel closed')),
    () => {
      throw new Error('thrown at once');
    },
  ];
  const web = await start('web');
  for (const answer of answers) {
    web.channel.answer = answer;
    clock.advance(2000); // past the cache
    const [u] = await sampler.sample();
    assert.equal(u!.guest, undefined, answer.toString());
  }
  web.channel.answer = () => Promise.resolve(FIGURES);
  clock.advance(2000);
  assert.equal((await sampler.sample())[0]!.guest?.processes, 12);
});

test('filters by namespace and name; sorted; gone Guests are forgotten', async () => {
  const { hv, sampler, remove, start } = await setup();
  await start('web', 'prod');
  await start('db', 'prod');
  const dev = await start('web', 'dev');
  assert.deepEqual(
    (await sampler.sample()).map((u) => `${u.namespace}/${u.name}`),
    ['dev/web', 'prod/db', 'prod/web'],
  );
  assert.deepEqual(
    (await sampler.sample('prod')).map((u) => u.name),
    ['db', 'web'],
  );
  assert.deepEqual(
    (await sampler.sample('prod', 'web')).map((u) => u.name),
    ['web'],
  );
  assert.equal(sampler.tracked, 3);
  remove('web', 'prod');
  await hv.destroy(dev.domid); // the Guest still names a domain that is gone: no usage
  assert.deepEqual(
    (await sampler.sample()).map((u) => `${u.namespace}/${u.name}`),
    ['prod/db'],
  );
  assert.equal(sampler.tracked, 2, 'the deleted Guest is forgotten');
  remove('web', 'dev');
  await sampler.sample();
  assert.equal(sampler.tracked, 1);
});
