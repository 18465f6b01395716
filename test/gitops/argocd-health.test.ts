// Argo CD's health scripts for krata's kinds (manifests/gitops/argocd/), run in real Lua interpreters
// (Debian's lua5.4 and lua5.1, the language of Argo CD's gopher-lua; scripts/install-deps) against
// statuses made by krata's own code: the node agent's
// reconciler on the test-double hypervisor, the operator's deriveStatus on top of its reports, the
// GuestSet controller's conditions and the operator's XenHost status. Each script gets only `obj` and
// Lua's base, string, table and math (as Argo CD's sandbox gives it), and must say the expected verdict.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import type { Guest, GuestSet, GuestSetStatus, XenHost } from '../../crds/generated/types.js';
import { repoRoot } from '../../lib/package-root.js';
import { deriveStatus } from '../../operator/guest-status.js';
import { hostStatus } from '../../operator/host-tracker.js';
import { setConditions } from '../../workloads/guestset/controller.js';
import type { Counts } from '../../workloads/guestset/planner.js';
import { guest, harness, phase } from '../harness/node-controller.js';

const root = repoRoot();
const DIR = join(root, 'manifests/gitops/argocd');
const script = (kind: string) => join(DIR, 'krata.dev', kind, 'health.lua');
const NOW = '2026-01-02T03:04:05Z';

/** A Lua literal of a JSON value (strings byte by byte, so any UTF-8 survives). */
function lua(v: unknown): string {
  if (v === null || v === undefined) return 'nil';
  if (typeof v === 'boolean' || typeof v === 'number') return String(v);
  if (typeof v === 'string') {
    const plain = (b: number) => b >= 0x20 && b < 0x7f && b !== 0x22 && b !== 0x5c;
    return `"${[...Buffer.from(v)].map((b) => (plain(b) ? String.fromCharCode(b) : `\\${b}`)).join('')}"`;
  }
  if (Array.isArray(v)) return `{${v.map(lua).join(',')}}`;
  return `{${Object.entries(v as Record<string, unknown>)
    .map(([k, x]) => `[${lua(k)}]=${lua(x)}`)
    .join(',')}}`;
}

const INTERPRETERS = ['lua5.4', 'lua5.1'];

/** Argo CD's verdict on `obj`: the script run with `obj` and a sandbox of Lua's safe libraries, the same in each interpreter. */
function health(kind: string, obj: unknown): { status: string; message: string } {
  const runner = `
local env = { obj = ${lua(obj)}, ipairs = ipairs, pairs = pairs, tostring = tostring, tonumber = tonumber, type = type,
  string = string, table = table, math = math }
local chunk
if setfenv then
  chunk = assert(loadfile(arg[1]))
  setfenv(chunk, env)
else
  chunk = assert(loadfile(arg[1], "t", env))
end
local hs = chunk()
io.write(hs.status, "\\n", hs.message or "")
`;
  const verdicts = INTERPRETERS.map((lua) => {
    const r = spawnSync(lua, ['-', script(kind)], { input: runner, encoding: 'utf8' });
    assert.equal(r.status, 0, `${lua}: ${r.stderr}${r.error ? String(r.error) : ''}`);
    const [status, ...message] = r.stdout.split('\n');
    return { status: status!, message: message.join('\n') };
  });
  assert.deepEqual(verdicts[1], verdicts[0], `${INTERPRETERS.join(' and ')} agree`);
  return verdicts[0]!;
}

const VERDICTS = new Set(['Healthy', 'Progressing', 'Degraded', 'Suspended', 'Missing', 'Unknown']);
function expect(kind: string, obj: unknown, status: string, message: RegExp, what: string): void {
  const got = health(kind, obj);
  assert.ok(VERDICTS.has(got.status), `${what}: ${got.status} is one of Argo CD's health statuses`);
  assert.equal(got.status, status, `${what}: ${JSON.stringify(got)}`);
  assert.match(got.message, message, what);
}

test('argocd-cm-patch.yaml holds the three scripts verbatim, under the keys Argo CD reads', () => {
  const patch = parse(readFileSync(join(DIR, 'argocd-cm-patch.yaml'), 'utf8')) as { data: Record<string, string> };
  assert.deepEqual(Object.keys(patch.data).sort(), [
    'resource.customizations.health.krata.dev_Guest',
    'resource.customizations.health.krata.dev_GuestSet',
    'resource.customizations.health.krata.dev_XenHost',
  ]);
  for (const [key, text] of Object.entries(patch.data)) assert.equal(text, readFileSync(script(key.split('_')[1]!), 'utf8'), key);
});

test("Guest: the agent's statuses as the operator writes them, judged", async () => {
  const h = harness();
  h.hv.behaviour = (l) =>
    l.guest.name === 'web' ? { runMs: 3_600_000 } : l.guest.name === 'done' ? { runMs: 1000, exitCode: 0 } : { runMs: 1000, exitCode: 3 };
  await h.agent.apply(
    [
      guest('web'),
      guest('crash'),
      guest('done', { restartPolicy: 'Never' }),
      guest('failed', { restartPolicy: 'Never' }),
      guest('kernel', { kernel: { image: 'registry.example/kernel:6.1' } }),
      guest('pulling', { image: 'registry.example/slow:1' }),
    ],
    false,
  );
  await h.until(() => ['web', 'crash', 'done', 'failed'].every((x) => phase(h, x) === 'Running'));
  h.clock.advance(1000);
  await h.until(() => phase(h, 'crash') === 'Pending' && phase(h, 'done') === 'Succeeded' && phase(h, 'failed') === 'Failed');
  h.stop();

  /** The Guest as the cluster stores it: the operator's status from the agent's report on host-1. */
  const inCluster = (name: string, opts: { generation?: number; hostReady?: boolean } = {}): Guest => {
    const g = structuredClone(h.agent.get('default', name)!);
    const uid = `uid-${name}`;
    const stored = { ...g, metadata: { ...g.metadata, uid, generation: opts.generation ?? 1 } } as Guest;
    const report = { uid, generation: 1, status: g.status ?? null, time: NOW };
    return { ...stored, status: deriveStatus({ guest: stored, node: 'host-1', report, hostReady: opts.hostReady ?? true, now: NOW }) };
  };
  expect('Guest', inCluster('web'), 'Healthy', /./, 'running and Ready');
  expect('Guest', inCluster('crash'), 'Degraded', /^CrashLoopBackOff: .*back-off 10s/, 'crash loop');
  expect('Guest', inCluster('done'), 'Healthy', /^Completed/, 'ran to completion (restartPolicy Never)');
  expect('Guest', inCluster('failed'), 'Degraded', /./, 'exited 3 (restartPolicy Never)');
  expect('Guest', inCluster('kernel'), 'Degraded', /^KernelImageUnsupported/, 'kernel.image is not built: Stalled');
  expect('Guest', inCluster('pulling'), 'Progressing', /./, 'image being pulled');
  expect('Guest', inCluster('web', { hostReady: false }), 'Unknown', /not reporting/, 'its host stopped reporting');
  expect('Guest', inCluster('web', { generation: 2 }), 'Progressing', /generation 2/, 'a newer spec than the agent acted on');

  // What only the operator knows: placement.
  const fresh = guest('new', { network: { ports: [{ containerPort: 80, hostPort: 80 }] } });
  const stored = { ...fresh, metadata: { ...fresh.metadata, uid: 'u', generation: 1 } } as Guest;
  expect('Guest', stored, 'Progressing', /placed/, 'no status yet');
  const refused = { reason: 'HostPortNotAllowed', message: 'host port 80 is not allowed on any host' };
  expect(
    'Guest',
    { ...stored, status: deriveStatus({ guest: stored, unschedulable: refused, hostReady: false, now: NOW }) },
    'Degraded',
    /^HostPortNotAllowed: host port 80/,
    "refused by the hosts' policy: Stalled",
  );
  const full = { reason: 'InsufficientMemory', message: 'no host has 512Mi free' };
  expect(
    'Guest',
    { ...stored, status: deriveStatus({ guest: stored, unschedulable: full, hostReady: false, now: NOW }) },
    'Progressing',
    /no host has 512Mi free/,
    'waiting for room on a host',
  );
});

test("GuestSet: the controller's conditions, judged", () => {
  const set = (generation: number, status?: Partial<GuestSetStatus>) =>
    ({
      apiVersion: 'krata.dev/v1alpha1',
      kind: 'GuestSet',
      metadata: { name: 'web', namespace: 'default', generation },
      spec: { replicas: 3 },
      ...(status ? { status } : {}),
    }) as unknown as GuestSet;
  const status = (counts: Counts | undefined, stalled?: { reason: string; message: string }): Partial<GuestSetStatus> => ({
    observedGeneration: 2,
    replicas: counts?.replicas ?? 0,
    conditions: setConditions(3, counts, stalled).map((c) => ({ ...c, lastTransitionTime: NOW })),
  });
  expect('GuestSet', set(1), 'Progressing', /controller/, 'no status yet');
  expect('GuestSet', set(2, status({ replicas: 3, ready: 3, available: 3, updated: 3, old: 0 })), 'Healthy', /3 of 3/, 'all available');
  expect(
    'GuestSet',
    set(2, status({ replicas: 4, ready: 3, available: 3, updated: 1, old: 3 })),
    'Progressing',
    /^RollingUpdate: 1 of 3 updated/,
    'rolling update',
  );
  expect('GuestSet', set(2, status({ replicas: 1, ready: 0, available: 0, updated: 1, old: 0 })), 'Progressing', /ScalingUp/, 'scaling up');
  expect(
    'GuestSet',
    set(2, status(undefined, { reason: 'InvalidSpec', message: 'spec.selector: does not match the template' })),
    'Degraded',
    /^InvalidSpec: spec\.selector/,
    'invalid: Stalled',
  );
  expect(
    'GuestSet',
    set(3, status({ replicas: 3, ready: 3, available: 3, updated: 3, old: 0 })),
    'Progressing',
    /generation 3/,
    'a newer spec than the controller saw',
  );
});

test("XenHost: the operator's status from heartbeats, judged", () => {
  const host = (spec: XenHost['spec'] = {} as XenHost['spec']): XenHost =>
    ({ apiVersion: 'krata.dev/v1alpha1', kind: 'XenHost', metadata: { name: 'xen-1', generation: 1 }, spec }) as XenHost;
  const heartbeat = {
    host: 'xen-1',
    time: NOW,
    agentVersion: '0.1.0',
    xenVersion: '4.17.5',
    kernelVersion: '6.1.0',
    capacity: { cpus: 8, memoryMiB: 16384 },
    freeMemoryMiB: 8000,
    guests: 2,
    running: 2,
    epoch: 'e1',
  };
  const withStatus = (h: XenHost, ready: boolean) => ({ ...h, status: hostStatus(h, { heartbeat, ready, since: 0 }, NOW) });
  expect('XenHost', host(), 'Progressing', /first heartbeat/, 'no status yet');
  expect('XenHost', withStatus(host(), true), 'Healthy', /krata-node-agent 0\.1\.0 is reporting$/, 'heartbeating');
  expect('XenHost', withStatus(host({ unschedulable: true } as XenHost['spec']), true), 'Healthy', /cordoned/, 'cordoned');
  expect('XenHost', withStatus(host(), false), 'Degraded', /no heartbeat/, 'heartbeats stopped');
  expect(
    'XenHost',
    { ...host(), status: hostStatus(host(), { ready: false, since: 0 }, NOW) },
    'Degraded',
    /no heartbeat/,
    'never heartbeated, Ready Unknown',
  );
});
