// Port groups in the desired network: the replicas of one GuestSet share a host port (members and
// readiness from the store); a Guest of another owner still conflicts, older first, the group counting
// as its oldest member. And kratanet's config check on the new shape.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Guest } from '../../crds/generated/types.js';
import { validateConfig } from './config.js';
import { desiredNetwork, type AddressReservation, type PortConflict } from './desired.js';

interface Spec {
  name: string;
  created: string;
  owner?: string;
  ready?: boolean;
  ports?: { containerPort: number; hostPort?: number; protocol?: 'TCP' | 'UDP' }[];
  namespace?: string;
  deleting?: boolean;
}

function world(specs: Spec[]) {
  const guests = new Map<string, Guest>();
  const reservations = new Map<string, AddressReservation>();
  specs.forEach((s, i) => {
    const ns = s.namespace ?? 'shop';
    const key = `${ns}/${s.name}`;
    guests.set(key, {
      apiVersion: 'krata.dev/v1alpha1',
      kind: 'Guest',
      metadata: {
        name: s.name,
        namespace: ns,
        uid: `uid-${s.name}`,
        creationTimestamp: s.created,
        ...(s.deleting ? { deletionTimestamp: s.created } : {}),
        ...(s.owner
          ? { ownerReferences: [{ apiVersion: 'krata.dev/v1alpha1', kind: 'GuestSet', name: 'web', uid: s.owner, controller: true }] }
          : {}),
      },
      spec: { image: 'nginx', network: { enabled: true, ports: s.ports ?? [{ containerPort: 80, hostPort: 8080 }] } },
      status: {
        phase: 'Running',
        domid: i + 1,
        conditions: [{ type: 'Ready', status: s.ready ? 'True' : 'False', reason: 'Probe', message: '', lastTransitionTime: s.created }],
      },
    } as unknown as Guest);
    reservations.set(key, {
      uid: `uid-${s.name}`,
      ipv4: `10.75.0.${i + 2}`,
      ipv6: `fdd4:1476:6c7e::${i + 2}`,
      mac: `02:4b:00:00:00:${(i + 2).toString(16).padStart(2, '0')}`,
      prefix4: 16,
      prefix6: 64,
      gateway4: '10.75.0.1',
      gateway6: 'fdd4:1476:6c7e::1',
    });
  });
  const store = { keys: () => [...guests.keys()], get: (k: string) => (guests.has(k) ? { guest: guests.get(k)! } : undefined) };
  const ipam = { get: (k: string) => reservations.get(k), subnets: () => ['10.75.0.0/16'] };
  return { store, ipam };
}

test("a set's replicas share the port: one group, members by key with their readiness, no per-guest port", () => {
  const { store, ipam } = world([
    { name: 'web-b', created: '2026-01-01T00:00:02Z', owner: 'set-1', ready: false },
    { name: 'web-a', created: '2026-01-01T00:00:01Z', owner: 'set-1', ready: true },
    { name: 'web-c', created: '2026-01-01T00:00:03Z', owner: 'set-1', ready: true, deleting: true },
  ]);
  const conflicts: PortConflict[] = [];
  const cfg = desiredNetwork(store, ipam, { hostAddress: '192.0.2.10' }, conflicts);
  assert.deepEqual(conflicts, []);
  assert.deepEqual(
    cfg.guests.map((g) => g.ports),
    [[], [], []],
  );
  assert.deepEqual(cfg.portGroups, [
    {
      protocol: 'TCP',
      hostPort: 8080,
      hostAddress: '192.0.2.10',
      members: [
        { guest: 'shop/web-a', guestPort: 80, ready: true },
        { guest: 'shop/web-b', guestPort: 80, ready: false },
        // Being deleted: takes no new connections, whatever its condition says.
        { guest: 'shop/web-c', guestPort: 80, ready: false },
      ],
    },
  ]);
  assert.deepEqual(validateConfig(JSON.parse(JSON.stringify(cfg))), cfg, 'kratanet accepts it as it is');
});

test('a lone Guest older than the set keeps the port: every replica conflicts with it', () => {
  const { store, ipam } = world([
    { name: 'web-a', created: '2026-01-01T00:00:02Z', owner: 'set-1', ready: true },
    { name: 'solo', created: '2026-01-01T00:00:01Z' },
    { name: 'web-b', created: '2026-01-01T00:00:03Z', owner: 'set-1', ready: true },
  ]);
  const conflicts: PortConflict[] = [];
  const cfg = desiredNetwork(store, ipam, {}, conflicts);
  assert.equal(cfg.portGroups, undefined);
  assert.deepEqual(cfg.guests.find((g) => g.id === 'shop/solo')!.ports, [{ protocol: 'TCP', guestPort: 80, hostPort: 8080 }]);
  assert.deepEqual(
    conflicts.map((c) => [c.guest, c.holder]),
    [
      ['shop/web-a', 'shop/solo'],
      ['shop/web-b', 'shop/solo'],
    ],
  );
});

test('the group counts as its oldest member: a younger lone Guest, another set and another namespace conflict', () => {
  const { store, ipam } = world([
    { name: 'web-a', created: '2026-01-01T00:00:01Z', owner: 'set-1', ready: true },
    { name: 'solo', created: '2026-01-01T00:00:02Z' },
    { name: 'other-a', created: '2026-01-01T00:00:03Z', owner: 'set-2', ready: true },
    // Same owner uid in another namespace is not the same set.
    { name: 'web-x', created: '2026-01-01T00:00:04Z', owner: 'set-1', ready: true, namespace: 'elsewhere' },
    { name: 'web-b', created: '2026-01-01T00:00:05Z', owner: 'set-1', ready: true },
  ]);
  const conflicts: PortConflict[] = [];
  const cfg = desiredNetwork(store, ipam, {}, conflicts);
  assert.deepEqual(
    cfg.portGroups?.map((g) => g.members.map((m) => m.guest)),
    [['shop/web-a', 'shop/web-b']],
  );
  assert.deepEqual(
    conflicts.map((c) => [c.guest, c.holder]),
    [
      ['shop/solo', 'shop/web-a'],
      ['shop/other-a', 'shop/web-a'],
      ['elsewhere/web-x', 'shop/web-a'],
    ],
  );
});

test('each port of the template is its own group; members keep their own container port', () => {
  const { store, ipam } = world([
    {
      name: 'web-a',
      created: '2026-01-01T00:00:01Z',
      owner: 'set-1',
      ready: true,
      ports: [
        { containerPort: 80, hostPort: 8080 },
        { containerPort: 53, hostPort: 5353, protocol: 'UDP' },
      ],
    },
    // A rolled-out template moved the container port; the host port is the same group.
    { name: 'web-b', created: '2026-01-01T00:00:02Z', owner: 'set-1', ready: true, ports: [{ containerPort: 81, hostPort: 8080 }] },
  ]);
  const cfg = desiredNetwork(store, ipam);
  assert.deepEqual(cfg.portGroups, [
    {
      protocol: 'TCP',
      hostPort: 8080,
      members: [
        { guest: 'shop/web-a', guestPort: 80, ready: true },
        { guest: 'shop/web-b', guestPort: 81, ready: true },
      ],
    },
    { protocol: 'UDP', hostPort: 5353, members: [{ guest: 'shop/web-a', guestPort: 53, ready: true }] },
  ]);
});

test('the config check: port groups name known guests once, publish a port once, and say ready', () => {
  const guest = {
    id: 'shop/a',
    interface: 'vif1.0',
    mac: '02:4b:00:00:00:02',
    ipv4: '10.75.0.2/16',
    ipv6: 'fdd4:1476:6c7e::2/64',
    gateway4: '10.75.0.1',
    gateway6: 'fdd4:1476:6c7e::1',
    ports: [{ protocol: 'TCP', guestPort: 22, hostPort: 2222 }],
  };
  const member = { guest: 'shop/a', guestPort: 80, ready: true };
  const bad = (portGroups: unknown, why: RegExp) => assert.throws(() => validateConfig({ guests: [guest], portGroups }), why);
  bad({}, /portGroups: must be a list/);
  bad([{ hostPort: 8080, members: [] }], /portGroups\[0\]\.members: must be a non-empty list/);
  bad([{ hostPort: 8080, members: [{ ...member, guest: 'shop/z' }] }], /members\[0\]\.guest: shop\/z is not in guests/);
  bad([{ hostPort: 8080, members: [member, member] }], /members\[1\]\.guest: duplicate member/);
  bad([{ hostPort: 8080, members: [{ ...member, ready: 'yes' }] }], /members\[0\]\.ready: must be a boolean/);
  bad([{ hostPort: 70000, members: [member] }], /portGroups\[0\]\.hostPort: must be an integer/);
  bad([{ hostPort: 2222, members: [member] }], /portGroups\[0\]\.hostPort: TCP\/2222 is published twice/);
  bad([{ protocol: 'SCTP', hostPort: 8080, members: [member] }], /portGroups\[0\]\.protocol: must be TCP or UDP/);
  bad([{ hostPort: 8080, members: [member], weight: 1 }], /portGroups\[0\]\.weight: unknown field/);
  const ok = validateConfig({ guests: [guest], portGroups: [{ hostPort: 2222, protocol: 'UDP', members: [member] }] });
  assert.deepEqual(ok.portGroups, [{ protocol: 'UDP', hostPort: 2222, members: [member] }]);
});
