// krata's own xenstore keys, below /local/domain/<domid>/: every key name, how each value is written
// and how it is read back, in one place. Other modules call these functions and never spell a krata/
// path themselves.
//
// dom0 (the agent's builder) writes krata/{guest-key,guest-uid,spec-hash,created,loops}; the guest
// may only read them. The guest (guest-init, guest-init/src/runtime.rs) writes krata/guest/
// {exit-code,signal,init-error}, the only place under krata/ it may write. Everything read back is
// treated as hostile: at most GUEST_VALUE_MAX_BYTES is accepted, integers are parsed strictly, text is
// bounded and defused, and a value that does not parse is ignored.
import type { GuestIdentity } from './domain-config.js';
import type { XenstoreClient } from './xenstore/client.js';

/** The keys, relative to the domain's home /local/domain/<domid>. */
export const KrataKey = {
  /** "<namespace>/<name>" of the Guest: its presence makes a domain krata's. */
  guestKey: 'krata/guest-key',
  /** The Guest's metadata.uid. */
  guestUid: 'krata/guest-uid',
  /** The hash of the spec the domain was built from. */
  specHash: 'krata/spec-hash',
  /** When the agent created the domain: milliseconds since the epoch, decimal. */
  created: 'krata/created',
  /** The domain's loop devices ("/dev/loopN", comma-separated): released on teardown. */
  loops: 'krata/loops',
  /** The directory the guest owns (and may write). */
  guestDir: 'krata/guest',
  /** guest-init: the process's exit status, 0..255. */
  exitCode: 'krata/guest/exit-code',
  /** guest-init: the signal that killed the process, 1..64. */
  signal: 'krata/guest/signal',
  /** guest-init: why init failed before or while starting the process (free text). */
  initError: 'krata/guest/init-error',
} as const;

const home = (domid: number) => `/local/domain/${domid}`;
/** The absolute path of `key` for domain `domid`. */
export const krataPath = (domid: number, key: (typeof KrataKey)[keyof typeof KrataKey]) => `${home(domid)}/${key}`;

/** Longest value of any key read back at all (xenstored's own limit is 4 KiB). */
export const GUEST_VALUE_MAX_BYTES = 4096;
/** Longest init-error reason kept (characters). */
export const INIT_ERROR_MAX_CHARS = 1024;
/** Longest uid or spec hash taken (a Kubernetes uid is 36 characters, krata's spec hash 16). */
const TOKEN_MAX_CHARS = 128;
const DNS_LABEL = '[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?';
const GUEST_KEY = new RegExp(`^(${DNS_LABEL})/(${DNS_LABEL})$`);
const TOKEN = new RegExp(`^[A-Za-z0-9][A-Za-z0-9._-]{0,${TOKEN_MAX_CHARS - 1}}$`);

// ---- Writing (dom0) ------------------------------------------------------------------------------------

/** What dom0 records about a domain under krata/. */
export interface KrataRecord {
  /** Absent for a domain that runs no Guest (launch-main's): it is not krata's. */
  guest?: GuestIdentity;
  /** ms since the epoch; written with the guest. */
  createdAt?: number;
  /** Loop devices of its disks. */
  loops: string[];
}

/** "<namespace>/<name>": the guest key, also the agent's store key of the Guest. */
export function encodeGuestKey(g: Pick<GuestIdentity, 'namespace' | 'name'>): string {
  return `${g.namespace}/${g.name}`;
}

/** The read-only keys and their values (paths relative to the domain's home), in the order written. */
export function krataEntries(r: KrataRecord): [string, string][] {
  const out: [string, string][] = [];
  if (r.guest) {
    out.push([KrataKey.guestKey, encodeGuestKey(r.guest)], [KrataKey.guestUid, r.guest.uid], [KrataKey.specHash, r.guest.specHash]);
  }
  if (r.createdAt !== undefined) out.push([KrataKey.created, String(r.createdAt)]);
  out.push([KrataKey.loops, r.loops.join(',')]);
  return out;
}

// ---- Parsing (hostile input) ---------------------------------------------------------------------------

/** A decimal integer in [min, max], written exactly (no sign, spaces, leading zeros, exponent), or undefined. */
export function parseStrictInt(raw: Buffer | string | undefined, min: number, max: number): number | undefined {
  if (raw === undefined || raw.length === 0 || raw.length > 16) return undefined;
  const text = typeof raw === 'string' ? raw : raw.toString('latin1');
  if (!/^(0|[1-9][0-9]*)$/.test(text)) return undefined;
  const n = Number(text);
  return n >= min && n <= max ? n : undefined;
}

/** A free-text reason, bounded and without control characters (tabs and newlines kept). */
export function parseInitError(raw: Buffer | string | undefined): string | undefined {
  if (raw === undefined) return undefined;
  const bytes = typeof raw === 'string' ? Buffer.from(raw, 'utf8') : raw;
  if (bytes.length === 0 || bytes.length > GUEST_VALUE_MAX_BYTES) return undefined;
  // Decoding replaces invalid UTF-8 with U+FFFD; control characters (terminal escapes) become '?'.
  const text = Array.from(bytes.toString('utf8'))
    .slice(0, INIT_ERROR_MAX_CHARS)
    .join('')
    // eslint-disable-next-line no-control-regex
    .replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u2028\u2029]/g, '?')
    .trim();
  return text === '' ? undefined : text;
}

/** How a guest's process ended, as guest-init reported it. */
export interface GuestExit {
  exitCode?: number;
  signal?: number;
  initError?: string;
}

export interface RawGuestExit {
  exitCode?: Buffer | string;
  signal?: Buffer | string;
  initError?: Buffer | string;
}

/**
 * How the guest's process ended, from krata/guest/{exit-code,signal,init-error}: an exit code is
 * 0..255, a signal 1..64; a value that is anything else is ignored. undefined: nothing (valid) reported.
 */
export function parseGuestExit(raw: RawGuestExit): GuestExit | undefined {
  const exitCode = parseStrictInt(raw.exitCode, 0, 255);
  const signal = parseStrictInt(raw.signal, 1, 64);
  const initError = parseInitError(raw.initError);
  if (exitCode === undefined && signal === undefined && initError === undefined) return undefined;
  return {
    ...(exitCode !== undefined ? { exitCode } : {}),
    ...(signal !== undefined ? { signal } : {}),
    ...(initError !== undefined ? { initError } : {}),
  };
}

/** What xenstore says about one of krata's domains. */
export interface KrataDomainRecord {
  /** The Xen domain name (/local/domain/<domid>/name; '' when missing). */
  name: string;
  guest: GuestIdentity;
  /** ms since the epoch; 0 when missing. */
  createdAt: number;
}

export interface RawKrataDomain {
  name?: Buffer;
  guestKey?: Buffer;
  guestUid?: Buffer;
  specHash?: Buffer;
  created?: Buffer;
}

/**
 * krata's record of a domain, or undefined when it is not krata's: no guest key, or one that is not
 * "<namespace>/<name>" of two DNS labels. A uid or spec hash that is missing or malformed reads as '',
 * which matches no Guest: the reconciler replaces such a domain.
 */
export function parseKrataDomain(raw: RawKrataDomain): KrataDomainRecord | undefined {
  const key = GUEST_KEY.exec(text(raw.guestKey) ?? '');
  if (!key) return undefined;
  const token = (b: Buffer | undefined) => {
    const t = text(b);
    return t !== undefined && TOKEN.test(t) ? t : '';
  };
  return {
    name: text(raw.name) ?? '',
    guest: { namespace: key[1]!, name: key[2]!, uid: token(raw.guestUid), specHash: token(raw.specHash) },
    createdAt: parseStrictInt(raw.created, 0, Number.MAX_SAFE_INTEGER) ?? 0,
  };
}

/** The loop devices in a krata/loops value; anything that is no /dev/loopN is dropped. */
export function parseLoops(raw: Buffer | string | undefined): string[] {
  const t = typeof raw === 'string' ? raw : text(raw);
  return (t ?? '').split(',').filter((p) => /^\/dev\/loop\d{1,7}$/.test(p));
}

function text(b: Buffer | undefined): string | undefined {
  return b === undefined ? undefined : b.toString('utf8');
}

// ---- Reading ----------------------------------------------------------------------------------------

type Reader = Pick<XenstoreClient, 'readBytes'>;

/** A node's bytes, or undefined when it is missing, unreadable or longer than GUEST_VALUE_MAX_BYTES. */
async function readBounded(xs: Reader, path: string): Promise<Buffer | undefined> {
  return xs.readBytes(path).then(
    (b) => (b.length > GUEST_VALUE_MAX_BYTES ? undefined : b),
    () => undefined,
  );
}

/** krata's record of domain `domid` (see parseKrataDomain), or undefined when it is not krata's. */
export async function readKrataDomain(xs: Reader, domid: number): Promise<KrataDomainRecord | undefined> {
  const guestKey = await readBounded(xs, krataPath(domid, KrataKey.guestKey));
  if (guestKey === undefined) return undefined;
  const paths = [`${home(domid)}/name`, ...[KrataKey.guestUid, KrataKey.specHash, KrataKey.created].map((k) => krataPath(domid, k))];
  const [name, guestUid, specHash, created] = await Promise.all(paths.map((p) => readBounded(xs, p)));
  return parseKrataDomain({ name, guestKey, guestUid, specHash, created });
}

/** Whether the xenstore tree of domain `domid` is one of krata's (it has a guest key, well-formed or not). */
export async function hasGuestKey(xs: Pick<XenstoreClient, 'tryRead'>, domid: number): Promise<boolean> {
  return (await xs.tryRead(krataPath(domid, KrataKey.guestKey))) !== undefined;
}

/** What the guest reported under krata/guest/, parsed as hostile input. */
export async function readGuestExit(xs: Reader, domid: number): Promise<GuestExit | undefined> {
  const [exitCode, signal, initError] = await Promise.all(
    [KrataKey.exitCode, KrataKey.signal, KrataKey.initError].map((k) => readBounded(xs, krataPath(domid, k))),
  );
  return parseGuestExit({ exitCode, signal, initError });
}

/** The loop devices recorded for domain `domid`. */
export async function readLoops(xs: Reader, domid: number): Promise<string[]> {
  return parseLoops(await readBounded(xs, krataPath(domid, KrataKey.loops)));
}
