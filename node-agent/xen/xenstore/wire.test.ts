import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { encodeMessage, joinStrings, PAYLOAD_MAX, splitStrings, XS_ERRORS, XsDecoder, XsProtocolError, XsType } from './wire.js';

test('message types and error names match xs_wire.h', () => {
  // From xen/include/public/io/xs_wire.h (Xen 4.17): XS_RESTRICT (20) is gone, so RESET_WATCHES is 21
  // and DIRECTORY_PART 22 (the prototype's notes had them off by one).
  assert.equal(XsType.WatchEvent, 15);
  assert.equal(XsType.Error, 16);
  assert.equal(XsType.SetTarget, 19);
  assert.equal(XsType.ResetWatches, 21);
  assert.equal(XsType.DirectoryPart, 22);
  assert.equal(XS_ERRORS.length, 16);
  assert.equal(XS_ERRORS[12], 'EAGAIN');
  // The header is the authority (scripts/install-deps installs libxen-dev).
  const text = readFileSync('/usr/include/xen/io/xs_wire.h', 'utf8');
  assert.match(text, /XS_RESET_WATCHES = XS_SET_TARGET \+ 2,\s*XS_DIRECTORY_PART,/);
  const names = [...text.matchAll(/XSD_ERROR\((E\w+)\)/g)].map((m) => m[1]);
  assert.deepEqual(names, [...XS_ERRORS]);
});

test('a message encodes as a 16-byte little-endian header and its payload', () => {
  const frame = encodeMessage({ type: XsType.Read, reqId: 0x01020304, txId: 7, payload: joinStrings(['/local']) });
  assert.equal(frame.toString('hex'), '02000000' + '04030201' + '07000000' + '07000000' + Buffer.from('/local\0').toString('hex'));
  assert.throws(() => encodeMessage({ type: XsType.Write, reqId: 1, txId: 0, payload: Buffer.alloc(PAYLOAD_MAX + 1) }), XsProtocolError);
});

test('the decoder reassembles messages split and joined at any byte', () => {
  const frames = [
    encodeMessage({ type: XsType.Read, reqId: 1, txId: 0, payload: Buffer.from('value') }),
    encodeMessage({ type: XsType.WatchEvent, reqId: 0, txId: 0, payload: joinStrings(['/a', 'tok']) }),
    encodeMessage({ type: XsType.Write, reqId: 2, txId: 3, payload: Buffer.from('OK\0') }),
  ];
  const all = Buffer.concat(frames);
  for (let cut1 = 0; cut1 < all.length; cut1 += 3) {
    for (const cut2 of [cut1 + 1, cut1 + 17, all.length]) {
      const d = new XsDecoder();
      const got = [...d.push(all.subarray(0, cut1)), ...d.push(all.subarray(cut1, cut2)), ...d.push(all.subarray(cut2))];
      assert.deepEqual(
        got.map((m) => [m.type, m.reqId, m.txId, m.payload.toString()]),
        [
          [2, 1, 0, 'value'],
          [15, 0, 0, '/a\0tok\0'],
          [11, 2, 3, 'OK\0'],
        ],
      );
      assert.equal(d.pending, 0);
    }
  }
});

test('a header announcing more than 4096 bytes is a protocol error, not a buffer to grow', () => {
  const header = Buffer.alloc(16);
  header.writeUInt32LE(2, 0);
  header.writeUInt32LE(PAYLOAD_MAX + 1, 12);
  assert.throws(() => new XsDecoder().push(header), /announces 4097 bytes/);
});

test('NUL-separated strings', () => {
  assert.deepEqual(splitStrings(joinStrings(['a', 'bé', ''])), ['a', 'bé', '']);
  assert.deepEqual(splitStrings(Buffer.from('x\0y')), ['x', 'y']);
  assert.deepEqual(splitStrings(Buffer.alloc(0)), []);
});
