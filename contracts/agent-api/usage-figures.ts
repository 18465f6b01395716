// A Guest's usage figures as kubectl top prints them (CPU in millicores rounded up, memory in whole Mi,
// percentages rounded down, <unknown> where there is no figure yet): the rows of `kratactl top` and
// `kubectl krata top`, and the Usage section of `kratactl describe`.
import { humanDuration } from '../../lib/table.js';
import type { GuestUsage } from './types.js';

const MiB = 1024 * 1024;
export const UNKNOWN = '<unknown>';
/** A figure only the guest reports, while it does not. */
export const NONE = '-';

/** Millicores as resource.Quantity's MilliValue gives them: rounded up, from the nearest nanocore. */
export function millicores(cores: number): number {
  return Math.ceil(Math.round(cores * 1e9) / 1e6);
}

export const formatMi = (bytes: number): string => `${Math.floor(bytes / MiB)}Mi`;

export function cpu(u: GuestUsage): string {
  return u.cpuCores === undefined ? UNKNOWN : `${millicores(u.cpuCores)}m`;
}

/** CPU in use as a share of the vCPUs online (each one core's worth). */
export function cpuPercent(u: GuestUsage): string {
  if (u.cpuCores === undefined || u.vcpus.online <= 0) return UNKNOWN;
  return `${Math.floor((millicores(u.cpuCores) * 100) / (u.vcpus.online * 1000))}%`;
}

/** What the guest's processes and kernel hold when it reports, else what Xen has given the domain. */
export function memoryUsed(u: GuestUsage): number {
  return u.guest?.memoryUsedBytes ?? u.memory.domainBytes;
}

export function memoryPercent(u: GuestUsage): string {
  return u.memory.maxBytes > 0 ? `${Math.floor((memoryUsed(u) * 100) / u.memory.maxBytes)}%` : UNKNOWN;
}

export const load1 = (u: GuestUsage): string => (u.guest ? u.guest.load[0].toFixed(2) : NONE);

/** NAME CPU(cores) CPU% MEMORY(bytes) MEMORY% VCPUS LOAD(1m) PROCS CHANNEL, with NAMESPACE first for -A. */
export function usageHeader(allNamespaces: boolean): string[] {
  return [
    ...(allNamespaces ? ['NAMESPACE'] : []),
    'NAME',
    'CPU(cores)',
    'CPU%',
    'MEMORY(bytes)',
    'MEMORY%',
    'VCPUS',
    'LOAD(1m)',
    'PROCS',
    'CHANNEL',
  ];
}

export function usageRow(u: GuestUsage, allNamespaces: boolean): string[] {
  return [
    ...(allNamespaces ? [u.namespace] : []),
    u.name,
    cpu(u),
    cpuPercent(u),
    formatMi(memoryUsed(u)),
    memoryPercent(u),
    `${u.vcpus.online}/${u.vcpus.max}`,
    load1(u),
    u.guest ? String(u.guest.processes) : NONE,
    u.channel.phase,
  ];
}

/** The Usage section of describe: label and value pairs. */
export function usageFields(u: GuestUsage): [string, string | undefined][] {
  const over = u.windowSeconds === undefined ? '' : `, over ${humanDuration(u.windowSeconds * 1000)}`;
  const g = u.guest;
  const ofMax = `(${memoryPercent(u)} of ${formatMi(u.memory.maxBytes)})`;
  return [
    ['CPU', u.cpuCores === undefined ? `${UNKNOWN} (measured from the next sample)` : `${cpu(u)} (${cpuPercent(u)} of its vCPUs${over})`],
    ['CPU time', `${u.cpuSeconds.toFixed(2)}s`],
    [
      'Memory',
      g
        ? `${formatMi(g.memoryUsedBytes)} used, ${formatMi(g.memoryAvailableBytes)} available ${ofMax}`
        : `${formatMi(u.memory.domainBytes)} held by the domain ${ofMax}`,
    ],
    ['Domain memory', g ? `${formatMi(u.memory.domainBytes)} of ${formatMi(u.memory.maxBytes)}` : undefined],
    ['vCPUs', `${u.vcpus.online} online, ${u.vcpus.max} max`],
    ['Load', g ? g.load.map((l) => l.toFixed(2)).join(' ') : undefined],
    ['Processes', g ? String(g.processes) : undefined],
    ['Guest uptime', g ? humanDuration(g.uptimeSeconds * 1000) : undefined],
    ['Channel', channelText(u.channel)],
  ];
}

/** "up (bulk ring)", "up (console; bulk ring not used: why)", or the phase and why it is not up. */
function channelText(c: GuestUsage['channel']): string {
  if (c.reason) return `${c.phase} (${c.reason})`;
  if (c.transport === 'bulk') return `${c.phase} (bulk ring)`;
  if (c.transport === 'console') return `${c.phase} (console${c.bulkRefused ? `; bulk ring not used: ${c.bulkRefused}` : ''})`;
  return c.phase;
}
