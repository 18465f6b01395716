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
