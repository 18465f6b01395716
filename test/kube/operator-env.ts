// Test support for code that talks to Kubernetes: a real apiserver with krata's CRDs installed, Guests
// to create, polling, and a TCP proxy that can go silent without closing its connections.
import { readFileSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { parse } from 'yaml';
import { CRD_SOURCES, installedCRD } from '../../crds/codegen/paths.js';
import { repoRoot } from '../../lib/package-root.js';
import type { Guest } from '../../crds/generated/types.js';
import { startEnvtest, type Envtest, type EnvtestOptions } from './envtest.js';
import { KubeClient, isConflict, type KubeClientOptions } from '../../operator/kube/client.js';

export interface TestKube {
  env: Envtest;
  /** A client straight to the apiserver. */
  client: KubeClient;
  /** A client for another server address (a proxy) with the envtest's credentials. */
  clientVia(server: string, opts?: KubeClientOptions): KubeClient;
  stop(): Promise<void>;
}

/** Starts envtest and installs krata's CRDs (as manifests/crds/ has them), waiting until they are Established. */
export async function startKube(opts: EnvtestOptions = {}): Promise<TestKube> {
  const env = await startEnvtest(opts);
  const clients: KubeClient[] = [];
  const clientVia = (server: string, opts?: KubeClientOptions) => {
    const kc = new KubeConfig();
    kc.loadFromFile(env.kubeconfig);
    kc.clusters = kc.clusters.map((c) => ({ ...c, server }));
    const c = new KubeClient(kc, opts);
    clients.push(c);
    return c;
  };
  const stop = async () => {
    for (const c of clients) c.close();
    await env.stop();
  };
  try {
    const client = clientVia(env.server);
    const crdPath = '/apis/apiextensions.k8s.io/v1/customresourcedefinitions';
    for (const file of CRD_SOURCES) {
      const crd = parse(readFileSync(join(repoRoot(), installedCRD(file)), 'utf8')) as { metadata: { name: string } };
      await client.request('POST', crdPath, { body: crd }).catch((e) => {
        if (!isConflict(e)) throw e;
      });
      await waitFor(async () => {
        const got = await client.request<{ status?: { conditions?: { type: string; status: string }[] } }>(
          'GET',
          `${crdPath}/${crd.metadata.name}`,
        );
        return got.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True');
      }, `CRD ${crd.metadata.name} established`);
    }
    return { env, client, clientVia, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

export function newGuest(name: string, namespace = 'default'): Guest {
  return { apiVersion: 'krata.dev/v1alpha1', kind: 'Guest', metadata: { name, namespace }, spec: { image: 'alpine' } as Guest['spec'] };
}

/** Polls until fn returns something truthy. */
export async function waitFor<T>(fn: () => T | Promise<T>, what: string, timeoutMs = 10_000): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * A TCP proxy to the apiserver. freeze() stops forwarding bytes in both directions while every
 * connection stays open, like a network path that silently drops traffic; unfreeze() delivers what
 * was held back.
 */
export class FreezableProxy {
  private frozen = false;
  private readonly held: (() => void)[] = [];
  private readonly sockets = new Set<Socket>();

  private constructor(
    private readonly server: Server,
    readonly url: string,
  ) {}

  static async start(target: string): Promise<FreezableProxy> {
    const { hostname, port } = new URL(target);
    let proxy: FreezableProxy | undefined;
    const server = createServer((down) => {
      const up = createConnection({ host: hostname, port: Number(port) });
      proxy!.pipe(down, up);
      proxy!.pipe(up, down);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    proxy = new FreezableProxy(server, `https://127.0.0.1:${(server.address() as { port: number }).port}`);
    return proxy;
  }

  freeze(): void {
    this.frozen = true;
  }

  unfreeze(): void {
    this.frozen = false;
    for (const deliver of this.held.splice(0)) deliver();
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise((resolve) => this.server.close(resolve));
  }

  private pipe(from: Socket, to: Socket): void {
    this.sockets.add(from);
    from.on('data', (d) => (this.frozen ? this.held.push(() => to.destroyed || to.write(d)) : to.write(d)));
    from.on('close', () => {
      this.sockets.delete(from);
      to.destroy();
    });
    from.on('error', () => to.destroy());
  }
}
