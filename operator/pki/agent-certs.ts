// Agents' serving certificates through Redis (contracts/redis/contract.ts): each agent writes a request
// (its P-256 public key and a proof of possession) to certRequestKey(host); the operator answers at
// certKey(host) with a certificate for that key naming agentServerName(host), and the CA. The host is the
// one the key names, and only XenHosts are served. A certificate stays while it is for the requested key,
// from the current CA, and has more than a third of its life left; otherwise a new one is issued.
// One pass: SCAN for request keys, one pipeline (each request read to a bound, whether its answer exists);
// what was seen and decided is remembered, so a pass where nothing changed does no crypto and no writes.
import { X509Certificate, type KeyObject } from 'node:crypto';
import type { Redis } from 'ioredis';
import { agentServerName } from '../../contracts/krata-api/agent-tls.js';
import { certKey, certRequestKey, checkHostName, type IssuedCertificate } from '../../contracts/redis/contract.js';
import type { XenHost } from '../../crds/generated/types.js';
import { createCertificate } from '../../lib/x509/index.js';
import { BACKDATE_MS, issuedBy, renewalTime, wholeSeconds, type KrataCA } from './ca.js';
import { MAX_CERT_REQUEST_BYTES, checkCertRequest } from './cert-request.js';

const DAY = 24 * 3600_000;
export const AGENT_CERT_VALIDITY_MS = 90 * DAY;
/** Event reasons on the XenHost. */
export const CERT_ISSUED = 'CertificateIssued';
export const CERT_REQUEST_REJECTED = 'CertificateRequestRejected';

const REQUEST_PATTERN = 'krata:host:*:cert-request';
/** Hosts per pipeline. */
const BATCH = 500;

export interface AgentCertificatesOptions {
  /** The XenHost of that name, if there is one (the operator's informer). */
  getHost(name: string): XenHost | undefined;
  now(): number;
  log(msg: string, err?: unknown): void;
  event(host: XenHost, type: 'Normal' | 'Warning', reason: string, message: string): void;
  /** Records the key a host was first certified for in its XenHost status.agentKey (trust on first use). */
  pinKey(host: string, agentKey: string): Promise<void>;
}

/** How long a pin just written counts before the XenHost cache shows it (the informer's latency). */
const PIN_SETTLE_MS = 60_000;

/** What a host's request and answer were when last looked at, and what was decided. */
interface Seen {
  request: string;
  /**
   * rejected (the request is bad) or no-host: nothing to do until the request changes (or the XenHost
   * appears); failed (no certificate can name the host): until the request or the CA changes.
   */
  outcome: 'answered' | 'rejected' | 'no-host' | 'failed' | 'pinned';
  /** pinned: the pin that refused it (reconsidered when the XenHost's pin changes, e.g. an administrator removed it). */
  pin?: string;
  caPem: string;
  /** answered: when the certificate is due for renewal. */
  renewAt: number;
}

/** The subject CN: the DNS name when it fits X.520's 64 characters, else the host name as far as it does. */
function commonName(host: string): string {
  const dns = agentServerName(host);
  return dns.length <= 64 ? dns : host.slice(0, 64);
}

function validHost(name: string): boolean {
  try {
    checkHostName(name);
    return true;
  } catch {
    return false;
  }
}

export class AgentCertificates {
  private readonly seen = new Map<string, Seen>();
  /** Pins written here, until the XenHost cache shows them. */
  private readonly written = new Map<string, { pin: string; at: number }>();

  constructor(
    private readonly redis: Redis,
    private readonly opts: AgentCertificatesOptions,
  ) {}

  /** One pass over every request; returns the hosts issued a certificate. */
  async sync(ca: KrataCA): Promise<string[]> {
    const hosts = new Set<string>();
    let cursor = '0';
    do {
      const [next, keys] = await this.redis.scan(cursor, 'MATCH', REQUEST_PATTERN, 'COUNT', 1000);
      cursor = next;
      for (const k of keys) {
        const name = k.slice('krata:host:'.length, -':cert-request'.length);
        if (validHost(name)) hosts.add(name); // the pattern also matches keys no host name makes; never ours to answer
      }
    } while (cursor !== '0');
    for (const name of this.seen.keys()) if (!hosts.has(name)) this.seen.delete(name);
    const issued: string[] = [];
    const list = [...hosts];
    for (let i = 0; i < list.length; i += BATCH) {
      const batch = list.slice(i, i + BATCH);
      const p = this.redis.pipeline();
      // One byte more than a request may have: a longer value is refused without being read whole.
      for (const h of batch) p.getrange(certRequestKey(h), 0, MAX_CERT_REQUEST_BYTES).exists(certKey(h));
      const replies = (await p.exec()) ?? [];
      for (const [j, host] of batch.entries()) {
        const [reqErr, raw] = replies[2 * j] ?? [];
        const [, exists] = replies[2 * j + 1] ?? [];
        if (reqErr || typeof raw !== 'string' || raw === '') continue; // gone since the SCAN, or not a string
        try {
          if (await this.serve(host, raw, exists === 1, ca)) issued.push(host);
        } catch (e) {
          this.opts.log(`certificate for host ${host}`, e);
        }
      }
    }
    return issued;
  }

  /** Decides one host's request; true when a certificate was issued. */
  private async serve(host: string, raw: string, answered: boolean, ca: KrataCA): Promise<boolean> {
    const now = this.opts.now();
    const prev = this.seen.get(host);
    const xenHost = this.opts.getHost(host);
    if (prev && prev.request === raw) {
      if (prev.outcome === 'rejected') return false;
      if (prev.outcome === 'failed' && prev.caPem === ca.certificatePem) return false;
      if (prev.outcome === 'no-host' && !xenHost) return false;
      if (prev.outcome === 'pinned' && xenHost && prev.pin === this.pinOf(host, xenHost, now)) return false;
      if (prev.outcome === 'answered' && answered && prev.caPem === ca.certificatePem && now < prev.renewAt) return false;
    }
    if (!xenHost) {
      this.opts.log(`a certificate request under host name ${host}, which is no XenHost, is not answered`);
      this.seen.set(host, { request: raw, outcome: 'no-host', caPem: ca.certificatePem, renewAt: 0 });
      return false;
    }
    const checked = checkCertRequest(host, raw);
    if (!checked.ok) {
      this.opts.log(`certificate request of host ${host} refused: ${checked.reason}`);
      this.opts.event(xenHost, 'Warning', CERT_REQUEST_REJECTED, `Certificate request refused: ${checked.reason}`);
      this.seen.set(host, { request: raw, outcome: 'rejected', caPem: ca.certificatePem, renewAt: 0 });
      return false;
    }
    // Agents share one Redis user, so any of them could ask under this host's name: the key this host was
    // first certified for is pinned, and another is refused until an administrator removes the pin.
    const fingerprint = `sha256:${checked.fingerprint}`;
    const pin = this.pinOf(host, xenHost, now);
    if (pin !== undefined && pin !== fingerprint) {
      const why =
        `its key ${fingerprint} is not the key this host was first certified for (${pin}); if the host was reinstalled, ` +
        `remove status.agentKey: kubectl patch xenhost ${host} --subresource=status --type=merge -p '{"status":{"agentKey":null}}'`;
      this.opts.log(`certificate request of host ${host} refused: ${why}`);
      this.opts.event(xenHost, 'Warning', CERT_REQUEST_REJECTED, `Certificate request refused: ${why}`);
      this.seen.set(host, { request: raw, outcome: 'pinned', pin, caPem: ca.certificatePem, renewAt: 0 });
      return false;
    }
    if (pin === undefined) {
      await this.opts.pinKey(host, fingerprint);
      this.written.set(host, { pin: fingerprint, at: now });
    }
    const current = answered ? await this.currentRenewal(host, checked.publicKey, ca, now) : undefined;
    if (current !== undefined) {
      this.seen.set(host, { request: raw, outcome: 'answered', caPem: ca.certificatePem, renewAt: current });
      return false;
    }
    const notBefore = wholeSeconds(now - BACKDATE_MS);
    const notAfter = wholeSeconds(now + AGENT_CERT_VALIDITY_MS);
    let certificate: string;
    try {
      certificate = createCertificate({
        subjectCommonName: commonName(host),
        issuer: { certificatePem: ca.certificatePem, privateKey: ca.privateKey },
        publicKey: checked.publicKey,
        notBefore,
        notAfter,
        dnsNames: [agentServerName(host)],
        usage: 'server',
      });
    } catch (e) {
      // Not for a while: the same request and CA would fail the same way (a host name too long for a DNS name).
      this.opts.log(`cannot issue a certificate to host ${host}`, e);
      this.seen.set(host, { request: raw, outcome: 'failed', caPem: ca.certificatePem, renewAt: 0 });
      return false;
    }
    const answer: IssuedCertificate = { certificate, ca: ca.certificatePem, notAfter: notAfter.toISOString() };
    await this.redis.set(certKey(host), JSON.stringify(answer));
    const renewAt = notBefore.getTime() + ((notAfter.getTime() - notBefore.getTime()) * 2) / 3;
    this.seen.set(host, { request: raw, outcome: 'answered', caPem: ca.certificatePem, renewAt });
    const msg = `Issued a certificate for ${agentServerName(host)} to key sha256:${checked.fingerprint} until ${answer.notAfter}`;
    this.opts.log(`host ${host}: ${msg}`);
    this.opts.event(xenHost, 'Normal', CERT_ISSUED, msg);
    return true;
  }

  /** The host's pinned key: its XenHost's, or one written here that the cache does not show yet. */
  private pinOf(host: string, xenHost: XenHost, now: number): string | undefined {
    const pinned = xenHost.status?.agentKey;
    if (pinned) {
      this.written.delete(host);
      return pinned;
    }
    const w = this.written.get(host);
    if (w && now - w.at < PIN_SETTLE_MS) return w.pin;
    this.written.delete(host);
    return undefined;
  }

  /** The renewal time of the certificate at certKey(host) if it still serves the request; undefined if a new one is due. */
  private async currentRenewal(host: string, key: KeyObject, ca: KrataCA, now: number): Promise<number | undefined> {
    const raw = await this.redis.get(certKey(host));
    if (!raw) return undefined;
    try {
      const answer = JSON.parse(raw) as Partial<IssuedCertificate>;
      if (typeof answer.certificate !== 'string' || answer.ca !== ca.certificatePem) return undefined;
      const cert = new X509Certificate(answer.certificate);
      const renewAt = renewalTime(cert);
      const fits =
        cert.publicKey.equals(key) &&
        issuedBy(cert, ca) &&
        cert.subjectAltName === `DNS:${agentServerName(host)}` &&
        Date.parse(cert.validFrom) <= now &&
        now < renewAt;
      return fits ? renewAt : undefined;
    } catch {
      return undefined; // whatever is there is not an answer: replace it
    }
  }
}
