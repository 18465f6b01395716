// What dom0 spends, read from /proc: memory (meminfo), and per process group RSS, threads and file
// descriptors. Used by bench/dom0-density.ts to tell what each guest costs dom0.
import { readFileSync, readdirSync } from 'node:fs';

/** The /proc/meminfo fields the density bench compares, in KiB. */
export const MEMINFO_FIELDS = [
  'MemTotal',
  'MemFree',
  'MemAvailable',
  'Buffers',
  'Cached',
  'Shmem',
  'Slab',
  'SReclaimable',
  'SUnreclaim',
  'KernelStack',
  'PageTables',
  'VmallocUsed',
] as const;
export type Meminfo = Record<(typeof MEMINFO_FIELDS)[number], number>;

export function parseMeminfo(text: string): Meminfo {
  const out = Object.fromEntries(MEMINFO_FIELDS.map((f) => [f, 0])) as Meminfo;
  for (const line of text.split('\n')) {
    const m = /^(\w+):\s+(\d+)/.exec(line);
    if (m && (MEMINFO_FIELDS as readonly string[]).includes(m[1]!)) out[m[1] as keyof Meminfo] = Number(m[2]);
  }
  return out;
}

/**
 * Memory dom0 holds for something other than reclaimable page cache: `free`'s "used" with the slab
 * counted whole, and tmpfs files (dom0's root is in memory: disks, logs) counted too.
 */
export function usedKiB(m: Meminfo): number {
  return m.MemTotal - m.MemFree - m.Buffers - m.Cached + m.Shmem;
}

export interface Proc {
  pid: number;
  ppid: number;
  comm: string;
  cmdline: string;
  /** 0 for kernel threads. */
  rssKiB: number;
  threads: number;
  fds: number;
  kernel: boolean;
}

export interface Group {
  procs: number;
  rssKiB: number;
  threads: number;
  fds: number;
}

function readOr(path: string, fallback: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return fallback;
  }
}

export function readProcs(): Proc[] {
  const out: Proc[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const status = readOr(`/proc/${name}/status`, '');
    if (!status) continue; // exited meanwhile
    const field = (k: string): string => new RegExp(`^${k}:\\s*(.*)$`, 'm').exec(status)?.[1] ?? '';
    let fds = 0;
    try {
      fds = readdirSync(`/proc/${name}/fd`).length;
    } catch {
      // exited, or a kernel thread
    }
    const rss = field('VmRSS');
    out.push({
      pid: Number(name),
      ppid: Number(field('PPid')),
      comm: field('Name'),
      cmdline: readOr(`/proc/${name}/cmdline`, '').replaceAll('\0', ' ').trim(),
      rssKiB: rss ? parseInt(rss, 10) : 0,
      threads: Number(field('Threads')) || 1,
      fds,
      kernel: !rss && readOr(`/proc/${name}/cmdline`, '') === '',
    });
  }
  return out;
}

/** Which group a dom0 process belongs to, for the per-guest split. */
export function classify(p: Proc, agentPid: number, selfPid: number): string {
  if (p.pid === selfPid) return 'bench';
  if (p.pid === agentPid) return 'agent';
  if (p.cmdline.includes('node-agent/net/main.js')) return 'kratanet';
  if (p.kernel) {
    // netback's vifD.Q-q0-* threads, blkback's D.xvdX-N ring threads, the loop devices' rescuers.
    if (/^vif\d|^\d+\.xvd|^blkback/.test(p.comm)) return 'kthread_backends';
    if (/^loop\d|^kworker\/R-loop/.test(p.comm)) return 'kthread_loop';
    return 'kthread_other';
  }
  if (p.comm === 'xenstored' || p.comm === 'xenconsoled' || p.comm === 'xl') return p.comm;
  if (p.comm === 'dropbear' || p.comm === 'sh' || p.comm === 'ash' || p.comm === 'init') return 'system';
  return 'other';
}

export function groups(procs: Proc[], agentPid: number, selfPid: number): Record<string, Group> {
  const out: Record<string, Group> = {};
  for (const p of procs) {
    const g = (out[classify(p, agentPid, selfPid)] ??= { procs: 0, rssKiB: 0, threads: 0, fds: 0 });
    g.procs++;
    g.rssKiB += p.rssKiB;
    g.threads += p.threads;
    g.fds += p.fds;
  }
  return out;
}

export interface Snapshot {
  meminfo: Meminfo;
  usedKiB: number;
  groups: Record<string, Group>;
  /** Processes that are not kernel threads and not of a known group: hotplug leftovers and the like. */
  others: string[];
}

export function snapshot(agentPid: number): Snapshot {
  const meminfo = parseMeminfo(readFileSync('/proc/meminfo', 'utf8'));
  const procs = readProcs();
  return {
    meminfo,
    usedKiB: usedKiB(meminfo),
    groups: groups(procs, agentPid, process.pid),
    others: procs.filter((p) => classify(p, agentPid, process.pid) === 'other').map((p) => `${p.comm}:${p.cmdline.slice(0, 60)}`),
  };
}

/** Per-guest deltas between two snapshots: memory in KiB, process groups' RSS, threads and fds. */
export function perGuest(before: Snapshot, after: Snapshot, guests: number): Record<string, number> {
  const n = Math.max(guests, 1);
  const r = (x: number): number => Math.round((x / n) * 10) / 10;
  // The bench's own process is not dom0's cost of a guest.
  const self = (after.groups.bench?.rssKiB ?? 0) - (before.groups.bench?.rssKiB ?? 0);
  const out: Record<string, number> = { dom0_kib_per_guest: r(after.usedKiB - before.usedKiB - self) };
  for (const f of ['Slab', 'SUnreclaim', 'KernelStack', 'PageTables', 'Shmem', 'VmallocUsed'] as const) {
    out[`${f.toLowerCase()}_kib_per_guest`] = r(after.meminfo[f] - before.meminfo[f]);
  }
  const names = new Set([...Object.keys(before.groups), ...Object.keys(after.groups)]);
  names.delete('bench');
  for (const g of names) {
    const a = after.groups[g] ?? { procs: 0, rssKiB: 0, threads: 0, fds: 0 };
    const b = before.groups[g] ?? { procs: 0, rssKiB: 0, threads: 0, fds: 0 };
    out[`${g}_rss_kib_per_guest`] = r(a.rssKiB - b.rssKiB);
    out[`${g}_threads_per_guest`] = r(a.threads - b.threads);
    out[`${g}_fds_per_guest`] = r(a.fds - b.fds);
    out[`${g}_procs_per_guest`] = r(a.procs - b.procs);
  }
  return out;
}

/** Median of the last three launches over the median of the first three (one sample each is noisy under TCG). */
export function lastOverFirst(ms: number[]): number {
  if (ms.length < 2) return 1;
  const k = Math.min(3, Math.floor(ms.length / 2));
  const med = (a: number[]): number => [...a].sort((x, y) => x - y)[Math.floor((a.length - 1) / 2)]!;
  return Number((med(ms.slice(-k)) / med(ms.slice(0, k))).toFixed(2));
}
