// The handle (Xen's per-domain UUID) of the domains krata builds starts with a fixed tag, so that a
// domain is known as krata's from createdomain on: a build cut short before its xenstore entries
// (krata's keys) were written leaves a paused domain that nothing else would name. The other 90 bits
// stay random.
import { randomUUID } from 'node:crypto';

const TAG = '6b726174'; // "krat"

/** A fresh handle for a domain krata builds. */
export function krataHandle(): string {
  return `${TAG}${randomUUID().slice(8)}`;
}

/** Whether a domain's handle is one krataHandle() made. */
export function isKrataHandle(uuid: string): boolean {
  return uuid.startsWith(`${TAG}-`);
}
