// The xenstore client against a real xenstored's bytes: replay the session recorded in the QEMU Xen
// host (test/e2e/scenarios/030-xenstore-session.sh). The client must send exactly the recorded
// requests and, fed the daemon's recorded replies, observe the recorded transcript.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../../lib/package-root.js';
import { XenstoreClient } from '../../node-agent/xen/xenstore/client.js';
import { replayTransport, type Frame } from './replay.js';
import { xenstoreScenario } from './scenario.js';

const fixture = JSON.parse(readFileSync(join(repoRoot(), 'test/fixtures/xenstore/session.json'), 'utf8')) as {
  a: Frame[];
  b: Frame[];
  transcript: unknown[];
};

test('the recorded session with a real xenstored replays byte for byte', async () => {
  const ta = replayTransport(fixture.a);
  const tb = replayTransport(fixture.b);
  const a = new XenstoreClient(ta, { timeoutMs: 2000 });
  const b = new XenstoreClient(tb, { timeoutMs: 2000 });
  const transcript = await xenstoreScenario(a, b);
  assert.deepEqual(ta.mismatches, []);
  assert.deepEqual(tb.mismatches, []);
  assert.deepEqual(JSON.parse(JSON.stringify(transcript)), fixture.transcript);
  assert.equal(ta.remaining(), 0, 'every recorded frame of connection a was used');
  assert.equal(tb.remaining(), 0, 'every recorded frame of connection b was used');
});

test('the recording shows what the unit tests assume of xenstored', () => {
  const t = new Map(fixture.transcript as [string, unknown][]);
  assert.equal(t.get('read missing'), 'ENOENT');
  assert.deepEqual(t.get('big list'), [120, true], 'a large directory is listed completely (XS_DIRECTORY_PART)');
  assert.equal((t.get('transaction') as unknown[])[0], 2, 'a conflicting transaction ran twice');
  assert.equal(t.get('domain path'), '/local/domain/0');
});
