// The console throttling and guest channel counters reach /metrics (the rest of the metrics are exercised by the agent's
// e2e scenarios).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { GuestStore } from '../store/guest-store.js';
import { AgentMetrics } from './metrics.js';
import { consoleStats } from '../xen/index.js';
import { guestChannelStats } from '../channel/index.js';

test('console throttling is exported as counters', async () => {
  const metrics = new AgentMetrics({ list: () => [] } as unknown as GuestStore, () => undefined);
  const value = async (name: string) => Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(await metrics.registry.metrics())?.[1]);
  const before = await value('krata_console_throttled_total');
  consoleStats.throttled += 2;
  consoleStats.throttledBytes += 4096;
  assert.equal(await value('krata_console_throttled_total'), before + 2);
  assert.ok((await value('krata_console_throttled_bytes_total')) >= 4096);
});

test("guest channels' protocol errors, incompatibilities and resets are exported as counters", async () => {
  const metrics = new AgentMetrics({ list: () => [] } as unknown as GuestStore, () => undefined);
  const value = async (name: string) => Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(await metrics.registry.metrics())?.[1]);
  const before = await value('krata_guest_channel_protocol_errors_total');
  guestChannelStats.protocolErrors += 3;
  guestChannelStats.resets += 1;
  assert.equal(await value('krata_guest_channel_protocol_errors_total'), before + 3);
  assert.ok((await value('krata_guest_channel_resets_total')) >= 1);
  assert.ok((await value('krata_guest_channel_incompatible_total')) >= 0);
});

test('a launch breakdown reaches krata_launch_phase_seconds by phase, and krata_launch_seconds as a whole', async () => {
  const metrics = new AgentMetrics({ list: () => [] } as unknown as GuestStore, () => undefined);
  const observe = metrics.launchObserver();
  observe({
    key: 'default/a',
    domid: 3,
    phases: [
      { name: 'queue pickup', ms: 2 },
      { name: 'launch config', ms: 250 },
      { name: 'launch config', ms: 50 }, // marked twice: one observation of the sum
    ],
  });
  const text = await metrics.registry.metrics();
  const read = (re: RegExp) => Number(re.exec(text)?.[1]);
  assert.equal(read(/^krata_launch_phase_seconds_sum\{phase="launch config"\} (\S+)$/m), 0.3);
  assert.equal(read(/^krata_launch_phase_seconds_count\{phase="launch config"\} (\S+)$/m), 1);
  assert.equal(read(/^krata_launch_phase_seconds_bucket\{le="0.25",phase="launch config"\} (\S+)$/m), 0);
  assert.equal(read(/^krata_launch_phase_seconds_sum\{phase="queue pickup"\} (\S+)$/m), 0.002);
  assert.equal(read(/^krata_launch_seconds_count (\S+)$/m), 1);
  assert.equal(read(/^krata_launch_seconds_sum (\S+)$/m), 0.302);
});
