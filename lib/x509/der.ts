// DER (X.690) as far as X.509 certificates need it: encoders for the types a certificate holds, and a
// reader of tag-length-value elements for picking fields out of a certificate someone else made. Every
// length the reader meets is checked against the buffer: it never reads past the input.

/** One encoded element: tag, length, value. */
export function tlv(tag: number, value: Buffer): Buffer {
  return Buffer.concat([Buffer.from([tag]), encodeLength(value.length), value]);
}

function encodeLength(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

export const TAG = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  UTF8_STRING: 0x0c,
  IA5_STRING: 0x16,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
  SEQUENCE: 0x30,
  SET: 0x31,
} as const;

export const sequence = (...items: Buffer[]) => tlv(TAG.SEQUENCE, Buffer.concat(items));
export const set = (...items: Buffer[]) => tlv(TAG.SET, Buffer.concat(items));
export const octetString = (b: Buffer) => tlv(TAG.OCTET_STRING, b);
export const utf8String = (s: string) => tlv(TAG.UTF8_STRING, Buffer.from(s, 'utf8'));
export const ia5String = (s: string) => tlv(TAG.IA5_STRING, Buffer.from(s, 'ascii'));
export const boolean = (v: boolean) => tlv(TAG.BOOLEAN, Buffer.from([v ? 0xff : 0x00]));
export const nullValue = () => tlv(TAG.NULL, Buffer.alloc(0));
/** [n] EXPLICIT: a constructed context-specific tag around an encoded element. */
export const explicit = (n: number, inner: Buffer) => tlv(0xa0 | n, inner);
/** [n] IMPLICIT of a primitive type: the value's bytes under a context-specific tag. */
export const implicitPrimitive = (n: number, value: Buffer) => tlv(0x80 | n, value);

/** A non-negative INTEGER from its big-endian magnitude (minimal: no redundant leading zeros, a 0 byte before a high bit). */
export function unsignedInteger(magnitude: Buffer): Buffer {
  let i = 0;
  while (i < magnitude.length - 1 && magnitude[i] === 0) i++;
  let v = magnitude.subarray(i);
  if (v.length === 0) v = Buffer.from([0]);
  if (v[0]! & 0x80) v = Buffer.concat([Buffer.from([0]), v]);
  return tlv(TAG.INTEGER, v);
}

export const smallInteger = (n: number) => {
  if (!Number.isInteger(n) || n < 0 || n > 0xffff_ffff) throw new Error(`integer ${n} out of range`);
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return unsignedInteger(b);
};

/** A BIT STRING of whole bytes (a key or a signature). */
export const bitString = (bytes: Buffer) => tlv(TAG.BIT_STRING, Buffer.concat([Buffer.from([0]), bytes]));

/**
 * A named BIT STRING (KeyUsage): bit 0 is the first byte's high bit; trailing zero bits are not
 * encoded, as DER requires of named bit lists.
 */
export function namedBits(bits: number[]): Buffer {
  if (bits.length === 0) return tlv(TAG.BIT_STRING, Buffer.from([0]));
  const last = Math.max(...bits);
  const bytes = Buffer.alloc(Math.floor(last / 8) + 1);
  for (const b of bits) bytes[Math.floor(b / 8)]! |= 0x80 >> (b % 8);
  const unused = 7 - (last % 8);
  return tlv(TAG.BIT_STRING, Buffer.concat([Buffer.from([unused]), bytes]));
}

/** An OBJECT IDENTIFIER from its dotted form. */
export function oid(dotted: string): Buffer {
  const arcs = dotted.split('.').map((a) => {
    if (!/^\d+$/.test(a)) throw new Error(`OID ${dotted}: not dotted decimal`);
    return BigInt(a);
  });
  if (arcs.length < 2 || arcs[0]! > 2n || (arcs[0]! < 2n && arcs[1]! > 39n)) throw new Error(`OID ${dotted}: bad first arcs`);
  const out: number[] = [];
  const base128 = (v: bigint) => {
    const groups: number[] = [Number(v & 0x7fn)];
    for (v >>= 7n; v > 0n; v >>= 7n) groups.unshift(Number(v & 0x7fn) | 0x80);
    out.push(...groups);
  };
  base128(arcs[0]! * 40n + arcs[1]!);
  for (const a of arcs.slice(2)) base128(a);
  return tlv(TAG.OID, Buffer.from(out));
}

/** RFC 5280 4.1.2.5: UTCTime for 1950–2049, GeneralizedTime otherwise; whole seconds, UTC. */
export function time(d: Date): Buffer {
  if (Number.isNaN(d.getTime())) throw new Error('invalid date');
  const iso = d.toISOString(); // YYYY-MM-DDTHH:MM:SS.sssZ (years 0..9999)
  const year = d.getUTCFullYear();
  if (year < 0 || year > 9999) throw new Error(`date ${iso}: year out of range`);
  const digits = iso.slice(0, 19).replace(/[-T:]/g, '');
  if (year >= 1950 && year < 2050) return tlv(TAG.UTC_TIME, Buffer.from(`${digits.slice(2)}Z`, 'ascii'));
  return tlv(TAG.GENERALIZED_TIME, Buffer.from(`${digits}Z`, 'ascii'));
}

/** An element the reader found: `header` is where its tag starts, `start`..`end` its value. */
export interface Element {
  tag: number;
  header: number;
  start: number;
  end: number;
}

/** The element at `offset`, within `limit` (single-byte tags and definite lengths only, as DER has). */
export function readElement(buf: Buffer, offset: number, limit = buf.length): Element {
  if (offset + 2 > limit) throw new Error('DER: truncated element');
  const tag = buf[offset]!;
  if ((tag & 0x1f) === 0x1f) throw new Error('DER: multi-byte tags are not supported');
  let len = buf[offset + 1]!;
  let start = offset + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4) throw new Error('DER: bad length');
    if (start + n > limit) throw new Error('DER: truncated length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[start + i]!;
    start += n;
  }
  const end = start + len;
  if (end > limit) throw new Error('DER: element longer than its container');
  return { tag, header: offset, start, end };
}

/** The elements inside a constructed element, in order. */
export function children(buf: Buffer, parent: Element): Element[] {
  const out: Element[] = [];
  for (let at = parent.start; at < parent.end;) {
    const e = readElement(buf, at, parent.end);
    out.push(e);
    at = e.end;
  }
  return out;
}

/** The dotted form of an OBJECT IDENTIFIER element's value. */
export function readOid(buf: Buffer, e: Element): string {
  const arcs: bigint[] = [];
  let v = 0n;
  for (let i = e.start; i < e.end; i++) {
    v = (v << 7n) | BigInt(buf[i]! & 0x7f);
    if (!(buf[i]! & 0x80)) {
      arcs.push(v);
      v = 0n;
    }
  }
  if (arcs.length === 0) throw new Error('DER: empty OID');
  const first = arcs[0]! < 80n ? arcs[0]! / 40n : 2n;
  return [first, arcs[0]! - first * 40n, ...arcs.slice(1)].join('.');
}
