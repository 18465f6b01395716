// kratactl's verbs for scripts against kubectl's: the same Guests (same labels, same status) on the real
// node agent (test-double hypervisor, through its API socket) and on a real kube-apiserver (envtest,
// krata's CRDs, the agent's status written with `kubectl patch --subresource=status`). kratactl's output
// must be kubectl 1.32's byte for byte for the shapes kubectl defines: -o jsonpath (ranges, filters,
// literals, slices, recursive descent, files), custom-columns (and files), --sort-by, --no-headers,
// -o name under -l/--field-selector, TYPE/NAME and several names, and wait's lines and exit codes.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Running } from '../../lib/lifecycle.js';
import { agentContainer, startAgent } from '../../node-agent/container/agent.js';
import { silentLog, startSocketAgent, testAgentConfig } from '../harness/node-agent.js';
import { kratactl, startKratactl } from '../harness/kratactl.js';
import { startKube, type TestKube } from '../kube/operator-env.js';

const KUBECTL = process.env.KRATA_KUBECTL ?? 'kubectl';

const guest = (name: string, labels: Record<string, string>, image = 'app:1') => `apiVersion: krata.dev/v1alpha1
kind: Guest
metadata:
  name: ${name}
  labels: ${JSON.stringify(labels)}
spec:
  image: ${image}
  resources: {memory: 64Mi}
  terminationGracePeriodSeconds: 0
`;
// In name order: the apiserver lists by name, the agent in the order of creation.
const GUESTS = [
  guest('db', { app: 'db', tier: 'back', 'example.com/team': 'data' }, 'broken:1'),
  guest('web-1', { app: 'web', tier: 'front' }),
  guest('web-10', { app: 'web', tier: 'back' }),
  guest('web-2', { app: 'web' }),
].join('---\n');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs = 60_000): Promise<Run> {
  return new Promise((resolve, reject) => {
    const c = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    c.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    c.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => c.kill('SIGKILL'), timeoutMs);
    c.on('error', reject);
    c.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe('kratactl and kubectl print the same for the same Guests', { timeout: 300_000 }, () => {
  let dir: string;
  let socket: string;
  let running: Running;
  let kube: TestKube;
  const kubectl = (...args: string[]) => run(KUBECTL, ['--request-timeout=30s', ...args], { KUBECONFIG: kube.env.kubeconfig });
  const k = (...args: string[]) => kratactl([...args, '--agent', socket]);
  const file = (name: string, text: string) => {
    const p = join(dir, name);
    writeFileSync(p, text);
    return p;
  };

  /** Both tools with `args`: the same stdout and exit code (and stderr when `stderr`). */
  async function same(args: string[], opts: { stderr?: boolean } = {}): Promise<Run> {
    const [want, got] = await Promise.all([kubectl(...args), k(...args)]);
    const what = `kratactl ${args.join(' ')}`;
    assert.equal(got.stdout, want.stdout, `${what}: stdout (kubectl's stderr: ${want.stderr}; kratactl's: ${got.stderr})`);
    assert.equal(got.code, want.code, `${what}: exit code (kubectl's stderr: ${want.stderr}; kratactl's: ${got.stderr})`);
    if (opts.stderr) assert.equal(got.stderr, want.stderr, `${what}: stderr`);
    return want;
  }

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'krata-parity-'));
    socket = join(dir, 'agent.sock');
    let started: Awaited<ReturnType<typeof startSocketAgent>>;
    [started, kube] = await Promise.all([
      startSocketAgent(testAgentConfig(join(dir, 'state'), { api: { socketPath: socket } }), file('image.sqfs', 'not a real image')),
      startKube(),
    ]);
    running = started.running;

    const manifests = file('guests.yaml', GUESTS);
    const applied = await k('apply', '-f', manifests);
    assert.equal(applied.code, 0, applied.stderr);
    const ready = await k('wait', 'guests', '-l', 'app=web', '--for=condition=Ready', '--timeout=60s');
    assert.equal(ready.code, 0, ready.stderr);
    const db = await k('wait', 'guest/db', '--for=jsonpath={.status.reason}=ErrImagePull', '--timeout=60s');
    assert.equal(db.code, 0, db.stderr);

    const created = await kubectl('apply', '-f', manifests);
    assert.equal(created.code, 0, created.stderr);
    // One more namespace, for -A (created last on the agent, which lists in the order of creation).
    const team = file('team.yaml', guest('api', { app: 'api' }).replace('  name: api', '  name: api\n  namespace: team'));
    assert.equal((await k('apply', '-f', team)).code, 0);
    assert.equal((await kubectl('create', 'namespace', 'team')).code, 0);
    assert.equal((await kubectl('apply', '-f', team)).code, 0);
    const apiReady = await k('wait', 'guest/api', '-n', 'team', '--for=condition=Ready', '--timeout=60s');
    assert.equal(apiReady.code, 0, apiReady.stderr);
    const list = JSON.parse((await k('get', 'guests', '-A', '-o', 'json')).stdout) as {
      items: { metadata: { name: string; namespace: string }; status: unknown }[];
    };
    for (const g of list.items) {
      const status = JSON.stringify({ status: g.status });
      const r = await kubectl(
        'patch',
        'guest',
        g.metadata.name,
        '-n',
        g.metadata.namespace,
        '--subresource=status',
        '--type=merge',
        '-p',
        status,
      );
      assert.equal(r.code, 0, r.stderr);
    }
  });
  after(async () => {
    await running?.stop();
    await kube?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('the statuses are the same on both sides', async () => {
    await same(['get', 'guests', '-o', 'jsonpath={range .items[*]}{.metadata.name}{"\\t"}{.status}{"\\n"}{end}']);
  });

  test('-o jsonpath: fields, ranges, filters, literals, slices, recursive descent, single objects', async () => {
    const templates = [
      '{.items[*].metadata.name}',
      '{range .items[*]}{.metadata.name}{"\\t"}{.status.phase}{"\\n"}{end}',
      "{range .items[*]}{.metadata.name}{': '}{.status.conditions[?(@.type==\"Ready\")].status}{'\\n'}{end}",
      '{.items[?(@.metadata.labels.tier=="back")].metadata.name}',
      '{.items[?(@.metadata.labels.tier)].metadata.name}',
      '{.items[?(@.metadata.name!="db")].spec.image}',
      '{.items[0].metadata.labels}',
      '{.items[1:3].metadata.name}',
      '{.items[-1:].metadata.name}',
      '{.items[0:4:2].metadata.name}',
      '{.items[*].metadata.labels.tier}',
      '{.items[*].metadata.labels.nothing}',
      "{.items[0].metadata.labels['example\\.com/team']}",
      '{.items[*].metadata.labels.example\\.com/team}',
      '{.items[0,2].metadata.name}',
      '{range .items[*]}{..image}{"\\n"}{end}',
      'names: {.items[*].metadata.name}\nkind {.kind}, {.apiVersion}\n',
      '{range .items[*]}{.metadata.name}{range .status.conditions[*]}{" "}{.type}={.status}{end}{"\\n"}{end}',
      '{.items[*].spec.resources.memory}',
      '{.items[*].status.restartCount}',
      '{.items[*].status.conditions[0]}',
      '{.items[?(@.status.restartCount>=0)].metadata.name}',
      '{.items[5]}',
    ];
    for (const t of templates) await same(['get', 'guests', '-o', `jsonpath=${t}`]);
    await same(['get', 'guest', 'web-1', '-o', 'jsonpath={.metadata.name} {.spec.image} {.metadata.labels}']);
    await same(['get', 'guest/web-10', '-o=jsonpath={.kind}/{.metadata.name}']);
    await same(['get', 'guest', 'web-2', 'db', '-o', 'jsonpath={.items[*].metadata.name}']);
    await same(['get', 'guest', '-l', 'app=web', '-o', 'jsonpath={.items[*].metadata.name}']);
    await same(['get', 'guest', '-l', 'app=nobody', '-o', 'jsonpath={.items}']);
    await same(['get', 'guest', '-o', `jsonpath-file=${file('t.jsonpath', '{range .items[*]}{.metadata.name}{"\\n"}{end}')}`]);
  });

  test('-o custom-columns and custom-columns-file, with --no-headers and --sort-by', async () => {
    const spec =
      'NAME:.metadata.name,PHASE:.status.phase,APP:.metadata.labels.app,READY:.status.conditions[?(@.type=="Ready")].status,' +
      'TYPES:.status.conditions[*].type,LABELS:.metadata.labels,NONE:.status.nothing,IMG:{.spec.image}';
    await same(['get', 'guests', '-o', `custom-columns=${spec}`]);
    await same(['get', 'guests', '-o', `custom-columns=${spec}`, '--no-headers']);
    await same(['get', 'guests', '-o', 'custom-columns=N:metadata.name,T:.metadata.labels.tier', '--sort-by=.metadata.labels.tier']);
    await same(['get', 'guest', 'web-2', '-o', 'custom-columns=N:.metadata.name']);
    await same(['get', 'guests', '-l', 'app=nobody', '-o', 'custom-columns=N:.metadata.name']);
    const columns = file('columns.txt', 'NAME        PHASE\n.metadata.name  .status.phase\n');
    await same(['get', 'guests', '-o', `custom-columns-file=${columns}`]);
  });

  test('--sort-by: strings in natural order, numbers, missing values first, a path nothing has', async () => {
    for (const by of ['.metadata.name', '{.metadata.name}', 'metadata.name', '.spec.image', '.metadata.labels.tier', '.status.phase'])
      await same(['get', 'guests', '-o', 'name', `--sort-by=${by}`]);
    await same(['get', 'guests', '-o', 'jsonpath={.items[*].metadata.name}', '--sort-by=.metadata.labels.app']);
    await same(['get', 'guests', '-o', 'name', '--sort-by=.status.nothing'], { stderr: true });
  });

  test('-l and --field-selector pick the same objects; an unsupported field is the apiserver error', async () => {
    const selectors = [
      'app=web',
      'app==web',
      'app!=web',
      'tier!=front',
      'tier in (front,back)',
      'tier notin (front)',
      'tier',
      '!tier',
      'app=web,tier',
      'app=web,!tier',
      'example.com/team=data',
      'app in (db),tier=back',
    ];
    for (const l of selectors) await same(['get', 'guests', '-l', l, '-o', 'name']);
    await same(['get', 'guests', '-l', 'app=nobody', '-o', 'name'], { stderr: true });
    await same(['get', 'guests', `--selector=app=web`, '-o', 'name']);
    for (const f of ['metadata.name=web-1', 'metadata.name==web-1', 'metadata.name!=web-1', 'metadata.namespace=default,metadata.name!=db'])
      await same(['get', 'guests', '--field-selector', f, '-o', 'name']);
    await same(['get', 'guests', '-l', 'app=web', '--field-selector', 'metadata.name!=web-2', '-o', 'name']);
    const bad = await same(['get', 'guests', '--field-selector', 'spec.bogus=x', '-o', 'name'], { stderr: true });
    assert.match(bad.stderr, /field label not supported: spec\.bogus/);
  });

  test('-A and -n: namespaces in jsonpath, custom-columns and field selectors', async () => {
    await same(['get', 'guests', '-A', '-o', 'custom-columns=NAMESPACE:.metadata.namespace,NAME:.metadata.name', '--no-headers']);
    await same(['get', 'guests', '-A', '--field-selector', 'metadata.namespace=team', '-o', 'name']);
    await same([
      'get',
      'guests',
      '-A',
      '-l',
      'app in (api,db)',
      '-o',
      'jsonpath={range .items[*]}{.metadata.namespace}/{.metadata.name} {end}',
    ]);
    await same(['get', 'guest', 'api', '-n', 'team', '-o', 'jsonpath={.metadata.namespace}']);
    await same(['wait', 'guests', '--all', '-n', 'team', '--for=condition=Ready'], { stderr: true });
  });

  test('several names and TYPE/NAME, as names and as JSON lists', async () => {
    await same(['get', 'guest', 'web-2', 'db', '-o', 'name']);
    await same(['get', 'guest/web-2', 'guests/db', 'gst/web-1', '-o', 'name']);
    // One name prints the object, several a List (uids and times differ: only the shape is compared).
    for (const args of [
      ['get', 'guest/web-2', '-o', 'json'],
      ['get', 'guest', 'web-2', 'db', '-o', 'json'],
    ]) {
      const [want, got] = await Promise.all([kubectl(...args), k(...args)]);
      const shape = (text: string) => {
        const o = JSON.parse(text) as { kind: string; items?: { metadata: { name: string } }[] };
        return [o.kind, o.items?.map((i) => i.metadata.name)];
      };
      assert.deepEqual(shape(got.stdout), shape(want.stdout));
    }
    await same(['get', 'guest/web-2', 'guest/db', '-o', 'jsonpath={.kind} {.items[*].kind}']);
  });

  test('events: the rows kubectl events prints for the same events (ages aside)', async () => {
    const got = JSON.parse((await k('events', '-o', 'json')).stdout) as { items: { metadata: object }[] };
    assert.ok(got.items.length > 0, 'the agent recorded events');
    // Named in the agent's order, so that the apiserver lists them in it (kubectl sorts by time, keeping ties).
    const events = got.items.map((e, i) =>
      JSON.stringify({ ...e, metadata: { name: `ev-${String(i).padStart(4, '0')}`, namespace: 'default' } }),
    );
    const created = await kubectl('create', '-f', file('events.json', `{"apiVersion":"v1","kind":"List","items":[${events.join(',')}]}`));
    assert.equal(created.code, 0, created.stderr);
    // Ages are read at different instants (kubectl's to the second): the age and its padding are left out.
    const ages = (text: string) => text.replace(/^(LAST SEEN|\d+[smhd]) +/gm, 'AGE ');
    for (const args of [['events'], ['events', '--for', 'guest/db'], ['events', '--types', 'Warning'], ['events', '--no-headers']]) {
      const [want, mine] = await Promise.all([kubectl(...args), k(...args)]);
      assert.equal(ages(mine.stdout), ages(want.stdout), `kratactl ${args.join(' ')}`);
      assert.equal(mine.code, want.code);
    }
  });

  test('wait: condition met, jsonpath, timeouts, no matches, already gone', async () => {
    await same(['wait', 'guest/web-1', '--for=condition=Ready'], { stderr: true });
    await same(['wait', 'guest/web-1', '--for=condition=ready=True'], { stderr: true });
    await same(['wait', 'guest', 'web-1', 'web-2', '--for=condition=Ready'], { stderr: true });
    await same(['wait', 'guests', '-l', 'app=web', '--for=condition=Ready'], { stderr: true });
    await same(['wait', 'guests', '--all', '--for=jsonpath={.spec.image}', '--timeout=5s'], { stderr: true });
    await same(['wait', 'guest/web-1', '--for=jsonpath={.status.phase}=Running'], { stderr: true });
    await same(['wait', 'guest/db', '--for=condition=Ready', '--timeout=1s'], { stderr: true });
    await same(['wait', 'guest/web-1', '--for=condition=Ready=false', '--timeout=1s'], { stderr: true });
    await same(['wait', 'guest/web-2', '--for=jsonpath={.status.phase}=Pending', '--timeout=0'], { stderr: true });
    // The time is shared: db (first by name) uses it all, and the others have none left.
    await same(['wait', 'guests', '--all', '--for=jsonpath={.spec.image}=app:1', '--timeout=1s'], { stderr: true });
    await same(['wait', 'guests', '-l', 'app=nobody', '--for=condition=Ready'], { stderr: true });
    await same(['wait', 'guests', '-l', 'app=nobody', '--for=delete'], { stderr: true });
    await same(['wait', 'guest/nobody', '--for=delete'], { stderr: true });
  });

  test('wait --for=delete: met when the guest goes', async () => {
    const manifest = file('gone.yaml', guest('gone', { app: 'gone' }));
    assert.equal((await k('apply', '-f', manifest)).code, 0);
    assert.equal((await kubectl('apply', '-f', manifest)).code, 0);
    const mine = startKratactl(['wait', 'guest/gone', '--for=delete', '--timeout=60s', '--agent', socket]);
    const theirs = run(KUBECTL, ['wait', 'guest/gone', '--for=delete', '--timeout=60s'], { KUBECONFIG: kube.env.kubeconfig });
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(mine.stdout, '', 'still waiting');
    assert.equal((await k('delete', 'guest', 'gone')).code, 0);
    assert.equal((await kubectl('delete', 'guest', 'gone')).code, 0);
    const want = await theirs;
    assert.equal(await mine.code, want.code, mine.stderr);
    assert.equal(mine.stdout, want.stdout);
    assert.equal(want.stdout, 'guest.krata.dev/gone condition met\n');
  });
});

describe('kratactl delete: several names, TYPE/NAME, --all, -l, --ignore-not-found', { timeout: 120_000 }, () => {
  let dir: string;
  let socket: string;
  let running: Running;
  const k = (...args: string[]) => kratactl([...args, '--agent', socket]);
  const names = async () => (await k('get', 'guests', '-o', 'jsonpath={.items[*].metadata.name}', '--sort-by=.metadata.name')).stdout;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'krata-delete-'));
    socket = join(dir, 'agent.sock');
    running = await startAgent(agentContainer(testAgentConfig(join(dir, 'state'), { api: { socketPath: socket } }), silentLog));
    const p = join(dir, 'g.yaml');
    writeFileSync(
      p,
      ['a', 'b', 'c', 'd', 'e']
        .map((n) => guest(n, { app: n === 'e' ? 'keep' : 'del', ...(n === 'c' || n === 'd' ? { tier: 'x' } : {}) }))
        .join('---\n'),
    );
    assert.equal((await k('apply', '-f', p)).code, 0);
  });
  after(async () => {
    await running?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('names, missing names, selectors and --all', async () => {
    let r = await k('delete', 'guest', 'a', 'nope');
    assert.equal(r.code, 1);
    assert.equal(r.stdout, 'guest.krata.dev/a deleted\n');
    assert.equal(r.stderr, 'error: guest "nope" not found in namespace "default"\n');
    r = await k('delete', 'guest/nope', '--ignore-not-found');
    assert.deepEqual([r.code, r.stdout, r.stderr], [0, '', '']);
    r = await k('delete', 'guest/b');
    assert.deepEqual([r.code, r.stdout], [0, 'guest.krata.dev/b deleted\n']);
    r = await k('delete', 'guests', '-l', 'app=del,tier');
    assert.deepEqual([r.code, r.stdout], [0, 'guest.krata.dev/c deleted\nguest.krata.dev/d deleted\n']);
    r = await k('delete', 'guests', '-l', 'app=nothing');
    assert.deepEqual([r.code, r.stdout], [0, 'No resources found\n']);
    r = await k('delete', 'guests');
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^error: resource\(s\) were provided, but no name was specified\n/);
    r = await k('delete', 'web');
    assert.match(r.stderr, /^error: delete needs a kind first: kratactl delete guest web\n/);
    assert.equal(await names(), 'e');
    r = await k('delete', 'guests', '--all');
    assert.deepEqual([r.code, r.stdout], [0, 'guest.krata.dev/e deleted\n']);
  });
});
