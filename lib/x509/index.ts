// krata's X.509: certificates written in DER here and signed by Node's crypto (certificate.ts).
export { createCA, createCertificate, isP256, newKeyPair, pemBlock, toPem } from './certificate.js';
export type { CertificateOptions, CertificateUsage } from './certificate.js';
