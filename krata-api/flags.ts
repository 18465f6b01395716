// krata-api's flags, and the configuration they make (container/config.ts).
import { parseArgs } from 'node:util';
import type { KrataApiConfig } from './container/config.js';
import { logFlagsHelp, logFormat, type LogFormat } from '../lib/daemon-log.js';

export const HELP = `Usage: krata-api [options]

  --kubeconfig FILE               kubeconfig (default: in-cluster, then $KUBECONFIG, then ~/.kube/config)
  --listen ADDR:PORT              HTTPS listener the kube-apiserver's aggregator reaches (default 0.0.0.0:8443)
  --tls-cert-file FILE            its serving certificate (Secret krata-api-serving: tls.crt)   [required]
  --tls-private-key-file FILE     its key (tls.key)                                             [required]
  --agent-client-cert-file FILE   client certificate for the agents' TLS listeners (Secret krata-api-client: tls.crt) [required]
  --agent-client-key-file FILE    its key (tls.key)                                             [required]
  --agent-ca-file FILE            the krata CA the agents' certificates chain to (ca.crt)       [required]
  --metrics ADDR:PORT             Prometheus metrics over plain HTTP (default :8080; "off" disables)
  --refresh DURATION              how often the requestheader ConfigMap and the serving certificate are
                                  read again (default 60s)
${logFlagsHelp(34)}  --version
`;

export type Flags = { help: true } | { version: true } | { config: KrataApiConfig; logLevel: string; logFormat: LogFormat };

/** 90s, 5m, or plain seconds. */
function seconds(s: string, flag: string): number {
  const m = /^(\d+)(s|m)?$/.exec(s);
  if (!m || Number(m[1]) === 0) throw new Error(`${flag}: ${JSON.stringify(s)} is not a duration (e.g. 30s, 5m)`);
  return Number(m[1]) * (m[2] === 'm' ? 60_000 : 1000);
}

export function parseFlags(args: string[]): Flags {
  const { values } = parseArgs({
    args,
    options: {
      kubeconfig: { type: 'string' },
      listen: { type: 'string', default: '0.0.0.0:8443' },
      'tls-cert-file': { type: 'string' },
      'tls-private-key-file': { type: 'string' },
      'agent-client-cert-file': { type: 'string' },
      'agent-client-key-file': { type: 'string' },
      'agent-ca-file': { type: 'string' },
      metrics: { type: 'string', default: ':8080' },
      refresh: { type: 'string', default: '60s' },
      'log-level': { type: 'string', default: 'info' },
      'log-format': { type: 'string' },
      version: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.version) return { version: true };
  if (values.help) return { help: true };
  const required = (flag: keyof typeof values): string => {
    const v = values[flag];
    if (typeof v !== 'string' || v === '') throw new Error(`--${flag} is required`);
    return v;
  };
  const config: KrataApiConfig = {
    ...(values.kubeconfig ? { kubeconfig: values.kubeconfig } : {}),
    listen: values.listen!,
    tlsCertFile: required('tls-cert-file'),
    tlsKeyFile: required('tls-private-key-file'),
    agentTls: {
      certFile: required('agent-client-cert-file'),
      keyFile: required('agent-client-key-file'),
      caFile: required('agent-ca-file'),
    },
    ...(values.metrics !== 'off' ? { metricsAddr: values.metrics! } : {}),
    refreshMs: seconds(values.refresh!, '--refresh'),
  };
  return { config, logLevel: values['log-level']!, logFormat: logFormat(values['log-format']) };
}
