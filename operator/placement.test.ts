import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Guest } from '../crds/generated/types.js';
import { DEFAULT_HOST_PORTS } from '../crds/host-ports.js';
import { guestRequest, place, type HostView } from './placement.js';

const guest = (spec: Partial<Guest['spec']> = {}, resources: Partial<Guest['spec']['resources']> = {}): Guest => ({
  apiVersion: 'krata.dev/v1alpha1',
  kind: 'Guest',
  metadata: { name: 'g', namespace: 'default', uid: 'u1' },
  spec: {
    image: 'alpine',
    tty: false,
    network: { enabled: true },
    restartPolicy: 'Always',
    terminationGracePeriodSeconds: 30,
    resources: { cpus: 1, memory: '512Mi', ...resources },
    ...spec,
  },
});

const host = (name: string, over: Partial<HostView> = {}): HostView => ({
  name,
  labels: {},
  unschedulable: false,
  ready: true,
  allocatable: { cpus: 8, memoryMiB: 8192 },
  allocated: { cpus: 0, memoryMiB: 0 },
  policy: { allowNodeName: true, hostPorts: [...DEFAULT_HOST_PORTS] },
  usedPorts: new Set(),
  ...over,
});

const ports = (...list: { containerPort: number; hostPort?: number; protocol?: 'TCP' | 'UDP' }[]): Partial<Guest['spec']> => ({
  network: { enabled: true, ports: list.map((p) => ({ protocol: 'TCP' as const, ...p })) },
});

test('a Guest holds its maximums, rounded up to MiB', () => {
  assert.deepEqual(guestRequest(guest({}, { memory: '512Mi', maxMemory: '1Gi', cpus: 1, maxCpus: 4 })), { cpus: 4, memoryMiB: 1024 });
  assert.deepEqual(guestRequest(guest({}, { memory: 1_000_001 })), { cpus: 1, memoryMiB: 1 });
});

test('the least allocated host wins, so Guests spread; ties go to the name', () => {
  assert.deepEqual(place(guest(), [host('b'), host('a')]), { host: 'a' });
  assert.deepEqual(
    place(guest(), [host('a', { allocated: { cpus: 1, memoryMiB: 2048 } }), host('b', { allocated: { cpus: 4, memoryMiB: 1024 } })]),
    { host: 'b' },
  );
});

test("a GuestSet's replicas spread: the host with fewest of its Guests wins before the least allocated", () => {
  const busyA = host('a', { allocated: { cpus: 1, memoryMiB: 512 } });
  const busierB = host('b', { allocated: { cpus: 4, memoryMiB: 4096 } });
  assert.deepEqual(place(guest(), [busyA, busierB], new Map([['a', 1]])), { host: 'b' });
  assert.deepEqual(
    place(
      guest(),
      [busyA, busierB],
      new Map([
        ['a', 1],
        ['b', 1],
      ]),
    ),
    { host: 'a' },
  );
  // Spreading never beats the filters: a full host is out whatever its count.
  const full = host('c', { allocated: { cpus: 8, memoryMiB: 8192 } });
  assert.deepEqual(place(guest(), [busyA, full], new Map([['a', 3]])), { host: 'a' });
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
    message:
      "0/5 hosts are available: 1 didn't match nodeSelector, 1 insufficient cpus, 1 insufficient memory, 1 not ready, 1 unschedulable",
  });
  assert.deepEqual(place(guest({ nodeSelector: { zone: 'y' } }, { memory: '128Mi' }), hosts), { host: 'd' });
});

test('nodeName narrows placement to one host but skips no rule: cordon, readiness, nodeSelector, capacity', () => {
  const others = [host('b'), host('c')];
  assert.deepEqual(place(guest({ nodeName: 'a' }), [host('a', { allocated: { cpus: 4, memoryMiB: 4096 } }), ...others]), { host: 'a' });
  const refused = (a: HostView, spec: Partial<Guest['spec']> = {}) => place(guest({ nodeName: 'a', ...spec }), [a, ...others]);
  assert.deepEqual(refused(host('a', { unschedulable: true })), {
    reason: 'Unschedulable',
    message: "0/3 hosts are available: 2 didn't match spec.nodeName, 1 unschedulable",
  });
  assert.deepEqual(refused(host('a', { ready: false })), {
    reason: 'Unschedulable',
    message: "0/3 hosts are available: 2 didn't match spec.nodeName, 1 not ready",
  });
  assert.deepEqual(refused(host('a', { allocated: { cpus: 8, memoryMiB: 0 } })), {
    reason: 'Unschedulable',
    message: "0/3 hosts are available: 2 didn't match spec.nodeName, 1 insufficient cpus",
  });
  assert.deepEqual(refused(host('a', { allocated: { cpus: 0, memoryMiB: 8000 } })), {
    reason: 'Unschedulable',
    message: "0/3 hosts are available: 2 didn't match spec.nodeName, 1 insufficient memory",
  });
  assert.deepEqual(refused(host('a'), { nodeSelector: { zone: 'x' } }), {
    reason: 'Unschedulable',
    message: "0/3 hosts are available: 2 didn't match spec.nodeName, 1 didn't match nodeSelector",
  });
  assert.deepEqual(place(guest({ nodeName: 'zz' }), [host('a')]), {
    reason: 'NodeNotFound',
    message: 'XenHost zz (spec.nodeName) does not exist',
  });
  assert.equal((place(guest(), []) as { reason: string }).reason, 'NoHosts');
});

test("a XenHost's guestPolicy.allowNodeName: false refuses Guests that name it, not Guests placed there by the rules", () => {
  const closed = host('a', { policy: { allowNodeName: false, hostPorts: [...DEFAULT_HOST_PORTS] } });
  assert.deepEqual(place(guest({ nodeName: 'a' }), [closed, host('b')]), {
    reason: 'NodeNameNotAllowed',
    message: 'XenHost a does not allow Guests to name it in spec.nodeName (its spec.guestPolicy.allowNodeName is false)',
  });
  assert.deepEqual(place(guest(), [closed, host('b', { allocated: { cpus: 1, memoryMiB: 1024 } })]), { host: 'a' });
});

test('host ports: privileged ports are refused by default, naming the port, its field and the allowed ranges', () => {
  const hosts = [host('a'), host('b')];
  assert.deepEqual(place(guest(ports({ containerPort: 80 })), hosts), {
    reason: 'HostPortNotAllowed',
    message: "0/2 hosts are available: 2 didn't allow host port TCP/80 of spec.network.ports[0].containerPort (allowed: 1024-65535)",
  });
  assert.deepEqual(
    place(guest(ports({ containerPort: 80, hostPort: 8080 }, { containerPort: 53, hostPort: 53, protocol: 'UDP' })), hosts),
    {
      reason: 'HostPortNotAllowed',
      message: "0/2 hosts are available: 2 didn't allow host port UDP/53 of spec.network.ports[1].hostPort (allowed: 1024-65535)",
    },
  );
  // An admin opens port 80 on one host: the Guest goes there and only there.
  const open = host('b', { policy: { allowNodeName: true, hostPorts: [{ from: 80, to: 80 }, ...DEFAULT_HOST_PORTS] } });
  assert.deepEqual(place(guest(ports({ containerPort: 80 })), [host('a'), open]), { host: 'b' });
  // [] allows none; ports without the network publish nothing.
  const none = host('a', { policy: { allowNodeName: true, hostPorts: [] } });
  assert.match((place(guest(ports({ containerPort: 8080 })), [none]) as { message: string }).message, /allowed: none/);
  assert.deepEqual(place(guest({ network: { enabled: false } }), [none]), { host: 'a' });
  // A policy refusal wherever it may go, whatever else is wrong with the hosts, is HostPortNotAllowed;
  // one host whose policy allows it makes it Unschedulable (it may fit once that host is back).
  assert.deepEqual(place(guest(ports({ containerPort: 80 })), [host('a', { ready: false }), host('b', { unschedulable: true })]), {
    reason: 'HostPortNotAllowed',
    message: "0/2 hosts are available: 2 didn't allow host port TCP/80 of spec.network.ports[0].containerPort (allowed: 1024-65535)",
  });
  assert.deepEqual(place(guest(ports({ containerPort: 80 })), [host('a', { ready: false, policy: open.policy }), host('b')]), {
    reason: 'Unschedulable',
    message:
      "0/2 hosts are available: 1 didn't allow host port TCP/80 of spec.network.ports[0].containerPort (allowed: 1024-65535), 1 not ready",
  });
});

test('a host port another Guest holds on a host rules that host out, as the NodePorts filter does', () => {
  const busy = host('a', { usedPorts: new Set(['TCP/8080']) });
  assert.deepEqual(
    place(guest(ports({ containerPort: 80, hostPort: 8080 })), [busy, host('b', { allocated: { cpus: 4, memoryMiB: 4096 } })]),
    { host: 'b' },
  );
  assert.deepEqual(place(guest(ports({ containerPort: 8080, protocol: 'UDP' })), [busy]), { host: 'a' });
  assert.deepEqual(place(guest({ nodeName: 'a', ...ports({ containerPort: 8080 }) }), [busy, host('b')]), {
    reason: 'Unschedulable',
    message: "0/2 hosts are available: 1 didn't match spec.nodeName, 1 host port TCP/8080 in use",
  });
});
