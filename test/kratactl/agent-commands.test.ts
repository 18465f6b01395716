// kratactl's agent commands in-process, against the real API server and the in-memory AgentService.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { parse as parseYaml } from 'yaml';
import type { FakeAgentService } from '../doubles/fake-agent-service.js';
import { startFakeAgentApi, testGuest } from '../harness/agent-api.js';
import { kratactl, startKratactl } from '../harness/kratactl.js';
import { humanDuration } from '../../kratactl/commands/common.js';
import { generateName } from '../../kratactl/commands/run.js';

const guest = (name: string, namespace = 'default', spec: Record<string, unknown> = {}) =>
  testGuest(name, namespace, { image: 'docker.io/library/nginx:1.25', ...spec });

async function twoGuests(service: FakeAgentService) {
  await service.apply([guest('web', 'default', { resources: { cpus: 2, memory: '1Gi' } }), guest('db')], false);
  service.run('default', 'web', 'boot\nready\nlistening on :80\n');
  service.setStatus('default', 'web', { restartCount: 2 });
}

test('get prints a table; -o wide adds DOMID NODE IMAGE; -A adds NAMESPACE', async (t) => {
  const { socket, service } = await startFakeAgentApi(t);
  await twoGuests(service);
  const r = await kratactl(['get', '--agent', socket]);
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trimEnd().split('\n');
  assert.match(lines[0]!, /^NAME   PHASE     READY   RESTARTS   IP          AGE$/);
  assert.match(lines[1]!, /^web    Running   1\/1     2          10\.75\.0\.2   \d+s$/);
  assert.match(lines[2]!, /^db     Pending   0\/1     0          <none>      \d+s$/);
  const wide = await kratactl(['get', 'guests', '-o', 'wide', '--agent', socket]);
  assert.match(wide.stdout.split('\n')[0]!, /AGE   DOMID    NODE     IMAGE$/);
  assert.match(wide.stdout.split('\n')[1]!, /\d+s +1 +host-1   docker\.io\/library\/nginx:1\.25$/);
  await service.apply([guest('web', 'team-a')], false);
  const all = await kratactl(['get', '-A', '--agent', socket]);
  assert.deepEqual(
    all.stdout
      .trimEnd()
      .split('\n')
      .map((l) => l.split(/ +/).slice(0, 2).join(' ')),
    ['NAMESPACE NAME', 'default web', 'default db', 'team-a web'],
  );
  const one = await kratactl(['get', 'gst', 'db', '--agent', socket]);
  assert.equal(one.stdout.trimEnd().split('\n').length, 2);
  const empty = await kratactl(['get', '-n', 'nobody', '--agent', socket]);
  assert.equal(empty.code, 0);
  assert.equal(empty.stderr, 'No guests found in namespace nobody.\n');
});

test('get -o yaml|json|name prints the objects', async (t) => {
  const { socket, service } = await startFakeAgentApi(t);
  await twoGuests(service);
  const yaml = await kratactl(['get', '-o', 'yaml', '--agent', socket]);
  const list = parseYaml(yaml.stdout);
  assert.equal(list.kind, 'List');
  assert.deepEqual(
    list.items.map((g: any) => g.metadata.name),
    ['web', 'db'],
  );
  assert.equal(list.items[0].status.phase, 'Running');
  assert.match(
    yaml.stdout,
    /^apiVersion: v1\nkind: List\nitems:\n  - apiVersion: krata\.dev\/v1alpha1\n    kind: Guest\n    metadata:\n      name: web\n/,
  );
  const json = await kratactl(['get', 'guest', 'web', '-o', 'json', '--agent', socket]);
  const obj = JSON.parse(json.stdout);
  assert.equal(obj.kind, 'Guest');
  assert.equal(obj.spec.resources.memory, '1Gi');
  assert.equal(obj.status.addresses.ipv4, '10.75.0.2');
  const names = await kratactl(['get', '-o', 'name', '--agent', socket]);
  assert.equal(names.stdout, 'guest.krata.dev/web\nguest.krata.dev/db\n');
  const missing = await kratactl(['get', 'nope', '--agent', socket]);
  assert.equal(missing.code, 1);
  assert.equal(missing.stderr, 'error: guest "nope" not found in namespace "default"\n');
});

test('get -w prints the list, then a row per change, until the stream ends', async (t) => {
  const { socket, service, server } = await startFakeAgentApi(t);
  await service.apply([guest('web')], false);
  const p = startKratactl(['get', '-w', '--agent', socket]);
  await p.until(() => p.stdout.includes('web'), 'the current state comes first');
  await p.until(() => service.watcherCount === 1, 'watching');
  service.setStatus('default', 'web', { phase: 'Creating' });
  service.setStatus('default', 'web', { phase: 'Creating' }); // nothing visible changed: no row
  service.run('default', 'web');
  await p.until(() => p.stdout.includes('Running'), 'a row for the change');
  await service.delete('default', 'web', { wait: true });
  await p.until(() => p.stdout.includes('Deleted'), 'a row for the deletion');
  await server.close();
  assert.equal(await p.code, 0, p.stderr);
  const rows = p.stdout.trimEnd().split('\n');
  assert.match(rows[0]!, /^NAME {19}PHASE {6}READY {6}RESTARTS   IP {16}AGE$/);
  assert.deepEqual(
    rows.slice(1).map((r) => r.split(/ +/)[1]),
    ['Pending', 'Creating', 'Running', 'Terminating', 'Deleted'],
  );
});

test('describe shows spec, status, conditions and events', async (t) => {
  const { socket, service } = await startFakeAgentApi(t);
  await twoGuests(service);
  service.setStatus('default', 'web', { exitCode: 137, reason: 'CrashLoopBackOff', message: 'restarting in 20s' });
  service.record('default', 'web', 'Normal', 'Pulled', 'pulled docker.io/library/nginx:1.25');
  service.record('default', 'web', 'Warning', 'BackOff', 'back-off restarting the guest', 3);
  const r = await kratactl(['describe', 'guest', 'web', '--agent', socket]);
  assert.equal(r.code, 0, r.stderr);
  const T = '\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ \\(\\d+s ago\\)';
  const expected = [
    'Name:           web',
    'Namespace:      default',
    'Labels:         <none>',
    'Annotations:    <none>',
    `Created:        ${T}`,
    'Image:          docker.io/library/nginx:1.25',
    'Image digest:   sha256:(ab){32}',
    'Resources:      2 vCPUs, memory 1Gi',
    'Restart policy: Always',
    'Grace period:   30s',
    'Network:        enabled',
    'Node:           host-1',
    'Status:',
    '  Phase:         Running',
    '  Reason:        CrashLoopBackOff',
    '  Message:       restarting in 20s',
    '  Domain ID:     1',
    '  IPv4:          10\\.75\\.0\\.2',
    '  IPv6:          fd00:7261:7461::2',
    '  MAC:           02:16:3e:00:00:02',
    `  Started:       ${T}`,
    '  Last exit:     exit code 137',
    '  Restart count: 2',
    'Conditions:',
    '  TYPE         STATUS   REASON    MESSAGE                 AGE',
    '  ImageReady   True     Pulled    image is in the cache   \\d+s',
    '  Ready        True     Running   the process runs        \\d+s',
    'Events:',
    '  TYPE      REASON    AGE               MESSAGE',
    '  ----      ------    ---               -------',
    '  Normal    Pulled    \\d+s {16}pulled docker\\.io/library/nginx:1\\.25',
    '  Warning   BackOff   \\d+s \\(x3 over \\d+s\\)   back-off restarting the guest',
  ];
  const lines = r.stdout.split('\n');
  assert.equal(lines.length, expected.length + 1);
  expected.forEach((re, i) => assert.match(lines[i]!, new RegExp(`^${re}$`), `line ${i + 1}`));
  const db = await kratactl(['describe', 'gst', 'db', '--agent', socket]);
  assert.match(db.stdout, /\nConditions:\n  <none>\nEvents: <none>\n$/);
  const noKind = await kratactl(['describe', 'web', '--agent', socket]);
  assert.equal(noKind.code, 2);
  assert.match(noKind.stderr, /^error: describe needs a kind first: kratactl describe guest web\n/);
});

test('delete guest NAME... with --wait and --grace-period, and delete -f FILE', async (t) => {
  const { socket, service, dir } = await startFakeAgentApi(t);
  await twoGuests(service);
  await service.apply([guest('cache')], false);
  const r = await kratactl(['delete', 'guest', 'web', 'db', '--wait', '--grace-period', '5', '--agent', socket]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'guest.krata.dev/web deleted\nguest.krata.dev/db deleted\n');
  assert.deepEqual(
    service.deletes.map((d) => d.opts),
    [
      { wait: true, gracePeriodSeconds: 5 },
      { wait: true, gracePeriodSeconds: 5 },
    ],
  );
  assert.deepEqual(
    service.list().map((g) => g.metadata.name),
    ['cache'],
    'with --wait they are gone when kratactl returns',
  );
  const file = join(dir, 'cache.yaml');
  writeFileSync(file, 'apiVersion: krata.dev/v1alpha1\nkind: Guest\nmetadata:\n  name: cache\nspec:\n  image: redis\n');
  const byFile = await kratactl(['delete', '-f', file, '--agent', socket]);
  assert.equal(byFile.stdout, 'guest.krata.dev/cache deleted\n');
  const missing = await kratactl(['delete', 'guest', 'nope', '--agent', socket]);
  assert.equal(missing.code, 1);
  assert.equal(missing.stderr, 'error: guest "nope" not found in namespace "default"\n');
  assert.equal((await kratactl(['delete', 'guest', 'x', '--grace-period', 'soon', '--agent', socket])).code, 2);
});

test('logs prints the history (--tail N) and follows with -f until the stream ends', async (t) => {
  const { socket, service, server } = await startFakeAgentApi(t);
  await twoGuests(service);
  assert.equal((await kratactl(['logs', 'web', '--agent', socket])).stdout, 'boot\nready\nlistening on :80\n');
  assert.equal((await kratactl(['logs', 'web', '--tail', '2', '--agent', socket])).stdout, 'ready\nlistening on :80\n');
  const idle = await kratactl(['logs', 'db', '--agent', socket]);
  assert.equal(idle.code, 1);
  assert.match(idle.stderr, /has no running domain \(phase Pending\)/);

  const f = startKratactl(['logs', '-f', '--tail=1', 'web', '--agent', socket]);
  await f.until(() => f.stdout === 'listening on :80\n', 'the tail of the history');
  service.consoles.get('default/web')!.emit('GET / 200\n');
  await f.until(() => f.stdout.endsWith('GET / 200\n'), 'live output');
  await server.close(); // the agent ends the stream
  assert.equal(await f.code, 0);
  assert.equal(f.stdout, 'listening on :80\nGET / 200\n');
});

test('attach joins stdin and stdout to the console; Ctrl+] detaches', async (t) => {
  const { socket, service } = await startFakeAgentApi(t);
  await twoGuests(service);
  const console = service.consoles.get('default/web')!;
  const stdin = new PassThrough();
  const p = startKratactl(['attach', 'web', '--agent', socket], { stdin });
  await p.until(() => p.stderr.includes('press Ctrl+] to detach'), 'attached');
  await p.until(() => console.listeners.size === 1, 'subscribed');
  stdin.write('uname -a\r');
  await console.waitForInput('uname -a\r');
  console.emit('Linux krata 6.1.0\r\n');
  await p.until(() => p.stdout === 'Linux krata 6.1.0\r\n', 'output');
  stdin.write(Buffer.from('ls\x1dnot sent'));
  assert.equal(await p.code, 0);
  assert.match(p.stderr, /\ndetached from default\/web\n$/);
  await p.until(() => console.listeners.size === 0, 'the agent let go of the console');
  assert.equal(console.inputText(), 'uname -a\rls', 'what was typed before Ctrl+] arrives; nothing after it');
  const idle = await kratactl(['attach', 'db', '--agent', socket]);
  assert.equal(idle.code, 1);
  assert.match(idle.stderr, /^error: guest "db" has no running domain/);
});

test('run creates the guest, waits until it runs, attaches, and with --rm deletes it after', async (t) => {
  const { socket, service } = await startFakeAgentApi(t);
  service.autoStart = true;
  const stdin = new PassThrough();
  const p = startKratactl(
    [
      'run',
      'alpine:3.19',
      '--name',
      'box',
      '--cpus',
      '2',
      '--memory',
      '256Mi',
      '-e',
      'A=1',
      '-e',
      'B=x=y',
      '-t',
      '--rm',
      '--agent',
      socket,
      '--',
      'sh',
      '-c',
      'echo hi',
    ],
    { stdin },
  );
  await p.until(() => p.stderr.includes('attached to default/box'), 'attached once Running');
  const stored = service.get('default', 'box')!;
  assert.deepEqual(stored.spec.args, ['sh', '-c', 'echo hi']);
  assert.deepEqual(stored.spec.env, [
    { name: 'A', value: '1' },
    { name: 'B', value: 'x=y' },
  ]);
  assert.equal(stored.spec.resources.cpus, 2);
  assert.equal(stored.spec.resources.memory, '256Mi');
  assert.equal(stored.spec.tty, true);
  assert.equal(stored.spec.restartPolicy, 'Never');
  const console = service.consoles.get('default/box')!;
  await p.until(() => console.listeners.size === 1, 'subscribed');
  console.emit('hi\n');
  await p.until(() => p.stdout === 'hi\n', 'output');
  stdin.write(Buffer.from([0x1d]));
  assert.equal(await p.code, 0, p.stderr);
  assert.match(
    p.stderr,
    /^guest\.krata\.dev\/box created\nwaiting for default\/box: Pending\nwaiting for default\/box: Creating \(Pulling\)\nattached to default\/box; press Ctrl\+\] to detach\n\ndetached from default\/box\nguest\.krata\.dev\/box deleted\n$/,
  );
  assert.equal(service.get('default', 'box'), undefined);
});

test('run: a generated name, the exit code when the process ends, a failure to start, invalid flags', async (t) => {
  const { socket, service } = await startFakeAgentApi(t);
  assert.match(generateName('docker.io/library/alpine:3.19'), /^alpine-[bcdfghjklmnpqrstvwxz2456789]{5}$/);
  assert.match(generateName('localhost:5000/My_App@sha256:abc'), /^my-app-.{5}$/);
  assert.match(generateName('___'), /^guest-.{5}$/);

  service.autoStart = true;
  const p = startKratactl(['run', 'alpine', '--agent', socket]);
  await p.until(() => p.stderr.includes('attached to'), 'attached');
  const name = /attached to default\/(\S+);/.exec(p.stderr)![1]!;
  assert.match(name, /^alpine-.{5}$/);
  service.setStatus('default', name, { phase: 'Failed', exitCode: 3, domid: undefined });
  assert.equal(await p.code, 1);
  assert.match(p.stderr, new RegExp(`console of default/${name} closed\\ndefault/${name} exited with code 3\\n$`));
  assert.ok(service.get('default', name), 'without --rm the guest stays');

  service.autoStart = false;
  const f = startKratactl(['run', 'alpine', '--name', 'doomed', '--agent', socket]);
  await f.until(() => service.get('default', 'doomed') !== undefined && service.watcherCount > 0, 'created and waiting');
  service.setStatus('default', 'doomed', { phase: 'Failed', reason: 'ImagePullFailed', message: 'manifest unknown' });
  assert.equal(await f.code, 1);
  assert.match(f.stderr, /error: guest default\/doomed failed: ImagePullFailed: manifest unknown\n$/);

  const exists = await kratactl(['run', 'alpine', '--name', 'doomed', '--agent', socket]);
  assert.equal(exists.code, 1);
  assert.equal(exists.stderr, 'error: guest "doomed" already exists in namespace "default"\n');
  const invalid = await kratactl(['run', 'alpine', '--memory', '1 Gi', '--name', 'bad', '--agent', socket]);
  assert.equal(invalid.code, 1);
  assert.match(invalid.stderr, /^error: Guest "bad": spec\.resources\.memory: must match quantity/);
  assert.equal(service.get('default', 'bad'), undefined);
  assert.equal((await kratactl(['run', 'alpine', '-e', 'NOEQUALS', '--agent', socket])).code, 2);
  assert.equal((await kratactl(['run', '--agent', socket])).code, 2);
});

test('host status: a summary, or yaml/json', async (t) => {
  const { socket, service } = await startFakeAgentApi(t);
  await twoGuests(service);
  const r = await kratactl(['host', 'status', '--agent', socket]);
  assert.equal(
    r.stdout,
    'Xen version:   4.17.5\nKernel:        6.1.0-28-amd64\nAgent version: 0.1.0\nCPUs:          4 (2 allocated to guests)\n' +
      'Memory:        16384 MiB total, 12000 MiB free, 512 MiB allocated to guests\nGuests:        2 (1 running)\n',
  );
  assert.equal(JSON.parse((await kratactl(['host', 'status', '-o', 'json', '--agent', socket])).stdout).xenVersion, '4.17.5');
  assert.equal(parseYaml((await kratactl(['host', 'status', '-o', 'yaml', '--agent', socket])).stdout).guests.running, 1);
  assert.equal((await kratactl(['host', 'reboot', '--agent', socket])).code, 2);
});

test("host status: a cluster agent's TLS listener", async (t) => {
  const tls = { listen: '0.0.0.0:9444', advertise: '192.0.2.7:9444', listening: true, notAfter: '2027-01-01T00:00:00.000Z', refused: 3 };
  const { socket } = await startFakeAgentApi(t, { tlsStatus: () => tls });
  const r = await kratactl(['host', 'status', '--agent', socket]);
  assert.match(
    r.stdout,
    /\nTLS listener:  listening on 0\.0\.0\.0:9444, advertised as 192\.0\.2\.7:9444, certificate valid until 2027-01-01T00:00:00\.000Z, 3 clients refused\n$/,
  );
  assert.deepEqual(JSON.parse((await kratactl(['host', 'status', '-o', 'json', '--agent', socket])).stdout).tls, tls);
});

test('KRATA_AGENT_SOCKET picks the socket; an absent agent is exit 1 with a hint; bad flags are exit 2', async (t) => {
  const { socket, service, dir } = await startFakeAgentApi(t);
  await twoGuests(service);
  assert.equal(
    (await kratactl(['get', '-o', 'name'], { env: { KRATA_AGENT_SOCKET: socket } })).stdout,
    'guest.krata.dev/web\nguest.krata.dev/db\n',
  );
  const nowhere = join(dir, 'nowhere.sock');
  for (const args of [
    ['get'],
    ['describe', 'guest', 'web'],
    ['delete', 'guest', 'a', 'b'],
    ['logs', 'web'],
    ['attach', 'web'],
    ['run', 'alpine'],
    ['host', 'status'],
  ]) {
    const r = await kratactl([...args, '--agent', nowhere]);
    assert.equal(r.code, 1, args.join(' '));
    assert.equal(
      r.stderr,
      `error: cannot reach the node agent at ${nowhere}: is krata-node-agent running?\n` +
        '  another socket: --agent SOCKET or KRATA_AGENT_SOCKET=SOCKET\n' +
        '  start the agent as root in dom0: krata-node-agent (its options: krata-node-agent --help)\n',
      args.join(' '),
    );
  }
  for (const args of [
    ['get', '--bogus'],
    ['get', '-o', 'table'],
    ['get', 'xenhosts'],
    ['logs'],
    ['logs', 'web', '--tail', '-1'],
    ['delete'],
    ['attach', 'Not_A_Name'],
    ['completion', 'tcsh'],
    ['get', '-n', 'Bad_NS'],
  ]) {
    const r = await kratactl([...args, '--agent', socket]);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, /^error: /);
  }
});

test('ages read as kubectl prints them', () => {
  const s = 1000;
  assert.deepEqual(
    [5 * s, 119 * s, 125 * s, 600 * s, 3 * 3600 * s + 5 * 60 * s, 30 * 3600 * s, 50 * 3600 * s, 40 * 86400 * s, 800 * 86400 * s].map(
      humanDuration,
    ),
    ['5s', '119s', '2m5s', '10m', '3h5m', '30h', '2d2h', '40d', '2y70d'],
  );
});
