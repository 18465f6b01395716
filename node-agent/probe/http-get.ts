// One HTTP/1.1 GET over a stream the dialer opened, as the kubelet's httpGet probe sends it: Host, a
// krata User-Agent, Accept, Connection: close, then the probe's own headers (which replace those of
// the same name). HTTPS is TLS over the same stream without certificate verification, as the kubelet
// does. At most RESPONSE_MAX bytes of the response are read; the stream is always destroyed after.
import { isIP } from 'node:net';
import type { Duplex } from 'node:stream';
import { connect as tlsConnect } from 'node:tls';
import type { Deadline } from './deadline.js';

/** Bytes of a response read at most (the kubelet's limit too). */
export const RESPONSE_MAX = 10 * 1024;
export const USER_AGENT = 'krata-probe/1.0';

export interface HttpTarget {
  scheme: 'HTTP' | 'HTTPS';
  /** For the Host header (and SNI when it is a name). */
  host: string;
  port: number;
  path: string;
  headers: [string, string][];
}

export type HttpResult = { status: number; body: string } | { error: string };

const STATUS_LINE = /^HTTP\/1\.[01] ([0-9]{3})(?: |\r?$)/;

export function requestText(t: HttpTarget): string {
  const headers = new Map<string, [string, string]>([
    ['host', ['Host', `${t.host}:${t.port}`]],
    ['user-agent', ['User-Agent', USER_AGENT]],
    ['accept', ['Accept', '*/*']],
  ]);
  for (const [name, value] of t.headers) headers.set(name.toLowerCase(), [name, value]);
  headers.set('connection', ['Connection', 'close']);
  const lines = [...headers.values()].map(([n, v]) => `${n}: ${v}\r\n`).join('');
  return `GET ${t.path} HTTP/1.1\r\n${lines}\r\n`;
}

/** Sends the GET over `raw` and reads the answer; resolves (never rejects) and destroys the stream. */
export function httpGet(raw: Duplex, t: HttpTarget, deadline: Deadline): Promise<HttpResult> {
  return new Promise<HttpResult>((resolve) => {
    let stream: Duplex = raw;
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    const finish = (r: HttpResult) => {
      if (settled) return;
      settled = true;
      forget();
      stream.destroy();
      raw.destroy();
      resolve(r);
    };
    let forget = () => undefined as void;
    if (deadline.passed) return finish({ error: 'timed out' });
    forget = deadline.onPass(() => finish({ error: 'timed out' }));
    raw.on('error', (e: Error) => finish({ error: e.message }));
    if (t.scheme === 'HTTPS') {
      stream = tlsConnect({ socket: raw, rejectUnauthorized: false, ...(isIP(t.host) ? {} : { servername: t.host }) });
      stream.on('error', (e: Error) => finish({ error: `tls: ${e.message}` }));
    }
    const judge = (ended: boolean): HttpResult | undefined => {
      const text = Buffer.concat(chunks).toString('latin1');
      const eol = text.indexOf('\n');
      if (eol < 0) return ended || size >= RESPONSE_MAX ? { error: 'malformed HTTP response: no status line' } : undefined;
      const m = STATUS_LINE.exec(text.slice(0, eol));
      if (!m) return { error: `malformed HTTP response: ${JSON.stringify(text.slice(0, Math.min(eol, 80)))}` };
      const status = Number(m[1]);
      // Success needs nothing more; a failure's body (as much as fits) says why.
      if (status >= 200 && status < 400) return { status, body: '' };
      const head = text.indexOf('\r\n\r\n');
      if (head < 0) return ended || size >= RESPONSE_MAX ? { status, body: '' } : undefined;
      const headers = text.slice(0, head + 2);
      const chunked = /\r\ntransfer-encoding: *chunked\r\n/i.test(headers);
      const { body, done } = chunked ? dechunk(text.slice(head + 4)) : { body: text.slice(head + 4), done: false };
      const length = /\r\ncontent-length: *([0-9]+)\r\n/i.exec(headers);
      const complete = ended || done || size >= RESPONSE_MAX || (length !== null && body.length >= Number(length[1]));
      return complete ? { status, body: Buffer.from(body, 'latin1').toString('utf8') } : undefined;
    };
    stream.on('data', (d: Buffer) => {
      const room = RESPONSE_MAX - size;
      const part = d.length > room ? d.subarray(0, room) : d;
      chunks.push(part);
      size += part.length;
      const r = judge(false);
      if (r) finish(r);
    });
    stream.on('end', () => finish(judge(true) ?? { error: 'the connection closed before a response' }));
    stream.on('close', () => finish(judge(true) ?? { error: 'the connection closed before a response' }));
    stream.write(requestText(t));
  });
}

/** The data of a chunked body as far as it has arrived; done once the last (empty) chunk is seen. */
function dechunk(raw: string): { body: string; done: boolean } {
  let body = '';
  let at = 0;
  for (;;) {
    const eol = raw.indexOf('\r\n', at);
    if (eol < 0) return { body, done: false };
    const size = parseInt(raw.slice(at, eol).split(';')[0]!, 16);
    if (!Number.isFinite(size)) return { body, done: true };
    if (size === 0) return { body, done: true };
    body += raw.slice(eol + 2, eol + 2 + size);
    if (eol + 2 + size + 2 > raw.length) return { body, done: false };
    at = eol + 2 + size + 2;
  }
}
