// The xenstore wire protocol (xen/include/public/io/xs_wire.h): a 16-byte little-endian header
// {type, req_id, tx_id, len} followed by at most 4096 bytes of payload, strings NUL-separated.

export enum XsType {
  Control = 0,
  Directory = 1,
  Read = 2,
  GetPerms = 3,
  Watch = 4,
  Unwatch = 5,
  TransactionStart = 6,
  TransactionEnd = 7,
  Introduce = 8,
  Release = 9,
  GetDomainPath = 10,
  Write = 11,
  Mkdir = 12,
  Rm = 13,
  SetPerms = 14,
  WatchEvent = 15,
  Error = 16,
  IsDomainIntroduced = 17,
  Resume = 18,
  SetTarget = 19,
  // 20 was XS_RESTRICT, removed from Xen.
  ResetWatches = 21,
  DirectoryPart = 22,
}

export const HEADER_SIZE = 16;
export const PAYLOAD_MAX = 4096;
export const ABS_PATH_MAX = 3072;
export const REL_PATH_MAX = 2048;

/** Error names xenstored sends in XS_ERROR replies, in xs_wire.h's order. */
export const XS_ERRORS = [
  'EINVAL',
  'EACCES',
  'EEXIST',
  'EISDIR',
  'ENOENT',
  'ENOMEM',
  'ENOSPC',
  'EIO',
  'ENOTEMPTY',
  'ENOSYS',
  'EROFS',
  'EBUSY',
  'EAGAIN',
  'EISCONN',
  'E2BIG',
  'EPERM',
] as const;

export interface XsMessage {
  type: XsType;
  reqId: number;
  txId: number;
  payload: Buffer;
}

export class XsProtocolError extends Error {}

export function encodeMessage(msg: XsMessage): Buffer {
  if (msg.payload.length > PAYLOAD_MAX) {
    throw new XsProtocolError(`xenstore payload of ${msg.payload.length} bytes exceeds ${PAYLOAD_MAX}`);
  }
  const out = Buffer.alloc(HEADER_SIZE + msg.payload.length);
  out.writeUInt32LE(msg.type, 0);
  out.writeUInt32LE(msg.reqId >>> 0, 4);
  out.writeUInt32LE(msg.txId >>> 0, 8);
  out.writeUInt32LE(msg.payload.length, 12);
  msg.payload.copy(out, HEADER_SIZE);
  return out;
}

/**
 * Reassembles messages from a byte stream that may split or join them anywhere. A header announcing
 * more than PAYLOAD_MAX bytes is a protocol violation (the stream cannot be trusted after it).
 */
export class XsDecoder {
  private buffer: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): XsMessage[] {
    this.buffer = this.buffer.length ? Buffer.concat([this.buffer, chunk]) : chunk;
    const out: XsMessage[] = [];
    while (this.buffer.length >= HEADER_SIZE) {
      const len = this.buffer.readUInt32LE(12);
      if (len > PAYLOAD_MAX) throw new XsProtocolError(`xenstore message announces ${len} bytes of payload (max ${PAYLOAD_MAX})`);
      if (this.buffer.length < HEADER_SIZE + len) break;
      out.push({
        type: this.buffer.readUInt32LE(0),
        reqId: this.buffer.readUInt32LE(4),
        txId: this.buffer.readUInt32LE(8),
        payload: Buffer.from(this.buffer.subarray(HEADER_SIZE, HEADER_SIZE + len)),
      });
      this.buffer = this.buffer.subarray(HEADER_SIZE + len);
    }
    return out;
  }

  /** Bytes received that do not yet form a whole message. */
  get pending(): number {
    return this.buffer.length;
  }
}

/** `a\0b\0` from ['a', 'b']; values may hold any bytes except NUL. */
export function joinStrings(parts: (string | Buffer)[]): Buffer {
  return Buffer.concat(parts.flatMap((p) => [typeof p === 'string' ? Buffer.from(p, 'utf8') : p, Buffer.from([0])]));
}

/** ['a', 'b'] from `a\0b\0` (a missing final NUL is tolerated). */
export function splitStrings(payload: Buffer): string[] {
  const text = payload.toString('utf8');
  const parts = text.split('\0');
  if (parts.at(-1) === '') parts.pop();
  return parts;
}
