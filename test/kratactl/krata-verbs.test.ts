// krata's own verbs (launch, list, destroy, console) and guests named by UUID, end to end but for Xen:
// kratactl through the real API server to the real agent on the test-double hypervisor, which gives
// every domain a UUID as Xen does (status.uuid).
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import type { Running } from '../../lib/lifecycle.js';
import type { NodeAgentService } from '../../node-agent/service/agent-service.js';
import { startSocketAgent, testAgentConfig } from '../harness/node-agent.js';
import { kratactl, startKratactl } from '../harness/kratactl.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

describe("krata's verbs and UUIDs through kratactl", { timeout: 120_000 }, () => {
  let dir: string;
  let socket: string;
  let running: Running;
  let agent: NodeAgentService;
  const k = (...args: string[]) => kratactl([...args, '--agent', socket]);
  /** launch's options go before IMAGE (every word after it is the command), --agent included. */
  const launch = (...args: string[]) => kratactl(['launch', '--agent', socket, ...args]);

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'krata-verbs-'));
    socket = join(dir, 'agent.sock');
    mkdirSync(join(dir, 'boot'));
    for (const f of ['vmlinuz', 'initrd', 'other-kernel', 'other-initrd', 'image.sqfs'])
      writeFileSync(join(dir, f.includes('.') ? f : `boot/${f}`), 'x');
    const config = testAgentConfig(join(dir, 'state'), {
      api: { socketPath: socket },
      kernel: join(dir, 'boot/vmlinuz'),
      initrd: join(dir, 'boot/initrd'),
    });
    ({ agent, running } = await startSocketAgent(config, join(dir, 'image.sqfs')));
  });
  after(async () => {
    await running?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('launch prints the UUID; list shows it; get, describe, logs and top take it in any namespace', async () => {
    let r = await launch(
      '--name',
      'web',
      '-n',
      'team-a',
      '-c',
      '2',
      '-m',
      '256',
      '-e',
      'A=1',
      'docker.io/library/nginx:1.25',
      'nginx',
      '-g',
      'daemon off;',
    );
    assert.equal(r.code, 0, r.stderr);
    const uuid = r.stdout.trim();
    assert.match(uuid, UUID);
    const g = agent.get('team-a', 'web')!;
    assert.equal(g.status?.uuid, uuid);
    assert.deepEqual(
      [g.spec.resources.cpus, g.spec.resources.memory, g.spec.env, g.spec.args],
      [2, '256Mi', [{ name: 'A', value: '1' }], ['nginx', '-g', 'daemon off;']],
    );
    assert.equal(g.spec.kernel, undefined, 'without -k the node default');

    r = await k('list');
    assert.equal(r.code, 0, r.stderr);
    const [header, row] = r.stdout.trimEnd().split('\n');
    assert.match(header!, /^NAMESPACE\s+NAME\s+UUID\s+PHASE\s+IPV4\s+IPV6\s+IMAGE$/);
    assert.deepEqual(row!.split(/\s+/).slice(0, 4), ['team-a', 'web', uuid, 'Running']);
    assert.match(row!, /docker\.io\/library\/nginx:1\.25$/);
    assert.equal((await k('list', '-o', 'name')).stdout, 'guest.krata.dev/web\n');
    assert.equal((await k('list', '-n', 'default')).stderr, 'No guests found in namespace default.\n');

    // By UUID, from the default namespace: the Guest in team-a (upper case too, as people paste it).
    r = await k('get', uuid, '-o', 'name');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'guest.krata.dev/web\n');
    r = await k('get', 'guest', uuid.toUpperCase(), '-o', 'json');
    assert.equal(JSON.parse(r.stdout).metadata.namespace, 'team-a');
    r = await k('describe', 'guest', uuid);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^Name:\s+web\nNamespace:\s+team-a\n/);
    r = await k('logs', uuid);
    assert.equal(r.code, 0, r.stderr);
    r = await k('top', uuid, '-o', 'json');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).name, 'web');
    r = await k('wait', `guest/${uuid}`, '--for=condition=Ready', '--timeout=30s');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'guest.krata.dev/web condition met\n');
    r = await k('events', '--for', `guest/${uuid}`, '-o', 'json');
    assert.equal(r.code, 0, r.stderr);
    const events = JSON.parse(r.stdout) as { items: { involvedObject: { namespace?: string; name: string } }[] };
    assert.ok(events.items.length > 0, 'the guest has events');
    assert.ok(events.items.every((e) => e.involvedObject.name === 'web'));

    // A UUID no Guest has: said as such.
    r = await k('get', '00000000-0000-4000-8000-000000000000');
    assert.equal(r.code, 1);
    assert.equal(
      r.stderr,
      'error: no guest has UUID 00000000-0000-4000-8000-000000000000, and no guest is named so in namespace "default"\n',
    );
  });

  test('console ID attaches by UUID; destroy ID deletes by UUID or name', async () => {
    let r = await launch('--name', 'box', 'alpine:3.19');
    assert.equal(r.code, 0, r.stderr);
    const uuid = r.stdout.trim();
    const stdin = new PassThrough();
    const p = startKratactl(['console', uuid, '--agent', socket], { stdin });
    await p.until(() => p.stderr.includes('press Ctrl+] to detach'), 'attached');
    assert.match(p.stderr, /attached to default\/box/);
    stdin.write(Buffer.from([0x1d]));
    assert.equal(await p.code, 0);

    // launch --attach: the UUID first, then the console (a terminal for the guest's process).
    const a = startKratactl(['launch', '--agent', socket, '-a', '--name', 'att', 'alpine:3.19', 'sh'], { stdin });
    await a.until(() => a.stderr.includes('press Ctrl+] to detach'), 'launch attached');
    assert.match(a.stdout, /^[0-9a-f-]{36}\n/);
    assert.equal(a.stdout.slice(0, 36), agent.get('default', 'att')?.status?.uuid);
    assert.equal(agent.get('default', 'att')?.spec.tty, true);
    stdin.write(Buffer.from([0x1d]));
    assert.equal(await a.code, 0);

    await launch('--name', 'other', 'alpine:3.19');
    r = await k('destroy', uuid, 'other');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'guest.krata.dev/box deleted\nguest.krata.dev/other deleted\n');
    for (const name of ['box', 'other']) {
      const g = agent.get('default', name);
      assert.ok(!g || g.metadata.deletionTimestamp, `${name} is being deleted`);
    }
  });

  test('launch -k/-r give spec.kernel.path and spec.initrd.path, relative paths made absolute', async () => {
    const cwd = process.cwd();
    process.chdir(dir);
    try {
      const r = await launch('--name', 'custom', '-k', 'boot/other-kernel', '--initrd', join(dir, 'boot/other-initrd'), 'alpine:3.19');
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout.trim(), UUID);
    } finally {
      process.chdir(cwd);
    }
    const g = agent.get('default', 'custom')!;
    assert.deepEqual([g.spec.kernel?.path, g.spec.initrd?.path], [join(dir, 'boot/other-kernel'), join(dir, 'boot/other-initrd')]);
    assert.equal(g.status?.phase, 'Running');
    // A kernel the node does not have: the guest fails, and launch says why (no UUID).
    const r = await launch('--name', 'nokernel', '-k', join(dir, 'boot/missing'), 'alpine:3.19');
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    assert.match(
      r.stderr,
      /error: guest default\/nokernel failed: InvalidSpec: spec\.kernel\.path: .*boot\/missing does not exist on this node/,
    );
  });
});
