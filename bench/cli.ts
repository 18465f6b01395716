// `npm run bench -- cli`: how long kratactl takes to start and do a small job, against `node -e 0` in the
// same run (Node's own start is the floor). `version` and `get` against a test-double agent (the
// real API server over the in-memory agent service, in this process, holding the examples' Guests) and
// `apply --dry-run` of the examples; each the median of several runs, interleaved with node -e 0 so load
// on the host falls on both. Times the shipped kratactl (package.json's bin) and, for comparison, the
// unbundled dist/kratactl/main.js.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../lib/package-root.js';
import { startFakeAgentApi, testGuest } from '../test/harness/agent-api.js';

const RUNS = Number(process.env.KRATA_BENCH_RUNS ?? 11);

/** Milliseconds from spawn to exit of `node ...args`; fails on a non-zero exit. */
function timeRun(args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'], env });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', reject);
    child.on('exit', (code) => {
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      if (code === 0) resolve(ms);
      else reject(new Error(`node ${args.join(' ')} exited ${code}: ${stderr}`));
    });
  });
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const round = (n: number) => Math.round(n * 10) / 10;

export async function cliBench(): Promise<Record<string, unknown>> {
  const root = repoRoot();
  const after: (() => Promise<void> | void)[] = [];
  try {
    const agent = await startFakeAgentApi({ after: (fn) => after.push(fn) });
    await agent.service.apply(
      ['hello', 'web', 'cache', 'worker', 'shell', 'busybox-web', 'checksum-job'].map((name) => testGuest(name)),
      false,
    );
    const env = { ...process.env, KRATA_AGENT_SOCKET: agent.socket };
    const bin = join(root, (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { bin: Record<string, string> }).bin.kratactl!);
    const unbundled = join(root, 'dist/kratactl/main.js');
    const commands: Record<string, string[]> = {
      version: ['version'],
      get: ['get'],
      apply: ['apply', '--dry-run', '-f', join(root, 'manifests/examples')],
    };
    const times: Record<string, number[]> = { node: [] };
    for (let i = 0; i < RUNS; i++) {
      times.node!.push(await timeRun(['-e', '0'], env));
      for (const [name, args] of Object.entries(commands)) {
        (times[name] ??= []).push(await timeRun([bin, ...args], env));
        (times[`${name}_unbundled`] ??= []).push(await timeRun([unbundled, ...args], env));
      }
    }
    const node = median(times.node!);
    const out: Record<string, unknown> = { bench: 'cli' };
    for (const name of Object.keys(commands)) out[`${name}_ratio`] = Number((median(times[name]!) / node).toFixed(2));
    out.node_ms = round(node);
    for (const name of Object.keys(commands)) {
      out[`${name}_ms`] = round(median(times[name]!));
      out[`${name}_unbundled_ms`] = round(median(times[`${name}_unbundled`]!));
    }
    out.runs = RUNS;
    out.kratactl = bin.slice(root.length + 1);
    out.baseline = 'node -e 0, interleaved in the same run';
    return out;
  } finally {
    for (const fn of after.reverse()) await fn();
  }
}
