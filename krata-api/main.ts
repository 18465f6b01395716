#!/usr/bin/env node
// krata-api: krata's aggregated API server (APIService v1alpha1.subresources.krata.dev). It serves the
// Guest subresources log, attach, exec, portforward and top through the kube-apiserver, authenticating
// the front proxy, authorizing each subresource with a SubjectAccessReview, and reaching the agent of
// the Guest's host over mutual TLS.
import 'reflect-metadata';
import { daemonLogger } from '../lib/daemon-log.js';
import { packageVersion } from '../lib/version.js';
import { krataApiContainer, startKrataApi } from './container/daemon.js';
import { HELP, parseFlags } from './flags.js';

async function main(): Promise<number> {
  const flags = parseFlags(process.argv.slice(2));
  if ('version' in flags) {
    console.log(`krata-api ${packageVersion()}`);
    return 0;
  }
  if ('help' in flags) {
    process.stdout.write(HELP);
    return 0;
  }
  const log = daemonLogger('krata-api', flags.logLevel, flags.logFormat);
  const running = await startKrataApi(krataApiContainer(flags.config, log));
  log.info({ version: packageVersion(), listen: flags.config.listen }, 'krata-api started');
  await new Promise<void>((done) => {
    process.once('SIGTERM', done);
    process.once('SIGINT', done);
  });
  await running.stop();
  return 0;
}

process.on('unhandledRejection', (reason) =>
  console.error(`krata-api: unhandled rejection: ${(reason as Error)?.stack ?? String(reason)}`),
);

main().then(
  (code) => process.exit(code),
  (err: Error) => {
    console.error(`krata-api: ${err.message}`);
    process.exit(1);
  },
);
