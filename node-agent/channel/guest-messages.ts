// What the guest's JSON payloads must hold (PROTOCOL.md): each parser returns the value, or undefined when a
// field is missing or out of range (a protocol violation once the channel is up).
import type { ExecResult } from '../../contracts/agent-api/exec.js';
import type { BulkOffer, GuestReportedMetrics } from './types.js';

/** Text from the guest shown to users: printable, bounded. */
export function guestText(v: unknown, max = 256): string | undefined {
  if (typeof v !== 'string') return undefined;
  // eslint-disable-next-line no-control-regex -- control characters are exactly what is removed
  const clean = v.replace(/[\u0000-\u001f\u007f-\u009f]/g, '?');
  return clean.length > max ? `${clean.slice(0, max)}…` : clean;
}

function intIn(v: unknown, min: number, max: number): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max;
}

export interface Hello {
  role: string;
  min: number;
  max: number;
  software: string;
}

export function parseHello(j: Record<string, unknown>): Hello | undefined {
  if (typeof j.role !== 'string' || !intIn(j.min, 1, 0xffff) || !intIn(j.max, j.min, 0xffff)) return undefined;
  return { role: j.role, min: j.min, max: j.max, software: guestText(j.software ?? '') ?? '' };
}

export type HelloAck = { version: number; software: string } | { version: 0; error: string };

export function parseHelloAck(j: Record<string, unknown>): HelloAck | undefined {
  if (j.version === 0) return { version: 0, error: guestText(j.error, 512) ?? 'no reason given' };
  if (!intIn(j.version, 1, 0xffff)) return undefined;
  return { version: j.version, software: guestText(j.software ?? '') ?? '' };
}

/** The most data pages a bulk ring has in each direction (PROTOCOL.md, Bulk ring). */
export const MAX_BULK_PAGES = 32;
/** Grant references below this are the toolstack's (console, xenstore). */
const FIRST_GUEST_GRANT = 8;
const MAX_EVTCHN_PORT = (1 << 17) - 1;

function pagesOk(n: unknown): n is number {
  return intIn(n, 1, MAX_BULK_PAGES) && (n & (n - 1)) === 0;
}

/** A BULK_OFFER: sizes powers of two from 1 to 32, one ref per page (header, in, out), a port in range. */
export function parseBulkOffer(j: Record<string, unknown>): BulkOffer | undefined {
  const { refs, port, inPages, outPages } = j;
  if (!pagesOk(inPages) || !pagesOk(outPages) || !intIn(port, 1, MAX_EVTCHN_PORT)) return undefined;
  if (!Array.isArray(refs) || refs.length !== 1 + inPages + outPages) return undefined;
  if (!refs.every((r) => intIn(r, FIRST_GUEST_GRANT, 0xffffffff))) return undefined;
  return { refs: refs as number[], port, inPages, outPages };
}

export function parseStarted(j: Record<string, unknown>): number | undefined {
  return intIn(j.pid, 1, 0x7fffffff) ? j.pid : undefined;
}

/** EXIT as the user sees it: 128+signal for a signal (kubectl's convention), the guest's error when it could not start. */
export function parseExit(j: Record<string, unknown>): ExecResult | undefined {
  if (j.error !== undefined) {
    const error = guestText(j.error, 1024);
    return error !== undefined && intIn(j.exitCode, 1, 255) ? { exitCode: j.exitCode, error } : undefined;
  }
  if (j.signal !== undefined) return intIn(j.signal, 1, 127) ? { exitCode: 128 + j.signal, signal: j.signal } : undefined;
  return intIn(j.exitCode, 0, 255) ? { exitCode: j.exitCode } : undefined;
}

const BYTES_MAX = 2 ** 50; // 1 PiB: far above any guest, below float precision trouble
const COUNT_MAX = 2 ** 32;
const LOAD_MAX = 1e6;
const UPTIME_MAX = 1e10; // seconds, some 300 years

const METRIC_BOUNDS: Record<keyof GuestReportedMetrics, { max: number; integer: boolean }> = {
  memoryTotalBytes: { max: BYTES_MAX, integer: true },
  memoryAvailableBytes: { max: BYTES_MAX, integer: true },
  memoryFreeBytes: { max: BYTES_MAX, integer: true },
  load1: { max: LOAD_MAX, integer: false },
  load5: { max: LOAD_MAX, integer: false },
  load15: { max: LOAD_MAX, integer: false },
  processes: { max: COUNT_MAX, integer: true },
  runningProcesses: { max: COUNT_MAX, integer: true },
  uptimeSeconds: { max: UPTIME_MAX, integer: false },
};

/** GuestMetrics: every field a finite, non-negative, bounded number (integers for bytes and counts); others are ignored. */
export function parseMetrics(j: Record<string, unknown>): GuestReportedMetrics | undefined {
  const out: Partial<Record<keyof GuestReportedMetrics, number>> = {};
  for (const [k, bound] of Object.entries(METRIC_BOUNDS) as [keyof GuestReportedMetrics, { max: number; integer: boolean }][]) {
    const v = j[k];
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || v > bound.max || (bound.integer && !Number.isInteger(v))) return undefined;
    out[k] = v;
  }
  return out as GuestReportedMetrics;
}
