// Registers an API server the test runs in-process with the envtest's aggregation layer (startEnvtest
// with `aggregation`): a Service without a selector, Endpoints at the server's address, and an
// APIService trusting its serving CA; waits until the aggregator marks the APIService Available.
// Endpoints may not be loopback, so the server must listen on an address of this machine that is not:
// hostAddress() finds one, or adds a dummy interface with one (root) and removes it afterwards.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { isConflict, type KubeClient } from '../../operator/kube/client.js';
import { waitFor } from './operator-env.js';

export interface HostAddress {
  address: string;
  release(): void;
}

const DUMMY = 'krata-agg0';
const DUMMY_ADDRESS = '198.51.100.77';

/** An IPv4 address of this machine that is not loopback or link-local (Endpoints refuse both). */
export function hostAddress(): HostAddress {
  for (const addrs of Object.values(networkInterfaces()))
    for (const a of addrs ?? [])
      if (a.family === 'IPv4' && !a.internal && !a.address.startsWith('169.254.')) return { address: a.address, release: () => undefined };
  execFileSync('ip', ['link', 'add', DUMMY, 'type', 'dummy']);
  execFileSync('ip', ['addr', 'add', `${DUMMY_ADDRESS}/32`, 'dev', DUMMY]);
  execFileSync('ip', ['link', 'set', DUMMY, 'up']);
  return { address: DUMMY_ADDRESS, release: () => execFileSync('ip', ['link', 'del', DUMMY]) };
}

export interface ApiServiceRegistration {
  group: string;
  version: string;
  /** Where the Service lives; its DNS name `NAME.NAMESPACE.svc` must be in the serving certificate. */
  namespace: string;
  service: string;
  address: string;
  port: number;
  /** PEM file of the CA that signed the server's serving certificate. */
  caFile: string;
}

async function createOrKeep(kube: KubeClient, path: string, body: object): Promise<void> {
  await kube.request('POST', path, { body }).catch((e: unknown) => {
    if (!isConflict(e)) throw e;
  });
}

export async function registerApiService(kube: KubeClient, r: ApiServiceRegistration, timeoutMs = 60_000): Promise<void> {
  await createOrKeep(kube, '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: r.namespace } });
  await createOrKeep(kube, `/api/v1/namespaces/${r.namespace}/services`, {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: r.service, namespace: r.namespace },
    spec: { ports: [{ name: 'https', port: 443, targetPort: r.port }] },
  });
  await createOrKeep(kube, `/api/v1/namespaces/${r.namespace}/endpoints`, {
    apiVersion: 'v1',
    kind: 'Endpoints',
    metadata: { name: r.service, namespace: r.namespace },
    subsets: [{ addresses: [{ ip: r.address }], ports: [{ name: 'https', port: r.port }] }],
  });
  const name = `${r.version}.${r.group}`;
  await createOrKeep(kube, '/apis/apiregistration.k8s.io/v1/apiservices', {
    apiVersion: 'apiregistration.k8s.io/v1',
    kind: 'APIService',
    metadata: { name },
    spec: {
      group: r.group,
      version: r.version,
      service: { namespace: r.namespace, name: r.service, port: 443 },
      caBundle: readFileSync(r.caFile).toString('base64'),
      groupPriorityMinimum: 1000,
      versionPriority: 15,
    },
  });
  let last = '';
  await waitFor(
    async () => {
      const got = await kube.request<{ status?: { conditions?: { type: string; status: string; message?: string }[] } }>(
        'GET',
        `/apis/apiregistration.k8s.io/v1/apiservices/${name}`,
      );
      const available = got.status?.conditions?.find((c) => c.type === 'Available');
      last = available?.message ?? '';
      return available?.status === 'True';
    },
    `APIService ${name} Available`,
    timeoutMs,
  ).catch((e: Error) => {
    throw new Error(`${e.message}; its Available condition says: ${last}`);
  });
  // The aggregator routes the group a moment after it marks the APIService Available.
  await waitFor(
    () =>
      kube.request('GET', `/apis/${r.group}/${r.version}`).then(
        () => true,
        () => false,
      ),
    `/apis/${r.group}/${r.version} served through the apiserver`,
    timeoutMs,
  );
}
