import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as der from './der.js';

const hex = (b: Buffer) => b.toString('hex');

test('OIDs, integers, named bits and lengths encode as DER requires', () => {
  assert.equal(hex(der.oid('1.2.840.10045.4.3.2')), '06082a8648ce3d040302'); // ecdsa-with-SHA256
  assert.equal(hex(der.oid('2.5.29.19')), '0603551d13');
  assert.equal(hex(der.oid('2.999.3')), '0603883703'); // first arc 2 with a large second arc
  assert.throws(() => der.oid('1.40'), /bad first arcs/);
  assert.throws(() => der.oid('1.2.x'), /dotted decimal/);
  assert.equal(hex(der.unsignedInteger(Buffer.from([0x80]))), '02020080', 'a high bit gets a leading zero');
  assert.equal(hex(der.unsignedInteger(Buffer.from([0, 0, 0x7f]))), '02017f', 'redundant zeros go');
  assert.equal(hex(der.unsignedInteger(Buffer.from([0, 0]))), '020100');
  assert.equal(hex(der.smallInteger(2)), '020102');
  assert.equal(hex(der.namedBits([0])), '03020780', 'digitalSignature: 7 unused bits');
  assert.equal(hex(der.namedBits([5, 6])), '03020106', 'keyCertSign + cRLSign: 1 unused bit');
  assert.equal(hex(der.namedBits([8])), '0303070080', 'bit 8 is the second byte');
  assert.equal(hex(der.boolean(true)), '0101ff');
  assert.equal(hex(der.tlv(0x04, Buffer.alloc(127))).slice(0, 4), '047f');
  assert.equal(hex(der.tlv(0x04, Buffer.alloc(128))).slice(0, 6), '048180');
  assert.equal(hex(der.tlv(0x04, Buffer.alloc(300))).slice(0, 8), '0482012c');
});

test('times: UTCTime until 2049, GeneralizedTime from 2050, whole seconds', () => {
  assert.equal(der.time(new Date('2026-12-06T02:03:04.999Z')).toString('latin1').slice(2), '261206020304Z');
  assert.equal(der.time(new Date('2049-12-31T23:59:59Z'))[0], der.TAG.UTC_TIME);
  assert.equal(der.time(new Date('2050-01-01T00:00:00Z')).toString('latin1').slice(2), '20500101000000Z');
  assert.equal(der.time(new Date('1949-06-01T00:00:00Z'))[0], der.TAG.GENERALIZED_TIME);
  assert.throws(() => der.time(new Date('nope')), /invalid date/);
});

test('the reader walks nested elements and refuses lengths past their container', () => {
  const enc = der.sequence(der.oid('2.5.4.3'), der.sequence(der.boolean(false), der.octetString(Buffer.alloc(200, 1))));
  const top = der.readElement(enc, 0);
  assert.equal(top.end, enc.length);
  const [o, inner] = der.children(enc, top);
  assert.equal(der.readOid(enc, o!), '2.5.4.3');
  const [, octets] = der.children(enc, inner!);
  assert.equal(octets!.end - octets!.start, 200);
  assert.equal(
    der.readOid(der.oid('1.2.840.113549.1.1.11'), der.readElement(der.oid('1.2.840.113549.1.1.11'), 0)),
    '1.2.840.113549.1.1.11',
  );
  assert.throws(() => der.readElement(enc.subarray(0, enc.length - 1), 0), /longer than its container/);
  assert.throws(() => der.readElement(Buffer.from([0x30]), 0), /truncated element/);
  assert.throws(() => der.readElement(Buffer.from([0x30, 0x85, 1, 1, 1, 1, 1]), 0), /bad length/);
  assert.throws(() => der.readElement(Buffer.from([0x30, 0x82, 1]), 0), /truncated length/);
  assert.throws(() => der.readElement(Buffer.from([0x1f, 0x01, 0]), 0), /multi-byte tags/);
  // A child that claims more than its parent holds, inside a buffer that has the bytes.
  const lying = Buffer.from([0x30, 0x03, 0x04, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00]);
  assert.throws(() => der.children(lying, der.readElement(lying, 0)), /longer than its container/);
});
