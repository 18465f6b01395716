// The dial socket's protocol between the agent (kratanet-dialer.ts) and kratanet (dial-service.ts).
// The client writes one line, `dial KEY PORT TIMEOUT_MS`; kratanet answers `OK` once the guest accepted
// the connection, after which the socket carries the guest's bytes both ways, or `ERR REASON TEXT`
// and closes. Both lines are short and bounded; anything else is refused.

/** The longest request or answer line, newline included. */
export const MAX_LINE = 512;
/** The longest wait kratanet grants a dial (a guest's SYN-ACK; longer asks are cut to this). */
export const MAX_DIAL_TIMEOUT_MS = 60_000;

export interface DialRequest {
  /** The guest's id in kratanet's configuration: the Guest's key, "namespace/name". */
  key: string;
  port: number;
  timeoutMs: number;
}

export type DialFailureReason = 'NoSuchGuest' | 'Refused' | 'Timeout' | 'Unavailable' | 'BadRequest';
const REASONS: ReadonlySet<string> = new Set<DialFailureReason>(['NoSuchGuest', 'Refused', 'Timeout', 'Unavailable', 'BadRequest']);

export type DialAnswer = { ok: true } | { ok: false; reason: DialFailureReason; message: string };

/** Printable ASCII without spaces: the guest ids kratanet is given (keys are DNS names and a slash). */
const KEY = /^[\x21-\x7e]{1,300}$/;

export class DialProtocolError extends Error {
  /** The part of a request that is wrong, when it is one of the request's fields. */
  constructor(
    message: string,
    readonly field?: keyof DialRequest,
  ) {
    super(message);
  }
}

export function formatDialRequest(r: DialRequest): string {
  if (!KEY.test(r.key)) throw new DialProtocolError(`guest key ${JSON.stringify(r.key)} is not 1-300 printable characters`, 'key');
  if (!Number.isInteger(r.port) || r.port < 1 || r.port > 65535) throw new DialProtocolError(`port ${r.port} is not 1-65535`, 'port');
  const t = Math.min(Math.max(1, Math.ceil(r.timeoutMs)), MAX_DIAL_TIMEOUT_MS);
  if (!Number.isFinite(t)) throw new DialProtocolError(`timeout ${r.timeoutMs} is not a number of milliseconds`, 'timeoutMs');
  return `dial ${r.key} ${r.port} ${t}\n`;
}

/** A request line (without its newline); throws DialProtocolError naming what is wrong. */
export function parseDialRequest(line: string): DialRequest {
  if (line.length >= MAX_LINE) throw new DialProtocolError('request too long');
  const parts = line.split(' ');
  if (parts.length !== 4 || parts[0] !== 'dial') throw new DialProtocolError('expected "dial KEY PORT TIMEOUT_MS"');
  const [, key, port, timeout] = parts as [string, string, string, string];
  if (!KEY.test(key)) throw new DialProtocolError('bad guest key');
  if (!/^[1-9]\d{0,4}$/.test(port) || Number(port) > 65535) throw new DialProtocolError('bad port');
  if (!/^[1-9]\d{0,8}$/.test(timeout)) throw new DialProtocolError('bad timeout');
  return { key, port: Number(port), timeoutMs: Math.min(Number(timeout), MAX_DIAL_TIMEOUT_MS) };
}

export function formatDialAnswer(a: DialAnswer): string {
  if (a.ok) return 'OK\n';
  // One line, bounded, whatever the message says.
  const text = a.message.replace(/[^\x20-\x7e]/g, '?').slice(0, MAX_LINE - 32);
  return `ERR ${a.reason} ${text}\n`;
}

/** An answer line (without its newline); throws DialProtocolError for anything that is not one. */
export function parseDialAnswer(line: string): DialAnswer {
  if (line === 'OK') return { ok: true };
  const m = /^ERR (\S+) ?(.*)$/.exec(line);
  if (!m || !REASONS.has(m[1]!)) throw new DialProtocolError(`unexpected answer ${JSON.stringify(line.slice(0, 80))}`);
  return { ok: false, reason: m[1] as DialFailureReason, message: m[2]! };
}
