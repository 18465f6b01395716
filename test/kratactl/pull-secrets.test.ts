// Image pull Secrets on a single host, end to end but for Xen: `kratactl apply -f` of a Secret and a
// Guest through the real API server to the real Agent, reconciler and image cache (the test
// hypervisor for domains), against docker-registry with token auth. The Guest pulls with its
// namespace's Secret; a Guest of another namespace is refused the cached image; the API and the
// files never show the Secret's data; `kratactl image pull -n NS --pull-secret NAME` pulls through
// the agent with them and is refused without an agent.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { request } from 'node:http';
import { startRegistry, type Registry } from '../registry.js';
import { buildImage, pushImage } from '../oci-images.js';
import { buildTar } from '../../lib/tar.js';
import { run } from '../../kratactl/cli.js';
import { resolve } from '../../lib/container.js';
import type { Running } from '../../lib/lifecycle.js';
import { agentContainer, startAgent } from '../../node-agent/container/agent.js';
import { AGENT } from '../../node-agent/container/ids.js';
import type { NodeAgentService } from '../../node-agent/service/agent-service.js';
import { silentLog, testAgentConfig } from '../harness/node-agent.js';

const USER = 'tenant';
const PASSWORD = 'tenant-pa55word-xyz';

async function kratactl(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (c) => (out += c));
  stderr.on('data', (c) => (err += c));
  const code = await run(args, { stdin: Readable.from([]), stdout, stderr, env: {} });
  return { code, stdout: out, stderr: err };
}

function post(socketPath: string, path: string, body: unknown): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
      let text = '';
      res.on('data', (c) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

describe('image pull Secrets on a single host', { timeout: 120_000 }, () => {
  let reg: Registry;
  let dir: string;
  let socket: string;
  let running: Running;
  let agent: NodeAgentService;
  const img = buildImage({
    layers: [{ compression: 'gzip', tar: buildTar([{ path: 'etc/motd', data: Buffer.from('private') }]) }],
    config: { Cmd: ['/bin/sh'] },
  });

  before(async () => {
    reg = await startRegistry({ token: { users: { [USER]: PASSWORD } } });
    await pushImage(reg, 'team/app', 'v1', img, { username: USER, password: PASSWORD });
    dir = mkdtempSync(join(tmpdir(), 'krata-pull-secrets-'));
    socket = join(dir, 'agent.sock');
    // A single-host agent as main.ts builds it, on the test-double hypervisor.
    const images = { insecure: [reg.host, reg.tokenServer!.host], mirrors: {}, dockerConfigs: [] };
    const container = agentContainer(testAgentConfig(dir, { images, api: { socketPath: socket } }), silentLog);
    agent = await resolve(container, AGENT);
    running = await startAgent(container);
  });
  after(async () => {
    await running?.stop();
    await reg?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const phaseOf = (ns: string, name: string) => agent.get(ns, name)?.status;
  /** Polls `pred`; `what` is built after the wait, so a failure shows the state that failed. */
  async function until(pred: () => boolean, what: () => string): Promise<void> {
    for (let i = 0; i < 600 && !pred(); i++) await new Promise((r) => setTimeout(r, 50));
    assert.ok(pred(), what());
  }

  test('a Secret applied with kratactl serves its namespace only', async () => {
    const config = Buffer.from(
      JSON.stringify({ auths: { [reg.host]: { auth: Buffer.from(`${USER}:${PASSWORD}`).toString('base64') } } }),
    ).toString('base64');
    const file = join(dir, 'app.yaml');
    const guest = (ns: string, secrets: string[]) => `apiVersion: krata.dev/v1alpha1
kind: Guest
metadata: {name: app, namespace: ${ns}}
spec:
  image: ${reg.host}/team/app:v1
  imagePullPolicy: IfNotPresent
  network: {enabled: false}
  imagePullSecrets: [${secrets.map((s) => `{name: ${s}}`).join(', ')}]
`;
    writeFileSync(
      file,
      'apiVersion: v1\nkind: Secret\nmetadata: {name: regcred, namespace: team-a}\ntype: kubernetes.io/dockerconfigjson\n' +
        `data: {.dockerconfigjson: ${config}}\n---\n${guest('team-a', ['regcred'])}`,
    );
    const applied = await kratactl(['apply', '-f', file, '--agent', socket]);
    assert.equal(applied.code, 0, applied.stderr);
    assert.match(applied.stdout, /secret\/regcred created/);
    await until(
      () => phaseOf('team-a', 'app')?.phase === 'Running',
      () => `team-a's Guest runs: ${JSON.stringify(phaseOf('team-a', 'app'))}`,
    );

    // The file is the agent's alone; the password is in no other file of its state.
    const secretFile = join(dir, 'secrets', 'team-a', 'regcred.json');
    assert.equal(statSync(secretFile).mode & 0o777, 0o600);
    const others = readdirSync(dir, { recursive: true, withFileTypes: true }).filter(
      (e) =>
        e.isFile() &&
        e.name !== 'app.yaml' &&
        !e.name.endsWith('.squashfs') &&
        !e.name.endsWith('.sqfs') &&
        join(e.parentPath, e.name) !== secretFile,
    );
    for (const e of others) assert.ok(!readFileSync(join(e.parentPath, e.name)).includes(config), `${e.name} holds the Secret`);

    // Another namespace naming a Secret of that name in team-a cannot use it: names are per namespace.
    // Its check asks the registry with no credentials: never with team-a's password or token.
    const tokens = reg.tokenServer!.requests;
    tokens.length = 0;
    writeFileSync(file, guest('team-b', ['regcred']));
    assert.equal((await kratactl(['apply', '-f', file, '--agent', socket])).code, 0);
    // A failed pull shows ErrImagePull only until the work queue's retry, a few ms later, finds the
    // pull back-off (pulls.ts): then ImagePullBackOff, whose message keeps the failure's words.
    await until(
      () => ['ErrImagePull', 'ImagePullBackOff'].includes(phaseOf('team-b', 'app')?.reason ?? ''),
      () => `team-b is refused: ${JSON.stringify(phaseOf('team-b', 'app'))}`,
    );
    assert.ok(tokens.length > 0, 'team-b asked the token service');
    for (const t of tokens) assert.deepEqual([t.via, t.access], ['anonymous', []], JSON.stringify(t));
    assert.match(
      phaseOf('team-b', 'app')!.message!,
      /not authorized to use the cached image .*image pull secret team-b\/regcred not found/,
    );

    // A malformed Secret is refused at apply, naming the field but not the value.
    writeFileSync(
      file,
      'apiVersion: v1\nkind: Secret\nmetadata: {name: bad, namespace: team-b}\ntype: kubernetes.io/dockerconfigjson\n' +
        `data: {.dockerconfigjson: "not base64 ${PASSWORD}"}\n`,
    );
    const bad = await kratactl(['apply', '-f', file, '--agent', socket]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /data\.\.dockerconfigjson|data\[".dockerconfigjson"\]/);
    assert.ok(!bad.stderr.includes(PASSWORD));
  });

  test('the pull API takes Secret names of a namespace instead of refusing them', async () => {
    const missing = await post(socket, '/v1/images/pull', {
      image: `${reg.host}/team/app:v1`,
      namespace: 'team-b',
      pullSecrets: ['regcred'],
    });
    assert.equal(missing.status, 422);
    assert.match(missing.text, /image pull secret team-b\/regcred not found/);
    const ok = await post(socket, '/v1/images/pull', { image: `${reg.host}/team/app:v1`, namespace: 'team-a', pullSecrets: ['regcred'] });
    assert.equal(ok.status, 200);
    assert.match(ok.text, new RegExp(`"digest":"${img.manifestDigest}"`));
  });

  test('kratactl image pull -n NS --pull-secret NAME pulls through the agent with that Secret', async () => {
    // A private image nobody has pulled yet: the registry decides, not the cache.
    const fresh = buildImage({
      layers: [{ compression: 'gzip', tar: buildTar([{ path: 'etc/motd', data: Buffer.from('cli') }]) }],
      config: { Cmd: ['/bin/sh'] },
    });
    await pushImage(reg, 'team/cli', 'v1', fresh, { username: USER, password: PASSWORD });
    const ref = `${reg.host}/team/cli:v1`;
    const noSecret = await kratactl(['image', 'pull', '-q', '-n', 'team-a', '--agent', socket, ref]);
    assert.equal(noSecret.code, 1, 'without the Secret the registry refuses');
    const otherNs = await kratactl(['image', 'pull', '-q', '-n', 'team-b', '--pull-secret', 'regcred', '--agent', socket, ref]);
    assert.equal(otherNs.code, 1);
    assert.match(otherNs.stderr, /^error: image pull secret team-b\/regcred not found\n$/);
    const ok = await kratactl([
      'image',
      'pull',
      '-q',
      '--namespace',
      'team-a',
      '--pull-secret',
      'regcred',
      '--pull-secret',
      'regcred',
      '--agent',
      socket,
      ref,
    ]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.stdout, `${fresh.manifestDigest}\n`);
    assert.ok(
      agent.images().some((i) => i.digest === fresh.manifestDigest),
      "in the agent's cache",
    );
    // Without -n the Secrets are looked up in "default".
    const dflt = await kratactl(['image', 'pull', '-q', '--pull-secret', 'regcred', '--agent', socket, ref]);
    assert.match(dflt.stderr, /image pull secret default\/regcred not found/);
  });

  test('kratactl image pull refuses bad -n/--pull-secret, --offline options beside them, and no agent', async () => {
    const ref = `${reg.host}/team/app:v1`;
    const cases: [string[], RegExp][] = [
      [['-n', 'Bad_NS', '--pull-secret', 'regcred'], /--namespace "Bad_NS" is not a valid namespace name/],
      [['--pull-secret', 'Not A Name'], /--pull-secret "Not A Name" is not a Secret name \(a DNS subdomain/],
      [['--pull-secret', '/tmp/secret.yaml'], /credentials from a file are --offline --pull-secret-file FILE/],
      [
        ['--pull-secret', 'regcred', '--store', dir],
        /^error: --store is for --offline \(kratactl on the cache itself\); through the node agent, its own cache/m,
      ],
      [['-n', 'team-a', '--insecure-registry', reg.host], /--insecure-registry is for --offline/],
      [['--pull-secret', 'regcred', '--docker-config', '/dev/null'], /--docker-config is for --offline/],
      [
        ['--pull-secret', 'regcred', '--pull-secret-file', '/dev/null'],
        /--pull-secret-file is for --offline .*kratactl apply -f FILE and give --pull-secret NAME/,
      ],
      [
        ['--pull-secret', 'regcred', '--offline'],
        /-n\/--namespace and --pull-secret name Secrets the node agent keeps; with --offline, credentials come from/,
      ],
    ];
    for (const [args, message] of cases) {
      const r = await kratactl(['image', 'pull', '--agent', socket, ...args, ref]);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, message, args.join(' '));
    }
    for (const sub of [['ls'], ['rm', 'x'], ['prune'], ['import', dir]]) {
      const r = await kratactl(['image', ...sub, '-n', 'team-a', '--agent', socket]);
      assert.equal(r.code, 2);
      assert.match(r.stderr, new RegExp(`image ${sub[0]}: -n/--namespace and --pull-secret are for image pull`));
    }
    // With no agent they are refused: nobody here holds the namespace's Secrets.
    const none = await kratactl(['image', 'pull', '-n', 'team-a', '--pull-secret', 'regcred', '--agent', join(dir, 'no-agent.sock'), ref]);
    assert.equal(none.code, 1);
    assert.match(
      none.stderr,
      /^error: -n\/--namespace and --pull-secret pull through the node agent, which keeps the Secrets, and there is no agent at .*no-agent\.sock .*--pull-secret-file FILE\n$/,
    );
  });

  test('kratactl delete secret removes it; a second delete says not found', async () => {
    const gone = await kratactl(['delete', 'secret', 'regcred', '-n', 'team-a', '--agent', socket]);
    assert.equal(gone.code, 0, gone.stderr);
    assert.match(gone.stdout, /secret\/regcred deleted/);
    assert.equal(readdirSync(join(dir, 'secrets', 'team-a')).length, 0);
    const again = await kratactl(['delete', 'secret', 'regcred', '-n', 'team-a', '--agent', socket]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /secret team-a\/regcred not found/);
  });

  test('a batch with a Secret and an invalid Guest stores nothing; output never shows the data', async () => {
    const file = join(dir, 'batch.yaml');
    const data = Buffer.from(
      JSON.stringify({ auths: { [reg.host]: { auth: Buffer.from(`${USER}:${PASSWORD}`).toString('base64') } } }),
    ).toString('base64');
    const doc =
      'apiVersion: v1\nkind: Secret\nmetadata: {name: batch, namespace: team-c}\ntype: kubernetes.io/dockerconfigjson\n' +
      `data: {.dockerconfigjson: ${data}}\n`;
    writeFileSync(
      file,
      `${doc}---\napiVersion: krata.dev/v1alpha1\nkind: Guest\n` +
        'metadata: {name: bad, namespace: team-c}\nspec: {image: alpine, resources: {cpus: 0}}\n',
    );
    const refused = await kratactl(['apply', '-f', file, '--agent', socket]);
    assert.equal(refused.code, 1);
    assert.deepEqual(
      readdirSync(join(dir, 'secrets')).filter((n) => n === 'team-c'),
      [],
      'the Secret was not stored',
    );
    writeFileSync(file, doc);
    for (const args of [
      ['--dry-run', '-o', 'yaml'],
      ['--dry-run=server', '-o', 'json'],
      ['-o', 'yaml'],
    ]) {
      const out = await kratactl(['apply', '-f', file, '--agent', socket, ...args]);
      assert.equal(out.code, 0, out.stderr);
      assert.match(out.stdout, /REDACTED/);
      assert.ok(!out.stdout.includes(data) && !out.stdout.includes(PASSWORD), `${args.join(' ')} shows no data`);
    }
  });
});
