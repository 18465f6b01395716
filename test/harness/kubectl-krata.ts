// Shared by the tests: run kubectl-krata in-process with captured streams, and a kubeconfig for a fake krata-api.
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import type { TestContext } from 'node:test';
import { run } from '../../kubectl-krata/cli.js';

export interface RunningPlugin {
  code: Promise<number>;
  readonly stdout: string;
  readonly stdoutBytes: Buffer;
  readonly stderr: string;
  until(pred: () => boolean, what: string): Promise<void>;
}

export interface PluginOptions {
  stdin?: string | Readable;
  stdout?: PassThrough;
  env?: NodeJS.ProcessEnv;
}

const text = (chunks: Buffer[]) => Buffer.concat(chunks).toString('utf8');

export function startPlugin(args: string[], options: PluginOptions = {}): RunningPlugin {
  const stdout = options.stdout ?? new PassThrough();
  const stderr = new PassThrough();
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  stdout.on('data', (c: Buffer) => out.push(c));
  stderr.on('data', (c: Buffer) => err.push(c));
  const stdin = typeof options.stdin === 'string' ? Readable.from([Buffer.from(options.stdin)]) : (options.stdin ?? Readable.from([]));
  const code = run(args, { stdin, stdout, stderr, env: options.env ?? {} });
  return {
    code,
    get stdout() {
      return text(out);
    },
    get stdoutBytes() {
      return Buffer.concat(out);
    },
    get stderr() {
      return text(err);
    },
    async until(pred, what) {
      for (let i = 0; i < 500 && !pred(); i++) await new Promise((r) => setTimeout(r, 10));
      assert.ok(pred(), `${what}; stdout ${JSON.stringify(text(out))}, stderr ${JSON.stringify(text(err))}`);
    },
  };
}

export async function plugin(args: string[], options: PluginOptions = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const p = startPlugin(args, options);
  const code = await p.code;
  return { code, stdout: p.stdout, stderr: p.stderr };
}

export interface TestKubeconfig {
  path: string;
  dir: string;
  /** A file the exec credential plugin appends a line to each time it runs. */
  pluginRuns: string;
}

/**
 * A kubeconfig for the fake krata-api with two contexts: `alice` (a bearer token, namespace team-a, the
 * current one) and `plugin` (an exec credential plugin, a shell script printing an ExecCredential with
 * `pluginToken`; no namespace), and `carol` (a client certificate, when given).
 */
export function writeKubeconfig(
  t: TestContext,
  server: string,
  caFile: string,
  pluginToken: string,
  clientCert?: { cert: string; key: string },
): TestKubeconfig {
  const dir = mkdtempSync(join(tmpdir(), 'kubectl-krata-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const pluginRuns = join(dir, 'plugin-runs');
  const script = join(dir, 'credential.sh');
  const credential = JSON.stringify({
    apiVersion: 'client.authentication.k8s.io/v1beta1',
    kind: 'ExecCredential',
    status: { token: pluginToken },
  });
  writeFileSync(script, `#!/bin/sh\necho run >> '${pluginRuns}'\necho '${credential}'\n`);
  chmodSync(script, 0o755);
  const path = join(dir, 'config');
  writeFileSync(
    path,
    `apiVersion: v1
kind: Config
clusters:
- name: fake
  cluster:
    server: ${server}
    certificate-authority: ${caFile}
users:
- name: alice
  user:
    token: token-alice
- name: plugin-user
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1beta1
      command: ${script}
      interactiveMode: Never
${clientCert ? `- name: carol\n  user:\n    client-certificate: ${clientCert.cert}\n    client-key: ${clientCert.key}\n` : ''}contexts:
- name: alice
  context:
    cluster: fake
    user: alice
    namespace: team-a
- name: plugin
  context:
    cluster: fake
    user: plugin-user
${clientCert ? '- name: carol\n  context:\n    cluster: fake\n    user: carol\n' : ''}current-context: alice
`,
  );
  return { path, dir, pluginRuns };
}
