// The control plane of e2e 170-cluster, on the host beside the QEMU Xen host: a real kube-apiserver and
// etcd with the aggregation layer, krata's CRDs and user roles, Redis with krata's ACL, the operator
// (leading, with its PKI) and krata-api registered as the APIService. The node agent runs in dom0 in
// cluster mode and reaches Redis through QEMU's user network (10.0.2.2 is the host's loopback there).
//   node dist/test/e2e/cluster-control-plane.js OUTDIR
// Writes OUTDIR/cluster.json (kubeconfigs, Redis port and the agent's password) once all of it is up,
// then runs until SIGTERM or SIGINT, and stops everything.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { parse, parseAllDocuments } from 'yaml';
import { CRD_SOURCES, installedCRD } from '../../crds/codegen/paths.js';
import { repoRoot } from '../../lib/package-root.js';
import { KubeClient, isConflict } from '../../operator/kube/client.js';
import { SUBRESOURCE_GROUP, SUBRESOURCE_VERSION } from '../../contracts/krata-api/subresources.js';
import { startEnvtest } from '../kube/envtest.js';
import { waitFor } from '../kube/operator-env.js';
import { hostAddress, registerApiService } from '../kube/aggregated-api.js';
import { startRedis } from '../redis.js';
import { startTestOperator } from '../harness/operator.js';
import { createXenNodes } from '../cluster/xen-nodes.js';
import { freePort } from '../free-port.js';
import { readFileSync } from 'node:fs';

const [out] = process.argv.slice(2);
if (!out) throw new Error('usage: cluster-control-plane.js OUTDIR');
mkdirSync(out, { recursive: true });
const root = repoRoot();
const NS = 'krata-system';
/** The XenHost (and Node) name the agent in dom0 runs as. */
const HOST = 'xen-e2e';
const log = (m: string) => console.error(`control-plane: ${m}`);

const stops: (() => Promise<void> | void)[] = [];
let stopping = false;
async function stopAll(code: number): Promise<never> {
  if (!stopping) {
    stopping = true;
    for (const s of stops.reverse()) await Promise.resolve(s()).catch(() => undefined);
  }
  process.exit(code);
}
process.on('SIGTERM', () => void stopAll(0));
process.on('SIGINT', () => void stopAll(0));

async function createOrKeep(kube: KubeClient, path: string, body: object): Promise<void> {
  await kube.request('POST', path, { body }).catch((e: unknown) => {
    if (!isConflict(e)) throw e;
  });
}

async function main(): Promise<void> {
  const env = await startEnvtest({ aggregation: true, users: ['alice', 'bob'] });
  stops.push(() => env.stop());
  const kc = new KubeConfig();
  kc.loadFromFile(env.kubeconfig);
  const kube = new KubeClient(kc);
  stops.push(() => kube.close());

  // krata's CRDs as the install has them, and the user roles (alice edits Guests in default, bob views).
  for (const src of CRD_SOURCES) {
    const crd = parse(readFileSync(join(root, installedCRD(src)), 'utf8')) as object;
    await createOrKeep(kube, '/apis/apiextensions.k8s.io/v1/customresourcedefinitions', crd);
  }
  for (const doc of parseAllDocuments(readFileSync(join(root, 'manifests/base/user-roles.yaml'), 'utf8')))
    await createOrKeep(kube, '/apis/rbac.authorization.k8s.io/v1/clusterroles', doc.toJS() as object);
  for (const [user, role] of [
    ['alice', 'krata-guest-editor'],
    ['bob', 'krata-guest-viewer'],
  ] as const)
    await createOrKeep(kube, '/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings', {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name: `${user}-guests`, namespace: 'default' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: role },
      subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: user }],
    });
  await waitFor(
    () =>
      kube.request('GET', '/apis/krata.dev/v1alpha1/guests').then(
        () => true,
        () => false,
      ),
    'the Guest CRD served',
    60_000,
  );
  await createOrKeep(kube, '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } });
  await createXenNodes(kube, [HOST]);
  log('apiserver ready');

  // Redis with krata's ACL on the host's loopback (dom0 reaches it as 10.0.2.2).
  const acl = { operator: randomBytes(12).toString('hex'), agent: randomBytes(12).toString('hex') };
  const redis = await startRedis({ acl });
  stops.push(() => redis.stop());

  const operator = await startTestOperator(
    kube,
    { redis: { url: redis.urlAs('krata-operator', acl.operator) }, pki: { namespace: NS, intervalMs: 2000 }, rescheduleAfterMs: 600_000 },
    (m, e) => log(`operator: ${m}${e ? `: ${(e as Error).message ?? String(e)}` : ''}`),
  );
  stops.push(() => operator.stop());
  log('operator leading');

  // krata-api with the certificates the operator issued it.
  const secret = async (name: string) =>
    waitFor(
      () =>
        kube.request<{ data?: Record<string, string> }>('GET', `/api/v1/namespaces/${NS}/secrets/${name}`).then(
          (s) => s.data,
          () => undefined,
        ),
      `Secret ${name}`,
      60_000,
    );
  const certs = join(out, 'krata-api');
  mkdirSync(certs, { recursive: true });
  const files: Record<string, string> = {};
  for (const [name, keys] of [
    ['krata-api-serving', ['tls.crt', 'tls.key']],
    ['krata-api-client', ['tls.crt', 'tls.key', 'ca.crt']],
    ['krata-ca', ['tls.crt']],
  ] as const) {
    const data = (await secret(name))!;
    for (const k of keys) {
      const f = join(certs, `${name}-${k}`);
      writeFileSync(f, Buffer.from(data[k]!, 'base64'), { mode: 0o600 });
      files[`${name}/${k}`] = f;
    }
  }
  const addr = hostAddress();
  stops.push(() => addr.release());
  const port = await freePort();
  const api = spawn(
    process.execPath,
    [
      join(root, 'dist/krata-api/main.js'),
      '--kubeconfig',
      env.kubeconfig,
      '--listen',
      `${addr.address}:${port}`,
      '--tls-cert-file',
      files['krata-api-serving/tls.crt']!,
      '--tls-private-key-file',
      files['krata-api-serving/tls.key']!,
      '--agent-client-cert-file',
      files['krata-api-client/tls.crt']!,
      '--agent-client-key-file',
      files['krata-api-client/tls.key']!,
      '--agent-ca-file',
      files['krata-api-client/ca.crt']!,
      '--metrics',
      'off',
      '--log-level',
      'warn',
    ],
    { stdio: ['ignore', 'inherit', 'inherit'] },
  );
  stops.push(() => void api.kill('SIGTERM'));
  api.on('exit', (code) => {
    if (!stopping) {
      log(`krata-api exited (${code})`);
      void stopAll(1);
    }
  });
  await registerApiService(kube, {
    group: SUBRESOURCE_GROUP,
    version: SUBRESOURCE_VERSION,
    namespace: NS,
    service: 'krata-api',
    address: addr.address,
    port,
    caFile: files['krata-ca/tls.crt']!,
  });
  log(`krata-api at ${addr.address}:${port}, APIService available`);

  // A kubeconfig per user: the admin's, and alice's and bob's tokens against the same server.
  const kubeconfigFor = (user: string, token: string) => {
    const f = join(out, `kubeconfig-${user}`);
    const u = new KubeConfig();
    u.loadFromFile(env.kubeconfig);
    u.users = [{ name: user, token }];
    u.contexts = u.contexts.map((c) => ({ ...c, user }));
    writeFileSync(f, u.exportConfig(), { mode: 0o600 });
    return f;
  };
  const info = {
    host: HOST,
    kubeconfig: env.kubeconfig,
    kubeconfigs: { alice: kubeconfigFor('alice', env.userTokens.alice!), bob: kubeconfigFor('bob', env.userTokens.bob!) },
    redisPort: redis.port,
    agentPassword: acl.agent,
  };
  writeFileSync(join(out, 'cluster.json.tmp'), JSON.stringify(info, null, 2));
  const { renameSync } = await import('node:fs');
  renameSync(join(out, 'cluster.json.tmp'), join(out, 'cluster.json'));
  log('ready');
}

main().catch((e: unknown) => {
  log(`failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
  void stopAll(1);
});
