// A running domain's resource targets in xenstore: the keys writeDomainStore wrote read back as the
// config's targets; a resize writes only the keys that differ, in one transaction, and nothing beyond
// the domain's maximums; values that do not parse count as not set.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { DomainConfig } from './domain-config.js';
import { writeDomainStore } from './domain-store.js';
import { memoryMaxPath, memoryTargetPath, readResourceTargets, vcpuPath, writeResourceTargets } from './resources.js';
import type { Permission } from './xenstore/permissions.js';
import type { XenstoreClient } from './xenstore/client.js';

/** An in-memory xenstore that counts transactions and records the writes made in them. */
function memoryStore() {
  const values = new Map<string, string>();
  const writes: string[] = [];
  let transactions = 0;
  const ops = {
    write: async (path: string, v: string | Buffer) => {
      writes.push(`${path}=${v.toString()}`);
      values.set(path, v.toString());
    },
    setPerms: async (_path: string, _p: Permission[]) => undefined,
    tryRead: async (path: string) => values.get(path),
  };
  const xs = {
    ...ops,
    transaction: async <T>(body: (tx: typeof ops) => Promise<T>) => {
      transactions++;
      return body(ops);
    },
  };
  return { xs, values, writes, transactions: () => transactions };
}

const config: DomainConfig = {
  name: 'krata.default.web',
  vcpus: 1,
  maxVcpus: 3,
  memoryMiB: 128,
  maxMemoryMiB: 192,
  kernel: '/k',
  cmdline: '',
  disks: [],
  nics: [],
};
const rings = { domid: 7, uuid: '00000000-0000-4000-8000-000000000007', storeMfn: 1n, storeEvtchn: 1, consoleMfn: 2n, consoleEvtchn: 2 };

async function built() {
  const store = memoryStore();
  await writeDomainStore(store.xs as unknown as XenstoreClient, config, rings, { loops: [] });
  store.writes.length = 0;
  return store;
}

test('the targets writeDomainStore wrote read back as the config asked', async () => {
  const { xs, values } = await built();
  assert.deepEqual(await readResourceTargets(xs, 7, 3), { vcpus: 1, memoryMiB: 128 });
  assert.equal(values.get(memoryMaxPath(7)), String(192 * 1024));
  assert.deepEqual(
    [0, 1, 2].map((n) => values.get(vcpuPath(7, n))),
    ['online', 'offline', 'offline'],
  );
});

test('a resize writes the keys that differ in one transaction; the same targets again write nothing', async () => {
  const store = await built();
  const xs = store.xs as unknown as XenstoreClient;
  const r = await writeResourceTargets(xs, 7, { vcpus: 2, memoryMiB: 96 }, 3);
  assert.deepEqual(r, { before: { vcpus: 1, memoryMiB: 128 }, changed: true });
  assert.deepEqual(store.writes.sort(), [`${vcpuPath(7, 1)}=online`, `${memoryTargetPath(7)}=${96 * 1024}`]);
  assert.equal(store.transactions() - 1, 1, 'one transaction (after the one writeDomainStore used)');
  store.writes.length = 0;
  assert.deepEqual(await writeResourceTargets(xs, 7, { vcpus: 2, memoryMiB: 96 }, 3), {
    before: { vcpus: 2, memoryMiB: 96 },
    changed: false,
  });
  assert.deepEqual(store.writes, []);
  // Down again: vCPUs beyond the target go offline.
  await writeResourceTargets(xs, 7, { vcpus: 1, memoryMiB: 192 }, 3);
  assert.deepEqual(await readResourceTargets(store.xs, 7, 3), { vcpus: 1, memoryMiB: 192 });
});

test('nothing beyond the maximums: vCPUs the domain lacks, memory above static-max, a domain without static-max', async () => {
  const store = await built();
  const xs = store.xs as unknown as XenstoreClient;
  await assert.rejects(writeResourceTargets(xs, 7, { vcpus: 4, memoryMiB: 128 }, 3), RangeError);
  await assert.rejects(writeResourceTargets(xs, 7, { vcpus: 0, memoryMiB: 128 }, 3), RangeError);
  await assert.rejects(writeResourceTargets(xs, 7, { vcpus: 1, memoryMiB: 193 }, 3), /maximum is 192 MiB/);
  assert.deepEqual(store.writes, []);
  store.values.delete(memoryMaxPath(7));
  await assert.rejects(writeResourceTargets(xs, 7, { vcpus: 1, memoryMiB: 64 }, 3), /static-max/);
  assert.deepEqual(store.writes, []);
});

test('values that do not parse count as not set, and a resize puts them right', async () => {
  const store = await built();
  store.values.set(memoryTargetPath(7), '0x100');
  store.values.set(vcpuPath(7, 2), 'maybe');
  assert.deepEqual(await readResourceTargets(store.xs, 7, 3), {});
  store.values.set(memoryTargetPath(7), '9'.repeat(40));
  assert.deepEqual(await readResourceTargets(store.xs, 7, 3), {});
  const r = await writeResourceTargets(store.xs as unknown as XenstoreClient, 7, { vcpus: 1, memoryMiB: 128 }, 3);
  assert.deepEqual(r, { before: {}, changed: true });
  assert.deepEqual(await readResourceTargets(store.xs, 7, 3), { vcpus: 1, memoryMiB: 128 });
});
