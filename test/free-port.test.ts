import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ephemeralLow, freePort } from './free-port.js';

test('free ports come from below the ephemeral range and can be listened on', async () => {
  const low = ephemeralLow();
  for (let i = 0; i < 20; i++) {
    const port = await freePort();
    assert.ok(port >= 10_000 && port < low, `${port} outside 10000-${low - 1}`);
    const s = createServer();
    await new Promise<void>((resolve, reject) => s.once('error', reject).listen(port, '127.0.0.1', resolve));
    await new Promise((r) => s.close(r));
  }
});

test('with udp, a port held by a UDP socket is passed over; without, it is not checked', async () => {
  const held = await freePort({ udp: true });
  const other = await freePort({ udp: true });
  const s = createSocket('udp4');
  await new Promise<void>((resolve, reject) => s.once('error', reject).bind(held, '127.0.0.1', resolve));
  try {
    const candidates = () => {
      const list = [held, other];
      return () => list.shift() ?? other;
    };
    assert.equal(await freePort({ udp: true, pick: candidates() }), other);
    assert.equal(await freePort({ pick: candidates() }), held);
  } finally {
    await new Promise<void>((r) => s.close(() => r()));
  }
});

test('the ephemeral range is read from the kernel, with a default for nonsense', () => {
  const dir = mkdtempSync(join(tmpdir(), 'krata-port-'));
  const f = (text: string) => {
    writeFileSync(join(dir, 'range'), text);
    return ephemeralLow(join(dir, 'range'));
  };
  assert.equal(f('40000\t60999\n'), 40000);
  assert.equal(f('garbage'), 32768);
  assert.equal(f('1024 2048'), 32768);
  assert.equal(ephemeralLow(join(dir, 'missing')), 32768);
});
