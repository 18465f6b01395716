// The agent's TLS identity (cluster mode): an ECDSA P-256 key made once and kept in STATE/tls/agent.key
// (0600; it never leaves the host, nor the process but for the listener's secure context), and the
// certificate the operator issued for it with the krata CA (STATE/tls/agent.crt, ca.crt). An issued
// certificate is used only if it is for this key, chains to the CA it came with, names
// agentServerName(host) and is within its validity; anything else is refused with the reason.
import { createPublicKey, createPrivateKey, generateKeyPairSync, sign, X509Certificate, type KeyObject } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { agentServerName } from '../../contracts/krata-api/agent-tls.js';
import { certRequestProof, checkHostName, type CertRequest, type IssuedCertificate } from '../../contracts/redis/contract.js';
import { fsyncDir, prepareFileAtomic, writeFileAtomic } from '../../lib/atomic-file.js';

/** An issued record larger than this is refused unread (a certificate and a CA are a few KiB). */
export const MAX_ISSUED_BYTES = 64 * 1024;

/** The certificate in use: PEMs for the listener's secure context, and its validity (ms since the epoch). */
export interface AgentCertificate {
  certificate: string;
  ca: string;
  notBefore: number;
  notAfter: number;
}

export class AgentIdentity {
  readonly publicKey: string;
  private readonly key: KeyObject;
  private cert?: AgentCertificate;
  private readonly listeners = new Set<(c: AgentCertificate) => void>();

  private constructor(
    private readonly dir: string,
    readonly host: string,
    key: KeyObject,
  ) {
    this.key = key;
    this.publicKey = createPublicKey(key).export({ type: 'spki', format: 'pem' }) as string;
  }

  /**
   * The identity kept in `stateDir`/tls: the key is made on first use. A stored certificate that no longer
   * passes the checks at `now` (expired, another key) is not used; `warn` says why.
   */
  static open(stateDir: string, host: string, now: number, warn: (msg: string) => void = () => undefined): AgentIdentity {
    const dir = join(stateDir, 'tls');
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const identity = new AgentIdentity(dir, checkHostName(host), loadOrCreateKey(join(dir, 'agent.key'), warn));
    let stored: IssuedCertificate | undefined;
    try {
      const certificate = readFileSync(join(dir, 'agent.crt'), 'utf8');
      const ca = readFileSync(join(dir, 'ca.crt'), 'utf8');
      stored = { certificate, ca, notAfter: '' };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') warn(`the stored TLS certificate cannot be read: ${(e as Error).message}`);
    }
    if (stored) {
      const checked = identity.check(stored, now);
      if (typeof checked === 'string') warn(`the stored TLS certificate is not used: ${checked}`);
      else identity.cert = checked;
    }
    return identity;
  }

  /** The certificate in use, if any. */
  get certificate(): AgentCertificate | undefined {
    return this.cert;
  }

  /** The private key, for the listener's secure context only. */
  get privateKey(): KeyObject {
    return this.key;
  }

  /** True when there is no certificate with more than a third of its life left at `now`. */
  needsCertificate(now: number): boolean {
    return this.cert === undefined || now >= this.renewAt(this.cert);
  }

  /** When a certificate should be replaced: two thirds into its life. */
  renewAt(c: AgentCertificate): number {
    return c.notAfter - (c.notAfter - c.notBefore) / 3;
  }

  /** A request for a certificate for this key, written at `now`. */
  request(now: number): CertRequest {
    const proof = sign('sha256', certRequestProof(this.host, this.publicKey), this.key).toString('base64');
    return { publicKey: this.publicKey, proof, time: new Date(now).toISOString() };
  }

  /** The certificate in `issued` if it passes every check at `now`, else why not (one line). */
  check(issued: IssuedCertificate, now: number): AgentCertificate | string {
    if (typeof issued?.certificate !== 'string' || typeof issued.ca !== 'string') return 'certificate and ca must be PEM strings';
    let cert: X509Certificate;
    let ca: X509Certificate;
    try {
      cert = new X509Certificate(issued.certificate);
      ca = new X509Certificate(issued.ca);
    } catch (e) {
      return `not a PEM certificate: ${(e as Error).message}`;
    }
    const der = (k: KeyObject) => k.export({ type: 'spki', format: 'der' });
    if (!der(cert.publicKey).equals(der(createPublicKey(this.key)))) return 'it is for another key than this agent asked with';
    if (!ca.ca) return 'the CA it came with is not a CA certificate';
    if (!cert.checkIssued(ca) || !cert.verify(ca.publicKey)) return 'it is not signed by the CA it came with';
    const name = agentServerName(this.host);
    if (cert.checkHost(name, { subject: 'never', wildcards: false }) !== name) return `it does not name ${name}`;
    const notBefore = Date.parse(cert.validFrom);
    const notAfter = Date.parse(cert.validTo);
    if (!(notBefore <= now && now < notAfter)) return `it is valid from ${cert.validFrom} to ${cert.validTo}, not now`;
    if (!(Date.parse(ca.validFrom) <= now && now < Date.parse(ca.validTo))) return 'the CA it came with is expired or not yet valid';
    return { certificate: cert.toString(), ca: ca.toString(), notBefore, notAfter };
  }

  /**
   * Takes `issued` if it passes the checks and is newer than the certificate in use (stored, then
   * announced to `onCertificate`): 'taken', 'same' (what is in use, or older), or why not.
   */
  accept(issued: IssuedCertificate, now: number): string {
    const checked = this.check(issued, now);
    if (typeof checked === 'string') return checked;
    if (this.cert && (this.cert.certificate === checked.certificate || checked.notAfter <= this.cert.notAfter)) return 'same';
    // Both or neither: a crash between the renames leaves a pair the checks refuse at the next start.
    const files = [
      prepareFileAtomic(join(this.dir, 'agent.crt'), checked.certificate),
      prepareFileAtomic(join(this.dir, 'ca.crt'), checked.ca),
    ];
    try {
      for (const f of files) f.commit();
    } finally {
      for (const f of files) f.abort();
    }
    fsyncDir(this.dir);
    this.cert = checked;
    for (const l of this.listeners) l(checked);
    return 'taken';
  }

  /** Calls `cb` with each certificate taken from now on; returns an unsubscribe function. */
  onCertificate(cb: (c: AgentCertificate) => void): () => void {
    this.listeners.add(cb);
    return () => this.listeners.delete(cb);
  }
}

/** The key at `file`, or a new one written there (0600, atomically) when there is none or it is unusable. */
function loadOrCreateKey(file: string, warn: (msg: string) => void): KeyObject {
  let pem: string | undefined;
  try {
    pem = readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  if (pem !== undefined) {
    try {
      const key = createPrivateKey(pem);
      if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') {
        chmodSync(file, 0o600);
        return key;
      }
      warn(`${file} is not an ECDSA P-256 key; making a new one`);
    } catch {
      warn(`${file} cannot be read as a private key; making a new one`);
    }
  }
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  writeFileAtomic(file, privateKey.export({ type: 'pkcs8', format: 'pem' }), 0o600);
  return privateKey;
}
