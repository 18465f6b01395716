// The tools that unpack images (mksquashfs, zstd) chew on hostile input: each runs at low priority,
// with a CPU-time limit, in a process group of its own that a timeout or an abort kills whole.
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { setPriority } from 'node:os';

export interface ChildBounds {
  /** RLIMIT_CPU in seconds: the kernel stops the tool (SIGXCPU) when it has used this much CPU. */
  cpuSeconds?: number;
  /** Scheduling niceness (0-19): dom0 stays responsive while a pack runs. */
  nice?: number;
}

export const DEFAULT_CHILD_BOUNDS: Required<ChildBounds> = { cpuSeconds: 600, nice: 19 };

/** A hard limit a little above the soft one: SIGXCPU comes first, so the exit names the bound. */
const HARD_MARGIN_S = 5;

/**
 * Spawns `cmd` as the leader of a new process group, through the shell's `ulimit` (dash, bash and
 * busybox ash all have -H/-S -t and -c; util-linux's prlimit is not on every dom0), and lowers its
 * priority with setpriority(2) (inherited across the shell's exec, so it applies to `cmd`).
 */
export function spawnBounded(cmd: string, args: string[], bounds: ChildBounds, opts: SpawnOptions): ChildProcess {
  const cpu = bounds.cpuSeconds ?? DEFAULT_CHILD_BOUNDS.cpuSeconds;
  const nice = bounds.nice ?? DEFAULT_CHILD_BOUNDS.nice;
  if (!Number.isInteger(cpu) || cpu < 1) throw new Error(`CPU limit for ${cmd}: expected whole seconds >= 1, got ${cpu}`);
  if (!Number.isInteger(nice) || nice < 0 || nice > 19) throw new Error(`niceness for ${cmd}: expected 0-19, got ${nice}`);
  // The soft limit first (the hard one may not fall below it); no core files from a stopped tool.
  const script = `ulimit -S -t ${cpu} && ulimit -H -t ${cpu + HARD_MARGIN_S} && ulimit -c 0 && exec "$0" "$@"`;
  const child = spawn('/bin/sh', ['-c', script, cmd, ...args], { ...opts, detached: true });
  if (child.pid !== undefined) {
    try {
      setPriority(child.pid, nice);
    } catch {
      // Gone already (it failed to start): its exit says why.
    }
  }
  return child;
}

/** SIGKILL to the child's whole process group (it may have forked); a child already gone is fine. */
export function killGroup(child: ChildProcess): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    child.kill('SIGKILL');
  }
}

/** Why a bounded child ended badly, in words; undefined for an ordinary non-zero exit. */
export function boundHit(cmd: string, signal: NodeJS.Signals | null, bounds: ChildBounds): string | undefined {
  const cpu = bounds.cpuSeconds ?? DEFAULT_CHILD_BOUNDS.cpuSeconds;
  if (signal === 'SIGXCPU') return `${cmd} used up its CPU limit of ${cpu} s (RLIMIT_CPU) and was stopped`;
  if (signal === 'SIGKILL')
    return `${cmd} was killed (SIGKILL: the hard CPU limit of ${cpu + HARD_MARGIN_S} s, or the kernel's OOM killer)`;
  return signal ? `${cmd} was killed by ${signal}` : undefined;
}
