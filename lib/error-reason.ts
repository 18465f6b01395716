// Why a reconcile failed, as one short word for a metric label (krata_reconcile_errors_total{reason}):
// a Kubernetes-style reason an error carries (ErrImagePull, Conflict), else what its HTTP status says,
// else its errno code (ENOSPC) or class (HypercallError), looked for along the `cause` chain. The words
// come from code, never from the message, so the label stays bounded.
import { STATUS_REASONS } from './status-reasons.js';

/** The reason for an HTTP code; 0 is a request that got no answer. */
const HTTP_REASONS: Readonly<Record<number, string>> = { 0: 'Unreachable', ...STATUS_REASONS };

const WORD = /^[A-Z][A-Za-z0-9]{0,47}$/;
const ERRNO = /^E[A-Z0-9]{1,15}$/;

export function errorReason(err: unknown): string {
  let kind: string | undefined;
  let e: unknown = err;
  for (let depth = 0; depth < 8 && e !== null && typeof e === 'object'; depth++) {
    const o = e as { reason?: unknown; status?: unknown; code?: unknown; cause?: unknown };
    if (typeof o.reason === 'string' && WORD.test(o.reason)) return o.reason;
    if (typeof o.status === 'number' && Number.isInteger(o.status) && (o.status === 0 || (o.status >= 400 && o.status < 600)))
      return HTTP_REASONS[o.status] ?? (o.status >= 500 ? 'ServerError' : 'ClientError');
    if (typeof o.code === 'string' && ERRNO.test(o.code)) kind ??= o.code;
    const name = (e as { constructor?: { name?: unknown } }).constructor?.name;
    if (typeof name === 'string' && name !== 'Error' && name !== 'Object' && WORD.test(name)) kind ??= name;
    e = o.cause;
  }
  return kind ?? 'Error';
}
