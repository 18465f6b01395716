// The move onto a guest's bulk ring (PROTOCOL.md, Bulk ring): a scripted guest offers a second pipe as
// its ring; the host switches each direction at the frame the protocol names, or stays on the console.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeFrame, FrameType } from '../../contracts/guest-channel/frames.js';
import { RecordingSink, ScriptedGuest, transportPair, type TransportPair } from '../../test/doubles/scripted-guest.js';
import { guestChannelStats, openGuestChannel, type BulkOffer, type HostGuestChannel } from './index.js';

const OFFER = { refs: [20, 21, 22, 23, 24], port: 9, inPages: 2, outPages: 2 };

interface Rig {
  console: TransportPair;
  bulk: TransportPair;
  guest: ScriptedGuest;
  channel: HostGuestChannel;
  offers: BulkOffer[];
  /** Bytes the host wrote to each. */
  hostWrote: { console: number; bulk: number };
}

async function rig(
  opts: { offer?: Record<string, unknown>; openBulk?: 'ok' | 'throws' | 'absent'; versions?: { min: number; max: number } } = {},
) {
  const consolePair = transportPair();
  const bulkPair = transportPair();
  const offers: BulkOffer[] = [];
  const hostWrote = { console: 0, bulk: 0 };
  const count = (end: { write(d: Buffer): boolean }, key: 'console' | 'bulk') => {
    const write = end.write.bind(end);
    end.write = (d: Buffer) => ((hostWrote[key] += d.length), write(d));
  };
  count(consolePair.host, 'console');
  count(bulkPair.host, 'bulk');
  const mode = opts.openBulk ?? 'ok';
  if (mode !== 'absent') {
    Object.assign(consolePair.host, {
      openBulk(offer: BulkOffer) {
        offers.push(offer);
        if (mode === 'throws') throw new Error('map 5 grants of domain 7: Invalid argument');
        return bulkPair.host;
      },
    });
  }
  const guest = new ScriptedGuest(consolePair.guest, {
    helloOnStart: true,
    versions: opts.versions,
    bulk: { offer: opts.offer ?? OFFER, transport: bulkPair.guest },
  });
  const channel = openGuestChannel(consolePair.host, { software: 'test-agent' }) as HostGuestChannel;
  const r: Rig = { console: consolePair, bulk: bulkPair, guest, channel, offers, hostWrote };
  await settle(r);
  return r;
}

async function settle(r: Rig): Promise<void> {
  await r.console.settle();
  await r.bulk.settle();
  await r.console.settle();
}

test('a version 2 guest offers its ring: the host maps it and the conversation moves there both ways', async () => {
  const before = guestChannelStats.bulkSwitches;
  const r = await rig();
  assert.deepEqual(r.offers, [OFFER], 'the offer reaches the transport as the guest sent it');
  const st = r.channel.state();
  assert.equal(st.phase, 'up');
  assert.equal(st.phase === 'up' && st.transport, 'bulk');
  assert.ok(r.guest.onBulk);
  assert.equal(guestChannelStats.bulkSwitches, before + 1);
  const lastOnConsole = r.guest.received.filter((f) => f.type === FrameType.BULK_SWITCH);
  assert.equal(lastOnConsole.length, 1, "the host's BULK_SWITCH");
  const consoleBytes = r.hostWrote.console;

  // Output and a stdin round trip run over the bulk pipe; the console carries nothing more.
  const out = new RecordingSink();
  r.channel.exec({ argv: ['yes', '300000'], tty: false, stdin: false }, out);
  const echo = new RecordingSink();
  const s = r.channel.exec({ argv: ['cat'], tty: false, stdin: true }, echo);
  s.writeStdin(Buffer.alloc(100_000, 0x61));
  s.endStdin();
  await settle(r);
  assert.equal((await out.waitExit()).exitCode, 0);
  assert.ok(out.stdoutBytes >= 300_000, `${out.stdoutBytes} bytes of output`);
  assert.equal((await echo.waitExit()).exitCode, 0);
  assert.equal(echo.stdoutBytes, 100_000);
  assert.equal(r.hostWrote.console, consoleBytes, 'nothing more on the console');
  assert.ok(r.hostWrote.bulk > 100_000);
  assert.deepEqual(r.guest.consoleAfterSwitch, []);
  assert.equal(r.channel.stats.protocolErrors, 0);
  assert.deepEqual(r.guest.violations, []);
});

test('a byte the guest writes to the console after its BULK_SWITCH is a protocol error', async () => {
  const r = await rig();
  r.console.guest.write(Buffer.from('garbage from a process writing to /dev/hvc1'));
  await settle(r);
  const st = r.channel.state();
  assert.ok(st.phase === 'closed' && /43 bytes to the console after moving to the bulk ring/.test(st.reason), JSON.stringify(st));
  assert.equal(r.channel.stats.protocolErrors, 1);
});

test("frames behind the guest's BULK_SWITCH in the same console read are a protocol error", async () => {
  const consolePair = transportPair();
  const bulkPair = transportPair();
  Object.assign(consolePair.host, { openBulk: () => bulkPair.host });
  const channel = openGuestChannel(consolePair.host, { software: 'test-agent' });
  const g = consolePair.guest;
  g.write(encodeFrame(FrameType.HELLO, 0, { role: 'guest', min: 1, max: 2 }));
  await consolePair.settle();
  g.write(encodeFrame(FrameType.BULK_OFFER, 0, OFFER));
  await consolePair.settle();
  g.write(Buffer.concat([encodeFrame(FrameType.BULK_SWITCH, 0), encodeFrame(FrameType.EXIT, 1, { exitCode: 0 })]));
  await consolePair.settle();
  const st = channel.state();
  assert.ok(st.phase === 'closed' && /after its BULK_SWITCH/.test(st.reason), JSON.stringify(st));
});

test('an offer the transport cannot map leaves the conversation on the console, saying why', async () => {
  const before = guestChannelStats.bulkRefused;
  const r = await rig({ openBulk: 'throws' });
  const st = r.channel.state();
  assert.ok(st.phase === 'up' && st.transport === 'console');
  assert.match(st.phase === 'up' ? (st.bulkRefused ?? '') : '', /Invalid argument/);
  assert.equal(guestChannelStats.bulkRefused, before + 1);
  assert.ok(!r.guest.onBulk, 'no BULK_SWITCH was sent');
  const out = new RecordingSink();
  r.channel.exec({ argv: ['yes', '5000'], tty: false, stdin: false }, out);
  await settle(r);
  assert.equal((await out.waitExit()).exitCode, 0);
  assert.ok(out.stdoutBytes >= 5000);
  assert.equal(r.hostWrote.bulk, 0);
});

test('a transport without a bulk ring (a pipe) keeps the console', async () => {
  const r = await rig({ openBulk: 'absent' });
  const st = r.channel.state();
  assert.ok(st.phase === 'up' && st.transport === 'console' && /no bulk ring/.test(st.bulkRefused ?? ''));
});

test('a version 1 guest never offers; the channel stays on the console', async () => {
  const r = await rig({ versions: { min: 1, max: 1 } });
  assert.deepEqual(r.offers, []);
  const st = r.channel.state();
  assert.ok(st.phase === 'up' && st.version === 1 && st.transport === 'console' && st.bulkRefused === undefined);
});

test('hostile bulk frames close the channel as protocol errors', async () => {
  const cases: [string, (r: Rig) => void, RegExp][] = [
    ['an unasked BULK_SWITCH', (r) => r.console.guest.write(encodeFrame(FrameType.BULK_SWITCH, 0)), /did not ask/],
    ['a second offer', (r) => r.bulk.guest.write(encodeFrame(FrameType.BULK_OFFER, 0, OFFER)), /second BULK_OFFER/],
    [
      'a HELLO over the bulk ring',
      (r) => r.bulk.guest.write(encodeFrame(FrameType.HELLO, 0, { role: 'guest', min: 1, max: 2 })),
      /moved to the bulk/,
    ],
  ];
  for (const [name, act, why] of cases) {
    const r = name === 'an unasked BULK_SWITCH' ? await rig({ openBulk: 'throws' }) : await rig();
    act(r);
    await settle(r);
    const st = r.channel.state();
    assert.equal(st.phase, 'closed', name);
    assert.match(st.phase === 'closed' ? st.reason : '', why, name);
  }
  const malformed = [
    { ...OFFER, inPages: 3 },
    { ...OFFER, outPages: 64 },
    { ...OFFER, refs: [20, 21] },
    { ...OFFER, refs: [20, 21, 22, 23, 2] },
    { ...OFFER, refs: [20, 21, 22, 23, 'x'] },
    { ...OFFER, port: 0 },
    { refs: OFFER.refs, port: 9, inPages: 2 },
  ];
  for (const offer of malformed) {
    const r = await rig({ offer });
    const st = r.channel.state();
    assert.equal(st.phase, 'closed', JSON.stringify(offer));
    assert.match(st.phase === 'closed' ? st.reason : '', /BULK_OFFER without valid/);
    assert.deepEqual(r.offers, [], 'nothing is mapped');
  }
});

test('an offer at version 1 is a protocol error', async () => {
  const r = await rig({ versions: { min: 1, max: 1 } });
  r.console.guest.write(encodeFrame(FrameType.BULK_OFFER, 0, OFFER));
  await settle(r);
  const st = r.channel.state();
  assert.ok(st.phase === 'closed' && /version 1/.test(st.reason));
});

test('closing the channel closes both transports; the bulk ring going away closes the channel', async () => {
  const r = await rig();
  let bulkClosed = false;
  let consoleClosed = false;
  r.bulk.guest.onClose(() => (bulkClosed = true));
  r.console.guest.onClose(() => (consoleClosed = true));
  r.channel.close('test');
  await settle(r);
  assert.ok(bulkClosed && consoleClosed);

  const r2 = await rig();
  const out = new RecordingSink();
  r2.channel.exec({ argv: ['sleep'], tty: false, stdin: false }, out);
  await settle(r2);
  r2.bulk.guest.close();
  await settle(r2);
  assert.equal(r2.channel.state().phase, 'closed');
  assert.equal((await out.waitExit()).exitCode, 255, 'the session is lost with its transport');
});

test('after that protocol error the bulk ring is released and the console device discarded (the guest may go on writing)', async () => {
  const r = await rig();
  const calls: string[] = [];
  const close = r.console.host.close.bind(r.console.host);
  Object.assign(r.console.host, {
    discard: () => void calls.push('discard'),
    close: () => (calls.push('close'), close()),
  });
  // As the xen transport does, the bulk ring's close listeners run within close() (the pipe's run later).
  let bulkClosed = false;
  const bulkEnd = r.bulk.host as unknown as { closeCbs: (() => void)[]; close(): void };
  const bulkClose = bulkEnd.close.bind(bulkEnd);
  bulkEnd.close = () => {
    bulkClosed = true;
    const listeners = bulkEnd.closeCbs.splice(0);
    bulkClose();
    for (const cb of listeners) cb();
  };
  r.console.guest.write(Buffer.from('garbage from a process writing to /dev/hvc1'));
  await settle(r);
  assert.equal(r.channel.state().phase, 'closed');
  assert.ok(bulkClosed, 'the bulk ring is released');
  assert.deepEqual(calls, ['discard'], 'the console device is drained and discarded until its owner closes it');
});
