// Console device 1 in a new domain's xenstore tree: what hvc_xen's frontend needs to probe (state 1,
// backend, backend-id), type krata-channel on both ends, no ring-ref or port from dom0 (the frontend
// allocates both), and the permissions of the other split devices.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { DomainConfig } from '../domain-config.js';
import { writeDomainStore } from '../domain-store.js';
import type { Permission } from '../xenstore/permissions.js';
import type { XenstoreClient } from '../xenstore/client.js';
import { CHANNEL_TYPE, channelBackendPath, channelFrontendPath, consoleBackendRoot } from './channel.js';

function recordingStore() {
  const values = new Map<string, string>();
  const perms = new Map<string, Permission[]>();
  let transactions = 0;
  const ops = {
    write: async (path: string, v: string | Buffer) => void values.set(path, v.toString()),
    setPerms: async (path: string, p: Permission[]) => void perms.set(path, p),
  };
  const xs = {
    transaction: async <T>(body: (tx: typeof ops) => Promise<T>) => {
      transactions++;
      return body(ops);
    },
  };
  return {
    xs: xs as unknown as XenstoreClient,
    values,
    perms,
    get transactions() {
      return transactions;
    },
  };
}

const config: DomainConfig = {
  name: 'krata.a.b',
  vcpus: 1,
  maxVcpus: 1,
  memoryMiB: 64,
  maxMemoryMiB: 64,
  kernel: '/k',
  cmdline: 'console=hvc0',
  disks: [],
  nics: [{ mac: '00:16:3e:00:00:01' }],
};
const rings = { domid: 12, uuid: '6f1c2d8e-1b7a-4c3e-9d2f-6a1b2c3d4e5f', storeMfn: 1n, storeEvtchn: 1, consoleMfn: 2n, consoleEvtchn: 2 };

test('a domain built with the control channel gets console device 1 of type krata-channel, in the same transaction', async () => {
  const s = recordingStore();
  await writeDomainStore(s.xs, config, rings, { loops: [], controlChannel: true });
  assert.equal(s.transactions, 1);
  const F = '/local/domain/12/device/console/1';
  const B = '/local/domain/0/backend/console/12/1';
  assert.equal(channelFrontendPath(12), F);
  assert.equal(channelBackendPath(12), B);
  assert.equal(consoleBackendRoot(12), '/local/domain/0/backend/console/12');
  const under = (dir: string) =>
    Object.fromEntries([...s.values].filter(([k]) => k.startsWith(dir + '/')).map(([k, v]) => [k.slice(dir.length + 1), v]));
  assert.deepEqual(under(F), {
    backend: B,
    'backend-id': '0',
    state: '1',
    type: CHANNEL_TYPE,
    protocol: 'vt100',
    limit: '1048576',
    output: 'pty',
    tty: '',
  });
  assert.deepEqual(under(B), {
    frontend: F,
    'frontend-id': '12',
    online: '1',
    state: '1',
    type: 'krata-channel',
    protocol: 'vt100',
  });
  // As vbd and vif: the guest owns its frontend (hvc_xen writes ring-ref, port, state) and dom0 reads it;
  // dom0 owns the backend and the guest reads it.
  assert.deepEqual(s.perms.get(F), [
    { domid: 12, access: 'none' },
    { domid: 0, access: 'read' },
  ]);
  assert.deepEqual(s.perms.get(B), [
    { domid: 0, access: 'none' },
    { domid: 12, access: 'read' },
  ]);
  assert.deepEqual(s.perms.get(F), s.perms.get('/local/domain/12/device/vif/0'), 'the same permissions as the vif');
  assert.deepEqual(s.perms.get(B), s.perms.get('/local/domain/0/backend/vif/12/0'));
  // Console 0 keeps its own place and keys.
  assert.equal(s.values.get('/local/domain/12/console/ring-ref'), '2');
});

test("without controlChannel there is no device 1: an unserved frontend would hold the guest's boot", async () => {
  const s = recordingStore();
  await writeDomainStore(s.xs, config, rings, { loops: [] });
  assert.deepEqual(
    [...s.values.keys()].filter((k) => k.includes('/console/1') || k.startsWith('/local/domain/0/backend/console')),
    [],
  );
});
