#!/usr/bin/env node
// krata-operator: the Kubernetes controller for Guests and XenHosts. Every replica keeps informers warm;
// the one holding the Lease places Guests, publishes each host's desired state to Redis, and writes the
// agents' reports back into status. Losing the Lease ends the process (a restart starts clean), as
// controller-runtime does.
import 'reflect-metadata';
import { resolve } from '../lib/container.js';
import { daemonLogger } from '../lib/daemon-log.js';
import { packageVersion } from '../lib/version.js';
import { operatorContainer, startOperator } from './container/daemon.js';
import { LEADERSHIP } from './container/ids.js';
import { HELP, parseFlags } from './flags.js';

async function main(): Promise<number> {
  const flags = parseFlags(process.argv.slice(2));
  if ('version' in flags) {
    console.log(`krata-operator ${packageVersion()}`);
    return 0;
  }
  if ('help' in flags) {
    process.stdout.write(HELP);
    return 0;
  }
  const { config } = flags;
  const log = daemonLogger('krata-operator', flags.logLevel, flags.logFormat);
  const container = operatorContainer(config, log);
  const operator = await startOperator(container);
  const leadership = await resolve(container, LEADERSHIP);
  const leaderElect = config.leaderElection !== undefined;
  log.info({ identity: config.identity, version: packageVersion(), leaderElect }, 'krata-operator started');
  const signalled = new Promise<number>((done) => {
    process.once('SIGTERM', () => done(0));
    process.once('SIGINT', () => done(0));
  });
  const code = await Promise.race([leadership.ended, signalled]);
  // In reverse order (container/daemon.ts): the operator, then the Lease, then the servers.
  await operator.stop();
  return code;
}

process.on('unhandledRejection', (reason) =>
  console.error(`krata-operator: unhandled rejection: ${(reason as Error)?.stack ?? String(reason)}`),
);

main().then(
  (code) => process.exit(code),
  (err: Error) => {
    console.error(`krata-operator: ${err.message}`);
    process.exit(1);
  },
);
