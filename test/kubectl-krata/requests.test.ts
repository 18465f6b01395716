// kubectl-krata's plain requests against a fake krata-api over HTTPS: logs (tail, follow), top's table, the
// apiserver's refusals as kubectl prints them, a missing APIService, namespaces from the context or -n,
// credentials from a token or an exec plugin, usage errors, and `kubectl krata` found by kubectl as a plugin.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync, chmodSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { GuestUsage } from '../../contracts/agent-api/types.js';
import { FakeKrataApi } from '../doubles/fake-krata-api.js';
import { plugin, startPlugin, writeKubeconfig } from '../harness/kubectl-krata.js';

const MiB = 1024 * 1024;

function usage(namespace: string, name: string, cores: number | undefined, usedMi: number): GuestUsage {
  return {
    namespace,
    name,
    domid: 7,
    timestamp: '2026-01-01T00:00:00.000Z',
    cpuSeconds: 12,
    ...(cores === undefined ? {} : { cpuCores: cores, windowSeconds: 10 }),
    vcpus: { online: 2, max: 2 },
    memory: { domainBytes: 512 * MiB, maxBytes: 1024 * MiB },
    channel: { phase: 'up' },
    guest: {
      memoryTotalBytes: 1000 * MiB,
      memoryAvailableBytes: (1000 - usedMi) * MiB,
      memoryUsedBytes: usedMi * MiB,
      load: [0.5, 0.25, 0.125],
      processes: 9,
      uptimeSeconds: 60,
    },
  };
}

/** kubectl as a child, without blocking this process (the fake krata-api answers from it). */
function kubectl(args: string[], env: NodeJS.ProcessEnv): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('kubectl', args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

async function setup(t: TestContext) {
  const api = await FakeKrataApi.start(t);
  api.tokens.set('token-from-plugin', 'bob');
  const kc = writeKubeconfig(t, api.url, api.caFile, 'token-from-plugin', api.carol);
  return { api, kc, k: ['--kubeconfig', kc.path] };
}

test('logs: the history (with --tail), then -f streams new output until interrupted (exit 0)', async (t) => {
  const { api, k } = await setup(t);
  api.addGuest('team-a', 'web', { log: 'one\ntwo\nthree\n' });
  const all = await plugin(['logs', 'web', ...k]);
  assert.equal(all.code, 0, all.stderr);
  assert.equal(all.stdout, 'one\ntwo\nthree\n');
  const tail = await plugin(['logs', 'guest/web', '--tail', '2', ...k]);
  assert.equal(tail.stdout, 'two\nthree\n');
  assert.equal(api.requests.at(-1)!.query.get('tailLines'), '2');
  assert.equal(api.requests.at(-1)!.query.get('follow'), null);

  const f = startPlugin(['logs', '-f', 'web', '--tail=1', ...k]);
  await f.until(() => f.stdout === 'three\n' && api.followerCount('team-a', 'web') === 1, 'the tail, then following');
  assert.equal(api.requests.at(-1)!.query.get('follow'), 'true');
  api.appendLog('team-a', 'web', 'four\n');
  await f.until(() => f.stdout === 'three\nfour\n', 'new output streams');
  process.emit('SIGINT', 'SIGINT');
  assert.equal(await f.code, 0, f.stderr);
  assert.equal(process.listenerCount('SIGINT'), 0, 'the handlers are removed');
  await f.until(() => api.followerCount('team-a', 'web') === 0, 'the request is closed');

  // The domain ends: so does -f.
  const g = startPlugin(['logs', '-f', 'web', ...k]);
  await g.until(() => api.followerCount('team-a', 'web') === 1, 'following');
  api.endLogs('team-a', 'web');
  assert.equal(await g.code, 0, g.stderr);
  assert.equal(g.stdout, 'one\ntwo\nthree\nfour\n');
});

test('the namespace is the context\'s unless -n says otherwise; "default" when the context has none', async (t) => {
  const { api, k } = await setup(t);
  api.addGuest('team-a', 'web', { log: 'from team-a\n' });
  api.addGuest('other', 'web', { log: 'from other\n' });
  api.addGuest('default', 'web', { log: 'from default\n' });
  assert.equal((await plugin(['logs', 'web', ...k])).stdout, 'from team-a\n');
  assert.equal((await plugin(['logs', 'web', '-n', 'other', ...k])).stdout, 'from other\n');
  assert.equal((await plugin(['logs', '--namespace=other', 'web', ...k])).stdout, 'from other\n');
  const viaPlugin = await plugin(['logs', 'web', '--context', 'plugin', ...k]);
  assert.equal(viaPlugin.stdout, 'from default\n', viaPlugin.stderr);
});

test('credentials: a token, an exec credential plugin (run by client-node), a client certificate, KUBECONFIG; 401', async (t) => {
  const { api, kc, k } = await setup(t);
  api.addGuest('team-a', 'web', { log: 'hi\n' });
  api.addGuest('default', 'web', { log: 'hi\n' });
  assert.equal((await plugin(['logs', 'web', ...k])).code, 0);
  assert.equal(api.requests.at(-1)!.user, 'alice');
  assert.equal(existsSync(kc.pluginRuns), false);
  const viaPlugin = await plugin(['logs', 'web', '--context', 'plugin', ...k]);
  assert.equal(viaPlugin.code, 0, viaPlugin.stderr);
  assert.equal(api.requests.at(-1)!.user, 'bob', 'the token the plugin printed was sent');
  assert.ok(readFileSync(kc.pluginRuns, 'utf8').length > 0, 'the exec plugin ran');
  // A client certificate, on a plain request and on a websocket.
  const viaCert = await plugin(['logs', 'web', '--context', 'carol', ...k]);
  assert.equal(viaCert.code, 0, viaCert.stderr);
  assert.equal(api.requests.at(-1)!.user, 'carol');
  const execCert = await plugin(['exec', 'web', '--context', 'carol', ...k, '--', 'echo', 'hi']);
  assert.equal(execCert.code, 0, execCert.stderr);
  assert.equal(api.requests.at(-1)!.user, 'carol');
  // $KUBECONFIG when there is no --kubeconfig.
  const env = await plugin(['logs', 'web'], { env: { KUBECONFIG: kc.path } });
  assert.equal(env.code, 0, env.stderr);
  // A token the server does not know: kubectl's words for a 401.
  api.tokens.delete('token-alice');
  const denied = await plugin(['logs', 'web', ...k]);
  assert.equal(denied.code, 1);
  assert.equal(denied.stderr, 'error: You must be logged in to the server (Unauthorized)\n');
  const noContext = await plugin(['logs', 'web', '--context', 'nope', ...k]);
  assert.equal(noContext.stderr, 'error: context "nope" does not exist\n');
});

test('refusals as kubectl prints them: 403, 404, 409, 503; a missing APIService explained', async (t) => {
  const { api, k } = await setup(t);
  api.addGuest('team-a', 'web');
  api.addGuest('team-a', 'idle', { phase: 'Pending' });
  api.forbidden.add('alice guests/log');
  const forbidden = await plugin(['logs', 'web', ...k]);
  assert.equal(forbidden.code, 1);
  assert.equal(
    forbidden.stderr,
    'Error from server (Forbidden): guests.subresources.krata.dev "web" is forbidden: User "alice" cannot get resource "guests/log" ' +
      'in API group "subresources.krata.dev" in the namespace "team-a"\n',
  );
  const missing = await plugin(['top', 'nope', ...k]);
  assert.equal(missing.code, 1);
  assert.equal(missing.stderr, 'Error from server (NotFound): guests.krata.dev "nope" not found\n');
  const idle = await plugin(['top', 'idle', ...k]);
  assert.equal(idle.stderr, 'Error from server (Conflict): guest team-a/idle has no running domain (phase Pending)\n');
  api.unavailable = true;
  const down = await plugin(['top', 'web', ...k]);
  assert.equal(down.stderr, 'Error from server (ServiceUnavailable): service unavailable\n');
  const downExec = await plugin(['exec', 'web', ...k, '--', 'true']);
  assert.equal(downExec.stderr, 'Error from server (ServiceUnavailable): service unavailable\n');
  api.unavailable = false;
  api.installed = false;
  const absent = await plugin(['top', 'web', ...k]);
  assert.equal(absent.code, 1);
  assert.match(absent.stderr, /^error: krata-api is not installed: .*install it with kubectl apply -k manifests\/\n$/);
  const absentExec = await plugin(['exec', 'web', ...k, '--', 'true']);
  assert.match(absentExec.stderr, /^error: krata-api is not installed/);
});

test('top: one Guest, or every Running Guest of the namespace, as kratactl top prints them', async (t) => {
  const { api, k } = await setup(t);
  api.addGuest('team-a', 'web', { usage: usage('team-a', 'web', 0.0123, 300.5) });
  api.addGuest('team-a', 'api', { usage: usage('team-a', 'api', undefined, 100) });
  api.addGuest('team-a', 'idle', { phase: 'Pending' });
  api.addGuest('other', 'elsewhere', { usage: usage('other', 'elsewhere', 1, 1) });
  const header = 'NAME   CPU(cores)   CPU%        MEMORY(bytes)   MEMORY%   VCPUS   LOAD(1m)   PROCS   CHANNEL\n';
  const all = await plugin(['top', ...k]);
  assert.equal(all.code, 0, all.stderr);
  assert.equal(
    all.stdout,
    header +
      'api    <unknown>    <unknown>   100Mi           9%        2/2     0.50       9       up\n' +
      'web    13m          0%          300Mi           29%       2/2     0.50       9       up\n',
  );
  assert.ok(!api.requests.some((r) => r.path.endsWith('/idle/top')), 'a Guest that does not run is not asked');
  const one = await plugin(['top', 'web', '--no-headers', ...k]);
  assert.equal(one.stdout, 'web   13m   0%   300Mi   29%   2/2   0.50   9   up\n');
  const json = await plugin(['top', 'web', '-o', 'json', ...k]);
  assert.deepEqual(JSON.parse(json.stdout), usage('team-a', 'web', 0.0123, 300.5));
  const none = await plugin(['top', '-n', 'empty', ...k]);
  assert.equal(none.code, 0);
  assert.equal(none.stdout, '');
  assert.equal(none.stderr, 'No running guests found in namespace empty.\n');
});

test('usage: --help per command, unknown flags and commands refused, bad arguments', async (t) => {
  const { k } = await setup(t);
  const help = await plugin(['--help']);
  assert.equal(help.code, 0);
  for (const c of ['logs', 'attach', 'exec', 'port-forward', 'top']) assert.match(help.stdout, new RegExp(`\\n  ${c} `));
  for (const c of ['logs', 'attach', 'exec', 'port-forward', 'top']) {
    const h = await plugin([c, '--help']);
    assert.equal(h.code, 0);
    assert.match(h.stdout, new RegExp(`^Usage: kubectl krata ${c} `, 'm'));
    assert.match(h.stdout, /--kubeconfig/);
  }
  const unknown = await plugin(['logs', 'web', '--bogus', ...k]);
  assert.equal(unknown.code, 1);
  assert.equal(unknown.stderr, "error: unknown flag: --bogus\nSee 'kubectl krata logs --help' for usage.\n");
  const short = await plugin(['top', '-x', ...k]);
  assert.equal(short.stderr, "error: unknown shorthand flag: 'x' in -x\nSee 'kubectl krata top --help' for usage.\n");
  const cmd = await plugin(['frobnicate']);
  assert.equal(cmd.code, 1);
  assert.match(cmd.stderr, /^error: unknown command "frobnicate" for "kubectl krata"/);
  assert.match((await plugin(['logs', 'Bad_Name', ...k])).stderr, /"Bad_Name" is not a valid guest name/);
  assert.match((await plugin(['logs', 'pod/web', ...k])).stderr, /only guests are served/);
  assert.match((await plugin(['exec', 'web', ...k])).stderr, /exec needs -- before the command/);
  assert.match((await plugin(['port-forward', 'web', '99999', ...k])).stderr, /remote port "99999" is not a port number/);
});

test('kubectl finds kubectl-krata on PATH: `kubectl krata` runs it, with its exit status', async (t) => {
  const { api, kc } = await setup(t);
  api.addGuest('team-a', 'web', { log: 'through kubectl\n' });
  const main = resolve(fileURLToPath(import.meta.url), '../../../kubectl-krata/main.js');
  const bin = join(kc.dir, 'kubectl-krata');
  writeFileSync(bin, `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(main)} "$@"\n`);
  chmodSync(bin, 0o755);
  const env = { ...process.env, PATH: `${kc.dir}:${process.env.PATH}`, KUBECONFIG: kc.path };
  const plugins = await kubectl(['plugin', 'list', '--name-only'], env);
  assert.match(plugins.stdout, /kubectl-krata$/m, plugins.stderr);
  const logs = await kubectl(['krata', 'logs', 'web'], env);
  assert.equal(logs.status, 0, logs.stderr);
  assert.equal(logs.stdout, 'through kubectl\n');
  const seven = await kubectl(['krata', 'exec', 'web', '--', 'sh', '-c', 'exit 7'], env);
  assert.equal(seven.status, 7, seven.stderr);
  assert.equal(seven.stderr, 'command terminated with exit code 7\n');
});
