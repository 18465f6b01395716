// Run in dom0 by bench/agent-xen.sh: applies the benchmark Guest through the agent's API and waits
// for phase Running on the API's watch stream (no polling: each poll would be a request the agent
// serves on the loop that launches the guest, under QEMU's emulation), timing only that (Node's
// start-up, several seconds there, is not krata's work and is left out). Prints the milliseconds, then the agent's breakdown of that
// launch as JSON (phase → ms), read from the difference of its krata_launch_phase_seconds sums
// before and after (the agent runs with --metrics on METRICS, default 127.0.0.1:9477).
import { get } from 'node:http';
import { AgentClient } from '../kratactl/agent-client.js';
import type { Guest } from '../crds/generated/types.js';

const METRICS = process.env.KRATA_BENCH_METRICS ?? '127.0.0.1:9477';
/** The Guest's image (bench/cold-launch-xen.sh: one in a registry that is not cached). */
const IMAGE = process.env.KRATA_BENCH_IMAGE ?? 'bench/busybox:1';

/** The agent's per-phase sums (seconds) and its launch count, from /metrics. */
async function launchSums(): Promise<{ launches: number; sums: Map<string, number> }> {
  const text = await new Promise<string>((resolve, reject) =>
    get(`http://${METRICS}/metrics`, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c: string) => (body += c));
      res.on('end', () => resolve(body));
    }).on('error', reject),
  );
  const sums = new Map<string, number>();
  for (const m of text.matchAll(/^krata_launch_phase_seconds_sum\{phase="([^"]*)"\} (\S+)$/gm)) sums.set(m[1]!, Number(m[2]));
  const launches = Number(/^krata_launch_seconds_count (\S+)$/m.exec(text)?.[1] ?? 0);
  return { launches, sums };
}

const client = new AgentClient(process.env.KRATA_BENCH_SOCKET ?? '/run/krata/agent.sock', 300_000);
const guest = {
  apiVersion: 'krata.dev/v1alpha1',
  kind: 'Guest',
  metadata: { name: 'bench', namespace: 'default' },
  spec: {
    image: IMAGE,
    command: ['sh', '-c', 'while :; do sleep 1; done'],
    resources: { cpus: 1, memory: '96Mi' },
    network: { enabled: false },
    terminationGracePeriodSeconds: 1,
  },
} as unknown as Guest;
const before = await launchSums();
const t0 = performance.now();
await client.apply([guest]);
// Opened after the apply: its first events are the current state, so a Running already reached shows.
const stop = new AbortController();
let ms: number | undefined;
for await (const e of client.watch({ namespace: 'default', signal: stop.signal })) {
  if (e.object.metadata.name !== 'bench') continue;
  const phase = e.object.status?.phase;
  if (phase === 'Failed') throw new Error(`the guest failed: ${e.object.status?.message}`);
  if (phase === 'Running') {
    ms = Math.round(performance.now() - t0);
    stop.abort();
  }
}
if (ms === undefined) throw new Error('the watch ended before the guest was Running');
// The agent records the breakdown as it writes Running; a scrape may still come first.
let after = await launchSums();
for (let i = 0; i < 50 && after.launches <= before.launches; i++) {
  await new Promise((r) => setTimeout(r, 100));
  after = await launchSums();
}
const phases: Record<string, number> = {};
for (const [name, s] of after.sums) {
  const d = s - (before.sums.get(name) ?? 0);
  if (d > 0) phases[name] = Math.round(d * 10000) / 10;
}
console.log(`${ms} ${JSON.stringify(phases)}`);
