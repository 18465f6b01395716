// The apiserver's refusals as kubectl prints them: a Status object (401/403/404/409/503...) becomes
// "Error from server (Reason): message", and a 404 for a group the cluster does not serve says krata-api is missing.
import { STATUS_REASONS } from '../lib/status-reasons.js';

const REASONS = STATUS_REASONS;

/** At most this much of an error body is read and shown. */
export const MAX_ERROR_BODY = 64 * 1024;

interface Status {
  kind?: unknown;
  message?: unknown;
  reason?: unknown;
}

/** A non-2xx answer from the apiserver (or krata-api behind it). */
export class ServerError extends Error {
  readonly reason: string | undefined;

  constructor(
    readonly code: number,
    body: string,
  ) {
    const status = parseStatus(body);
    const message = typeof status?.message === 'string' && status.message ? status.message : plain(body, code);
    super(message);
    this.reason = typeof status?.reason === 'string' && status.reason ? status.reason : REASONS[code];
  }

  /** kubectl's wording. */
  describe(): string {
    if (this.code === 401) return `error: You must be logged in to the server (${this.message})`;
    return this.reason ? `Error from server (${this.reason}): ${this.message}` : `Error from server: ${this.message}`;
  }
}

function parseStatus(body: string): Status | undefined {
  try {
    const v = JSON.parse(body) as unknown;
    return v && typeof v === 'object' && (v as Status).kind === 'Status' ? (v as Status) : undefined;
  } catch {
    return undefined;
  }
}

/** A body that is not a Status: its text (one line, bounded), or the code when it is empty. */
function plain(body: string, code: number): string {
  const text = body.replace(/\s+/g, ' ').trim().slice(0, 1024);
  return text || `the server responded with status code ${code}`;
}
