// Certificates for tests, made with Debian's openssl in a directory: a CA, and leaf certificates it
// signs for servers (DNS names, IP addresses) or clients (a CN), with the key usages TLS checks.
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface CertFiles {
  cert: string;
  key: string;
}

export interface TestCa extends CertFiles {
  /** Signs a certificate for `cn`: a server's (names go in subjectAltName) or a client's. */
  issue(name: string, opts: { cn: string; dns?: string[]; ips?: string[]; usage: 'server' | 'client' | 'both' }): CertFiles;
}

const openssl = (args: string[]) => execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });

export function makeCa(dir: string, name: string, cn = `${name} test CA`): TestCa {
  const key = join(dir, `${name}.key`);
  const cert = join(dir, `${name}.crt`);
  openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', key]);
  openssl([
    'req',
    '-x509',
    '-new',
    '-key',
    key,
    '-out',
    cert,
    '-days',
    '2',
    '-subj',
    `/CN=${cn}`,
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  let serial = 1;
  return {
    cert,
    key,
    issue(leaf, opts) {
      const leafKey = join(dir, `${leaf}.key`);
      const leafCert = join(dir, `${leaf}.crt`);
      const csr = join(dir, `${leaf}.csr`);
      const ext = join(dir, `${leaf}.ext`);
      const sans = [...(opts.dns ?? []).map((d) => `DNS:${d}`), ...(opts.ips ?? []).map((i) => `IP:${i}`)];
      const eku = { server: 'serverAuth', client: 'clientAuth', both: 'serverAuth,clientAuth' }[opts.usage];
      writeFileSync(
        ext,
        [
          'basicConstraints=CA:FALSE',
          'keyUsage=critical,digitalSignature,keyEncipherment',
          `extendedKeyUsage=${eku}`,
          ...(sans.length ? [`subjectAltName=${sans.join(',')}`] : []),
        ].join('\n') + '\n',
      );
      openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', leafKey]);
      openssl(['req', '-new', '-key', leafKey, '-out', csr, '-subj', `/CN=${opts.cn}`]);
      openssl([
        'x509',
        '-req',
        '-in',
        csr,
        '-CA',
        cert,
        '-CAkey',
        key,
        '-set_serial',
        String(serial++),
        '-days',
        '2',
        '-out',
        leafCert,
        '-extfile',
        ext,
      ]);
      return { cert: leafCert, key: leafKey };
    },
  };
}
