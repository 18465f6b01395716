// IPv4 addresses carried inside IPv6 ones. A guest's IPv6 flow leaves from dom0's sockets; if dom0
// routes one of these forms (a NAT64 gateway, a 6to4 or Teredo relay), the flow reaches the embedded
// IPv4 address, so the policy gives it the IPv4 verdict too (policy.ts).

export interface Embedded {
  ip: number;
  /** Which form carries it, for the refusal reason. */
  form: string;
}

const at = (b: Buffer, off: number, idx: number[]): number =>
  ((b[off + idx[0]!]! << 24) | (b[off + idx[1]!]! << 16) | (b[off + idx[2]!]! << 8) | b[off + idx[3]!]!) >>> 0;
const zero = (b: Buffer, off: number, from: number, to: number): boolean => {
  for (let i = from; i < to; i++) if (b[off + i] !== 0) return false;
  return true;
};
const head = (b: Buffer, off: number, bytes: number[]): boolean => bytes.every((v, i) => b[off + i] === v);

// RFC 6052 layouts by prefix length: where the 32 IPv4 bits sit (byte 8, the "u" octet, is skipped and
// zero) and where the zero suffix starts. Only lengths >= 48 fit in the local-use 64:ff9b:1::/48.
const RFC6052: { len: number; idx: number[]; suffix: number }[] = [
  { len: 48, idx: [6, 7, 9, 10], suffix: 11 },
  { len: 56, idx: [7, 9, 10, 11], suffix: 12 },
  { len: 64, idx: [9, 10, 11, 12], suffix: 13 },
];

/** Every IPv4 address the IPv6 address at b[off..off+16) may stand for (IPv4-mapped is not included: refused outright). */
export function embeddedIpv4(b: Buffer, off: number): Embedded[] {
  const last = at(b, off, [12, 13, 14, 15]);
  // IPv4-compatible ::a.b.c.d (deprecated; :: and ::1 are refused before) and SIIT's ::ffff:0:a.b.c.d.
  if (zero(b, off, 0, 12)) return [{ ip: last, form: 'IPv4-compatible' }];
  if (zero(b, off, 0, 8) && b[off + 8] === 0xff && b[off + 9] === 0xff && zero(b, off, 10, 12))
    return [{ ip: last, form: 'IPv4-translated' }];
  // NAT64 well-known prefix 64:ff9b::/96 (always /96).
  if (head(b, off, [0, 0x64, 0xff, 0x9b]) && zero(b, off, 4, 12)) return [{ ip: last, form: 'NAT64' }];
  // NAT64 local-use 64:ff9b:1::/48 (RFC 8215): the operator picks the length, so every layout whose
  // u octet and suffix are zero is a reading, and the flow is refused if any reading is. The /96
  // reading always holds (it has no spare bits); it is dropped only when it reads 0.0.0.0 beside
  // another reading, i.e. it is the zero suffix of a shorter layout.
  if (head(b, off, [0, 0x64, 0xff, 0x9b, 0, 1])) {
    const out: Embedded[] = [];
    for (const l of RFC6052)
      if (b[off + 8] === 0 && zero(b, off, l.suffix, 16)) out.push({ ip: at(b, off, l.idx), form: `NAT64 /${l.len}` });
    if (last !== 0 || out.length === 0) out.push({ ip: last, form: 'NAT64 /96' });
    return out;
  }
  // 6to4 2002:AABB:CCDD::/48.
  if (b[off] === 0x20 && b[off + 1] === 0x02) return [{ ip: at(b, off, [2, 3, 4, 5]), form: '6to4' }];
  // Teredo 2001:0::/32: the server in bytes 4-7, the client (inverted) in bytes 12-15.
  if (head(b, off, [0x20, 0x01, 0, 0]))
    return [
      { ip: at(b, off, [4, 5, 6, 7]), form: 'Teredo server' },
      { ip: ~last >>> 0, form: 'Teredo client' },
    ];
  return [];
}
