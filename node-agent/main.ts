#!/usr/bin/env node
// krata-node-agent: the per-host daemon. It loads the desired state from its store, reconciles it
// against the hypervisor, serves the local API on a unix socket, and metrics on their own port.
// With --redis it is in cluster mode: the desired state comes from Redis (the operator writes it from
// Kubernetes), status and heartbeats go back, the local API refuses writes, and a TLS listener serves
// krata-api once the operator has issued the agent a certificate.
// Stopping the agent (SIGTERM) leaves guests running; the next agent adopts them.
import 'reflect-metadata';
import { daemonLogger } from '../lib/daemon-log.js';
import { packageVersion } from '../lib/version.js';
import { resolve } from '../lib/container.js';
import { agentContainer, startAgent } from './container/agent.js';
import { GUEST_STORE } from './container/ids.js';
import { HELP, parseFlags } from './flags.js';
import { hostPort } from './api/tls-listener.js';
import { imageCommand } from './image-command.js';

async function main(): Promise<number> {
  const flags = parseFlags(process.argv.slice(2));
  if ('version' in flags) {
    console.log(`krata-node-agent ${packageVersion()}`);
    return 0;
  }
  if ('help' in flags) {
    process.stdout.write(HELP);
    return 0;
  }
  const { config } = flags;
  const log = daemonLogger('krata-node-agent', flags.logLevel, flags.logFormat);
  if (config.api && !config.api.group) log.info('no krata group on this host: only root can use the API socket');
  const container = agentContainer(config, log);
  const agent = await startAgent(container);
  const store = await resolve(container, GUEST_STORE);
  log.info(
    {
      socket: config.api?.socketPath,
      metrics: config.metrics ?? 'off',
      state: config.stateDir,
      network: config.network !== undefined,
      guests: store.keys().length,
      version: packageVersion(),
      ...(config.cluster ? { redis: config.cluster.redisName, host: config.cluster.host } : {}),
      ...(config.cluster && config.tls
        ? { tlsListen: hostPort(config.tls.host, config.tls.port), tlsAdvertise: config.tls.advertise }
        : {}),
    },
    'krata-node-agent started',
  );

  await new Promise<void>((signalled) => {
    const stop = (signal: string) => {
      log.info({ signal }, 'stopping; guests keep running and are adopted by the next agent');
      signalled();
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  // In reverse order (container/agent.ts): kratanet, cluster mode, the reconciler, the servers, the hypervisor.
  await agent.stop();
  return 0;
}

// A stray rejection is a bug to log, not a reason to take the host's guests' manager down.
process.on('unhandledRejection', (reason) =>
  console.error(`krata-node-agent: unhandled rejection: ${(reason as Error)?.stack ?? String(reason)}`),
);

(process.argv[2] === 'image' ? imageCommand(process.argv.slice(3)) : main()).then(
  (code) => process.exit(code),
  (err: Error) => {
    console.error(`krata-node-agent: ${err.message}`);
    process.exit(1);
  },
);
