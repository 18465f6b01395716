#!/usr/bin/env node
// krata-node-agent: the per-host daemon. It loads the desired state from its store, reconciles it
// against the hypervisor, serves the local API on a unix socket, and metrics on their own port.
// With --redis it is in cluster mode: the desired state comes from Redis (the operator writes it from
// Kubernetes), status and heartbeats go back, and the local API refuses writes.
// Stopping the agent (SIGTERM) leaves guests running; the next agent adopts them.
import { DEFAULT_AGENT_SOCKET, DEFAULT_STATE_DIR } from '../contracts/agent-api/endpoints.js';
import 'reflect-metadata';
import { Container } from 'inversify';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { checkHostName } from '../contracts/redis/contract.js';
import { parsePortRanges } from '../crds/host-ports.js';
import { packageVersion } from '../lib/version.js';
import { Agent, CachedImages } from './service/agent-service.js';
import { EventRecorder } from './controller/events.js';
import { FakeHypervisor } from './runtime/fake-hypervisor.js';
import { GuestStore } from './store/guest-store.js';
import { HYPERVISOR, type Hypervisor } from './runtime/hypervisor.js';
import { CLOCK, systemClock, type Clock } from '../lib/clock.js';
import { Ipam } from './controller/ipam.js';
import { Reconciler } from './controller/reconciler.js';
import { startApiServer } from './api/server.js';
import { startClusterMode, type ClusterMode } from './follower/cluster-mode.js';
import { PullTokens } from './follower/pull-tokens.js';
import { SecretStore } from './store/secret-store.js';
import { redactedUrl, redisOptions } from '../contracts/redis/options.js';
import { CredentialStore } from '../lib/oci/credentials.js';
import { parseMirrorFlags } from '../lib/oci/registry.js';
import { ImageStore } from './image/store.js';
import { AgentMetrics } from './controller/metrics.js';
import { Semaphore } from '../lib/semaphore.js';
import { describeConflict, desiredNetwork, egressFlags, type PortConflict } from './net/desired.js';
import { NetSupervisor } from './net/supervisor.js';
import { consoleFlags } from './xen/index.js';

const HELP = `Usage: krata-node-agent [options]

  --state DIR             durable state: guests, images, reservations (default /var/lib/krata)
  --socket PATH           local API socket (default /run/krata/agent.sock)
  --group NAME            group allowed to use the socket, besides root (default krata, if it exists)
  --metrics HOST:PORT     Prometheus endpoint, or "off" (default 127.0.0.1:9477)
  --kernel PATH           default guest kernel (default STATE/guest/vmlinuz)
  --initrd PATH           default guest initrd with guest-init (default STATE/guest/initrd)
  --node-name NAME        this host's name in Guest status (default: the hostname)
  --redis URL             cluster mode: follow the desired state the operator writes to Redis
                          (redis://[user@]host[:port][/db]); local apply and delete are refused
  --redis-password-file F the Redis (ACL) password, read from file F
  --host NAME             this XenHost's name in cluster mode, also the node name in Guest status
                          (default: --node-name, else the hostname)
  --nameserver IP         DNS server for guests (repeatable; default 1.1.1.1, 2606:4700:4700::1111)
  --insecure-registry H   reach registry H[:PORT] over plain http (repeatable)
  --mirror REG=URL        registry mirror (repeatable)
  --docker-config FILE    registry credentials (repeatable; default /root/.docker/config.json)
  --concurrency N         reconciles at once (default 8)
  --pull-concurrency N    image pulls at once, beside the reconciles (default 4)
  --pack-cpu SECONDS      CPU time one image pack's mksquashfs (and zstd) may use (default 600)
  --pack-timeout SECONDS  wall-clock limit of one image pack, downloads not counted (default 1800)
  --pack-nice N           scheduling niceness of mksquashfs and zstd, 0-19 (default 19)
  --image-max-entries N   entries of all of an image's layers (default 1000000)
  --image-max-dir-entries N
                          entries of one directory of an image (default 16384; mksquashfs
                          is quadratic in them)
  --resync SECONDS        full resync period (default 15)
  --console-rate KIB_PER_S
                          console output drained per guest (default 1024); past it the output
                          waits in the guest's ring
  --console-burst KIB     console output a guest may send above that rate at once (default 256)
  --fake-hypervisor MIB   run guests on the in-memory test double with MIB of memory (benchmarks, demos)
  --network on|off        run kratanet, the guests' userspace network (default on; off with
                          --fake-hypervisor, which has no vifs)
  --host-loopback         guests reach this host's loopback (127.0.0.1, ::1) at their gateway address
  --host-access           guests reach this host's own addresses
  --host-ports RANGES     host ports guests may publish: 80,443,1024-65535 or "none"
                          (default 1024-65535: no privileged ports)
  --host-port-address IP  bind published host ports on this address only (default: all addresses)
  --deny-cidr CIDR        guests may not reach CIDR (repeatable): the cluster's pod and Service
                          ranges, nodes outside this host's subnets... (this host's own subnets and
                          routed networks are denied without it; only its default route is open)
  --allow-cidr CIDR[:P]   guests may reach CIDR, or only its ports P (P or P-Q, comma-separated)
                          despite the denies above (repeatable; never other guests; each
                          --nameserver is allowed on port 53)
  --network-budget MIB    what all guests' flows may buffer in this host (default 1024)
  --ipv4-subnet CIDR      guest IPv4 addresses (default 10.75.0.0/16; the gateway is the first host)
  --ipv6-subnet CIDR      guest IPv6 addresses (default fdd4:1476:6c7e::/48)
  --log-level LEVEL       pino level (default info)
  --version
`;

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      state: { type: 'string', default: DEFAULT_STATE_DIR },
      socket: { type: 'string', default: DEFAULT_AGENT_SOCKET },
      group: { type: 'string' },
      metrics: { type: 'string', default: '127.0.0.1:9477' },
      kernel: { type: 'string' },
      initrd: { type: 'string' },
      'node-name': { type: 'string' },
      redis: { type: 'string' },
      'redis-password-file': { type: 'string' },
      host: { type: 'string' },
      nameserver: { type: 'string', multiple: true },
      'insecure-registry': { type: 'string', multiple: true },
      mirror: { type: 'string', multiple: true },
      'docker-config': { type: 'string', multiple: true },
      concurrency: { type: 'string', default: '8' },
      'pull-concurrency': { type: 'string', default: '4' },
      'pack-cpu': { type: 'string', default: '600' },
      'pack-timeout': { type: 'string', default: '1800' },
      'pack-nice': { type: 'string', default: '19' },
      'image-max-entries': { type: 'string', default: '1000000' },
      'image-max-dir-entries': { type: 'string', default: '16384' },
      resync: { type: 'string', default: '15' },
      'console-rate': { type: 'string' },
      'console-burst': { type: 'string' },
      'fake-hypervisor': { type: 'string' },
      network: { type: 'string' },
      'host-loopback': { type: 'boolean', default: false },
      'host-access': { type: 'boolean', default: false },
      'host-ports': { type: 'string', default: '1024-65535' },
      'host-port-address': { type: 'string' },
      'deny-cidr': { type: 'string', multiple: true },
      'allow-cidr': { type: 'string', multiple: true },
      'network-budget': { type: 'string' },
      'ipv4-subnet': { type: 'string' },
      'ipv6-subnet': { type: 'string' },
      'log-level': { type: 'string', default: 'info' },
      version: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.version) {
    console.log(`krata-node-agent ${packageVersion()}`);
    return 0;
  }
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  /** A whole-number flag within [min, max]; anything else is a usage error naming the flag. */
  const count = (flag: keyof typeof values, min: number, max = Number.MAX_SAFE_INTEGER): number => {
    const raw = String(values[flag]);
    const v = Number(raw);
    if (!/^\d+$/.test(raw) || v < min || v > max) throw new Error(`--${flag}: expected a whole number from ${min}${max < Number.MAX_SAFE_INTEGER ? ` to ${max}` : ''}, not ${JSON.stringify(raw)}`);
    return v;
  };
  const log = pino({ level: values['log-level'], base: { component: 'krata-node-agent' } });
  const state = values.state!;
  if (!values.redis && (values.host || values['redis-password-file'])) throw new Error('--host and --redis-password-file need --redis (cluster mode)');
  if (values.network !== undefined && values.network !== 'on' && values.network !== 'off') throw new Error(`--network: expected on or off, not ${JSON.stringify(values.network)}`);
  const network = values.network ? values.network === 'on' : !values['fake-hypervisor'];
  if (!network && (values['host-loopback'] || values['host-access'])) throw new Error('--host-loopback and --host-access need the network (--network on)');
  // Checked before anything starts: a bad subnet, CIDR or port range is a usage error.
  const egress = egressFlags(values['deny-cidr'], values['allow-cidr'], values['network-budget'], values.nameserver);
  const hostPorts = parsePortRanges(values['host-ports']!, '--host-ports');
  const hostAddress = values['host-port-address'];
  if (hostAddress !== undefined && !isIP(hostAddress)) throw new Error(`--host-port-address: ${JSON.stringify(hostAddress)} is not an IPv4 or IPv6 address`);
  const consoleLimits = consoleFlags(values['console-rate'], values['console-burst']);
  const ipam = new Ipam(state, { ...(values['ipv4-subnet'] ? { ipv4Subnet: values['ipv4-subnet'] } : {}), ...(values['ipv6-subnet'] ? { ipv6Subnet: values['ipv6-subnet'] } : {}) });
  // Cluster mode: the XenHost's name is the node name in Guest status too.
  const cluster = values.redis ? { redis: redisOptions(values.redis, values['redis-password-file']), redisName: redactedUrl(values.redis), host: checkHostName(values.host ?? values['node-name'] ?? hostname()) } : undefined;

  // The edges that tests and benchmarks swap: the hypervisor and the clock.
  const container = new Container();
  container.bind<Clock>(CLOCK).toConstantValue(systemClock);
  if (values['fake-hypervisor']) {
    container.bind<Hypervisor>(HYPERVISOR).toConstantValue(new FakeHypervisor({ cpus: 64, memoryMiB: Number(values['fake-hypervisor']) }));
    log.warn('running guests on the in-memory test double (--fake-hypervisor): no Xen domains are created');
  } else {
    const { XenHypervisor } = await import('./runtime/xen-hypervisor.js');
    container.bind<Hypervisor>(HYPERVISOR).toConstantValue(await XenHypervisor.open({ stateDir: state, consoleLimits }));
  }
  const hv = container.get<Hypervisor>(HYPERVISOR);
  const clock = container.get<Clock>(CLOCK);

  const problems: string[] = [];
  const store = new GuestStore(state, problems);
  for (const p of problems) log.error({ problem: p }, 'a stored guest could not be read; it is left in place');
  const mirrors = parseMirrorFlags(values.mirror ?? []);
  const credentials = await CredentialStore.fromFiles(values['docker-config'] ?? ['/root/.docker/config.json']);
  for (const w of credentials.warnings) log.warn(w);
  const images = new ImageStore({
    root: join(state, 'images'),
    registry: { credentials, mirrors, insecure: values['insecure-registry'] ?? [] },
    squashfs: { cpuSeconds: count('pack-cpu', 1), nice: count('pack-nice', 0, 19) },
    packTimeoutMs: count('pack-timeout', 1) * 1000,
    limits: { maxEntries: count('image-max-entries', 1), maxDirEntries: count('image-max-dir-entries', 1) },
  });
  const recovered = images.recover();
  if (recovered.removed.length) log.info({ removed: recovered.removed }, 'removed what interrupted image jobs left');
  const recorder = new EventRecorder(clock, 50, (e) => log[e.type === 'Warning' ? 'warn' : 'info']({ guest: e.name ? `${e.namespace}/${e.name}` : undefined, reason: e.reason, count: e.count }, e.message));
  let reconciler: Reconciler | undefined;
  const metrics = new AgentMetrics(store, () => reconciler?.queue, images);
  // Pull credentials: a single host's own Secrets, or the operator's tokens from Redis (never both).
  const secrets = cluster ? undefined : new SecretStore(state);
  const pullTokens = cluster ? new PullTokens() : undefined;
  // One bound for every pull on the host: the reconciler's and the API's.
  const pullSlots = new Semaphore(count('pull-concurrency', 1));
  reconciler = new Reconciler(store, hv, new CachedImages(images), ipam, recorder, clock, {
    pullAuth: (g) => (pullTokens ? pullTokens.forGuest(g) : secrets!.forGuest(g)),
    stateDir: state,
    kernel: values.kernel ?? join(state, 'guest/vmlinuz'),
    initrd: values.initrd ?? join(state, 'guest/initrd'),
    nodeName: cluster?.host ?? values['node-name'] ?? hostname(),
    ...(values.nameserver ? { nameservers: values.nameserver } : {}),
    concurrency: Number(values.concurrency),
    pullSlots,
    resyncMs: Number(values.resync) * 1000,
    observe: (ms, err) => metrics.observe(ms, err),
    hostPorts,
  });
  const agent = new Agent(store, hv, recorder, images, clock, { pullSlots, ...(cluster ? { managedBy: `Redis ${cluster.redisName}` } : { secrets }) });
  // The krata group (when the host has one) may use the API besides root.
  const group = values.group ?? (/^krata:/m.test(readFileSync('/etc/group', 'utf8')) ? 'krata' : undefined);
  if (!group) log.info('no krata group on this host: only root can use the API socket');
  const api = await startApiServer(agent, { socketPath: values.socket!, ...(group ? { group } : {}), log: (m) => log.error(m) });
  const metricsServer = values.metrics === 'off' ? undefined : await metrics.listen(values.metrics!);
  // kratanet serves the guests that have a domain; it follows every change to the store.
  let net: NetSupervisor | undefined;
  let stopNet = () => {};
  if (network) {
    const supervisor = new NetSupervisor({ log: (level, msg, fields) => log[level]({ subsystem: 'network', ...fields }, msg) });
    net = supervisor;
    const netOpts = { hostLoopback: values['host-loopback']!, hostAccess: values['host-access']!, ...(hostAddress ? { hostAddress } : {}), ...egress };
    let reported = new Set<string>();
    const push = () => {
      const conflicts: PortConflict[] = [];
      supervisor.update(desiredNetwork(store, ipam, netOpts, conflicts));
      // Each conflict once, not at every status write.
      const now = new Set(conflicts.map(describeConflict));
      for (const c of conflicts) if (!reported.has(describeConflict(c))) log.warn({ guest: c.guest, holder: c.holder, port: `${c.protocol}/${c.hostPort}` }, describeConflict(c));
      reported = now;
    };
    let timer: NodeJS.Timeout | undefined;
    const onChange = () => {
      timer ??= setTimeout(() => {
        timer = undefined;
        push();
      }, 100);
    };
    store.on('change', onChange);
    stopNet = () => {
      store.off('change', onChange);
      clearTimeout(timer);
    };
    push();
  }
  reconciler.run();
  const clusterMode: ClusterMode | undefined = cluster && startClusterMode({ ...cluster, store, hv, clock, log, pullTokens });
  log.info({ socket: values.socket, metrics: values.metrics, state, network, guests: store.keys().length, version: packageVersion(), ...(cluster ? { redis: cluster.redisName, host: cluster.host } : {}) }, 'krata-node-agent started');

  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      log.info({ signal }, 'stopping; guests keep running and are adopted by the next agent');
      resolve();
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  // kratanet goes first: it shares the terminal's and the service's signals, and must not be
  // restarted while the agent winds down.
  stopNet();
  const netStopped = net?.stop();
  // No more desired state in, then the last status reports out (bounded), then the reconciler.
  await clusterMode?.stop();
  reconciler.stop();
  // Let a create or stop in progress finish (bounded), so no half-built domain is left behind.
  await Promise.race([reconciler.queue.idle(), new Promise((r) => setTimeout(r, 30_000))]);
  await api.close();
  metricsServer?.close();
  await netStopped;
  (hv as { close?: () => Promise<void> | void }).close?.();
  return 0;
}

// A stray rejection is a bug to log, not a reason to take the host's guests' manager down.
process.on('unhandledRejection', (reason) => console.error(`krata-node-agent: unhandled rejection: ${(reason as Error)?.stack ?? String(reason)}`));

main().then(
  (code) => process.exit(code),
  (err: Error) => {
    console.error(`krata-node-agent: ${err.message}`);
    process.exit(1);
  },
);
