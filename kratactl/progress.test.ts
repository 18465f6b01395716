// Pull progress: one line per step when stderr is a file or a pipe; on a terminal, one bar per layer
// redrawn in place (cursor up, erase down), at most 10 times a second except when a step completes.
import { test, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { bar, ProgressBars } from './progress.js';
import type { PullEvent } from '../contracts/agent-api/types.js';

/** A stream that keeps every write, a terminal or not. */
class FakeStream extends Writable {
  writes: string[] = [];
  constructor(readonly isTTY: boolean) {
    super();
  }
  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: () => void): void {
    this.writes.push(chunk.toString('utf8'));
    callback();
  }
  /** Everything written since the last call. */
  take(): string {
    return this.writes.splice(0).join('');
  }
}

const A = `sha256:${'a'.repeat(64)}`;
const B = `sha256:${'b'.repeat(64)}`;
const DIGEST = `sha256:${'d'.repeat(64)}`;
const REF = 'registry.example/app:1';
const resolved: PullEvent = {
  kind: 'resolved',
  ref: REF,
  digest: DIGEST,
  layers: [
    { digest: A, size: 2_000_000 },
    { digest: B, size: 500_000 },
  ],
};
const ESC = '\x1b';
const UP_AND_CLEAR = (n: number) => `${ESC}[${n}A${ESC}[J`;

// The clock the throttle reads.
let now = 1_000_000;
const realNow = Date.now;
beforeEach(() => {
  now = 1_000_000;
  Date.now = () => now;
});
afterEach(() => {
  Date.now = realNow;
});

/** One layer's line as drawn on a terminal. */
function barLine(digest: string, fraction: number, done: string, total: string, label: string): string {
  return `${digest.slice(7, 19)} ${bar(fraction)} ${done.padStart(9)} / ${total.padEnd(9)} ${label}`;
}

test('bar: empty, partial, full, clamped, any width', () => {
  assert.equal(bar(0), `[>${' '.repeat(29)}]`);
  assert.equal(bar(0.5), `[${'='.repeat(15)}>${' '.repeat(14)}]`);
  assert.equal(bar(1), `[${'='.repeat(30)}]`);
  assert.equal(bar(-3), bar(0));
  assert.equal(bar(7), bar(1));
  assert.equal(bar(0.25, 8), '[==>     ]');
  assert.equal(bar(0.999, 10), '[=========>]');
  for (const f of [0, 0.01, 0.33, 0.5, 0.97, 1]) assert.equal(bar(f).length, 32, `bar(${f}) keeps its width`);
});

test('line mode (not a terminal): one line per step, no escapes, nothing for byte counts', () => {
  const out = new FakeStream(false);
  const p = new ProgressBars(out);
  p.onEvent(resolved);
  assert.equal(out.take(), `${REF}: ${DIGEST}, 2 layers, 2.5 MB\n`);
  p.onEvent({ kind: 'download', layer: A, bytes: 1_000_000, total: 2_000_000 });
  p.onEvent({ kind: 'download', layer: B, bytes: 500_000, total: 500_000 });
  assert.equal(out.take(), '', 'byte counts draw nothing in line mode');
  p.onEvent({ kind: 'downloaded', layer: B });
  assert.equal(out.take(), 'bbbbbbbbbbbb: downloaded 0.5 MB\n');
  p.onEvent({ kind: 'unpack', layer: B, bytes: 100, total: 500_000 });
  assert.equal(out.take(), '');
  p.onEvent({ kind: 'unpacked', layer: B });
  assert.equal(out.take(), 'bbbbbbbbbbbb: unpacked\n');
  p.onEvent({ kind: 'downloaded', layer: A });
  p.onEvent({ kind: 'unpacked', layer: A });
  assert.equal(out.take(), 'aaaaaaaaaaaa: downloaded 2.0 MB\naaaaaaaaaaaa: unpacked\n');
  // A layer the pull did not announce is ignored.
  p.onEvent({ kind: 'downloaded', layer: DIGEST });
  p.onEvent({ kind: 'done', digest: DIGEST, size: 123 });
  p.finish();
  assert.equal(out.take(), '');
  const cached = new FakeStream(false);
  new ProgressBars(cached).onEvent({ kind: 'cached', ref: REF, digest: DIGEST });
  assert.equal(cached.take(), `${REF}: ${DIGEST} is cached\n`);
});

test('terminal: one bar per layer, redrawn in place, throttled to 10 a second except on completion', () => {
  const out = new FakeStream(true);
  const p = new ProgressBars(out);
  p.onEvent(resolved);
  assert.equal(
    out.take(),
    `${REF}: ${DIGEST}, 2 layers, 2.5 MB\n` +
      [barLine(A, 0, '0.0 MB', '2.0 MB', 'waiting'), barLine(B, 0, '0.0 MB', '0.5 MB', 'waiting')].join('\n') +
      '\n',
  );

  // Within 100 ms of the last draw: nothing.
  now += 50;
  p.onEvent({ kind: 'download', layer: A, bytes: 500_000, total: 2_000_000 });
  assert.equal(out.take(), '');
  // 100 ms after it: one redraw over the old bars, with everything that happened meanwhile.
  now += 50;
  p.onEvent({ kind: 'download', layer: B, bytes: 250_000, total: 500_000 });
  assert.equal(
    out.take(),
    UP_AND_CLEAR(2) +
      [barLine(A, 0.25, '0.5 MB', '2.0 MB', 'downloading'), barLine(B, 0.5, '0.3 MB', '0.5 MB', 'downloading')].join('\n') +
      '\n',
  );

  // Many updates in one burst: still one draw per 100 ms.
  for (let i = 1; i <= 20; i++) {
    now += 10;
    p.onEvent({ kind: 'download', layer: A, bytes: 500_000 + i * 50_000, total: 2_000_000 });
  }
  const burst = out.take();
  assert.equal(burst.split(UP_AND_CLEAR(2)).length - 1, 2, '200 ms of updates, two redraws');

  // A completion is drawn at once, however recent the last draw.
  p.onEvent({ kind: 'downloaded', layer: B });
  assert.equal(
    out.take(),
    UP_AND_CLEAR(2) +
      [barLine(A, 0.75, '1.5 MB', '2.0 MB', 'downloading'), barLine(B, 1, '0.5 MB', '0.5 MB', 'downloaded')].join('\n') +
      '\n',
  );
  p.onEvent({ kind: 'unpack', layer: B, bytes: 100_000, total: 500_000 });
  assert.equal(out.take(), '', 'throttled');
  p.onEvent({ kind: 'unpacked', layer: B });
  assert.equal(
    out.take(),
    UP_AND_CLEAR(2) +
      [barLine(A, 0.75, '1.5 MB', '2.0 MB', 'downloading'), barLine(B, 1, '0.5 MB', '0.5 MB', 'unpacked')].join('\n') +
      '\n',
  );

  // Unpacking shows the unpacked bytes, not the downloaded ones.
  p.onEvent({ kind: 'downloaded', layer: A });
  out.take();
  now += 100;
  p.onEvent({ kind: 'unpack', layer: A, bytes: 1_000_000, total: 2_000_000 });
  assert.equal(
    out.take(),
    UP_AND_CLEAR(2) + [barLine(A, 0.5, '1.0 MB', '2.0 MB', 'unpacking'), barLine(B, 1, '0.5 MB', '0.5 MB', 'unpacked')].join('\n') + '\n',
  );
  p.onEvent({ kind: 'unpacked', layer: A });
  out.take();

  // finish() leaves the final state on screen, drawn over the last bars.
  p.onEvent({ kind: 'done', digest: DIGEST, size: 1 });
  out.take();
  p.finish();
  assert.equal(
    out.take(),
    UP_AND_CLEAR(2) + [barLine(A, 1, '2.0 MB', '2.0 MB', 'unpacked'), barLine(B, 1, '0.5 MB', '0.5 MB', 'unpacked')].join('\n') + '\n',
  );
});

test('terminal: a message line clears the bars first; a cached image draws no bars', () => {
  const out = new FakeStream(true);
  const p = new ProgressBars(out);
  p.onEvent(resolved);
  out.take();
  // A second pull reported through the same bars (e.g. kratactl pulling twice): the old bars go.
  now += 1_000;
  p.onEvent({ ...resolved, ref: 'other:2' } as PullEvent);
  const text = out.take();
  assert.ok(text.startsWith(UP_AND_CLEAR(2) + `other:2: ${DIGEST}, 2 layers`), JSON.stringify(text));

  const cachedOut = new FakeStream(true);
  const cached = new ProgressBars(cachedOut);
  cached.onEvent({ kind: 'cached', ref: REF, digest: DIGEST });
  cached.finish();
  assert.equal(cachedOut.take(), `${REF}: ${DIGEST} is cached\n`);
});

test('terminal: a layer of size 0 is drawn full, not as NaN', () => {
  const out = new FakeStream(true);
  const p = new ProgressBars(out);
  p.onEvent({ kind: 'resolved', ref: REF, digest: DIGEST, layers: [{ digest: A, size: 0 }] });
  assert.equal(out.take(), `${REF}: ${DIGEST}, 1 layers, 0.0 MB\n` + barLine(A, 1, '0.0 MB', '0.0 MB', 'waiting') + '\n');
});
