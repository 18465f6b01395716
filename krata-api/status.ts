// Errors as the kube-apiserver writes them: a metav1.Status object, so kubectl and client libraries
// show the message as they show the apiserver's own.
import type { ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { STATUS_REASONS } from '../lib/status-reasons.js';

const REASONS = STATUS_REASONS;

export interface StatusDetails {
  name?: string;
  group?: string;
  kind?: string;
}

/** A failed request's answer: its HTTP code, and the Status body that says why. */
export class StatusError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly details?: StatusDetails,
  ) {
    super(message);
    this.name = 'StatusError';
  }
}

export function statusBody(code: number, message: string, details?: StatusDetails): string {
  return JSON.stringify({
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message,
    reason: REASONS[code] ?? 'InternalError',
    ...(details ? { details } : {}),
    code,
  });
}

/** The Status of an error: a StatusError's own, else a 500 naming only its first line. */
export function asStatus(e: unknown): StatusError {
  if (e instanceof StatusError) return e;
  const first = (e instanceof Error ? e.message : String(e)).split('\n')[0]!.slice(0, 500);
  return new StatusError(500, first);
}

export function sendStatus(res: ServerResponse, e: StatusError): void {
  if (res.headersSent) return void res.destroy();
  res.writeHead(e.code, { 'content-type': 'application/json' }).end(statusBody(e.code, e.message, e.details));
}

/** The same answer on a socket that asked to upgrade and was not upgraded. */
export function refuseUpgrade(socket: Duplex, e: StatusError): void {
  if (socket.destroyed) return;
  const body = statusBody(e.code, e.message, e.details);
  socket.end(
    `HTTP/1.1 ${e.code} ${REASONS[e.code] ?? 'Error'}\r\ncontent-type: application/json\r\n` +
      `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
  );
}
