// kratactl apply --prune --applyset (KEP-3659) on a single host, end to end but for Xen: kratactl through
// the real API server to the real agent (its stores, reconciler and GuestSet controller) on the test-double
// hypervisor. The parent records the set; members carry its label; a Guest, GuestSet and Secret gone from
// the directory are pruned after an agent restart; an unlabelled Guest and another set's are untouched.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Running } from '../../lib/lifecycle.js';
import type { NodeAgentService } from '../../node-agent/service/agent-service.js';
import { startSocketAgent, testAgentConfig } from '../harness/node-agent.js';
import { kratactl } from '../harness/kratactl.js';

const guestYaml = (name: string, namespace = 'default') => `apiVersion: krata.dev/v1alpha1
kind: Guest
metadata: {name: ${name}, namespace: ${namespace}}
spec:
  image: app:1
  resources: {memory: 64Mi}
  terminationGracePeriodSeconds: 0
`;
const setYaml = `apiVersion: krata.dev/v1alpha1
kind: GuestSet
metadata: {name: pool}
spec:
  replicas: 1
  selector: {matchLabels: {app: pool}}
  template:
    metadata: {labels: {app: pool}}
    spec: {image: app:1, resources: {memory: 64Mi}, terminationGracePeriodSeconds: 0}
`;
const dockerConfig = JSON.stringify({ auths: { 'registry.example': { auth: Buffer.from('u:p').toString('base64') } } });
const secretYaml = `apiVersion: v1
kind: Secret
metadata: {name: regcred}
type: kubernetes.io/dockerconfigjson
data: {.dockerconfigjson: ${Buffer.from(dockerConfig).toString('base64')}}
`;

/** The KEP's id, computed here from its definition rather than by the code under test. */
const keyId = (name: string, namespace: string) =>
  `applyset-${createHash('sha256').update(`${name}.${namespace}.Secret.`).digest('base64url')}-v1`;

describe('kratactl apply --prune --applyset on a single host', { timeout: 120_000 }, () => {
  let dir: string;
  let socket: string;
  let running: Running | undefined;
  let agent: NodeAgentService;
  const k = (...args: string[]) => kratactl([...args, '--agent', socket]);
  const file = (path: string, text: string) => {
    mkdirSync(join(dir, path, '..'), { recursive: true });
    writeFileSync(join(dir, path), text);
    return join(dir, path);
  };
  const alive = (namespace: string, name: string) => {
    const g = agent.get(namespace, name);
    return g !== undefined && !g.metadata.deletionTimestamp;
  };

  async function start(state = 'state'): Promise<void> {
    ({ agent, running } = await startSocketAgent(
      testAgentConfig(join(dir, state), { api: { socketPath: socket } }),
      join(dir, 'image.sqfs'),
    ));
  }

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'krata-applyset-'));
    socket = join(dir, 'agent.sock');
    writeFileSync(join(dir, 'image.sqfs'), 'not a real image');
    await start();
  });
  after(async () => {
    await running?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('--prune needs --applyset, and --applyset a Secret parent', async () => {
    const f = file('lone.yaml', guestYaml('lone'));
    let r = await k('apply', '-f', f, '--prune');
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--prune needs --applyset=NAME/);
    r = await k('apply', '-f', f, '--prune', '--applyset=configmaps/x');
    assert.equal(r.code, 2);
    assert.match(r.stderr, /keeps the parent as a Secret/);
  });

  test('members recorded; what left the directory pruned after a restart; nothing outside the set touched', async () => {
    // Outside the set: a Guest applied plainly, and a Guest of another applyset.
    let r = await k('apply', '-f', file('manual.yaml', guestYaml('manual')));
    assert.equal(r.code, 0, r.stderr);
    r = await k('apply', '-f', file('other/g.yaml', guestYaml('other')), '--prune', '--applyset=other');
    assert.equal(r.code, 0, r.stderr);

    file('site/web.yaml', guestYaml('web'));
    file('site/db.yaml', guestYaml('db', 'team-a'));
    file('site/set.yaml', setYaml);
    file('site/secret.yaml', secretYaml);
    r = await k('apply', '-f', join(dir, 'site'), '--prune', '--applyset=site');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /guest\.krata\.dev\/web created/);
    assert.doesNotMatch(r.stdout, /pruned/);

    const id = keyId('site', 'default');
    const parent = agent.getApplySet('default', 'site')!;
    assert.equal(parent.metadata.labels['applyset.kubernetes.io/id'], id);
    assert.match(parent.metadata.annotations['applyset.kubernetes.io/tooling']!, /^kratactl\/v\d+\.\d+\.\d+/);
    assert.equal(parent.metadata.annotations['applyset.kubernetes.io/contains-group-kinds'], 'Guest.krata.dev,GuestSet.krata.dev,Secret');
    assert.equal(parent.metadata.annotations['applyset.kubernetes.io/additional-namespaces'], 'team-a');
    assert.equal(agent.get('default', 'web')?.metadata.labels?.['applyset.kubernetes.io/part-of'], id);
    assert.equal(agent.get('team-a', 'db')?.metadata.labels?.['applyset.kubernetes.io/part-of'], id);
    assert.equal(agent.getGuestSet('default', 'pool')?.metadata.labels?.['applyset.kubernetes.io/part-of'], id);
    assert.equal(agent.listSecrets('default').find((s) => s.name === 'regcred')?.labels?.['applyset.kubernetes.io/part-of'], id);
    assert.equal(agent.get('default', 'manual')?.metadata.labels, undefined);
    assert.equal(agent.get('default', 'other')?.metadata.labels?.['applyset.kubernetes.io/part-of'], keyId('other', 'default'));

    // A member of another set is not taken over: refused, nothing applied.
    r = await k('apply', '-f', file('steal.yaml', guestYaml('other')), '--prune', '--applyset=site');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^error: Guest default\/other belongs to another applyset; nothing was applied/);
    assert.equal(agent.get('default', 'other')?.metadata.labels?.['applyset.kubernetes.io/part-of'], keyId('other', 'default'));

    // The same directory again: nothing to prune.
    r = await k('apply', '-f', join(dir, 'site'), '--prune', '--applyset=site');
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stdout, /pruned/);

    // web, the GuestSet and the Secret leave the directory: a dry run says so and deletes nothing.
    rmSync(join(dir, 'site/web.yaml'));
    rmSync(join(dir, 'site/set.yaml'));
    rmSync(join(dir, 'site/secret.yaml'));
    r = await k('apply', '-f', join(dir, 'site'), '--prune', '--applyset=site', '--dry-run', '-o', 'name');
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(
      r.stdout
        .split('\n')
        .filter((l) => l.includes('pruned'))
        .sort(),
      ['guest.krata.dev/web pruned (dry run)', 'guestset.krata.dev/pool pruned (dry run)', 'secret/regcred pruned (dry run)'],
    );
    assert.ok(alive('default', 'web'));
    assert.equal(
      agent.getApplySet('default', 'site')!.metadata.annotations['applyset.kubernetes.io/contains-group-kinds'],
      'Guest.krata.dev,GuestSet.krata.dev,Secret',
    );

    // The agent restarts: the parent is in its store, so the set's old kinds are still pruned.
    await running!.stop();
    running = undefined;
    // The image cache's flock lasts as long as the process that took it (cache-lock.ts): the new agent
    // starts on a copy of the old one's state directory, as a restarted daemon would find it.
    cpSync(join(dir, 'state'), join(dir, 'state-2'), { recursive: true });
    await start('state-2');
    r = await k('apply', '-f', join(dir, 'site'), '--prune', '--applyset=site');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /guest\.krata\.dev\/db unchanged\n/);
    assert.deepEqual(
      r.stdout.split('\n').filter((l) => l.includes('pruned')),
      ['guestset.krata.dev/pool pruned', 'guest.krata.dev/web pruned', 'secret/regcred pruned'],
    );
    assert.ok(!alive('default', 'web'), 'web is deleted');
    assert.equal(agent.getGuestSet('default', 'pool'), undefined);
    assert.equal(agent.listSecrets('default').length, 0);
    assert.ok(alive('team-a', 'db'), 'db stays');
    assert.ok(alive('default', 'manual'), 'an unlabelled Guest is untouched');
    assert.ok(alive('default', 'other'), "another set's Guest is untouched");
    const after = agent.getApplySet('default', 'site')!.metadata.annotations;
    assert.equal(after['applyset.kubernetes.io/contains-group-kinds'], 'Guest.krata.dev');
    assert.equal(after['applyset.kubernetes.io/additional-namespaces'], 'team-a');
  });
});
