#!/usr/bin/env node
// kratanet: userspace networking for krata guests. Run by the node agent as a child process (the
// configuration arrives over IPC), or by hand with --config FILE (re-read on SIGHUP).
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { ConfigError, validateConfig, type KratanetConfig } from './config.js';
import { Kratanet } from './kratanet.js';

const HELP = `Usage: kratanet --config FILE
  --config FILE   JSON: { hostLoopback?, hostAccess?, gatewayMac?, guestSubnets?, denyCidrs?: [CIDR],
                  allowCidrs?: ["CIDR[:PORTS]"], hostBudget?: BYTES, flowRate?: N, dialSocket?: PATH, guests: [{ id,
                  interface, mac, ipv4, ipv6, gateway4, gateway6, ports?: [{ protocol, hostPort, guestPort }] }],
                  portGroups?: [{ protocol, hostPort, members: [{ guest: ID, guestPort, ready }] }] }
                  re-read on SIGHUP; each guest's counters logged on SIGUSR2
Without --config it takes its configuration from the node agent over IPC.`;

function log(msg: string): void {
  process.stderr.write(`kratanet: ${msg}\n`);
}

function load(file: string): KratanetConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError(`${file}: ${(e as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`${file}: not JSON: ${(e as Error).message}`);
  }
  return validateConfig(raw, file);
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { config: { type: 'string' }, help: { type: 'boolean' } } });
  if (values.help) {
    process.stdout.write(`${HELP}\n`);
    return;
  }
  const net = new Kratanet(log);
  const shutdown = () => {
    net.close();
    process.exit(0);
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
  process.on('SIGUSR2', () => {
    for (const line of net.report()) log(line);
  });
  if (values.config) {
    const file = values.config;
    const results = await net.apply(load(file));
    for (const r of results) if (!r.ok) log(`guest ${r.id}: ${r.error}`);
    process.stdout.write('kratanet ready\n');
    // One reload at a time: a reload that overlapped another could bind a port twice.
    let reloads = Promise.resolve();
    process.on('SIGHUP', () => {
      reloads = reloads.then(async () => {
        try {
          await net.apply(load(file));
          log('configuration reloaded');
        } catch (e) {
          log(`${(e as Error).message} (keeping the previous configuration)`);
        }
      });
    });
    setInterval(() => {}, 1 << 30); // stay up until signalled
    return;
  }
  if (!process.send) throw new ConfigError('--config FILE is required (or run it from the node agent)');
  process.on('message', (m: { type?: string; config?: unknown; seq?: number }) => {
    if (m?.type !== 'apply') return;
    let cfg: KratanetConfig;
    try {
      cfg = validateConfig(m.config, 'agent');
    } catch (e) {
      process.send!({ type: 'applied', seq: m.seq, error: (e as Error).message });
      return;
    }
    void net.apply(cfg).then((results) => process.send!({ type: 'applied', seq: m.seq, results }));
  });
  process.on('disconnect', shutdown);
  // An agent killed while this process loaded its modules closed the channel before the handler above
  // existed; a send on it would end this process with an unhandled ERR_IPC_CHANNEL_CLOSED instead.
  if (!process.connected) shutdown();
  process.send({ type: 'ready' });
}

main().catch((e: unknown) => {
  log(e instanceof ConfigError ? e.message : ((e as Error).stack ?? String(e)));
  process.exit(e instanceof ConfigError ? 2 : 1);
});
