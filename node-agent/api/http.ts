// HTTP plumbing of the local API: bounded request bodies, JSON answers and errors, NDJSON streams.
// Every error leaves as `{message, errors?}`, so kratactl always has something to print.
import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { InvalidRequest, NotFound, storageFull } from '../service/service.js';
import { ChannelUnavailable } from '../channel/index.js';

export type FieldProblem = { index?: number; path?: string; message: string };

/** An answer other than 2xx that the request itself caused (bad input, wrong method, ...). */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly errors?: FieldProblem[],
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/** A stream client that reads slower than the agent writes is dropped past this much buffered output. */
export const MAX_STREAM_BUFFER = 8 * 1024 * 1024;

/** Reads the whole body, refusing (413) past `limit` bytes without buffering the rest. */
export function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (declared > limit) return Promise.reject(tooLarge(declared, limit));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        req.removeAllListeners('data');
        req.pause();
        reject(tooLarge(undefined, limit));
      } else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
    req.on('close', () => reject(new HttpError(400, 'the client went away before sending the whole body')));
  });
}

function tooLarge(declared: number | undefined, limit: number): HttpError {
  const what = declared === undefined ? 'the request body is' : `the request body (${declared} bytes) is`;
  return new HttpError(413, `${what} over the limit of ${limit} bytes`);
}

/** Parses a JSON body; a syntax error names its line, column and offset so a hand-written request can be fixed. */
export function parseJsonBody(body: Buffer): unknown {
  if (body.length === 0) throw new HttpError(400, 'the request body is empty: expected a JSON object');
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(body);
  } catch {
    throw new HttpError(400, 'the request body is not UTF-8');
  }
  const tooDeep = nestingBeyond(text, MAX_JSON_DEPTH);
  if (tooDeep >= 0)
    throw new HttpError(400, `the JSON nests deeper than ${MAX_JSON_DEPTH} levels (at offset ${tooDeep}); krata objects are far shallower`);
  try {
    return JSON.parse(text);
  } catch (e) {
    const offset = jsonErrorOffset(text);
    const at = offset < 0 ? 0 : offset;
    const line = text.slice(0, at).split('\n').length;
    const column = at - text.lastIndexOf('\n', at - 1);
    const why = (e as Error).message.replace(/, ".*" is not valid JSON$/s, '');
    throw new HttpError(400, `malformed JSON at line ${line}, column ${column} (offset ${at}): ${why}`);
  }
}

/**
 * How deep request JSON may nest. A Guest nests about ten levels; JSON.parse takes far more, but what
 * follows it (validation, structuredClone, JSON.stringify) recurses and would overflow the stack.
 */
export const MAX_JSON_DEPTH = 100;

/**
 * The offset of the first `[` or `{` that opens level `max + 1`, or -1. One pass, no recursion, strings
 * skipped (brackets inside them do not count); syntax is JSON.parse's business.
 */
export function nestingBeyond(s: string, max: number): number {
  let depth = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x22) {
      // Skip the string: up to the next quote that no backslash escapes.
      for (i++; i < s.length && s.charCodeAt(i) !== 0x22; i++) if (s.charCodeAt(i) === 0x5c) i++;
    } else if (c === 0x5b || c === 0x7b) {
      if (++depth > max) return i;
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return -1;
}

/**
 * The offset of the first JSON syntax error in `s` (-1: none). V8's messages do not always carry a
 * position, so this checks the grammar itself; iteratively, since hostile input may nest deeply.
 */
export function jsonErrorOffset(s: string): number {
  const stack: string[] = [];
  let i = 0;
  const ws = () => {
    while (i < s.length && (s[i] === ' ' || s[i] === '\t' || s[i] === '\n' || s[i] === '\r')) i++;
  };
  const string = (): boolean => {
    i++; // the opening quote
    while (i < s.length) {
      const c = s.charCodeAt(i);
      if (c === 0x22) {
        i++;
        return true;
      }
      if (c < 0x20) return false;
      if (c !== 0x5c) {
        i++;
        continue;
      }
      const e = s[i + 1];
      if (e === 'u' && /^[0-9a-fA-F]{4}$/.test(s.slice(i + 2, i + 6))) i += 6;
      else if (e !== undefined && e !== 'u' && '"\\/bfnrt'.includes(e)) i += 2;
      else {
        i++; // points at the bad escape
        return false;
      }
    }
    return false;
  };
  const key = (): boolean => {
    ws();
    if (s[i] !== '"' || !string()) return false;
    ws();
    if (s[i] !== ':') return false;
    i++;
    return true;
  };
  const NUMBER = /-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/y;
  const scalar = (): boolean => {
    if (s[i] === '"') return string();
    for (const lit of ['true', 'false', 'null']) {
      if (s.startsWith(lit, i)) {
        i += lit.length;
        return true;
      }
    }
    NUMBER.lastIndex = i;
    if (!NUMBER.test(s)) return false;
    i = NUMBER.lastIndex;
    return true;
  };
  for (;;) {
    // A value starts here.
    ws();
    const c = s[i];
    if (c === '{' || c === '[') {
      i++;
      ws();
      if (s[i] === (c === '{' ? '}' : ']')) i++;
      else {
        stack.push(c);
        if (c === '{' && !key()) return i;
        continue;
      }
    } else if (!scalar()) return i;
    // After a value: close containers, or go on to the next element.
    for (;;) {
      ws();
      const top = stack.at(-1);
      if (top === undefined) return i < s.length ? i : -1;
      if (s[i] === ',') {
        i++;
        if (top === '{' && !key()) return i;
        break;
      }
      if (s[i] !== (top === '{' ? '}' : ']')) return i;
      i++;
      stack.pop();
    }
  }
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const data = Buffer.from(JSON.stringify(body) + '\n');
  res.writeHead(status, { ...headers, 'content-type': 'application/json', 'content-length': data.length });
  res.end(data);
}

/** The status and body an exception turns into; anything unexpected is a 500 that names it. */
export function errorAnswer(err: unknown): {
  status: number;
  body: { message: string; errors?: FieldProblem[] };
  headers: Record<string, string>;
} {
  if (err instanceof HttpError)
    return {
      status: err.status,
      body: { message: err.message, ...(err.errors?.length ? { errors: err.errors } : {}) },
      headers: err.headers,
    };
  if (err instanceof InvalidRequest)
    return { status: err.status, body: { message: err.message, ...(err.errors.length ? { errors: err.errors } : {}) }, headers: {} };
  if (err instanceof NotFound) return { status: 404, body: { message: err.message }, headers: {} };
  // The Guest is there but cannot take an exec now (no running domain, its channel not up): a conflict with its state.
  if (err instanceof ChannelUnavailable) return { status: 409, body: { message: err.message }, headers: {} };
  const full = storageFull(err);
  if (full) return { status: 507, body: { message: `${full}; free space on the node and try again` }, headers: {} };
  // The first line of the message only, bounded: a stack trace or a dump never leaves the agent
  // (server.ts logs the whole error).
  const message = String((err as Error)?.message ?? err)
    .split('\n')[0]!
    .slice(0, 500);
  return { status: 500, body: { message: `internal error in the node agent: ${message}` }, headers: {} };
}

export function sendError(res: ServerResponse, err: unknown): void {
  const { status, body, headers } = errorAnswer(err);
  // A refused body may still be arriving: close the connection rather than read it all.
  if (status === 413) headers.connection = 'close';
  sendJson(res, status, body, headers);
}

/** An error answer written straight to a socket (upgrade requests have no ServerResponse). */
export function sendRawError(socket: Duplex, err: unknown): void {
  const { status, body, headers } = errorAnswer(err);
  const data = Buffer.from(JSON.stringify(body) + '\n');
  const lines = [
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}`,
    'content-type: application/json',
    `content-length: ${data.length}`,
    'connection: close',
  ];
  for (const [k, v] of Object.entries(headers)) lines.push(`${k}: ${v}`);
  socket.end(Buffer.concat([Buffer.from(lines.join('\r\n') + '\r\n\r\n'), data]));
}

/** Starts a 200 streaming answer (NDJSON or raw bytes); headers go out at once so clients see progress. */
export function startStream(res: ServerResponse, contentType: string): void {
  res.writeHead(200, { 'content-type': contentType, 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' });
  res.flushHeaders();
}

/** Writes to a stream answer; a client that stopped reading is dropped instead of growing our memory. */
export function writeChunk(res: ServerResponse, data: string | Buffer): void {
  if (res.destroyed || res.writableEnded) return;
  res.write(data);
  if (res.writableLength > MAX_STREAM_BUFFER) res.destroy();
}

export function writeLine(res: ServerResponse, value: unknown): void {
  writeChunk(res, JSON.stringify(value) + '\n');
}
