// What the local API's route modules share: the context a handler gets, the upgrade a route may offer,
// and the checks of path parameters and query values (each refusal a 400 that names the parameter).
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { HostTlsStatus } from '../../contracts/agent-api/types.js';
import type { AgentService } from '../service/service.js';
import { HttpError } from './http.js';

export interface RouteContext {
  service: AgentService;
  maxBodyBytes: number;
  /** Registers a long-lived stream's stop function (called on server close); returns its removal. */
  track(stop: () => void): () => void;
  /** The agent's TLS listener, for GET /v1/host (cluster mode). */
  tlsStatus?: () => HostTlsStatus | undefined;
}

/**
 * Takes over the socket of an upgrade request whose route and protocol matched. It throws (or rejects)
 * only before it answers 101: the server then answers the error; after the 101 the stream is its own.
 */
export type UpgradeHandler = (
  ctx: RouteContext,
  params: Record<string, string>,
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
) => void | Promise<void>;

/** A route that upgrades (GET with `Upgrade: protocol`); `what` names it in the 426 a plain GET gets. */
export interface Upgrade {
  what: string;
  protocol: string;
  open: UpgradeHandler;
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

export function label(value: string, what: string): string {
  if (value.length > 63 || !DNS_LABEL.test(value)) {
    throw new HttpError(
      400,
      `invalid ${what} ${JSON.stringify(value.slice(0, 100))}: must be a ` +
        `DNS label (lowercase letters, digits and "-", at most 63 characters)`,
    );
  }
  return value;
}

export function optionalLabel(query: URLSearchParams, key: string, what = key): string | undefined {
  const v = query.get(key);
  return v === null || v === '' ? undefined : label(v, what);
}

export function bool(query: URLSearchParams, key: string): boolean {
  const v = query.get(key);
  if (v === null || v === 'false' || v === '0') return false;
  if (v === '' || v === 'true' || v === '1') return true;
  throw new HttpError(400, `query parameter ${key} must be true or false, not ${JSON.stringify(v.slice(0, 100))}`);
}

export function count(query: URLSearchParams, key: string, max = 2 ** 31 - 1): number | undefined {
  const v = query.get(key);
  if (v === null) return undefined;
  if (!/^\d{1,10}$/.test(v) || Number(v) > max)
    throw new HttpError(400, `query parameter ${key} must be a whole number from 0 to ${max}, not ${JSON.stringify(v.slice(0, 100))}`);
  return Number(v);
}
