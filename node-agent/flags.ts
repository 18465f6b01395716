// krata-node-agent's flags, and the agent configuration they make (container/config.ts). Checked here,
// before anything starts: a bad subnet, CIDR, port range or bound is a usage error naming its flag.
import { DEFAULT_AGENT_SOCKET, DEFAULT_STATE_DIR } from '../contracts/agent-api/endpoints.js';
import { existsSync, readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { DEFAULT_AGENT_TLS_PORT } from '../contracts/krata-api/agent-tls.js';
import { checkHostName } from '../contracts/redis/contract.js';
import { redactedUrl, redisOptions } from '../contracts/redis/options.js';
import { parsePortRanges } from '../crds/host-ports.js';
import { parseMirrorFlags } from '../lib/oci/registry.js';
import type { AgentConfig } from './container/config.js';
import { egressFlags, type DesiredNetworkOptions } from './net/desired.js';
import { consoleFlags } from './xen/index.js';
import { logFlagsHelp, logFormat, type LogFormat } from '../lib/daemon-log.js';

export const HELP = `Usage: krata-node-agent [options]
       krata-node-agent image COMMAND --state DIR ...   the image cache while no agent runs (--help)

  --state DIR             durable state: guests, images, reservations (default /var/lib/krata)
  --socket PATH           local API socket (default /run/krata/agent.sock)
  --group NAME            group allowed to use the socket, besides root (default krata, if it exists)
  --metrics HOST:PORT     Prometheus endpoint, or "off" (default 127.0.0.1:9477)
  --kernel PATH           default guest kernel (default STATE/guest/vmlinuz, else krata's
                          STATE/default/kernel when only that exists)
  --initrd PATH           default guest initrd with guest-init (default STATE/guest/initrd, else
                          STATE/default/initrd when only that exists)
  --node-name NAME        this host's name in Guest status (default: the hostname)
  --redis URL             cluster mode: follow the desired state the operator writes to Redis
                          (redis://[user@]host[:port][/db]); local apply and delete are refused
  --redis-password-file F the Redis (ACL) password, read from file F
  --host NAME             this XenHost's name in cluster mode, also the node name in Guest status
                          (default: --node-name, else the hostname)
  --tls-listen ADDR:PORT  cluster mode: the TLS listener krata-api reaches this agent on, or "off"
                          (default 0.0.0.0:9444); it serves once the operator has issued a certificate
  --tls-advertise ADDR:PORT
                          where krata-api reaches that listener, sent in the heartbeat (default: the
                          --tls-listen address, unless it is 0.0.0.0 or ::, then none is advertised)
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
${logFlagsHelp(26)}  --version
`;

export type Flags = { help: true } | { version: true } | { config: AgentConfig; logLevel: string; logFormat: LogFormat };

export function parseFlags(args: string[]): Flags {
  const { values } = parseArgs({
    args,
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
      'tls-listen': { type: 'string' },
      'tls-advertise': { type: 'string' },
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
      'log-format': { type: 'string' },
      version: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.version) return { version: true };
  if (values.help) return { help: true };
  /** A whole-number flag within [min, max]; anything else is a usage error naming the flag. */
  const count = (flag: keyof typeof values, min: number, max = Number.MAX_SAFE_INTEGER): number => {
    const raw = String(values[flag]);
    const v = Number(raw);
    if (!/^\d+$/.test(raw) || v < min || v > max)
      throw new Error(
        `--${flag}: expected a whole number from ${min}${max < Number.MAX_SAFE_INTEGER ? ` to ${max}` : ''}, not ${JSON.stringify(raw)}`,
      );
    return v;
  };
  const state = values.state!;
  if (!values.redis && (values.host || values['redis-password-file'] || values['tls-listen'] || values['tls-advertise']))
    throw new Error('--host, --redis-password-file, --tls-listen and --tls-advertise need --redis (cluster mode)');
  const tls = values.redis ? tlsFlags(values['tls-listen'], values['tls-advertise']) : undefined;
  if (values.network !== undefined && values.network !== 'on' && values.network !== 'off')
    throw new Error(`--network: expected on or off, not ${JSON.stringify(values.network)}`);
  const network = values.network ? values.network === 'on' : !values['fake-hypervisor'];
  if (!network && (values['host-loopback'] || values['host-access']))
    throw new Error('--host-loopback and --host-access need the network (--network on)');
  const egress = egressFlags(values['deny-cidr'], values['allow-cidr'], values['network-budget'], values.nameserver);
  const hostPorts = parsePortRanges(values['host-ports']!, '--host-ports');
  const hostAddress = values['host-port-address'];
  if (hostAddress !== undefined && !isIP(hostAddress))
    throw new Error(`--host-port-address: ${JSON.stringify(hostAddress)} is not an IPv4 or IPv6 address`);
  const consoleLimits = consoleFlags(values['console-rate'], values['console-burst']);
  // Cluster mode: the XenHost's name is the node name in Guest status too.
  const cluster = values.redis
    ? {
        redis: redisOptions(values.redis, values['redis-password-file']),
        redisName: redactedUrl(values.redis),
        host: checkHostName(values.host ?? values['node-name'] ?? hostname()),
      }
    : undefined;
  // The krata group (when the host has one) may use the API besides root.
  const group = values.group ?? (/^krata:/m.test(readFileSync('/etc/group', 'utf8')) ? 'krata' : undefined);
  const fakeMiB = values['fake-hypervisor'];
  const { 'ipv4-subnet': ipv4Subnet, 'ipv6-subnet': ipv6Subnet } = values;
  const netOpts: DesiredNetworkOptions = { hostLoopback: values['host-loopback']!, hostAccess: values['host-access']!, ...egress };
  if (hostAddress) netOpts.hostAddress = hostAddress;
  const config: AgentConfig = {
    stateDir: state,
    hypervisor: fakeMiB ? { fake: { cpus: 64, memoryMiB: Number(fakeMiB) } } : { xen: { consoleLimits } },
    kernel: values.kernel ?? defaultBootFile(state, 'guest/vmlinuz', 'default/kernel'),
    initrd: values.initrd ?? defaultBootFile(state, 'guest/initrd', 'default/initrd'),
    nodeName: cluster?.host ?? values['node-name'] ?? hostname(),
    ...(values.nameserver ? { nameservers: values.nameserver } : {}),
    ipam: { ...(ipv4Subnet ? { ipv4Subnet } : {}), ...(ipv6Subnet ? { ipv6Subnet } : {}) },
    concurrency: Number(values.concurrency),
    pullConcurrency: count('pull-concurrency', 1),
    resyncMs: Number(values.resync) * 1000,
    hostPorts,
    images: {
      insecure: values['insecure-registry'] ?? [],
      mirrors: parseMirrorFlags(values.mirror ?? []),
      dockerConfigs: values['docker-config'] ?? ['/root/.docker/config.json'],
      squashfs: { cpuSeconds: count('pack-cpu', 1), nice: count('pack-nice', 0, 19) },
      packTimeoutMs: count('pack-timeout', 1) * 1000,
      limits: { maxEntries: count('image-max-entries', 1), maxDirEntries: count('image-max-dir-entries', 1) },
    },
    api: { socketPath: values.socket!, ...(group ? { group } : {}) },
    ...(values.metrics === 'off' ? {} : { metrics: values.metrics! }),
    ...(network ? { network: netOpts } : {}),
    ...(cluster ? { cluster } : {}),
    ...(tls ? { tls } : {}),
    logEvents: true,
  };
  return { config, logLevel: values['log-level']!, logFormat: logFormat(values['log-format']) };
}

/**
 * The default kernel or initrd under STATE: krata's own layout first, else the location krata's seed
 * used (STATE/default/kernel, STATE/default/initrd), so a host set up for it needs no flag. When
 * neither exists yet the first is used (and a Guest says it is missing when it starts).
 */
export function defaultBootFile(state: string, ...candidates: [string, ...string[]]): string {
  return join(state, candidates.find((c) => existsSync(join(state, c))) ?? candidates[0]);
}

/** ADDR:PORT (IPv6 in brackets); `ip` requires an IP address, else a DNS name will do. */
export function parseAddress(value: string, flag: string, ip: boolean): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(value);
  const host = m?.[1] ?? m?.[2];
  const port = Number(m?.[3]);
  const dnsName = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/i;
  const hostOk = host !== undefined && (m?.[1] ? isIP(host) === 6 : isIP(host) === 4 || (!ip && host.length <= 253 && dnsName.test(host)));
  if (!hostOk || !(port >= 1 && port <= 65535))
    throw new Error(`${flag}: expected ${ip ? 'IP' : 'ADDRESS'}:PORT (IPv6 in brackets), not ${JSON.stringify(value)}`);
  return { host, port };
}

/** The TLS listener of cluster mode: listen address (default 0.0.0.0:9444, "off": none) and what is advertised. */
export function tlsFlags(
  listen: string | undefined,
  advertise: string | undefined,
): { host: string; port: number; advertise?: string } | undefined {
  if (listen === 'off') {
    if (advertise !== undefined) throw new Error('--tls-advertise needs the TLS listener (--tls-listen is off)');
    return undefined;
  }
  const at = parseAddress(listen ?? `0.0.0.0:${DEFAULT_AGENT_TLS_PORT}`, '--tls-listen', true);
  if (advertise !== undefined) parseAddress(advertise, '--tls-advertise', false);
  const unspecified = at.host === '0.0.0.0' || at.host === '::' || /^[0:]+$/.test(at.host);
  const advertised = advertise ?? (unspecified ? undefined : at.host.includes(':') ? `[${at.host}]:${at.port}` : `${at.host}:${at.port}`);
  return { ...at, ...(advertised ? { advertise: advertised } : {}) };
}
