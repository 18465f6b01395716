// krata-api's Kubernetes client: a few JSON calls (read a Guest, a XenHost, a ConfigMap; create a
// SubjectAccessReview) over node:https with one keep-alive agent. KubeConfig does authentication and
// TLS (in-cluster: the ServiceAccount token, refreshed), as the operator's client does.
import http from 'node:http';
import https from 'node:https';
import { KubeConfig } from '@kubernetes/client-node';

/** What krata-api asks of the apiserver; tests bind their own. */
export interface Kube {
  /** The object at `path`, or undefined when it does not exist (404). */
  get<T>(path: string): Promise<T | undefined>;
  create<T>(path: string, body: object): Promise<T>;
}

const MAX_BODY = 4 * 1024 * 1024;
const TIMEOUT_MS = 15_000;

export class KubeApi implements Kube {
  private readonly server: URL;
  private readonly agent: http.Agent;

  static fromKubeconfig(path?: string): KubeApi {
    const kc = new KubeConfig();
    if (path) kc.loadFromFile(path);
    else if (process.env.KUBERNETES_SERVICE_HOST) kc.loadFromCluster();
    else kc.loadFromDefault();
    return new KubeApi(kc);
  }

  constructor(private readonly kc: KubeConfig) {
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new Error('kubeconfig has no current cluster');
    this.server = new URL(cluster.server);
    this.agent = this.server.protocol === 'http:' ? new http.Agent({ keepAlive: true }) : new https.Agent({ keepAlive: true });
  }

  close(): void {
    this.agent.destroy();
  }

  async get<T>(path: string): Promise<T | undefined> {
    const { status, text } = await this.call('GET', path);
    if (status === 404) return undefined;
    return this.parse<T>('GET', path, status, text);
  }

  async create<T>(path: string, body: object): Promise<T> {
    const { status, text } = await this.call('POST', path, JSON.stringify(body));
    return this.parse<T>('POST', path, status, text);
  }

  private parse<T>(method: string, path: string, status: number, text: string): T {
    if (status >= 200 && status < 300) return JSON.parse(text) as T;
    let message = text.slice(0, 300);
    try {
      message = (JSON.parse(text) as { message?: string }).message ?? message;
    } catch {
      // not a Status: the text itself
    }
    throw new Error(`${method} ${path}: HTTP ${status}: ${message}`);
  }

  private async call(method: string, path: string, body?: string): Promise<{ status: number; text: string }> {
    const url = new URL(this.server.pathname.replace(/\/$/, '') + path, this.server);
    const opts: https.RequestOptions = {
      method,
      headers: { accept: 'application/json', ...(body ? { 'content-type': 'application/json' } : {}) },
      timeout: TIMEOUT_MS,
    };
    await this.kc.applyToHTTPSOptions(opts);
    if (!this.kc.getCurrentCluster()?.proxyUrl) opts.agent = this.agent;
    return new Promise((resolve, reject) => {
      const req = (url.protocol === 'http:' ? http : https).request(url, opts, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (d: Buffer) => {
          size += d.length;
          if (size > MAX_BODY) return void req.destroy(new Error(`${method} ${path}: answer over ${MAX_BODY} bytes`));
          chunks.push(d);
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer in ${TIMEOUT_MS} ms`)));
      req.on('error', reject);
      req.end(body);
    });
  }
}
