// X.509 v3 certificates for krata's own PKI (the operator's CA, agents' and krata-api's certificates):
// the DER is written here (der.ts), Node's crypto signs it. Keys are ECDSA P-256 and signatures
// ecdsa-with-SHA256 for everything krata makes; an issuer an administrator provides may also hold a P-384,
// P-521, RSA (PKCS#1 v1.5, SHA-256) or Ed25519 key. Certificates carry exactly the extensions TLS checks:
// basicConstraints, keyUsage, extKeyUsage, subjectAltName (DNS names), subject and authority key ids.
import { X509Certificate, createHash, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import * as der from './der.js';

export type CertificateUsage = 'ca' | 'server' | 'client' | 'server+client';

export interface CertificateOptions {
  subjectCommonName: string;
  /** Who signs; absent: self-signed with `privateKey`. */
  issuer?: { certificatePem: string; privateKey: KeyObject };
  /** The subject's public key. */
  publicKey: KeyObject;
  /** The subject's private key, which signs a self-signed certificate. */
  privateKey?: KeyObject;
  /** Default: 16 random bytes, positive. */
  serialNumber?: Buffer;
  /** Default: five minutes ago (clocks of issuer and verifier differ a little). */
  notBefore?: Date;
  notAfter: Date;
  /** Implied by usage 'ca'; true with any other usage is an error. */
  isCA?: boolean;
  dnsNames?: string[];
  usage: CertificateUsage;
}

const OID = {
  commonName: '2.5.4.3',
  basicConstraints: '2.5.29.19',
  keyUsage: '2.5.29.15',
  extKeyUsage: '2.5.29.37',
  subjectAltName: '2.5.29.17',
  subjectKeyIdentifier: '2.5.29.14',
  authorityKeyIdentifier: '2.5.29.35',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
  ecdsaWithSHA256: '1.2.840.10045.4.3.2',
  ecdsaWithSHA384: '1.2.840.10045.4.3.3',
  ecdsaWithSHA512: '1.2.840.10045.4.3.4',
  sha256WithRSAEncryption: '1.2.840.113549.1.1.11',
  ed25519: '1.3.101.112',
} as const;

/** KeyUsage bits (RFC 5280 4.2.1.3). */
const KU = { digitalSignature: 0, keyCertSign: 5, cRLSign: 6 } as const;

/** X.520's upper bound on a common name. */
const MAX_CN = 64;
const DNS_NAME = /^(\*\.)?[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$/i;

/** A new ECDSA P-256 key pair, the kind krata issues certificates for. */
export function newKeyPair(): { publicKey: KeyObject; privateKey: KeyObject } {
  return generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
}

/** Whether a key is an ECDSA key on P-256 (prime256v1). */
export function isP256(key: KeyObject): boolean {
  return key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1';
}

/** The first PEM block labelled `label` ("CERTIFICATE", "PUBLIC KEY") as DER; undefined if there is none. */
export function pemBlock(pem: string, label: string): Buffer | undefined {
  const m = new RegExp(`-----BEGIN ${label}-----\\r?\\n([A-Za-z0-9+/=\\r\\n]+?)-----END ${label}-----`).exec(pem);
  if (!m) return undefined;
  const body = m[1]!.replace(/\r?\n/g, '');
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(body) || body.length % 4 !== 0) return undefined;
  return Buffer.from(body, 'base64');
}

export function toPem(label: string, derBytes: Buffer): string {
  const b64 = derBytes.toString('base64');
  const lines = b64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

/** The name `CN=<cn>` as DER. */
function commonNameDer(cn: string): Buffer {
  return der.sequence(der.set(der.sequence(der.oid(OID.commonName), der.utf8String(cn))));
}

/** SHA-1 of the subjectPublicKey bits of a SubjectPublicKeyInfo: RFC 5280's key identifier, method 1. */
function keyIdentifier(spki: Buffer): Buffer {
  const top = der.readElement(spki, 0);
  const [, bits] = der.children(spki, top);
  if (!bits || bits.tag !== der.TAG.BIT_STRING || bits.end - bits.start < 2) throw new Error('SubjectPublicKeyInfo without a key');
  return createHash('sha1')
    .update(spki.subarray(bits.start + 1, bits.end))
    .digest();
}

/** The signature algorithm (and hash for crypto.sign) an issuer's key signs with. */
function signatureAlgorithm(key: KeyObject): { algorithm: Buffer; hash: string | null } {
  if (key.type !== 'private') throw new Error('the signing key must be a private key');
  switch (key.asymmetricKeyType) {
    case 'ec': {
      const curve = key.asymmetricKeyDetails?.namedCurve;
      const [oid, hash] =
        curve === 'prime256v1'
          ? [OID.ecdsaWithSHA256, 'sha256']
          : curve === 'secp384r1'
            ? [OID.ecdsaWithSHA384, 'sha384']
            : curve === 'secp521r1'
              ? [OID.ecdsaWithSHA512, 'sha512']
              : [undefined, undefined];
      if (!oid) throw new Error(`EC curve ${curve ?? '?'} is not supported for signing certificates (P-256, P-384, P-521 are)`);
      return { algorithm: der.sequence(der.oid(oid)), hash };
    }
    case 'rsa':
      return { algorithm: der.sequence(der.oid(OID.sha256WithRSAEncryption), der.nullValue()), hash: 'sha256' };
    case 'ed25519':
      return { algorithm: der.sequence(der.oid(OID.ed25519)), hash: null };
    default:
      throw new Error(`${key.asymmetricKeyType ?? 'unknown'} keys cannot sign certificates here (EC, RSA or Ed25519)`);
  }
}

/** What a certificate's issuer contributes: its subject name (verbatim) and its key identifier, if it has one. */
function issuerFields(certificatePem: string): { name: Buffer; keyId?: Buffer } {
  const certDer = pemBlock(certificatePem, 'CERTIFICATE');
  if (!certDer) throw new Error('the issuer certificate is not PEM');
  const cert = der.readElement(certDer, 0);
  const tbs = der.children(certDer, cert)[0];
  if (!tbs || tbs.tag !== der.TAG.SEQUENCE) throw new Error('the issuer certificate is malformed');
  const fields = der.children(certDer, tbs);
  const at = fields[0]?.tag === 0xa0 ? 1 : 0; // [0] version
  const subject = fields[at + 4];
  if (!subject || subject.tag !== der.TAG.SEQUENCE) throw new Error('the issuer certificate has no subject');
  const name = certDer.subarray(subject.header, subject.end);
  const extsTagged = fields.slice(at + 6).find((f) => f.tag === 0xa3);
  if (!extsTagged) return { name };
  const exts = der.children(certDer, extsTagged)[0];
  for (const ext of exts ? der.children(certDer, exts) : []) {
    const parts = der.children(certDer, ext);
    if (parts[0]?.tag !== der.TAG.OID || der.readOid(certDer, parts[0]) !== OID.subjectKeyIdentifier) continue;
    const value = parts[parts.length - 1]!;
    const inner = der.readElement(certDer, value.start, value.end);
    if (inner.tag === der.TAG.OCTET_STRING) return { name, keyId: certDer.subarray(inner.start, inner.end) };
  }
  return { name };
}

function extension(id: string, critical: boolean, value: Buffer): Buffer {
  return der.sequence(der.oid(id), ...(critical ? [der.boolean(true)] : []), der.octetString(value));
}

function serial(given?: Buffer): Buffer {
  if (given) {
    if (given.length === 0 || given.length > 20) throw new Error('a serial number is 1 to 20 bytes');
    if (given.every((b) => b === 0)) throw new Error('a serial number must be positive');
    return der.unsignedInteger(given);
  }
  const r = randomBytes(16);
  r[0] = (r[0]! & 0x7f) | 0x40; // positive, 16 bytes, never a leading zero
  return der.unsignedInteger(r);
}

/** A certificate (PEM) for `publicKey`, signed by the issuer, or by `privateKey` when self-signed. */
export function createCertificate(opts: CertificateOptions): string {
  const isCA = opts.usage === 'ca';
  if (opts.isCA !== undefined && opts.isCA !== isCA) throw new Error(`isCA ${opts.isCA} contradicts usage '${opts.usage}'`);
  const cn = opts.subjectCommonName;
  if (cn.length === 0 || cn.length > MAX_CN || [...cn].some((ch) => ch.charCodeAt(0) < 0x20 || ch.charCodeAt(0) === 0x7f))
    throw new Error(`common name ${JSON.stringify(cn.slice(0, 80))}: 1 to ${MAX_CN} characters, no control characters`);
  const dnsNames = opts.dnsNames ?? [];
  for (const n of dnsNames)
    if (n.length > 253 || !DNS_NAME.test(n)) throw new Error(`DNS name ${JSON.stringify(n.slice(0, 260))} is not valid`);
  if (isCA && dnsNames.length) throw new Error('a CA certificate names no DNS names here');
  const notBefore = opts.notBefore ?? new Date(Date.now() - 5 * 60_000);
  if (!(opts.notAfter.getTime() > notBefore.getTime())) throw new Error('notAfter must be after notBefore');
  if (opts.publicKey.type !== 'public') throw new Error('publicKey must be a public key');

  let signer: KeyObject;
  let issuerName: Buffer;
  let authorityKeyId: Buffer | undefined;
  const spki = opts.publicKey.export({ type: 'spki', format: 'der' });
  const subjectKeyId = keyIdentifier(spki);
  if (opts.issuer) {
    const ca = new X509Certificate(opts.issuer.certificatePem);
    if (!ca.ca) throw new Error('the issuer certificate is not a CA certificate');
    if (!ca.checkPrivateKey(opts.issuer.privateKey)) throw new Error("the issuer's private key does not match its certificate");
    signer = opts.issuer.privateKey;
    const f = issuerFields(opts.issuer.certificatePem);
    issuerName = f.name;
    authorityKeyId = f.keyId; // an issuer without one gets no authorityKeyIdentifier: nothing to match
  } else {
    if (!opts.privateKey) throw new Error('a self-signed certificate needs the subject privateKey');
    if (!opts.privateKey.type || opts.privateKey.type !== 'private') throw new Error('privateKey must be a private key');
    signer = opts.privateKey;
    issuerName = commonNameDer(cn);
    authorityKeyId = subjectKeyId;
  }
  const { algorithm, hash } = signatureAlgorithm(signer);

  const exts: Buffer[] = [
    extension(OID.basicConstraints, true, isCA ? der.sequence(der.boolean(true), der.smallInteger(0)) : der.sequence()),
    extension(OID.keyUsage, true, der.namedBits(isCA ? [KU.keyCertSign, KU.cRLSign] : [KU.digitalSignature])),
  ];
  if (!isCA) {
    const purposes: string[] = [];
    if (opts.usage === 'server' || opts.usage === 'server+client') purposes.push(OID.serverAuth);
    if (opts.usage === 'client' || opts.usage === 'server+client') purposes.push(OID.clientAuth);
    exts.push(extension(OID.extKeyUsage, false, der.sequence(...purposes.map((p) => der.oid(p)))));
  }
  if (dnsNames.length)
    exts.push(
      extension(OID.subjectAltName, false, der.sequence(...dnsNames.map((n) => der.implicitPrimitive(2, Buffer.from(n, 'ascii'))))),
    );
  exts.push(extension(OID.subjectKeyIdentifier, false, der.octetString(subjectKeyId)));
  if (authorityKeyId) exts.push(extension(OID.authorityKeyIdentifier, false, der.sequence(der.implicitPrimitive(0, authorityKeyId))));

  const tbs = der.sequence(
    der.explicit(0, der.smallInteger(2)), // v3
    serial(opts.serialNumber),
    algorithm,
    issuerName,
    der.sequence(der.time(notBefore), der.time(opts.notAfter)),
    commonNameDer(cn),
    spki,
    der.explicit(3, der.sequence(...exts)),
  );
  const signature = sign(hash, tbs, signer);
  return toPem('CERTIFICATE', der.sequence(tbs, algorithm, der.bitString(signature)));
}

/** A new self-signed krata CA: a P-256 key and its certificate, valid from now until `notAfter`. */
export function createCA(commonName: string, notAfter: Date): { certificatePem: string; privateKeyPem: string } {
  const { publicKey, privateKey } = newKeyPair();
  const certificatePem = createCertificate({ subjectCommonName: commonName, publicKey, privateKey, notAfter, usage: 'ca' });
  return { certificatePem, privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string };
}
