import assert from 'node:assert/strict';
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
