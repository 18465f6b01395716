// A real Kubernetes API server for the operator's tests, started the way controller-runtime's envtest
// does: Debian's etcd and a kube-apiserver built from Debian's source (scripts/build-kube-apiserver),
// both on loopback, with a static admin token, RBAC and self-signed serving certificates.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from '../../lib/package-root.js';
import { freePort } from '../free-port.js';
import { makeCa, type CertFiles } from '../openssl-ca.js';

export interface Envtest {
  /** https://127.0.0.1:PORT */
  server: string;
  /** Bearer token of a system:masters user. */
  token: string;
  /** A kubeconfig for kubectl and @kubernetes/client-node (TLS verification off: self-signed). */
  kubeconfig: string;
  /** Bearer tokens of the users `users` named (no groups: a test's RBAC grants them what it means to). */
  userTokens: Record<string, string>;
  /**
   * With `aggregation`: the aggregation layer's front proxy, as the apiserver was told it
   * (--requestheader-client-ca-file, --proxy-client-cert-file/--proxy-client-key-file).
   */
  aggregation?: AggregationLayer;
  stop(): Promise<void>;
}

export interface EnvtestOptions {
  readyTimeoutMs?: number;
  /**
   * Configure the aggregation layer, as kubeadm does: a requestheader CA and a front-proxy client
   * certificate (CN front-proxy-client) made with openssl, the X-Remote-User/-Group/-Extra- headers, and
   * --enable-aggregator-routing (an APIService's Service is reached at its Endpoints' addresses).
   */
  aggregation?: boolean;
  /** Token users to add besides the admin. */
  users?: string[];
}

export interface AggregationLayer {
  /** PEM file of the requestheader CA. */
  requestheaderCa: string;
  /** The front proxy's client certificate and key (what the apiserver presents to aggregated servers). */
  proxyClient: CertFiles;
  /** The CN the front proxy's certificate has (--requestheader-allowed-names). */
  allowedName: string;
}

const FRONT_PROXY_CN = 'front-proxy-client';

/** The apiserver flags of the aggregation layer, its certificates made in `dir`. */
function aggregationLayer(dir: string): { layer: AggregationLayer; flags: string[] } {
  const ca = makeCa(dir, 'front-proxy-ca');
  const proxyClient = ca.issue('front-proxy-client', { cn: FRONT_PROXY_CN, usage: 'client' });
  return {
    layer: { requestheaderCa: ca.cert, proxyClient, allowedName: FRONT_PROXY_CN },
    flags: [
      `--requestheader-client-ca-file=${ca.cert}`,
      `--requestheader-allowed-names=${FRONT_PROXY_CN}`,
      '--requestheader-username-headers=X-Remote-User',
      '--requestheader-group-headers=X-Remote-Group',
      '--requestheader-extra-headers-prefix=X-Remote-Extra-',
      `--proxy-client-cert-file=${proxyClient.cert}`,
      `--proxy-client-key-file=${proxyClient.key}`,
      '--enable-aggregator-routing=true',
    ],
  };
}

/** The cached kube-apiserver, built on first use (about 12 minutes). */
export function kubeApiserverBinary(): string {
  const r = spawnSync(join(repoRoot(), 'scripts/build-kube-apiserver'), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  if (r.status !== 0) throw new Error('scripts/build-kube-apiserver failed');
  return r.stdout.trim();
}

function get(url: string, token: string): Promise<number> {
  return new Promise((resolve) => {
    const req = request(url, { headers: { authorization: `Bearer ${token}` }, rejectUnauthorized: false, timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', () => resolve(0));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

export async function startEnvtest(opts: EnvtestOptions = {}): Promise<Envtest> {
  const apiserver = kubeApiserverBinary();
  const dir = mkdtempSync(join(tmpdir(), 'krata-envtest-'));
  const [etcdClient, etcdPeer, securePort] = [await freePort(), await freePort(), await freePort()];
  const token = `krata-test-${Math.random().toString(36).slice(2)}`;
  const userTokens: Record<string, string> = {};
  const userLines = (opts.users ?? []).map((u, i) => {
    userTokens[u] = `krata-test-${u}-${Math.random().toString(36).slice(2)}`;
    return `${userTokens[u]},${u},${100 + i}\n`;
  });
  writeFileSync(join(dir, 'tokens.csv'), `${token},admin,1,"system:masters"\n${userLines.join('')}`);
  const aggregation = opts.aggregation ? aggregationLayer(dir) : undefined;
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  writeFileSync(join(dir, 'sa.key'), privateKey.export({ type: 'pkcs1', format: 'pem' }));
  writeFileSync(join(dir, 'sa.pub'), publicKey.export({ type: 'spki', format: 'pem' }));
  const children: ChildProcess[] = [];
  const logs: Record<string, string> = { etcd: '', apiserver: '' };
  const run = (name: 'etcd' | 'apiserver', cmd: string, args: string[]) => {
    const c = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    c.stderr!.on('data', (d: Buffer) => (logs[name] = (logs[name] + d.toString()).slice(-8000)));
    children.push(c);
    return c;
  };
  const stop = async () => {
    for (const c of children.reverse()) {
      if (c.exitCode !== null || c.signalCode !== null) continue;
      c.kill('SIGTERM');
      await Promise.race([new Promise((r) => c.once('exit', r)), new Promise((r) => setTimeout(r, 5000).unref())]);
      if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const etcdUrl = `http://127.0.0.1:${etcdClient}`;
    run('etcd', 'etcd', [
      '--data-dir',
      join(dir, 'etcd'),
      '--name',
      'krata-test',
      '--listen-client-urls',
      etcdUrl,
      '--advertise-client-urls',
      etcdUrl,
      '--listen-peer-urls',
      `http://127.0.0.1:${etcdPeer}`,
      '--initial-advertise-peer-urls',
      `http://127.0.0.1:${etcdPeer}`,
      '--initial-cluster',
      `krata-test=http://127.0.0.1:${etcdPeer}`,
      '--unsafe-no-fsync',
    ]);
    const api = run('apiserver', apiserver, [
      `--etcd-servers=${etcdUrl}`,
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      `--secure-port=${securePort}`,
      `--cert-dir=${join(dir, 'certs')}`,
      `--token-auth-file=${join(dir, 'tokens.csv')}`,
      '--authorization-mode=RBAC',
      '--service-account-issuer=https://kubernetes.default.svc',
      `--service-account-key-file=${join(dir, 'sa.pub')}`,
      `--service-account-signing-key-file=${join(dir, 'sa.key')}`,
      '--service-cluster-ip-range=10.96.0.0/24',
      '--insecure-port=0',
      // Without these two a 1.20 apiserver on loopback loops on endpoint errors (toolchain.md, section 7).
      '--enable-priority-and-fairness=false',
      '--endpoint-reconciler-type=none',
      // As kubeadm and managed clusters run it (the default is false): the node agent's DaemonSet is privileged.
      '--allow-privileged=true',
      ...(aggregation?.flags ?? []),
    ]);
    const server = `https://127.0.0.1:${securePort}`;
    const deadline = Date.now() + (opts.readyTimeoutMs ?? 60_000);
    while ((await get(`${server}/readyz`, token)) !== 200) {
      if (api.exitCode !== null || Date.now() > deadline)
        throw new Error(
          `kube-apiserver did not become ready: ${logs.apiserver.split('\n').slice(-10).join('\n')}\netcd: ` +
            `${logs.etcd.split('\n').slice(-5).join('\n')}`,
        );
      await new Promise((r) => setTimeout(r, 200));
    }
    const kubeconfig = join(dir, 'kubeconfig');
    writeFileSync(
      kubeconfig,
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'envtest', cluster: { server, 'insecure-skip-tls-verify': true } }],
        users: [{ name: 'admin', user: { token } }],
        contexts: [{ name: 'envtest', context: { cluster: 'envtest', user: 'admin' } }],
        'current-context': 'envtest',
      }),
    );
    return { server, token, kubeconfig, userTokens, ...(aggregation ? { aggregation: aggregation.layer } : {}), stop };
  } catch (e) {
    await stop();
    throw e;
  }
}
