// Usage through the agent main.ts builds (test-double hypervisor, fake clock): the service's usage()
// and the krata_guest_* series on /metrics read the one sampler, and a deleted Guest's series vanish.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Guest } from '../../crds/generated/types.js';
import { validateObject } from '../../crds/validate.js';
import { FakeClock } from '../../test/doubles/fake-clock.js';
import { silentLog, testAgentConfig } from '../../test/harness/node-agent.js';
import { replace, resolve } from '../../lib/container.js';
import { agentContainer, startAgent } from '../container/agent.js';
import { AGENT, CLOCK, GUEST_CONTROLLER, HYPERVISOR, IMAGE_PROVIDER, IMAGE_STORE, METRICS } from '../container/ids.js';
import type { ChannelState, GuestChannel, GuestReportedMetrics } from '../channel/index.js';
import { FakeHypervisor } from '../runtime/fake-hypervisor.js';
import type { ImageProvider } from '../reconcile/pulls.js';
import { NotFound } from '../service/service.js';

const work = mkdtempSync(join(tmpdir(), 'krata-usage-test-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));
const image = join(work, 'image.sqfs');
writeFileSync(image, 'not a real image');
const images: ImageProvider = {
  ensure: async () => ({
    digest: `sha256:${'ab'.repeat(32)}`,
    path: image,
    config: { architecture: 'amd64', os: 'linux', config: { Cmd: ['/bin/sh'] }, diffIds: [] },
  }),
};

const FIGURES: GuestReportedMetrics = {
  memoryTotalBytes: 900,
  memoryAvailableBytes: 600,
  memoryFreeBytes: 500,
  load1: 1.5,
  load5: 1,
  load15: 0.5,
  processes: 7,
  runningProcesses: 2,
  uptimeSeconds: 30,
};

/** A channel that is up and answers metrics: what the sampler uses of one. */
const upChannel = {
  state: (): ChannelState => ({ phase: 'up', version: 1, guestSoftware: 'test', transport: 'console' }),
  metrics: () => Promise.resolve(FIGURES),
} as unknown as GuestChannel;

function guest(name: string): Guest {
  const r = validateObject({
    apiVersion: 'krata.dev/v1alpha1',
    kind: 'Guest',
    metadata: { name },
    spec: { image: 'registry.example/app:1.0', resources: { cpus: 2, memory: '64Mi' } },
  });
  assert.deepEqual(r.errors, []);
  return r.object as Guest;
}

test('usage() and the krata_guest_* series come from the running Guests; a deleted Guest leaves both', async (t) => {
  const clock = new FakeClock();
  const hv = new FakeHypervisor({ cpus: 8, memoryMiB: 4096 }, clock);
  const container = agentContainer(testAgentConfig(join(work, 'state'), { metrics: '127.0.0.1:0' }), silentLog);
  replace(container, CLOCK, clock);
  replace(container, HYPERVISOR, hv);
  replace(container, IMAGE_PROVIDER, images);
  container.unbind(IMAGE_STORE);
  const agent = await resolve(container, AGENT);
  const running = await startAgent(container);
  t.after(() => running.stop());
  const [controller, metrics] = await Promise.all([resolve(container, GUEST_CONTROLLER), resolve(container, METRICS)]);
  const until = async (pred: () => boolean) => {
    for (let i = 0; i < 400 && !pred(); i++) {
      await Promise.race([controller.queue.idle(), new Promise((r) => setTimeout(r, 20))]);
      await new Promise((r) => setImmediate(r));
      clock.advance(100);
    }
    assert.ok(pred(), 'condition not reached');
  };

  await agent.apply([guest('web'), guest('db')], false);
  await until(() => agent.list().every((g) => g.status?.phase === 'Running'));
  const web = agent.get('default', 'web')!.status!.domid!;
  const db = agent.get('default', 'db')!.status!.domid!;
  hv.channels.set(web, upChannel);
  hv.domainStats.set(web, { cpuSeconds: 12.5 });

  const all = await agent.usage();
  assert.deepEqual(
    all.map((u) => [u.name, u.domid, u.cpuSeconds, u.channel.phase, u.guest?.processes]),
    [
      ['db', db, 0, 'closed', undefined],
      ['web', web, 12.5, 'up', 7],
    ],
  );
  assert.deepEqual(
    (await agent.usage('default', 'web')).map((u) => u.name),
    ['web'],
  );
  assert.deepEqual(await agent.usage('other'), []);
  await assert.rejects(agent.usage('default', 'nope'), NotFound);

  const text = await metrics.registry.metrics();
  assert.match(text, /^krata_guest_cpu_seconds_total\{namespace="default",name="web"\} 12\.5$/m);
  assert.match(text, /^krata_guest_cpu_seconds_total\{namespace="default",name="db"\} 0$/m);
  assert.match(text, /^krata_guest_vcpus_online\{namespace="default",name="web"\} 2$/m);
  assert.match(text, /^krata_guest_memory_max_bytes\{namespace="default",name="web"\} \d+$/m);
  assert.match(text, /^krata_guest_memory_bytes\{namespace="default",name="web"\} \d+$/m);
  assert.match(text, /^krata_guest_memory_used_bytes\{namespace="default",name="web"\} 300$/m);
  assert.match(text, /^krata_guest_memory_available_bytes\{namespace="default",name="web"\} 600$/m);
  assert.match(text, /^krata_guest_load1\{namespace="default",name="web"\} 1\.5$/m);
  assert.match(text, /^krata_guest_load5\{namespace="default",name="web"\} 1$/m);
  assert.match(text, /^krata_guest_load15\{namespace="default",name="web"\} 0\.5$/m);
  assert.match(text, /^krata_guest_processes\{namespace="default",name="web"\} 7$/m);
  assert.match(text, /^krata_guest_channel_up\{namespace="default",name="web"\} 1$/m);
  assert.match(text, /^krata_guest_channel_up\{namespace="default",name="db"\} 0$/m);
  assert.match(text, /^krata_guest_channel_bulk\{namespace="default",name="web"\} 0$/m, 'up over the console');
  assert.doesNotMatch(text, /^krata_guest_channel_bulk\{namespace="default",name="db"\}/m, 'no transport while not up');
  assert.doesNotMatch(text, /^krata_guest_processes\{namespace="default",name="db"\}/m, 'no guest figures without a channel');

  await agent.delete('default', 'web', {});
  await until(() => agent.get('default', 'web') === undefined);
  const after = await metrics.registry.metrics();
  assert.doesNotMatch(after, /name="web"/);
  assert.match(after, /^krata_guest_cpu_seconds_total\{namespace="default",name="db"\} 0$/m);
  controller.stop();
});
