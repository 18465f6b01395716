// NodeAgentService.exec and resizeConsole on the test-double hypervisor: which refusal says what, the
// channel's handshake waited for (bounded), and the session opened on the Guest's current domain.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ChannelUnavailable, type ExecResult, type ExecSink } from '../channel/index.js';
import { FakeGuestChannel } from '../../test/doubles/fake-guest-channel.js';
import { guest, harness, phase } from '../../test/harness/node-controller.js';
import { NodeAgentService, DEFAULT_CHANNEL_READY_MS } from './agent-service.js';
import { NotFound } from './service.js';

function sink() {
  const out: Buffer[] = [];
  let resolveExit: (r: ExecResult) => void = () => {};
  const exited = new Promise<ExecResult>((r) => (resolveExit = r));
  const s: ExecSink = {
    stdout: (d) => (out.push(d), true),
    stderr: (d) => (out.push(d), true),
    exit: (r) => resolveExit(r),
  };
  return { sink: s, out, exited };
}

async function running(name = 'web') {
  const h = harness();
  await h.agent.apply([guest(name), guest('later', { image: 'registry.example/slow:1' })], false);
  await h.until(() => phase(h, name) === 'Running');
  const domid = h.agent.get('default', name)!.status!.domid!;
  return { h, domid };
}

test("exec opens a session on the running domain's channel, after its handshake", async (t) => {
  const { h, domid } = await running();
  t.after(() => h.stop());
  const channel = new FakeGuestChannel();
  h.hv.channels.set(domid, channel);
  const s = sink();
  const session = await h.agent.exec('default', 'web', { argv: ['echo', 'hi'], tty: false, stdin: false }, s.sink);
  assert.deepEqual(await s.exited, { exitCode: 0 });
  assert.equal(Buffer.concat(s.out).toString(), 'hi\n');
  assert.equal(session, channel.last);
  assert.deepEqual(channel.readyCalls, [DEFAULT_CHANNEL_READY_MS]);
});

test('exec refuses: NotFound, no running domain (its phase), no channel (an older agent), the handshake failing', async (t) => {
  const { h, domid } = await running();
  t.after(() => h.stop());
  const req = { argv: ['true'], tty: false, stdin: false };
  await assert.rejects(
    h.agent.exec('default', 'nope', req, sink().sink),
    (e) => e instanceof NotFound && /"nope" not found/.test(e.message),
  );
  await assert.rejects(
    h.agent.exec('default', 'later', req, sink().sink),
    (e) => e instanceof ChannelUnavailable && /guest default\/later has no running domain \(phase Pending\)/.test(e.message),
  );
  await assert.rejects(
    h.agent.exec('default', 'web', req, sink().sink),
    (e) =>
      e instanceof ChannelUnavailable &&
      /has no control channel: its domain \d+ was started by an older node agent/.test(e.message) &&
      /delete the guest and apply it again/.test(e.message),
  );

  // Not up within the wait: the channel's own reason, the guest named.
  const agent = new NodeAgentService(h.store, h.hv, h.recorder, undefined, h.clock, { channelReadyMs: 30 });
  const channel = new FakeGuestChannel({ phase: 'connecting' });
  h.hv.channels.set(domid, channel);
  await assert.rejects(
    agent.exec('default', 'web', req, sink().sink),
    (e) =>
      e instanceof ChannelUnavailable &&
      e.state === 'connecting' &&
      /^guest default\/web: the guest did not answer the channel handshake/.test(e.message),
  );
  assert.deepEqual(channel.readyCalls, [30]);
  channel.setState({ phase: 'incompatible', reason: 'guest-init speaks 2..2, the agent 1..1' });
  await assert.rejects(
    agent.exec('default', 'web', req, sink().sink),
    (e) => e instanceof ChannelUnavailable && e.state === 'incompatible' && /guest-init speaks 2\.\.2/.test(e.message),
  );
  assert.equal(channel.sessions.length, 0);

  // Comes up while exec waits: the session opens.
  const late = new FakeGuestChannel({ phase: 'connecting' });
  h.hv.channels.set(domid, late);
  const s = sink();
  const pending = h.agent.exec('default', 'web', { argv: ['exit', '7'], tty: false, stdin: false }, s.sink);
  late.setState({ phase: 'up', version: 1, guestSoftware: 'guest-init', transport: 'console' });
  await pending;
  assert.deepEqual(await s.exited, { exitCode: 7 });
});

test('resizeConsole reaches the channel only when it is up', async (t) => {
  const { h, domid } = await running();
  t.after(() => h.stop());
  assert.equal(h.agent.resizeConsole('default', 'web', 24, 80), false, 'no channel');
  assert.equal(h.agent.resizeConsole('default', 'later', 24, 80), false, 'no domain');
  assert.equal(h.agent.resizeConsole('default', 'nope', 24, 80), false, 'no guest');
  const channel = new FakeGuestChannel({ phase: 'connecting' });
  h.hv.channels.set(domid, channel);
  assert.equal(h.agent.resizeConsole('default', 'web', 24, 80), false, 'not up');
  channel.setState({ phase: 'up', version: 1, guestSoftware: 'guest-init', transport: 'console' });
  assert.equal(h.agent.resizeConsole('default', 'web', 50, 132), true);
  assert.deepEqual(channel.consoleSizes, [[50, 132]]);
});
