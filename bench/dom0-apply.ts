// Run in dom0 by bench/agent-xen.sh: applies the benchmark Guest through the agent's API and waits
// for phase Running, timing only that (Node's start-up under QEMU's emulation, several seconds, is
// not krata's work and is left out). Prints the milliseconds.
import { AgentClient } from '../kratactl/agent-client.js';
import type { Guest } from '../crds/generated/types.js';

const client = new AgentClient('/run/krata/agent.sock', 300_000);
const guest = {
  apiVersion: 'krata.dev/v1alpha1',
  kind: 'Guest',
  metadata: { name: 'bench', namespace: 'default' },
  spec: {
    image: 'bench/busybox:1',
    command: ['sh', '-c', 'while :; do sleep 1; done'],
    resources: { cpus: 1, memory: '96Mi' },
    network: { enabled: false },
    terminationGracePeriodSeconds: 1,
  },
} as unknown as Guest;
const t0 = performance.now();
await client.apply([guest]);
for (;;) {
  const g = await client.get('default', 'bench');
  if (g.status?.phase === 'Running') break;
  if (g.status?.phase === 'Failed') throw new Error(`the guest failed: ${g.status.message}`);
  await new Promise((r) => setTimeout(r, 20));
}
console.log(Math.round(performance.now() - t0));
