// A krata CA for tests, made with openssl in a temporary directory: it stands in for the operator's CA
// (the agent's serving certificate, signed for the public key of its request) and for krata-api's client
// certificate, and makes the wrong ones the agent and its listener must refuse.
import { execFileSync } from 'node:child_process';
import { verify } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { KRATA_API_CLIENT_NAME, agentServerName } from '../../contracts/krata-api/agent-tls.js';
import { certKey, certRequestKey, certRequestProof, type CertRequest, type IssuedCertificate } from '../../contracts/redis/contract.js';

const dirs = new Set<string>();
process.on('exit', () => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

let n = 0;
const openssl = (cwd: string, ...args: string[]) => execFileSync('openssl', args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });

export interface LeafOptions {
  /** Subject CN (default: the first DNS name, or the name). */
  cn?: string;
  dns?: string[];
  /** Extended key usage (default clientAuth for clients, serverAuth for agents; '': none, any use). */
  eku?: string;
  days?: number;
}

export class TestCa {
  readonly cert: string;
  private constructor(
    readonly dir: string,
    readonly name: string,
  ) {
    this.cert = readFileSync(join(dir, 'ca.crt'), 'utf8');
  }

  /** A new CA: P-256 key, CA:TRUE, valid `days`. */
  static create(name = 'krata test CA', days = 30): TestCa {
    const dir = mkdtempSync(join(tmpdir(), 'krata-ca-'));
    dirs.add(dir);
    openssl(dir, 'ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'ca.key');
    // prettier-ignore
    openssl(dir, 'req', '-x509', '-new', '-key', 'ca.key', '-subj', `/CN=${name}`, '-days', String(days), '-out', 'ca.crt',
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
    return new TestCa(dir, name);
  }

  /** A certificate for `publicKey` (SPKI PEM) signed by this CA, as the operator signs a request's key. */
  sign(publicKey: string, o: LeafOptions & { eku: string }): string {
    const id = `leaf-${++n}`;
    writeFileSync(join(this.dir, `${id}.pub`), publicKey);
    // x509 -req needs a request to start from; -force_pubkey puts the requested key in its place.
    openssl(this.dir, 'req', '-new', '-key', 'ca.key', '-subj', `/CN=${o.cn ?? o.dns?.[0] ?? 'leaf'}`, '-out', `${id}.csr`);
    const ext = [
      'basicConstraints=critical,CA:FALSE',
      'keyUsage=critical,digitalSignature',
      ...(o.eku ? [`extendedKeyUsage=${o.eku}`] : []),
      ...(o.dns?.length ? [`subjectAltName=${o.dns.map((d) => `DNS:${d}`).join(',')}`] : []),
    ];
    writeFileSync(join(this.dir, `${id}.ext`), ext.join('\n') + '\n');
    // prettier-ignore
    openssl(this.dir, 'x509', '-req', '-in', `${id}.csr`, '-force_pubkey', `${id}.pub`, '-CA', 'ca.crt', '-CAkey', 'ca.key',
      '-CAcreateserial', '-days', String(o.days ?? 10), '-extfile', `${id}.ext`, '-out', `${id}.crt`);
    return readFileSync(join(this.dir, `${id}.crt`), 'utf8');
  }

  /** A key and certificate for a TLS client (krata-api's identity unless told otherwise). */
  client(o: LeafOptions = {}): { key: string; cert: string } {
    const id = `client-${++n}`;
    openssl(this.dir, 'ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', `${id}.key`);
    openssl(this.dir, 'pkey', '-in', `${id}.key`, '-pubout', '-out', `${id}.pub`);
    const publicKey = readFileSync(join(this.dir, `${id}.pub`), 'utf8');
    const dns = o.dns ?? [KRATA_API_CLIENT_NAME];
    const cert = this.sign(publicKey, { ...o, dns, eku: o.eku ?? 'clientAuth' });
    return { key: readFileSync(join(this.dir, `${id}.key`), 'utf8'), cert };
  }

  /** The operator's answer to an agent's request for `host`: a serving certificate for its key, and this CA. */
  issue(host: string, publicKey: string, o: LeafOptions = {}): IssuedCertificate {
    const certificate = this.sign(publicKey, { dns: [agentServerName(host)], eku: 'serverAuth', ...o });
    const notAfter = execFileSync('openssl', ['x509', '-noout', '-enddate'], { input: certificate })
      .toString()
      .trim()
      .replace(/^notAfter=/, '');
    return { certificate, ca: this.cert, notAfter: new Date(notAfter).toISOString() };
  }
}

/** The request in Redis for `host`, its proof verified as the operator verifies it (throws if it does not verify). */
export async function readCertRequest(redis: Redis, host: string): Promise<CertRequest | undefined> {
  const raw = await redis.get(certRequestKey(host));
  if (raw === null) return undefined;
  const req = JSON.parse(raw) as CertRequest;
  if (!verify('sha256', certRequestProof(host, req.publicKey), req.publicKey, Buffer.from(req.proof, 'base64')))
    throw new Error(`the certificate request for ${host} has a proof that does not verify`);
  return req;
}

/** Answers the request in Redis as the operator would (or with `issued`, a wrong answer): returns what it wrote. */
export async function answerCertRequest(redis: Redis, host: string, ca: TestCa, o: LeafOptions = {}): Promise<IssuedCertificate> {
  const req = await readCertRequest(redis, host);
  if (!req) throw new Error(`no certificate request for ${host}`);
  const issued = ca.issue(host, req.publicKey, o);
  await redis.set(certKey(host), JSON.stringify(issued));
  return issued;
}
