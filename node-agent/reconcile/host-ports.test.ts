// The agent's host-port rules in the reconciler (test-double hypervisor, fake clock): a port outside
// --host-ports refuses the Guest with a condition and no domain; a port another Guest holds makes the
// newcomer wait with HostPortConflict (no domain that silently lacks its port) until the port is free.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Guest, PortRange } from '../../crds/generated/types.js';
import { parsePortRanges } from '../../crds/host-ports.js';
import { validateObject } from '../../crds/validate.js';
import { FakeClock } from '../../test/doubles/fake-clock.js';
import { silentLog, testAgentConfig } from '../../test/harness/node-agent.js';
import { replace, resolve } from '../../lib/container.js';
import { agentContainer, startAgent } from '../container/agent.js';
import { AGENT, CLOCK, GUEST_STORE, HYPERVISOR, IMAGE_PROVIDER, IMAGE_STORE, GUEST_CONTROLLER } from '../container/ids.js';
import { FakeHypervisor } from '../runtime/fake-hypervisor.js';
import { GuestStore } from '../store/guest-store.js';
import { Ipam } from './ipam.js';
import type { ImageProvider } from './pulls.js';
import { validateConfig } from '../net/config.js';
import { desiredNetwork } from '../net/desired.js';

const work = mkdtempSync(join(tmpdir(), 'krata-host-ports-test-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));
const image = join(work, 'image.sqfs');
writeFileSync(image, 'not a real image');
const images: ImageProvider = {
  ensure: async () => ({
    digest: `sha256:${'ab'.repeat(32)}`,
    path: image,
    config: { architecture: 'amd64', os: 'linux', config: { Cmd: ['/bin/sh'] }, diffIds: [] },
  }),
};
let n = 0;

/** The agent main.ts builds, on the fake clock, with --host-ports `hostPorts`. */
async function harness(hostPorts?: PortRange[]) {
  const dir = join(work, `state-${++n}`);
  const clock = new FakeClock();
  const hv = new FakeHypervisor({ cpus: 8, memoryMiB: 4096 }, clock);
  const container = agentContainer(testAgentConfig(dir, { nodeName: 'host-1', ...(hostPorts ? { hostPorts } : {}) }), silentLog);
  replace(container, CLOCK, clock);
  replace(container, HYPERVISOR, hv);
  replace(container, IMAGE_PROVIDER, images);
  container.unbind(IMAGE_STORE);
  const agent = await resolve(container, AGENT);
  await startAgent(container);
  const [store, controller] = await Promise.all([resolve(container, GUEST_STORE), resolve(container, GUEST_CONTROLLER)]);
  return {
    hv,
    agent,
    controller,
    status: (name: string) => agent.get('default', name)?.status,
    async until(pred: () => boolean) {
      for (let i = 0; i < 400; i++) {
        await Promise.race([controller.queue.idle(), new Promise((r) => setTimeout(r, 20))]);
        await new Promise((r) => setImmediate(r));
        if (pred()) return;
        clock.advance(100);
      }
      assert.fail(
        `condition not reached: ${JSON.stringify(store.list().map((g) => [g.metadata.name, g.status?.phase, g.status?.reason]))}`,
      );
    },
  };
}

function guest(name: string, ports: Record<string, unknown>[]): Guest {
  const r = validateObject({
    apiVersion: 'krata.dev/v1alpha1',
    kind: 'Guest',
    metadata: { name },
    spec: { image: 'registry.example/app:1.0', resources: { cpus: 1, memory: '64Mi' }, network: { ports } },
  });
  assert.deepEqual(r.errors, []);
  return r.object as Guest;
}

const cond = (g: Guest['status'], type: string) => g?.conditions?.find((c) => c.type === type);

test('--host-ports parses ranges and single ports, "none", and names the flag in errors', () => {
  assert.deepEqual(parsePortRanges('80, 443,1024-65535', '--host-ports'), [
    { from: 80, to: 80 },
    { from: 443, to: 443 },
    { from: 1024, to: 65535 },
  ]);
  assert.deepEqual(parsePortRanges('none', '--host-ports'), []);
  for (const bad of ['0-80', '2000-1000', '70000', 'http', '', '1024-'])
    assert.throws(() => parsePortRanges(bad, '--host-ports'), /^Error: --host-ports: .* is not a port or a range/);
});

test('a privileged host port is refused by default: Failed, Stalled=True, reason HostPortNotAllowed, no domain', async () => {
  const h = await harness();
  await h.agent.apply([guest('web', [{ containerPort: 80 }]), guest('alt', [{ containerPort: 80, hostPort: 8080 }])], false);
  await h.until(() => h.status('web')?.phase === 'Failed' && h.status('alt')?.phase === 'Running');
  const s = h.status('web')!;
  assert.equal(s.reason, 'HostPortNotAllowed');
  assert.equal(s.message, 'host port TCP/80 (spec.network.ports[0].containerPort) is not allowed on this node (--host-ports 1024-65535)');
  assert.deepEqual([cond(s, 'Stalled')?.status, cond(s, 'Stalled')?.reason], ['True', 'HostPortNotAllowed']);
  assert.equal(h.hv.calls.create, 1);
  h.controller.stop();
  // An admin who allows it: the same Guest runs.
  const open = await harness([{ from: 80, to: 80 }]);
  await open.agent.apply([guest('web', [{ containerPort: 80 }])], false);
  await open.until(() => open.status('web')?.phase === 'Running');
  open.controller.stop();
});

test('a host port another Guest holds: the newcomer waits with HostPortConflict and starts once the port is free', async () => {
  const h = await harness();
  await h.agent.apply([guest('first', [{ containerPort: 80, hostPort: 8080 }])], false);
  await h.until(() => h.status('first')?.phase === 'Running');
  await h.agent.apply([guest('second', [{ containerPort: 8080 }, { containerPort: 9000, protocol: 'UDP' }])], false);
  await h.until(() => h.status('second')?.reason === 'HostPortConflict');
  const s = h.status('second')!;
  assert.equal(s.phase, 'Pending');
  assert.match(
    s.message!,
    /^host port TCP\/8080 \(spec\.network\.ports\[0\]\.containerPort\) is held by guest default\/first, which runs with it \(domain \d+\)/,
  );
  assert.deepEqual([cond(s, 'Ready')?.status, cond(s, 'Ready')?.reason], ['False', 'HostPortConflict']);
  assert.equal(s.domid, undefined);
  assert.equal(h.hv.calls.create, 1);
  assert.ok(h.agent.events('default', 'second').some((e) => e.reason === 'HostPortConflict'));
  // Another protocol on the same number is no conflict.
  await h.agent.apply([guest('udp', [{ containerPort: 8080, protocol: 'UDP' }])], false);
  await h.until(() => h.status('udp')?.phase === 'Running');
  await h.agent.delete('default', 'first', {});
  await h.until(() => h.status('second')?.phase === 'Running');
  h.controller.stop();
});

test('Guests applied together with one host port: the older runs, the other waits, never both', async () => {
  const h = await harness();
  await h.agent.apply([guest('a', [{ containerPort: 8000 }]), guest('b', [{ containerPort: 8000 }])], false);
  await h.until(
    () =>
      [h.status('a'), h.status('b')].some((s) => s?.phase === 'Running') &&
      [h.status('a'), h.status('b')].some((s) => s?.reason === 'HostPortConflict'),
  );
  assert.equal(h.status('a')?.phase, 'Running');
  assert.equal(h.hv.calls.create, 1);
  h.controller.stop();
});

test("a GuestSet's replicas share a host port: both run; a Guest of another set still waits", async () => {
  const h = await harness();
  const replica = (name: string, set: string) => {
    const g = guest(name, [{ containerPort: 80, hostPort: 8080 }]);
    g.metadata.ownerReferences = [{ apiVersion: 'krata.dev/v1alpha1', kind: 'GuestSet', name: set, uid: `uid-${set}`, controller: true }];
    return g;
  };
  await h.agent.apply([replica('web-1', 'web')], false);
  await h.until(() => h.status('web-1')?.phase === 'Running');
  // Created within web-1's second (creation times are whole seconds): the key decides who is older.
  await h.agent.apply([replica('web-2', 'web'), replica('zz-api-1', 'api')], false);
  await h.until(() => h.status('web-2')?.phase === 'Running' && h.status('zz-api-1')?.reason === 'HostPortConflict');
  assert.match(h.status('zz-api-1')!.message!, /held by guest default\/web-[12]/);
  assert.equal(h.hv.calls.create, 2);
  h.controller.stop();
});

test('--host-port-address: kratanet is told to bind published ports on that address only', () => {
  const dir = join(work, `state-${++n}`);
  const store = new GuestStore(dir);
  const ipam = new Ipam(dir);
  store.put(
    guest('web', [
      { containerPort: 80, hostPort: 8080 },
      { containerPort: 53, hostPort: 5353, protocol: 'UDP' },
    ]),
    new Date('2026-01-01T00:00:00Z'),
  );
  ipam.reserve('default/web', store.get('default/web')!.guest.metadata.uid!);
  store.setStatus('default/web', { phase: 'Running', domid: 3 });
  const cfg = desiredNetwork(store, ipam, { hostAddress: '192.0.2.10' });
  assert.deepEqual(validateConfig(JSON.parse(JSON.stringify(cfg))), cfg, 'kratanet accepts it as it is');
  assert.deepEqual(cfg.guests[0]!.ports, [
    { protocol: 'TCP', guestPort: 80, hostPort: 8080, hostAddress: '192.0.2.10' },
    { protocol: 'UDP', guestPort: 53, hostPort: 5353, hostAddress: '192.0.2.10' },
  ]);
  // Without the flag: all addresses, as before.
  assert.equal(desiredNetwork(store, ipam).guests[0]!.ports![0]!.hostAddress, undefined);
});
