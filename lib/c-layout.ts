// C struct layouts as data: offsets and sizes written once, checked against Xen's and Linux's headers by
// tests that compile a probe with gcc (node-agent/xen/abi.test.ts, node-agent/net/link.test.ts), and used
// to read and write the bytes we pass to the kernel and the hypervisor.

export type FieldType = 'u8' | 'u16' | 'u32' | 'u64' | 'i32' | 'i64' | 'bytes';

export interface Field {
  offset: number;
  type: FieldType;
  /** For 'bytes': the length. */
  length?: number;
  /** The C member name when it differs from ours (nested members as "a.b"). */
  c?: string;
}

export interface Layout<F extends string = string> {
  /** The C type, e.g. "struct xen_domctl". */
  c: string;
  size: number;
  fields: Record<F, Field>;
}

export function layout<F extends string>(c: string, size: number, fields: Record<F, Field>): Layout<F> {
  return { c, size, fields };
}

export function getField<F extends string>(buf: Buffer, l: Layout<F>, name: F, base = 0): bigint | number | Buffer {
  const f = l.fields[name];
  const at = base + f.offset;
  switch (f.type) {
    case 'u8':
      return buf.readUInt8(at);
    case 'u16':
      return buf.readUInt16LE(at);
    case 'u32':
      return buf.readUInt32LE(at);
    case 'i32':
      return buf.readInt32LE(at);
    case 'u64':
      return buf.readBigUInt64LE(at);
    case 'i64':
      return buf.readBigInt64LE(at);
    case 'bytes':
      return buf.subarray(at, at + f.length!);
  }
}

export function getNumber<F extends string>(buf: Buffer, l: Layout<F>, name: F, base = 0): number {
  const v = getField(buf, l, name, base);
  if (typeof v === 'bigint') {
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new RangeError(`${l.c}.${name} = ${v} is beyond a safe integer`);
    return Number(v);
  }
  if (typeof v !== 'number') throw new TypeError(`${l.c}.${name} is not a number`);
  return v;
}

export function setField<F extends string>(buf: Buffer, l: Layout<F>, name: F, value: number | bigint | Buffer, base = 0): void {
  const f = l.fields[name];
  const at = base + f.offset;
  switch (f.type) {
    case 'u8':
      buf.writeUInt8(Number(value), at);
      break;
    case 'u16':
      buf.writeUInt16LE(Number(value), at);
      break;
    case 'u32':
      buf.writeUInt32LE(Number(value), at);
      break;
    case 'i32':
      buf.writeInt32LE(Number(value), at);
      break;
    case 'u64':
      buf.writeBigUInt64LE(BigInt(value as number | bigint), at);
      break;
    case 'i64':
      buf.writeBigInt64LE(BigInt(value as number | bigint), at);
      break;
    case 'bytes': {
      const src = value as Buffer;
      if (src.length > f.length!) throw new RangeError(`${l.c}.${name} holds ${f.length} bytes, got ${src.length}`);
      buf.fill(0, at, at + f.length!);
      src.copy(buf, at);
      break;
    }
  }
}

/** Linux's _IOC(dir, type, nr, size) for x86_64. */
export const IOC_NONE = 0;
export const IOC_WRITE = 1;
export const IOC_READ = 2;
export function ioc(dir: number, type: string, nr: number, size: number): number {
  return ((dir << 30) | (size << 16) | (type.charCodeAt(0) << 8) | nr) >>> 0;
}
