// kratactl top and describe's Usage section in-process, against the real API server and the in-memory
// AgentService with scripted usage.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { parse as parseYaml } from 'yaml';
import type { GuestUsage } from '../../contracts/agent-api/types.js';
import { startFakeAgentApi, testGuest, type TestContext } from '../harness/agent-api.js';
import { kratactl, startKratactl } from '../harness/kratactl.js';
import { millicores } from '../../contracts/agent-api/usage-figures.js';

const MiB = 1024 * 1024;

/** web: measured, with the guest's figures; db: first sample, channel connecting; api (team-a): reported. */
const USAGE: GuestUsage[] = [
  {
    namespace: 'default',
    name: 'web',
    domid: 1,
    timestamp: '2026-01-01T00:00:00.000Z',
    cpuSeconds: 83.5,
    cpuCores: 0.0123,
    windowSeconds: 10,
    vcpus: { online: 2, max: 4 },
    memory: { domainBytes: 1024 * MiB, maxBytes: 2048 * MiB },
    channel: { phase: 'up' },
    guest: {
      memoryTotalBytes: 1000 * MiB,
      memoryAvailableBytes: 699.5 * MiB,
      memoryUsedBytes: 300.5 * MiB,
      load: [0.5, 0.25, 0.125],
      processes: 12,
      uptimeSeconds: 300,
    },
  },
  {
    namespace: 'default',
    name: 'db',
    domid: 2,
    timestamp: '2026-01-01T00:00:00.000Z',
    cpuSeconds: 1,
    vcpus: { online: 1, max: 1 },
    memory: { domainBytes: 512 * MiB, maxBytes: 512 * MiB },
    channel: { phase: 'connecting' },
  },
  {
    namespace: 'team-a',
    name: 'api',
    domid: 3,
    timestamp: '2026-01-01T00:00:00.000Z',
    cpuSeconds: 5000,
    cpuCores: 1.5,
    windowSeconds: 2,
    vcpus: { online: 2, max: 2 },
    memory: { domainBytes: 256 * MiB, maxBytes: 256 * MiB },
    channel: { phase: 'closed', reason: 'the guest sent a malformed frame' },
  },
];

async function agent(t: TestContext) {
  const api = await startFakeAgentApi(t);
  const { service } = api;
  await service.apply([testGuest('web'), testGuest('db'), testGuest('idle'), testGuest('api', 'team-a')], false);
  service.run('default', 'web');
  service.run('default', 'db');
  service.run('team-a', 'api');
  service.usageItems = structuredClone(USAGE);
  return api;
}

test('millicores are rounded up from the nearest nanocore, as kubectl prints them', () => {
  assert.equal(millicores(0), 0);
  assert.equal(millicores(0.0001), 1);
  assert.equal(millicores(0.012), 12); // 12.000000000000002 in floating point
  assert.equal(millicores(0.0123), 13);
  assert.equal(millicores(1.5), 1500);
});

test('top prints the table: millicores, Mi, percentages, <unknown> and - where figures are missing', async (t) => {
  const { socket } = await agent(t);
  const r = await kratactl(['top', '--agent', socket]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(
    r.stdout,
    [
      'NAME   CPU(cores)   CPU%        MEMORY(bytes)   MEMORY%   VCPUS   LOAD(1m)   PROCS   CHANNEL',
      'web    13m          0%          300Mi           14%       2/4     0.50       12      up',
      'db     <unknown>    <unknown>   512Mi           100%      1/1     -          -       connecting',
      '',
    ].join('\n'),
  );
  const quiet = await kratactl(['top', '--no-headers', '--agent', socket]);
  assert.equal(quiet.stdout.split('\n')[0], 'web   13m         0%          300Mi   14%    2/4   0.50   12   up');
});

test('top -A adds NAMESPACE; top NAME shows one; -n another namespace', async (t) => {
  const { socket } = await agent(t);
  const all = await kratactl(['top', '-A', '--agent', socket]);
  assert.equal(all.code, 0, all.stderr);
  const lines = all.stdout.trimEnd().split('\n');
  assert.match(lines[0]!, /^NAMESPACE {3}NAME {3}CPU\(cores\) {3}CPU% /);
  assert.match(lines[3]!, /^team-a {6}api {4}1500m {8}75% {9}256Mi {11}100% {6}2\/2 {5}- {10}- {7}closed$/);
  assert.equal(lines.length, 4);

  const one = await kratactl(['top', 'web', '--agent', socket]);
  assert.equal(one.code, 0, one.stderr);
  assert.deepEqual(
    one.stdout
      .trimEnd()
      .split('\n')
      .map((l) => l.split(/ {3,}/)[0]),
    ['NAME', 'web'],
  );
  const teamA = await kratactl(['top', '-n', 'team-a', '--agent', socket]);
  assert.match(teamA.stdout, /\napi {4}1500m/);
});

test('top -o json|yaml gives the figures; refusals and empty namespaces are said', async (t) => {
  const { socket } = await agent(t);
  const json = await kratactl(['top', '-o', 'json', '--agent', socket]);
  assert.deepEqual(JSON.parse(json.stdout), { items: USAGE.slice(0, 2) });
  const yaml = await kratactl(['top', 'web', '-o', 'yaml', '--agent', socket]);
  assert.deepEqual(parseYaml(yaml.stdout), USAGE[0]);

  const idle = await kratactl(['top', 'idle', '--agent', socket]);
  assert.equal(idle.code, 1);
  assert.equal(idle.stderr, 'error: guest "idle" has no running domain (phase Pending), so there is no usage\n');
  const absent = await kratactl(['top', 'nope', '--agent', socket]);
  assert.equal(absent.code, 1);
  assert.match(absent.stderr, /^error: guest "nope" not found in namespace "default"\n$/);
  const empty = await kratactl(['top', '-n', 'empty', '--agent', socket]);
  assert.equal(empty.code, 0);
  assert.equal(empty.stdout, '');
  assert.equal(empty.stderr, 'No running guests found in namespace empty.\n');

  for (const args of [
    ['top', 'web', '-A'],
    ['top', 'a', 'b'],
    ['top', '-o', 'wide'],
    ['top', '-w', '-o', 'json'],
    ['top', '--interval', '1'],
    ['top', '-w', '--interval', '0'],
    ['top', '-w', '--interval', 'soon'],
    ['top', 'Web'],
  ]) {
    const r = await kratactl([...args, '--agent', socket]);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, /^error: /);
  }
});

test('top -w appends tables when stdout is not a terminal, and stops on Ctrl+C', async (t) => {
  const { socket, service } = await agent(t);
  const p = startKratactl(['top', '-w', '--interval', '0.1', '--agent', socket]);
  await p.until(() => p.stdout.split('NAME ').length > 1, 'the first table');
  service.usageItems[0]!.cpuCores = 0.25;
  await p.until(() => p.stdout.includes('web    250m'), 'a refreshed table');
  process.emit('SIGINT');
  assert.equal(await p.code, 0);
  const tables = p.stdout.split('\n\n');
  assert.ok(tables.length >= 2);
  for (const table of tables) assert.match(table, /^NAME {3}CPU\(cores\)/);
  assert.ok(!p.stdout.includes('\x1b'), 'no escape sequences');
});

test('top -w redraws with the terminal clear on a TTY', async (t) => {
  const { socket } = await agent(t);
  const stdout = Object.assign(new PassThrough(), { isTTY: true });
  const p = startKratactl(['top', '-w', '--interval', '0.1', '--agent', socket], { stdout });
  await p.until(() => p.stdout.split('\x1b[H\x1b[2J').length > 2, 'two frames');
  process.emit('SIGINT');
  assert.equal(await p.code, 0);
  const frames = p.stdout.split('\x1b[H\x1b[2J');
  assert.equal(frames[0], '');
  for (const f of frames.slice(1)) assert.match(f, /^NAME {3}CPU\(cores\)[^]*\nweb {4}13m /);
});

test('describe of a running Guest has a Usage section with its figures; none without them', async (t) => {
  const { socket, service } = await agent(t);
  const r = await kratactl(['describe', 'guest', 'web', '--agent', socket]);
  assert.equal(r.code, 0, r.stderr);
  const section = /\nUsage:\n((?: {2}.*\n)+)Conditions:/.exec(r.stdout)?.[1];
  assert.equal(
    section,
    [
      '  CPU:           13m (0% of its vCPUs, over 10s)',
      '  CPU time:      83.50s',
      '  Memory:        300Mi used, 699Mi available (14% of 2048Mi)',
      '  Domain memory: 1024Mi of 2048Mi',
      '  vCPUs:         2 online, 4 max',
      '  Load:          0.50 0.25 0.13',
      '  Processes:     12',
      '  Guest uptime:  5m',
      '  Channel:       up',
      '',
    ].join('\n'),
  );
  const db = await kratactl(['describe', 'guest', 'db', '--agent', socket]);
  assert.match(
    db.stdout,
    /\nUsage:\n {2}CPU: {6}<unknown> \(measured from the next sample\)\n {2}CPU time: 1\.00s\n {2}Memory: {3}512Mi held by the domain \(100% of 512Mi\)\n {2}vCPUs: {4}1 online, 1 max\n {2}Channel: {2}connecting\nConditions:/,
  );
  const api = await kratactl(['describe', 'guest', 'api', '-n', 'team-a', '--agent', socket]);
  assert.match(api.stdout, /\n {2}Channel: {2}closed \(the guest sent a malformed frame\)\n/);
  const idle = await kratactl(['describe', 'guest', 'idle', '--agent', socket]);
  assert.doesNotMatch(idle.stdout, /Usage:/);
  service.usageItems = []; // running, but the agent has no figures for it (its domain just went)
  const gone = await kratactl(['describe', 'guest', 'web', '--agent', socket]);
  assert.equal(gone.code, 0, gone.stderr);
  assert.doesNotMatch(gone.stdout, /Usage:/);
});
