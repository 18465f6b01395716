// The per-guest series: one sample per scrape shared by every series, labels escaped, a Guest's series
// gone with it, guest-reported series only for Guests that report.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import type { GuestUsage } from '../../contracts/agent-api/types.js';
import { registerGuestUsage } from './prometheus.js';

const usage = (name: string, extra: Partial<GuestUsage> = {}): GuestUsage => ({
  namespace: 'prod',
  name,
  domid: 3,
  timestamp: '2026-01-01T00:00:00.000Z',
  cpuSeconds: 4.25,
  vcpus: { online: 2, max: 4 },
  memory: { domainBytes: 1024, maxBytes: 2048 },
  channel: { phase: 'connecting' },
  ...extra,
});

test('every series reads one sample per scrape; series follow the Guests', async () => {
  const registry = new Registry();
  let samples = 0;
  let current: GuestUsage[] = [
    usage('web', {
      channel: { phase: 'up' },
      guest: { memoryTotalBytes: 10, memoryAvailableBytes: 4, memoryUsedBytes: 6, load: [0.1, 0.2, 0.3], processes: 5, uptimeSeconds: 1 },
    }),
    usage('db'),
  ];
  registerGuestUsage(registry, async () => {
    samples++;
    return current;
  });
  const text = await registry.metrics();
  assert.equal(samples, 1);
  assert.match(text, /^# TYPE krata_guest_cpu_seconds_total counter$/m);
  assert.match(text, /^krata_guest_cpu_seconds_total\{namespace="prod",name="web"\} 4\.25$/m);
  assert.match(text, /^krata_guest_memory_bytes\{namespace="prod",name="db"\} 1024$/m);
  assert.match(text, /^krata_guest_memory_max_bytes\{namespace="prod",name="db"\} 2048$/m);
  assert.match(text, /^krata_guest_memory_used_bytes\{namespace="prod",name="web"\} 6$/m);
  assert.match(text, /^krata_guest_load15\{namespace="prod",name="web"\} 0\.3$/m);
  assert.match(text, /^krata_guest_channel_up\{namespace="prod",name="db"\} 0$/m);
  assert.doesNotMatch(text, /^krata_guest_load1\{namespace="prod",name="db"\}/m);
  current = [usage('db')];
  const after = await registry.metrics();
  assert.equal(samples, 2);
  assert.doesNotMatch(after, /name="web"/);
  assert.match(after, /^krata_guest_vcpus_online\{namespace="prod",name="db"\} 2$/m);
});
