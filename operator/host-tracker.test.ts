// The host tracker on a real Redis: heartbeats become XenHosts only for names the cluster vouches for,
// each other name is looked up (and logged) once a minute at most, and forged names cannot make the
// operator flood the API server with lookups.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { heartbeatKey, type Heartbeat } from '../contracts/redis/contract.js';
import type { XenHost } from '../crds/generated/types.js';
import { startRedis } from '../test/redis.js';
import { HostTracker, agentEndpoint, hostStatus } from './host-tracker.js';

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

test("a heartbeat's apiEndpoint becomes status.agentEndpoint when it is host:port, and is dropped otherwise", () => {
  for (const ok of [
    '10.0.0.5:9444',
    'xen-1.example.com:9444',
    '[fd00::1]:443',
    '[::ffff:10.0.0.1]:1',
    'h:65535',
    `${'a'.repeat(63)}.b:9444`,
  ])
    assert.equal(agentEndpoint(ok), ok);
  for (const bad of [
    undefined,
    9444,
    '',
    '10.0.0.5',
    ':9444',
    '10.0.0.5:0',
    '10.0.0.5:65536',
    '10.0.0.5:09444',
    'fd00::1:9444',
    '[not-v6]:9444',
    'https://x:1',
    'a b:1',
    'x:1/path',
    '-x:1',
    `${'a'.repeat(64)}:1`,
    `${'a.'.repeat(128)}b:1`,
    'x:1\n',
  ])
    assert.equal(agentEndpoint(bad), undefined, JSON.stringify(bad));
  const host = { apiVersion: 'krata.dev/v1alpha1', kind: 'XenHost', metadata: { name: 'xen-a' }, spec: {} } as XenHost;
  const st = (apiEndpoint?: string) => ({
    heartbeat: { ...beat('xen-a'), ...(apiEndpoint !== undefined ? { apiEndpoint } : {}) },
    ready: true,
    since: 0,
  });
  assert.equal(hostStatus(host, st('10.1.2.3:9444'), '2026-01-01T00:00:00Z').agentEndpoint, '10.1.2.3:9444');
  assert.ok(!('agentEndpoint' in hostStatus(host, st('evil\u0000:1'), '2026-01-01T00:00:00Z')));
  assert.ok(!('agentEndpoint' in hostStatus(host, st(), '2026-01-01T00:00:00Z')));
});
