import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Guest } from '../crds/generated/types.js';
import { guestRequest, place, type HostView } from './placement.js';

const guest = (spec: Partial<Guest['spec']> = {}, resources: Partial<Guest['spec']['resources']> = {}): Guest => ({
  apiVersion: 'krata.dev/v1alpha1',
  kind: 'Guest',
  metadata: { name: 'g', namespace: 'default', uid: 'u1' },
  spec: { image: 'alpine', tty: false, network: { enabled: true }, restartPolicy: 'Always', terminationGracePeriodSeconds: 30, resources: { cpus: 1, memory: '512Mi', ...resources }, ...spec },
});

const host = (name: string, over: Partial<HostView> = {}): HostView => ({
  name,
  labels: {},
  unschedulable: false,
  ready: true,
  allocatable: { cpus: 8, memoryMiB: 8192 },
  allocated: { cpus: 0, memoryMiB: 0 },
  ...over,
});

test('a Guest holds its maximums, rounded up to MiB', () => {
  assert.deepEqual(guestRequest(guest({}, { memory: '512Mi', maxMemory: '1Gi', cpus: 1, maxCpus: 4 })), { cpus: 4, memoryMiB: 1024 });
  assert.deepEqual(guestRequest(guest({}, { memory: 1_000_001 })), { cpus: 1, memoryMiB: 1 });
});

test('the least allocated host wins, so Guests spread; ties go to the name', () => {
  assert.deepEqual(place(guest(), [host('b'), host('a')]), { host: 'a' });
  assert.deepEqual(place(guest(), [host('a', { allocated: { cpus: 1, memoryMiB: 2048 } }), host('b', { allocated: { cpus: 4, memoryMiB: 1024 } })]), { host: 'b' });
});

test('nodeSelector, readiness, cordons and capacity filter hosts, with a reason naming each', () => {
  const hosts = [
    host('a', { ready: false }),
    host('b', { unschedulable: true }),
    host('c', { labels: { zone: 'x' } }),
    host('d', { labels: { zone: 'y' }, allocated: { cpus: 0, memoryMiB: 8000 } }),
    host('e', { labels: { zone: 'y' }, allocated: { cpus: 8, memoryMiB: 0 } }),
  ];
  const p = place(guest({ nodeSelector: { zone: 'y' } }), hosts);
  assert.deepEqual(p, {
    reason: 'Unschedulable',
    message: "0/5 hosts are available: 1 didn't match nodeSelector, 1 insufficient cpus, 1 insufficient memory, 1 not ready, 1 unschedulable",
  });
  assert.deepEqual(place(guest({ nodeSelector: { zone: 'y' } }, { memory: '128Mi' }), hosts), { host: 'd' });
});

test('nodeName pins without a capacity check, and names a missing host', () => {
  const full = host('a', { allocated: { cpus: 8, memoryMiB: 8192 }, ready: false });
  assert.deepEqual(place(guest({ nodeName: 'a' }), [full, host('b')]), { host: 'a' });
  assert.deepEqual(place(guest({ nodeName: 'zz' }), [host('a')]), { reason: 'NodeNotFound', message: 'XenHost zz (spec.nodeName) does not exist' });
  assert.equal((place(guest(), []) as { reason: string }).reason, 'NoHosts');
});
