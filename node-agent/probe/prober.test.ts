// The prober on a fake clock with the fake guest channel: when probes run (initial delay, period, one
// at a time), thresholds both ways, startup gating, timeouts, the kill verdict, and workers ending
// with their domain.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Guest } from '../../crds/generated/types.js';
import { guest } from '../../test/harness/node-controller.js';
import { FakeClock } from '../../test/doubles/fake-clock.js';
import { FakeGuestChannel } from '../../test/doubles/fake-guest-channel.js';
import { Prober } from './prober.js';

const settle = async () => {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
};

function setup(spec: Record<string, unknown>) {
  const clock = new FakeClock();
  const channel = new FakeGuestChannel();
  const events: string[] = [];
  const changes: string[] = [];
  const prober = new Prober({ channel: () => channel, clock, events: { warning: (_k, reason, msg) => events.push(`${reason}: ${msg}`) } });
  prober.onChange((k) => changes.push(k));
  const g: Guest = guest('web', spec);
  const dom = { domid: 7, createdAt: clock.now() };
  /** Moves the clock by `ms` in 100 ms steps, letting each probe finish in between (well within its timeout). */
  const advance = async (ms: number) => {
    for (let left = ms; left > 0; left -= 100) {
      clock.advance(Math.min(100, left));
      await settle();
    }
  };
  const count = (argv0: string) => channel.sessions.filter((s) => s.req.argv[0] === argv0).length;
  return { clock, channel, events, changes, prober, g, dom, advance, count, observe: () => prober.observe('default/web', g, dom) };
}

/** A program whose exit status the test sets. */
function toggle(channel: FakeGuestChannel, name: string): { ok: boolean } {
  const state = { ok: true };
  channel.programs.set(name, (s) => s.exit({ exitCode: state.ok ? 0 : 1 }));
  return state;
}

test('first probe after initialDelaySeconds from the domain start, then every periodSeconds', async () => {
  const t = setup({ readinessProbe: { exec: { command: ['check'] }, initialDelaySeconds: 5, periodSeconds: 10 } });
  toggle(t.channel, 'check');
  t.clock.advance(2000); // the domain started 2 s before the agent saw it
  const v = t.observe();
  assert.deepEqual([v.started, v.ready, v.reason], [true, false, 'ProbesPending']);
  assert.equal(v.status?.readiness?.result, 'Failure');
  await t.advance(2000);
  assert.equal(t.count('check'), 0);
  await t.advance(1000);
  assert.equal(t.count('check'), 1);
  assert.deepEqual(t.changes, ['default/web']);
  assert.equal(t.observe().ready, true);
  await t.advance(9000);
  assert.equal(t.count('check'), 1);
  await t.advance(1000);
  assert.equal(t.count('check'), 2);
  await t.advance(30_000);
  assert.equal(t.count('check'), 5);
  assert.deepEqual(t.changes, ['default/web'], 'no change, no reconcile');
  t.prober.stopAll();
  assert.equal(t.clock.pending, 0);
});

test('thresholds both ways: successThreshold to pass, failureThreshold to fail; every failure an Unhealthy event', async () => {
  const t = setup({ readinessProbe: { exec: { command: ['check'] }, periodSeconds: 1, successThreshold: 2, failureThreshold: 3 } });
  const check = toggle(t.channel, 'check');
  t.observe();
  await t.advance(1); // the first probe, at once
  assert.equal(t.observe().status?.readiness?.result, 'Failure', 'one success of two');
  await t.advance(1000);
  assert.equal(t.observe().ready, true);
  check.ok = false;
  await t.advance(2000);
  const mid = t.observe();
  assert.equal(mid.ready, true, 'two failures of three');
  assert.equal(mid.status?.readiness?.consecutiveFailures, 2);
  await t.advance(1000);
  const failed = t.observe();
  assert.deepEqual([failed.ready, failed.reason], [false, 'ReadinessProbeFailed']);
  assert.match(failed.message!, /readiness probe failed: command "check" failed \(exit code 1\)/);
  assert.equal(t.events.length, 3);
  assert.match(t.events[0]!, /^Unhealthy: Readiness probe failed: command "check" failed/);
  check.ok = true;
  await t.advance(1000);
  assert.equal(t.observe().ready, false, 'one success after failing is not enough');
  await t.advance(1000);
  assert.equal(t.observe().ready, true);
  assert.equal(t.changes.length, 4, 'the first attempt, then three moves');
  t.prober.stopAll();
});

test('readiness and liveness wait for the startup probe, which stops once it succeeds', async () => {
  const t = setup({
    startupProbe: { exec: { command: ['started'] }, periodSeconds: 2, failureThreshold: 10 },
    readinessProbe: { exec: { command: ['ready'] }, periodSeconds: 1 },
    livenessProbe: { exec: { command: ['alive'] }, periodSeconds: 1 },
  });
  const started = toggle(t.channel, 'started');
  toggle(t.channel, 'ready');
  toggle(t.channel, 'alive');
  started.ok = false;
  const v = t.observe();
  assert.deepEqual([v.started, v.ready, v.reason], [false, false, 'ProbesPending']);
  await t.advance(4000);
  assert.equal(t.count('started'), 3);
  assert.equal(t.count('ready') + t.count('alive'), 0);
  assert.equal(t.changes.length, 1, 'the first attempt');
  started.ok = true;
  await t.advance(2000);
  assert.equal(t.changes.length, 2);
  assert.equal(t.observe().started, true); // the reconcile the change queued starts readiness and liveness
  await t.advance(3000);
  assert.equal(t.count('started'), 4);
  assert.ok(t.count('ready') >= 3 && t.count('alive') >= 3);
  const after = t.observe();
  assert.deepEqual([after.ready, after.status?.startup?.result, after.status?.liveness?.result], [true, 'Success', 'Success']);
  assert.equal(after.status?.startup?.consecutiveSuccesses, 1);
  assert.ok(after.status?.startup?.lastProbeTime, 'the startup probe keeps its last probe time');
  t.prober.stopAll();
});

test('a liveness probe failing failureThreshold times asks for the kill and probes no more', async () => {
  const t = setup({ livenessProbe: { exec: { command: ['alive'] }, periodSeconds: 1, failureThreshold: 2 } });
  const alive = toggle(t.channel, 'alive');
  t.observe();
  await t.advance(2000);
  assert.equal(t.observe().status?.liveness?.result, 'Success');
  alive.ok = false;
  await t.advance(1000);
  assert.equal(t.observe().kill, undefined);
  await t.advance(1000);
  const v = t.observe();
  assert.equal(v.kill?.probe, 'Liveness');
  assert.match(v.kill!.message, /liveness probe failed 2 times in a row: command "alive" failed \(exit code 1\)/);
  const n = t.count('alive');
  await t.advance(5000);
  assert.equal(t.count('alive'), n);
  assert.equal(t.clock.pending, 0);
  assert.deepEqual(
    t.events.filter((e) => e.startsWith('Unhealthy: Liveness')),
    [
      'Unhealthy: Liveness probe failed: command "alive" failed (exit code 1)',
      'Unhealthy: Liveness probe failed: command "alive" failed (exit code 1)',
    ],
  );
});

test('a probe still running at timeoutSeconds fails and its session is closed; the next waits for its period', async () => {
  const t = setup({ livenessProbe: { exec: { command: ['sleep'] }, periodSeconds: 5, timeoutSeconds: 2, failureThreshold: 1 } });
  t.observe();
  await t.advance(1000);
  assert.equal(t.channel.sessions.length, 1);
  assert.equal(t.channel.last!.closed, false);
  await t.advance(1000);
  assert.equal(t.channel.last!.closed, true);
  const v = t.observe();
  assert.match(v.kill!.message, /command "sleep" timed out after 2s/);
  assert.equal(t.channel.sessions.length, 1, 'one probe in flight at most');
});

test('a channel that is not up fails the probe with its reason; no channel at all says so', async () => {
  const t = setup({ readinessProbe: { exec: { command: ['true'] }, periodSeconds: 1 } });
  t.channel.setState({ phase: 'closed', reason: 'the guest went away' });
  t.observe();
  await t.advance(1000);
  assert.match(t.observe().message!, /control channel is not up: the channel is closed: the guest went away/);
  const clock = new FakeClock();
  const none = new Prober({ channel: () => undefined, clock, events: { warning: () => undefined } });
  none.observe('default/web', t.g, { domid: 1, createdAt: clock.now() });
  clock.advance(0);
  await settle();
  assert.match(none.observe('default/web', t.g, { domid: 1, createdAt: clock.now() }).message!, /no control channel/);
  t.prober.stopAll();
  none.stopAll();
});

test('a new domain replaces the workers, stop() ends them; an unchanged spec keeps the counts', async () => {
  const t = setup({ readinessProbe: { exec: { command: ['check'] }, periodSeconds: 1 } });
  toggle(t.channel, 'check');
  t.observe();
  await t.advance(3000);
  assert.equal(t.observe().status?.readiness?.consecutiveSuccesses, 4);
  const next = t.prober.observe('default/web', t.g, { domid: 8, createdAt: t.clock.now() });
  assert.deepEqual([next.ready, next.status?.readiness?.consecutiveSuccesses], [false, 0]);
  assert.equal(t.clock.pending, 1, "the old domain's worker is gone");
  t.prober.stop('default/web');
  assert.equal(t.clock.pending, 0);
  const n = t.channel.sessions.length;
  await t.advance(5000);
  assert.equal(t.channel.sessions.length, n);
  assert.equal(t.prober.size, 0);
});

test('no probes: started and ready at once, and no status', () => {
  const t = setup({});
  assert.deepEqual(t.observe(), { started: true, ready: true });
  assert.equal(t.clock.pending, 0);
});

test('an exec probe while the guest still boots (channel connecting) fails at its timeout saying so', async () => {
  const t = setup({ readinessProbe: { exec: { command: ['true'] }, periodSeconds: 5, timeoutSeconds: 2 } });
  t.channel.setState({ phase: 'connecting' });
  t.observe();
  await t.advance(2100);
  assert.match(t.observe().message!, /control channel is not up after 2s \(connecting\)/);
  assert.equal(t.channel.sessions.length, 0);
  t.prober.stopAll();
});
