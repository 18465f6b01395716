import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { encodeFrame, FrameDecoder, FrameType, HEADER_SIZE, MAX_PAYLOAD, type DecodeResult, type Frame } from './frames.js';

interface Vector {
  name: string;
  type: number;
  flags: number;
  stream: number;
  json?: Record<string, unknown>;
  hex?: string;
  frame: string;
}
// The vectors live in the source tree (dist/ has only the compiled code).
const vectorsPath = fileURLToPath(new URL('../../../contracts/guest-channel/vectors.json', import.meta.url));
const vectors = JSON.parse(readFileSync(vectorsPath, 'utf8')) as { valid: Vector[]; malformed: { name: string; frame: string }[] };

function drain(d: FrameDecoder): DecodeResult[] {
  const out: DecodeResult[] = [];
  for (let r = d.next(); r; r = d.next()) {
    out.push(r);
    if (!r.ok) break;
  }
  return out;
}

function frames(results: DecodeResult[]): Frame[] {
  return results.map((r) => {
    assert.ok(r.ok, r.ok ? '' : r.reason);
    return r.frame;
  });
}

test('every valid vector decodes to its fields and re-encodes byte for byte', () => {
  assert.ok(vectors.valid.length >= 9);
  for (const v of vectors.valid) {
    const d = new FrameDecoder();
    d.push(Buffer.from(v.frame, 'hex'));
    const [f, ...rest] = frames(drain(d));
    assert.equal(rest.length, 0, v.name);
    assert.ok(f, v.name);
    assert.deepEqual([f.type, f.flags, f.stream], [v.type, v.flags, v.stream], v.name);
    if (v.json) assert.deepEqual(f.json, v.json, v.name);
    else assert.equal(f.payload.toString('hex'), v.hex, v.name);
    const again = encodeFrame(v.type, v.stream, v.json ?? Buffer.from(v.hex ?? '', 'hex'), v.flags);
    assert.equal(again.toString('hex'), v.frame, v.name);
    assert.equal(d.buffered, 0);
  }
});

test('every malformed vector is rejected with a reason, and the decoder stays failed', () => {
  assert.ok(vectors.malformed.length >= 5);
  const reasons = new Set<string>();
  for (const v of vectors.malformed) {
    const d = new FrameDecoder();
    d.push(Buffer.from(v.frame, 'hex'));
    const results = drain(d);
    const last = results.at(-1);
    assert.ok(last && !last.ok, `${v.name} was accepted`);
    assert.ok(last.reason.length > 5, v.name);
    reasons.add(last.reason);
    d.push(encodeFrame(FrameType.STDOUT, 1, Buffer.from('x')));
    const after = d.next();
    assert.ok(after && !after.ok, v.name);
    assert.equal(d.buffered, 0, `${v.name}: a failed decoder holds nothing`);
  }
  assert.equal(reasons.size, vectors.malformed.length, 'each malformation has its own reason');
});

test('frames split at every byte boundary and several frames in one chunk come out the same', () => {
  const stream = Buffer.concat(vectors.valid.map((v) => Buffer.from(v.frame, 'hex')));
  const whole = new FrameDecoder();
  whole.push(stream);
  const expected = frames(drain(whole));
  assert.equal(expected.length, vectors.valid.length);
  for (const size of [1, 2, 3, 5, 11, 12, 13, 64]) {
    const d = new FrameDecoder();
    const got: Frame[] = [];
    for (let i = 0; i < stream.length; i += size) {
      d.push(stream.subarray(i, i + size));
      got.push(...frames(drain(d)));
      assert.ok(d.buffered <= HEADER_SIZE + MAX_PAYLOAD);
    }
    assert.deepEqual(got, expected, `chunks of ${size}`);
  }
});

test('a split header is rejected as soon as its bad bytes arrive', () => {
  const d = new FrameDecoder();
  d.push(Buffer.from([0x4b]));
  assert.equal(d.next(), undefined);
  d.push(Buffer.from([0x00]));
  const r = d.next();
  assert.ok(r && !r.ok && /magic/.test(r.reason));
});

test('the decoder holds at most one frame: a maximal payload, then nothing once it is out', () => {
  const d = new FrameDecoder();
  const big = encodeFrame(FrameType.STDOUT, 1, Buffer.alloc(MAX_PAYLOAD, 7));
  for (let i = 0; i < big.length - 1; i += 1000) {
    d.push(big.subarray(i, Math.min(i + 1000, big.length - 1)));
    assert.equal(d.next(), undefined);
  }
  assert.equal(d.buffered, big.length - 1);
  assert.ok(d.midFrame);
  d.push(big.subarray(big.length - 1));
  const f = frames(drain(d));
  assert.equal(f[0]!.payload.length, MAX_PAYLOAD);
  assert.equal(d.buffered, 0);
  assert.throws(() => encodeFrame(FrameType.STDOUT, 1, Buffer.alloc(MAX_PAYLOAD + 1)), RangeError);
});

test('seeking the handshake skips garbage, half frames, echoed text and a false magic, then finds the HELLO', () => {
  const hello = Buffer.from(vectors.valid[0]!.frame, 'hex');
  const falseStart = Buffer.from([0x4b, 0x43, 0x01, 0x00, 0, 0, 0, 0, 5, 0, 0, 0, 0x4b, 0x43]); // HELLO with 5 bytes of non-JSON
  const garbage = Buffer.concat([
    Buffer.from('login: KKC\x03 '),
    encodeFrame(FrameType.STDOUT, 3, Buffer.from('cut')).subarray(5),
    falseStart,
    Buffer.from('xyz'),
  ]);
  for (const size of [1, 7, 1000]) {
    const d = new FrameDecoder({ seekHandshake: true });
    const input = Buffer.concat([garbage, hello]);
    const got: Frame[] = [];
    for (let i = 0; i < input.length; i += size) {
      d.push(input.subarray(i, i + size));
      got.push(...frames(drain(d)));
    }
    assert.equal(got.length, 1, `chunks of ${size}`);
    assert.equal(got[0]!.type, FrameType.HELLO);
    assert.deepEqual(got[0]!.json, vectors.valid[0]!.json);
    assert.equal(d.skipped, garbage.length, `chunks of ${size}`);
  }
});

test('after seeking is turned off, the next bad byte is an error', () => {
  const d = new FrameDecoder({ seekHandshake: true });
  d.push(Buffer.concat([Buffer.from('noise'), Buffer.from(vectors.valid[0]!.frame, 'hex')]));
  assert.equal(frames(drain(d)).length, 1);
  d.seekHandshake = false;
  d.push(Buffer.from('noise'));
  const r = d.next();
  assert.ok(r && !r.ok);
});
