#!/usr/bin/env node
// krata-operator: the Kubernetes controller for Guests and XenHosts. Every replica keeps informers warm;
// the one holding the Lease places Guests, publishes each host's desired state to Redis, and writes the
// agents' reports back into status. Losing the Lease ends the process (a restart starts clean), as
// controller-runtime does.
import { createServer } from 'node:http';
import { hostname } from 'node:os';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import { packageVersion } from '../lib/version.js';
import { KubeClient } from './kube/client.js';
import { LeaderElector } from './kube/leader-election.js';
import { Operator } from './operator.js';
import { ensureRedisCredentials } from './redis-credentials.js';

const HELP = `Usage: krata-operator [options]

  --kubeconfig FILE            kubeconfig (default: in-cluster, then $KUBECONFIG, then ~/.kube/config)
  --redis URL                  where the node agents meet the operator (default redis://127.0.0.1:6379)
  --redis-password-file FILE   password for Redis (ACL user from the URL)
  --redis-credentials-namespace NS  create the Redis passwords and ACL file as Secrets in NS if missing
                               (krata-redis-operator, -agent, -acl) and connect as krata-operator
  --leader-elect               hold a coordination.k8s.io Lease; only the holder acts (run 2 replicas)
  --lease-namespace NS         namespace of the Lease (default $POD_NAMESPACE, else krata-system)
  --lease-name NAME            (default krata-operator)
  --identity ID                this replica in the Lease (default $POD_NAME, else hostname_pid)
  --reschedule-after DURATION  re-place Guests whose host has not reported this long; 0 = never (default 5m)
  --force-delete-after DURATION  finish deleting Guests whose host has not reported this long; 0 = never (default 10m)
  --workers N                  concurrent reconciles (default 16)
  --insecure-registry HOST     a registry (host[:port]) or token service reached over plain http when
                               trading pull secrets for pull tokens (repeatable; tests only)
  --health-addr [HOST]:PORT    /healthz and /readyz (default :8081; "off" disables)
  --metrics-addr [HOST]:PORT   Prometheus metrics (default :8080; "off" disables)
  --log-level LEVEL            pino level (default info)
  --version
`;

/** 90s, 5m, 1h30m, or plain seconds. */
export function parseDuration(s: string, flag: string): number {
  if (/^\d+$/.test(s)) return Number(s) * 1000;
  const m = /^((\d+)h)?((\d+)m)?((\d+)s)?$/.exec(s);
  if (!m || s === '') throw new Error(`${flag}: ${JSON.stringify(s)} is not a duration (e.g. 90s, 5m, 1h)`);
  return ((Number(m[2] ?? 0) * 60 + Number(m[4] ?? 0)) * 60 + Number(m[6] ?? 0)) * 1000;
}

/** Who the operator is to Redis: the URL's user, a password file, or the Secrets it manages (redis-credentials.ts). */
async function redisCredentials(kube: KubeClient, url: string, passwordFile: string | undefined, namespace: string | undefined, log: (msg: string) => void): Promise<{ redisUsername?: string; redisPassword?: string }> {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new Error(`--redis ${JSON.stringify(url)}: expected redis://[user@]host[:port][/db]`);
  }
  if (u.password && (passwordFile || namespace)) throw new Error('--redis has a password and --redis-password-file or --redis-credentials-namespace was given too: keep it out of the URL');
  if (namespace) {
    if (passwordFile) throw new Error('--redis-password-file and --redis-credentials-namespace: give one, not both');
    const { username, password } = await ensureRedisCredentials(kube, namespace, log);
    if (u.username && decodeURIComponent(u.username) !== username) throw new Error(`--redis names user ${JSON.stringify(decodeURIComponent(u.username))}; ` + `with --redis-credentials-namespace the operator is ${username}`);
    return { redisUsername: username, redisPassword: password };
  }
  if (passwordFile) {
    const password = readFileSync(passwordFile, 'utf8').replace(/\r?\n$/, '');
    if (!password) throw new Error(`--redis-password-file ${passwordFile}: the file is empty`);
    return { redisPassword: password };
  }
  return {};
}

function listen(addr: string, handler: Parameters<typeof createServer>[1]): Promise<ReturnType<typeof createServer>> {
  const i = addr.lastIndexOf(':');
  const host = addr.slice(0, i) || undefined;
  const port = Number(addr.slice(i + 1));
  const server = createServer(handler);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve(server));
  });
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      kubeconfig: { type: 'string' },
      redis: { type: 'string', default: 'redis://127.0.0.1:6379' },
      'redis-password-file': { type: 'string' },
      'redis-credentials-namespace': { type: 'string' },
      'leader-elect': { type: 'boolean', default: false },
      'lease-namespace': { type: 'string' },
      'lease-name': { type: 'string', default: 'krata-operator' },
      identity: { type: 'string' },
      'reschedule-after': { type: 'string', default: '5m' },
      'force-delete-after': { type: 'string', default: '10m' },
      workers: { type: 'string', default: '16' },
      'insecure-registry': { type: 'string', multiple: true },
      'health-addr': { type: 'string', default: ':8081' },
      'metrics-addr': { type: 'string', default: ':8080' },
      'log-level': { type: 'string', default: 'info' },
      version: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.version) {
    console.log(`krata-operator ${packageVersion()}`);
    return 0;
  }
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const log = pino({ level: values['log-level'], base: { component: 'krata-operator' } });
  const say = (msg: string, err?: unknown) => (err ? log.warn({ err: err instanceof Error ? err.message : String(err) }, msg) : log.info(msg));
  const identity = values.identity ?? process.env.POD_NAME ?? `${hostname()}_${process.pid}`;
  const kube = KubeClient.fromKubeconfig(values.kubeconfig);
  const redisAuth = await redisCredentials(kube, values.redis!, values['redis-password-file'], values['redis-credentials-namespace'], (msg) => log.info(msg));
  const operator = new Operator(kube, {
    redisUrl: values.redis!,
    ...redisAuth,
    rescheduleAfterMs: parseDuration(values['reschedule-after']!, '--reschedule-after'),
    forceDeleteAfterMs: parseDuration(values['force-delete-after']!, '--force-delete-after'),
    workers: Number(values.workers),
    insecureRegistries: values['insecure-registry'] ?? [],
    log: say,
  });

  const registry = new Registry();
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 500 });
  new Gauge({ name: 'krata_operator_leader', help: '1 while this replica holds the Lease', registers: [registry], collect() { this.set(operator.isLeading ? 1 : 0); } });
  new Gauge({ name: 'krata_operator_queue_depth', help: 'Guests queued or being reconciled', registers: [registry], collect() { this.set(operator.controller?.queue.length ?? 0); } });
  new Gauge({ name: 'krata_operator_reconciles', help: 'Guest reconciles since start', registers: [registry], collect() { this.set(operator.controller?.reconciles ?? 0); } });
  new Gauge({ name: 'krata_operator_unattributed_hosts', help: 'Names heartbeating in Redis without a XenHost or a Node labelled krata.dev/xen=true (ignored)', registers: [registry], collect() { this.set(operator.tracker?.ignoredHosts ?? 0); } });
  new Gauge({ name: 'krata_operator_kube_writes', help: 'Writes to the Kubernetes API since start', registers: [registry], collect() { this.set(kube.writes); } });
  let synced = false;
  const servers = [];
  if (values['health-addr'] !== 'off') {
    servers.push(
      await listen(values['health-addr']!, (req, res) => {
        const ok = req.url === '/healthz' || (req.url === '/readyz' && synced);
        res.writeHead(ok ? 200 : req.url === '/readyz' ? 503 : 404, { 'content-type': 'text/plain' }).end(ok ? 'ok\n' : 'not ready\n');
      }),
    );
  }
  if (values['metrics-addr'] !== 'off') {
    servers.push(
      await listen(values['metrics-addr']!, async (req, res) => {
        if (req.url !== '/metrics') return void res.writeHead(404).end();
        res.writeHead(200, { 'content-type': registry.contentType }).end(await registry.metrics());
      }),
    );
  }

  await operator.start();
  void operator.synced.then(() => {
    synced = true;
    log.info({ guests: operator.guests.list().length, hosts: operator.hosts.list().length }, 'caches synced');
  });
  let elector: LeaderElector | undefined;
  const lost = new Promise<number>((resolve) => {
    const onLead = () =>
      operator.lead().catch((e) => {
        log.error({ err: (e as Error).message }, 'starting to lead failed');
        resolve(1);
      });
    if (!values['leader-elect']) {
      void onLead();
      return;
    }
    elector = new LeaderElector(kube, {
      namespace: values['lease-namespace'] ?? process.env.POD_NAMESPACE ?? 'krata-system',
      name: values['lease-name']!,
      identity,
      onStartedLeading: () => {
        log.info({ identity }, 'became leader');
        void onLead();
      },
      onStoppedLeading: () => {
        log.error({ identity }, 'lost the lease; exiting so a fresh process waits for it');
        resolve(1);
      },
      log: say,
    });
    void elector.run();
  });
  log.info({ identity, version: packageVersion(), leaderElect: values['leader-elect'] }, 'krata-operator started');
  const signalled = new Promise<number>((resolve) => {
    process.once('SIGTERM', () => resolve(0));
    process.once('SIGINT', () => resolve(0));
  });
  const code = await Promise.race([lost, signalled]);
  await operator.stop();
  // Releasing the Lease lets the other replica take over at once instead of after its expiry.
  await elector?.stop();
  for (const s of servers) s.close();
  return code;
}

process.on('unhandledRejection', (reason) => console.error(`krata-operator: unhandled rejection: ${(reason as Error)?.stack ?? String(reason)}`));

main().then(
  (code) => process.exit(code),
  (err: Error) => {
    console.error(`krata-operator: ${err.message}`);
    process.exit(1);
  },
);
