// kratactl version (client and agent), what a command says when the agent is out of reach, and
// apply of manifests/examples/ on a single host (its XenHost skipped with a note), against the real
// API server over the test-double agent service.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { repoRoot } from '../../lib/package-root.js';
import { unreachableMessage } from '../../kratactl/agent-client.js';
import { startFakeAgentApi } from '../harness/agent-api.js';
import { kratactl } from '../harness/kratactl.js';

const root = repoRoot();
const CLIENT_LINE = /^kratactl \d+\.\d+\.\d+ \(API krata\.dev\/v1alpha1, node v\d+\.\d+\.\d+\)\n/;

test('version prints the client and the agent, as kubectl version prints client and server', async (t) => {
  const agent = await startFakeAgentApi(t);
  const plain = await kratactl(['version', '--agent', agent.socket]);
  assert.equal(plain.code, 0, plain.stderr);
  assert.match(plain.stdout, CLIENT_LINE);
  assert.match(plain.stdout, /\nkrata-node-agent \d+\.\d+\.\d+ \(API krata\.dev\/v1alpha1, node v\d+\.\d+\.\d+\)\n$/);
  const json = await kratactl(['version', '-o', 'json'], { env: { KRATA_AGENT_SOCKET: agent.socket } });
  const v = JSON.parse(json.stdout) as Record<string, { version: string; apiVersions: string[]; node: string }>;
  assert.deepEqual(Object.keys(v), ['clientVersion', 'serverVersion']);
  assert.equal(v.serverVersion!.version, v.clientVersion!.version);
  assert.deepEqual(v.serverVersion!.apiVersions, ['krata.dev/v1alpha1']);
  const yaml = await kratactl(['version', '-o=yaml', '--agent', agent.socket]);
  assert.match(yaml.stdout, /^clientVersion:\n {2}version: .*\n[^]*\nserverVersion:\n/);
});

test('version --client asks no agent; an agent out of reach prints the client line and the error (exit 1)', async () => {
  const nowhere = join(root, 'no-such-agent.sock');
  const client = await kratactl(['version', '--client', '--agent', nowhere]);
  assert.equal(client.code, 0);
  assert.match(client.stdout, CLIENT_LINE);
  assert.equal(client.stdout.split('\n').length, 2);
  assert.equal(client.stderr, '');
  const json = await kratactl(['version', '--client', '-o', 'json']);
  assert.deepEqual(Object.keys(JSON.parse(json.stdout) as object), ['clientVersion']);
  const down = await kratactl(['version', '--agent', nowhere]);
  assert.equal(down.code, 1);
  assert.match(down.stdout, CLIENT_LINE);
  assert.match(down.stderr, new RegExp(`^error: cannot reach the node agent at ${nowhere}: `));
});

test('version refuses unknown flags, arguments and formats (usage, exit 2)', async () => {
  for (const [args, message] of [
    [['version', '--short'], /^error: unknown flag: --short\n/],
    [['version', '--clinet'], /^error: unknown flag: --clinet \(did you mean --client\?\)\n/],
    [['version', 'now'], /^error: version takes no arguments \(got now\)\n/],
    [['version', '-o', 'wide', '--client'], /^error: --output must be json or yaml, not "wide"\n/],
  ] as const) {
    const r = await kratactl([...args]);
    assert.equal(r.code, 2, args.join(' '));
    assert.match(r.stderr, message, args.join(' '));
  }
});

test('an agent out of reach: the socket tried, how to choose another, how to start the agent', () => {
  const absent = unreachableMessage('/run/krata/agent.sock', Object.assign(new Error('x'), { code: 'ENOENT' }));
  assert.equal(
    absent,
    'cannot reach the node agent at /run/krata/agent.sock: is krata-node-agent running?\n' +
      '  another socket: --agent SOCKET or KRATA_AGENT_SOCKET=SOCKET\n' +
      '  start the agent as root in dom0: krata-node-agent (its options: krata-node-agent --help)',
  );
  const stale = unreachableMessage('/s', Object.assign(new Error('x'), { code: 'ECONNREFUSED' }));
  assert.match(stale, /^cannot reach the node agent at \/s: nothing listens there; is krata-node-agent running\?\n {2}another socket/);
  // Root is never refused a socket, so the permission case is checked on the message itself.
  const denied = unreachableMessage('/s', Object.assign(new Error('x'), { code: 'EACCES' }));
  assert.equal(
    denied,
    'cannot reach the node agent at /s: permission denied: the socket is for root and the krata group (run as root, or join the group)',
  );
});

test('apply -f manifests/examples/ on a single host: the XenHost is skipped with a note, the rest applied', async (t) => {
  const agent = await startFakeAgentApi(t);
  const examples = join(root, 'manifests/examples');
  const r = await kratactl(['apply', '-f', examples, '--agent', agent.socket]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(
    r.stderr,
    /^note: \S+xenhost\.yaml:\d+: skipped XenHost "xen-01": XenHost objects live in the cluster \(kubectl apply\); a node agent takes Guests, GuestSets and Secrets\n$/,
  );
  assert.match(r.stdout, /^guest\.krata\.dev\/hello created$/m);
  assert.match(r.stdout, /^guestset\.krata\.dev\/web created$/m);
  assert.doesNotMatch(r.stdout, /xenhost/);
  const server = await kratactl(['apply', '--dry-run=server', '-f', examples, '--agent', agent.socket]);
  assert.equal(server.code, 0, server.stderr);
  assert.match(server.stderr, /skipped XenHost "xen-01"/);
  // A client dry run validates and shows everything, the XenHost included, and needs no agent.
  const client = await kratactl(['apply', '--dry-run', '-o', 'name', '-f', examples]);
  assert.equal(client.code, 0);
  assert.equal(client.stderr, '');
  assert.match(client.stdout, /^xenhost\.krata\.dev\/xen-01$/m);
  // Only a XenHost: nothing to send, nothing fails.
  const alone = await kratactl(['apply', '-f', join(examples, 'xenhost.yaml'), '--agent', join(root, 'no-such-agent.sock')]);
  assert.equal(alone.code, 0);
  assert.match(alone.stderr, /^note: .*skipped XenHost/);
});
