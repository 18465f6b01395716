// The power-cut scenario's client (195-powercut): applies Guests to the agent one request after
// another until it is killed (or the host loses power), and prints a line for every request the agent
// acknowledged. The scenario keeps those lines on the host: they are what must survive the cut.
//   node apply-stream.js SOCKET SEED [MAX_GUESTS]
// Each request is a batch of 1-3 Guests; each Guest of it is new or a spec change of an earlier one
// (seeded choice). A Guest's spec carries the request's sequence number (`command: [sleep, SEQ]`), so a
// stored Guest says which of its applies it holds. The image is never pulled (imagePullPolicy Never,
// an image no cache has): the Guests stay Pending, and the agent writes their status meanwhile.
// Output: "ACK SEQ NAME..." after an acknowledged request, "ERR SEQ MESSAGE" after a refused one.
import { AgentClient } from '../../../kratactl/agent-client.js';
import type { Guest } from '../../../crds/generated/types.js';

export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function streamGuest(name: string, seq: number): Guest {
  return {
    apiVersion: 'krata.dev/v1alpha1',
    kind: 'Guest',
    metadata: { name, namespace: 'default', labels: { 'e2e.krata.dev/stream': 'powercut' } },
    spec: {
      image: 'e2e/powercut-absent:1',
      imagePullPolicy: 'Never',
      command: ['sleep', String(seq)],
      resources: { cpus: 1, memory: '32Mi' },
    },
  } as unknown as Guest;
}

async function main(): Promise<void> {
  const [socket, seedArg, maxArg] = process.argv.slice(2);
  if (!socket || !seedArg) {
    console.error('usage: apply-stream.js SOCKET SEED [MAX_GUESTS]');
    process.exit(2);
  }
  const random = mulberry32(Number(seedArg));
  const max = Number(maxArg ?? 40);
  const client = new AgentClient(socket, 60_000);
  const names: string[] = [];
  for (let seq = 1; ; seq++) {
    const size = 1 + Math.floor(random() * 3);
    const batch = new Set<string>();
    while (batch.size < size) {
      const fresh = names.length < max && (names.length === 0 || random() < 0.5);
      if (fresh) names.push(`stream-${names.length + 1}`);
      batch.add(fresh ? names.at(-1)! : names[Math.floor(random() * names.length)]!);
    }
    try {
      await client.apply([...batch].map((n) => streamGuest(n, seq)));
      process.stdout.write(`ACK ${seq} ${[...batch].join(' ')}\n`);
    } catch (e) {
      process.stdout.write(`ERR ${seq} ${(e as Error).message.replace(/\s+/g, ' ')}\n`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

if (process.argv[1]?.endsWith('apply-stream.js')) await main();
