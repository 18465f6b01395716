// krata-operator's flags, and the operator configuration they make (container/config.ts).
import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import type { OperatorConfig } from './container/config.js';
import { logFlagsHelp, logFormat, type LogFormat } from '../lib/daemon-log.js';

export const HELP = `Usage: krata-operator [options]

  --kubeconfig FILE            kubeconfig (default: in-cluster, then $KUBECONFIG, then ~/.kube/config)
  --redis URL                  where the node agents meet the operator (default redis://127.0.0.1:6379)
  --redis-password-file FILE   password for Redis (ACL user from the URL)
  --redis-credentials-namespace NS  create the Redis passwords and ACL file as Secrets in NS if missing
                               (krata-redis-operator, -agent, -acl) and connect as krata-operator
  --pki-namespace NS           keep the krata CA and krata-api's certificates as Secrets in NS (krata-ca,
                               krata-api-serving, krata-api-client) and answer node agents' certificate
                               requests; off without it
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
${logFlagsHelp(31)}  --version
`;

/** 90s, 5m, 1h30m, or plain seconds. */
export function parseDuration(s: string, flag: string): number {
  if (/^\d+$/.test(s)) return Number(s) * 1000;
  const m = /^((\d+)h)?((\d+)m)?((\d+)s)?$/.exec(s);
  if (!m || s === '') throw new Error(`${flag}: ${JSON.stringify(s)} is not a duration (e.g. 90s, 5m, 1h)`);
  return ((Number(m[2] ?? 0) * 60 + Number(m[4] ?? 0)) * 60 + Number(m[6] ?? 0)) * 1000;
}

export type Flags = { help: true } | { version: true } | { config: OperatorConfig; logLevel: string; logFormat: LogFormat };

export function parseFlags(args: string[]): Flags {
  const { values } = parseArgs({
    args,
    options: {
      kubeconfig: { type: 'string' },
      redis: { type: 'string', default: 'redis://127.0.0.1:6379' },
      'redis-password-file': { type: 'string' },
      'redis-credentials-namespace': { type: 'string' },
      'pki-namespace': { type: 'string' },
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
      'log-format': { type: 'string' },
      version: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.version) return { version: true };
  if (values.help) return { help: true };
  const pkiNamespace = values['pki-namespace'];
  if (pkiNamespace !== undefined && !/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(pkiNamespace))
    throw new Error(`--pki-namespace ${JSON.stringify(pkiNamespace)}: expected a namespace name`);
  const identity = values.identity ?? process.env.POD_NAME ?? `${hostname()}_${process.pid}`;
  const leaseNamespace = values['lease-namespace'] ?? process.env.POD_NAMESPACE ?? 'krata-system';
  const config: OperatorConfig = {
    ...(values.kubeconfig ? { kubeconfig: values.kubeconfig } : {}),
    redis: {
      url: values.redis!,
      ...(values['redis-password-file'] ? { passwordFile: values['redis-password-file'] } : {}),
      ...(values['redis-credentials-namespace'] ? { credentialsNamespace: values['redis-credentials-namespace'] } : {}),
    },
    identity,
    ...(values['leader-elect'] ? { leaderElection: { namespace: leaseNamespace, name: values['lease-name']! } } : {}),
    rescheduleAfterMs: parseDuration(values['reschedule-after']!, '--reschedule-after'),
    forceDeleteAfterMs: parseDuration(values['force-delete-after']!, '--force-delete-after'),
    workers: Number(values.workers),
    insecureRegistries: values['insecure-registry'] ?? [],
    ...(values['health-addr'] !== 'off' ? { healthAddr: values['health-addr']! } : {}),
    ...(values['metrics-addr'] !== 'off' ? { metricsAddr: values['metrics-addr']! } : {}),
    ...(pkiNamespace ? { pki: { namespace: pkiNamespace } } : {}),
  };
  return { config, logLevel: values['log-level']!, logFormat: logFormat(values['log-format']) };
}
