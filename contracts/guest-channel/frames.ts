// The guest channel's frames (PROTOCOL.md beside this file): constants, encoding, and a decoder that holds
// at most one frame and rejects malformed input with a reason. Both the agent and test doubles use it.

/** The first two bytes of every frame: `K` `C`. */
export const MAGIC0 = 0x4b;
export const MAGIC1 = 0x43;
export const HEADER_SIZE = 12;
export const MAX_PAYLOAD = 32768;
export const INITIAL_WINDOW = 262144;
export const MAX_SESSIONS = 16;
/** flags bit 0: end of this direction of data. */
export const FIN = 1;
/** The versions this side speaks. */
export const PROTOCOL_VERSION = { min: 1, max: 2 } as const;
/** The first version with the bulk ring (BULK_OFFER, BULK_SWITCH). */
export const BULK_VERSION = 2;

export const FrameType = {
  HELLO: 0x01,
  HELLO_ACK: 0x02,
  BULK_OFFER: 0x03,
  BULK_SWITCH: 0x04,
  EXEC: 0x10,
  STARTED: 0x11,
  EXIT: 0x12,
  STDIN: 0x20,
  STDOUT: 0x21,
  STDERR: 0x22,
  WINDOW: 0x23,
  RESIZE: 0x24,
  SIGNAL: 0x25,
  CLOSE: 0x26,
  METRICS_REQUEST: 0x30,
  METRICS: 0x31,
} as const;
export type FrameTypeValue = (typeof FrameType)[keyof typeof FrameType];

const KNOWN_TYPES = new Set<number>(Object.values(FrameType));
/** Types whose payload is one JSON object. */
export const JSON_TYPES = new Set<number>([
  FrameType.HELLO,
  FrameType.HELLO_ACK,
  FrameType.BULK_OFFER,
  FrameType.EXEC,
  FrameType.STARTED,
  FrameType.EXIT,
  FrameType.METRICS,
]);

export function frameTypeName(type: number): string {
  for (const [name, v] of Object.entries(FrameType)) if (v === type) return name;
  return `0x${type.toString(16).padStart(2, '0')}`;
}

export interface Frame {
  type: number;
  flags: number;
  stream: number;
  payload: Buffer;
  /** The parsed payload of a JSON type. */
  json?: Record<string, unknown>;
}

const EMPTY = Buffer.alloc(0);

/** One frame; a non-Buffer payload is written as JSON. Throws RangeError when the payload is over MAX_PAYLOAD. */
export function encodeFrame(type: number, stream: number, payload: Buffer | object = EMPTY, flags = 0): Buffer {
  const body = Buffer.isBuffer(payload) ? payload : Buffer.from(JSON.stringify(payload));
  if (body.length > MAX_PAYLOAD) throw new RangeError(`a ${frameTypeName(type)} payload of ${body.length} bytes is over ${MAX_PAYLOAD}`);
  const out = Buffer.allocUnsafe(HEADER_SIZE + body.length);
  out[0] = MAGIC0;
  out[1] = MAGIC1;
  out[2] = type;
  out[3] = flags;
  out.writeUInt32LE(stream >>> 0, 4);
  out.writeUInt32LE(body.length, 8);
  body.copy(out, HEADER_SIZE);
  return out;
}

/** WINDOW's payload: the data type credited, three zero bytes, the increment. */
export function windowPayload(dataType: number, increment: number): Buffer {
  const b = Buffer.alloc(8);
  b[0] = dataType;
  b.writeUInt32LE(increment >>> 0, 4);
  return b;
}

export function parseWindow(payload: Buffer): { dataType: number; increment: number } | undefined {
  if (payload.length !== 8 || payload[1] !== 0 || payload[2] !== 0 || payload[3] !== 0) return undefined;
  const dataType = payload[0]!;
  if (dataType !== FrameType.STDIN && dataType !== FrameType.STDOUT && dataType !== FrameType.STDERR) return undefined;
  return { dataType, increment: payload.readUInt32LE(4) };
}

export function resizePayload(rows: number, cols: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt16LE(rows, 0);
  b.writeUInt16LE(cols, 2);
  return b;
}

export function signalPayload(signo: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(signo, 0);
  return b;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** A JSON payload as an object, or undefined when it is not valid UTF-8 holding one JSON object. */
export function parseJsonObject(payload: Buffer): Record<string, unknown> | undefined {
  try {
    const v: unknown = JSON.parse(utf8.decode(payload));
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

export type DecodeResult = { ok: true; frame: Frame } | { ok: false; reason: string };

/**
 * Splits a byte stream into frames. Feed it with `push`, then call `next` until it returns undefined.
 * It keeps at most one incomplete frame (HEADER_SIZE + MAX_PAYLOAD bytes) besides the chunk being read.
 * Once it has rejected input it stays failed. With `seekHandshake` (before the handshake) it rejects
 * nothing: it skips bytes up to the magic of a HELLO or HELLO_ACK on stream 0 that parses, and counts
 * what it skipped.
 */
export class FrameDecoder {
  seekHandshake: boolean;
  /** Bytes skipped while seeking a handshake frame. */
  skipped = 0;
  private input: Buffer = EMPTY;
  private pos = 0;
  private readonly head = Buffer.alloc(HEADER_SIZE);
  private headLen = 0;
  private body: Buffer = EMPTY;
  private bodyLen = 0;
  private failure: string | undefined;

  constructor(opts: { seekHandshake?: boolean } = {}) {
    this.seekHandshake = opts.seekHandshake ?? false;
  }

  /** Bytes held: the incomplete frame and what is left of the pushed input. */
  get buffered(): number {
    return this.headLen + this.bodyLen + (this.input.length - this.pos);
  }

  /** In the middle of a frame (a frame cut short when the stream ends here). */
  get midFrame(): boolean {
    return this.headLen > 0;
  }

  get failed(): string | undefined {
    return this.failure;
  }

  push(chunk: Buffer): void {
    if (this.failure !== undefined || chunk.length === 0) return;
    this.input = this.pos < this.input.length ? Buffer.concat([this.input.subarray(this.pos), chunk]) : chunk;
    this.pos = 0;
  }

  /** Frees everything held (the channel is closed). */
  discard(): void {
    this.input = EMPTY;
    this.pos = 0;
    this.headLen = 0;
    this.body = EMPTY;
    this.bodyLen = 0;
  }

  next(): DecodeResult | undefined {
    for (;;) {
      if (this.failure !== undefined) return { ok: false, reason: this.failure };
      if (this.headLen < HEADER_SIZE) {
        if (this.seekHandshake && !this.seekMagic()) return undefined;
        const n = Math.min(HEADER_SIZE - this.headLen, this.input.length - this.pos);
        this.input.copy(this.head, this.headLen, this.pos, this.pos + n);
        this.pos += n;
        this.headLen += n;
        const bad = this.checkHeader();
        if (bad !== undefined) {
          if (this.reject(bad)) continue;
          return { ok: false, reason: bad };
        }
        if (this.headLen < HEADER_SIZE) return undefined;
        const len = this.head.readUInt32LE(8);
        this.body = len ? Buffer.allocUnsafe(len) : EMPTY;
        this.bodyLen = 0;
      }
      const n = Math.min(this.body.length - this.bodyLen, this.input.length - this.pos);
      this.input.copy(this.body, this.bodyLen, this.pos, this.pos + n);
      this.pos += n;
      this.bodyLen += n;
      if (this.bodyLen < this.body.length) return undefined;
      const frame: Frame = { type: this.head[2]!, flags: this.head[3]!, stream: this.head.readUInt32LE(4), payload: this.body };
      if (JSON_TYPES.has(frame.type)) {
        const json = parseJsonObject(frame.payload);
        if (!json) {
          const bad = `a ${frameTypeName(frame.type)} payload is not one JSON object`;
          if (this.reject(bad)) continue;
          return { ok: false, reason: bad };
        }
        frame.json = json;
      }
      this.headLen = 0;
      this.body = EMPTY;
      this.bodyLen = 0;
      return { ok: true, frame };
    }
  }

  /** While seeking: skips input up to a possible handshake frame's first three bytes; false when input ran out first. */
  private seekMagic(): boolean {
    while (this.headLen < 3) {
      if (this.pos >= this.input.length) return false;
      if (this.headLen === 0) {
        const at = this.input.indexOf(MAGIC0, this.pos);
        if (at < 0) {
          this.skipped += this.input.length - this.pos;
          this.pos = this.input.length;
          return false;
        }
        this.skipped += at - this.pos;
        this.pos = at;
      }
      const b = this.input[this.pos++]!;
      const want =
        this.headLen === 0 ? b === MAGIC0 : this.headLen === 1 ? b === MAGIC1 : b === FrameType.HELLO || b === FrameType.HELLO_ACK;
      if (want) this.head[this.headLen++] = b;
      else {
        // No proper prefix of "K C type" is also its suffix, so a mismatch restarts the match at this byte.
        this.skipped += this.headLen;
        this.headLen = 0;
        this.pos--;
        if (b !== MAGIC0) {
          this.pos++;
          this.skipped++;
        }
      }
    }
    return true;
  }

  /** Why the header read so far is malformed, or undefined. */
  private checkHeader(): string | undefined {
    const h = this.head;
    if (this.headLen >= 2 && (h[0] !== MAGIC0 || h[1] !== MAGIC1)) return `bad magic 0x${h.readUInt16BE(0).toString(16).padStart(4, '0')}`;
    if (this.headLen >= 3 && !KNOWN_TYPES.has(h[2]!)) return `unknown frame type ${frameTypeName(h[2]!)}`;
    if (this.headLen >= 4 && (h[3]! & ~FIN) !== 0) return `flag bits 0x${(h[3]! & ~FIN).toString(16)} other than FIN are set`;
    if (this.headLen >= HEADER_SIZE) {
      const len = h.readUInt32LE(8);
      if (len > MAX_PAYLOAD) return `a frame of ${len} payload bytes is over MAX_PAYLOAD (${MAX_PAYLOAD})`;
      if (this.seekHandshake && (h[3] !== 0 || h.readUInt32LE(4) !== 0)) return 'a handshake frame must be on stream 0 without flags';
    }
    return undefined;
  }

  /**
   * Malformed input: while seeking, the candidate is dropped and the bytes after its first one are read
   * again (a real HELLO may start inside it); true means go on. Otherwise the decoder fails.
   */
  private reject(reason: string): boolean {
    if (!this.seekHandshake) {
      this.failure = reason;
      this.discard();
      return false;
    }
    const again = Buffer.concat([this.head.subarray(1, this.headLen), this.body.subarray(0, this.bodyLen), this.input.subarray(this.pos)]);
    this.skipped += 1;
    this.headLen = 0;
    this.body = EMPTY;
    this.bodyLen = 0;
    this.input = again;
    this.pos = 0;
    return true;
  }
}
