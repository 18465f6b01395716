// The host tracker on a real Redis: heartbeats become XenHosts only for names the cluster vouches for,
// each other name is looked up (and logged) once a minute at most, and forged names cannot make the
// operator flood the API server with lookups.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { heartbeatKey, type Heartbeat } from '../contracts/redis/contract.js';
import type { XenHost } from '../crds/generated/types.js';
import { startRedis } from '../test/redis.js';
import { HostTracker } from './host-tracker.js';

const beat = (host: string): Heartbeat => ({
  host,
  time: new Date().toISOString(),
  agentVersion: '0.1.0',
  xenVersion: '4.17',
  kernelVersion: '6.1',
  capacity: { cpus: 4, memoryMiB: 4096 },
  freeMemoryMiB: 4096,
  guests: 0,
  running: 0,
  epoch: '',
});

test(
  'heartbeats register only vouched names; the rest are looked up once a minute, 20 per poll, and logged once',
  { timeout: 30_000 },
  async () => {
    const redis = await startRedis();
    const r = new Redis(redis.url);
    try {
      const forged = Array.from({ length: 50 }, (_, i) => `forged-${i}`);
      for (const h of ['xen-a', ...forged]) await r.set(heartbeatKey(h), JSON.stringify(beat(h)));
      await r.set('krata:host:Not_A_Name:heartbeat', '{}');
      let now = 1_000_000;
      const hosts: XenHost[] = [];
      const lookups: string[] = [];
      const logs: string[] = [];
      const ready: string[] = [];
      const tracker = new HostTracker(r, {
        hosts: () => hosts,
        getHost: (name) => hosts.find((h) => h.metadata.name === name),
        vouched: async (name) => {
          lookups.push(name);
          return name === 'xen-a';
        },
        register: async (name) =>
          void hosts.push({ apiVersion: 'krata.dev/v1alpha1', kind: 'XenHost', metadata: { name }, spec: {} } as XenHost),
        writeStatus: async () => undefined,
        onReadyChange: (name) => ready.push(name),
        now: () => now,
        log: (msg) => logs.push(msg),
      });
      await tracker.poll();
      assert.ok(lookups.length <= 20, `${lookups.length} lookups in one poll`);
      for (let i = 0; i < 5; i++) await tracker.poll();
      assert.equal(lookups.length, 51, 'every well-formed name looked up once');
      assert.equal(new Set(lookups).size, 51);
      assert.ok(!lookups.includes('Not_A_Name'), 'a name that is no DNS subdomain is never looked up');
      assert.deepEqual(
        hosts.map((h) => h.metadata.name),
        ['xen-a'],
      );
      assert.deepEqual(ready, ['xen-a'], 'only the registered host is tracked');
      assert.equal(tracker.ignoredHosts, 51);
      assert.equal(logs.filter((l) => l.startsWith('ignoring heartbeats under')).length, 51);
      assert.ok(logs.some((l) => l.startsWith('ignoring heartbeats under "Not_A_Name": not a DNS subdomain')));

      // A minute later they are looked up again (a Node may have been labelled), without new log lines.
      now += 61_000;
      for (let i = 0; i < 4; i++) await tracker.poll();
      assert.equal(lookups.length, 101);
      assert.equal(logs.filter((l) => l.startsWith('ignoring heartbeats under')).length, 51);
      // A name whose heartbeat is gone is forgotten.
      await r.del(heartbeatKey('forged-0'));
      await tracker.poll();
      assert.equal(tracker.ignoredHosts, 50);
    } finally {
      r.disconnect();
      await redis.stop();
    }
  },
);
