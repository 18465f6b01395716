// `npm run release` (scripts/release.ts): install.yaml and install-kube-1.20.yaml are the kustomize builds
// of manifests/ and manifests/kube-1.20/, and the one for the API server at hand installs krata with a
// plain `kubectl apply -f` on a real kube-apiserver (test/kube/envtest.ts), idempotently.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { repoRoot } from '../../lib/package-root.js';
import { startEnvtest, type Envtest } from './envtest.js';

const root = repoRoot();
const KUBECTL = process.env.KRATA_KUBECTL ?? 'kubectl';
const VERSION = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version;
type Obj = Record<string, any>;

const out = mkdtempSync(join(tmpdir(), 'krata-release-'));
let env: Envtest | undefined;
before(() => {
  const script = fileURLToPath(new URL('../../scripts/release.js', import.meta.url));
  const r = spawnSync(process.execPath, [script, '--out', out], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(r.stdout.trim().split('\n'), [`wrote ${join(out, 'install.yaml')}`, `wrote ${join(out, 'install-kube-1.20.yaml')}`]);
});
after(async () => {
  await env?.stop();
  rmSync(out, { recursive: true, force: true });
});

const docs = (text: string) => parseAllDocuments(text).map((d) => d.toJS() as Obj);
const kustomize = (dir: string) => docs(execFileSync(KUBECTL, ['kustomize', join(root, dir)], { encoding: 'utf8' }));

test('npm run release runs scripts/release.ts after a build', () => {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
  assert.equal(pkg.scripts.release, 'npm run build && node dist/scripts/release.js');
});

test('install.yaml and install-kube-1.20.yaml are the kustomize builds, headed by the version and how to apply them', () => {
  for (const [file, dir] of [
    ['install.yaml', 'manifests/'],
    ['install-kube-1.20.yaml', 'manifests/kube-1.20/'],
  ] as const) {
    const text = readFileSync(join(out, file), 'utf8');
    assert.match(
      text,
      new RegExp(`^# krata ${VERSION.replace(/\./g, '\\.')}, the cluster install for Kubernetes .*: kubectl apply -f ${file}\n`),
    );
    assert.deepEqual(docs(text), kustomize(dir), file);
  }
});

test('the release file for this apiserver installs krata with kubectl apply -f, and applying again changes nothing', async () => {
  env = await startEnvtest();
  const kube = (...args: string[]) =>
    spawnSync(KUBECTL, ['--kubeconfig', env!.kubeconfig, '--request-timeout=30s', ...args], { encoding: 'utf8', cwd: root });
  const version = JSON.parse(kube('version', '-o', 'json').stdout) as { serverVersion: { minor: string } };
  const file = join(out, parseInt(version.serverVersion.minor, 10) < 21 ? 'install-kube-1.20.yaml' : 'install.yaml');
  const objects = docs(readFileSync(file, 'utf8'));
  const first = kube('apply', '-f', file);
  assert.equal(first.status, 0, first.stderr);
  assert.equal(
    first.stdout
      .trim()
      .split('\n')
      .filter((l) => / created$/.test(l)).length,
    objects.length,
    first.stdout,
  );
  const wait = kube(
    'wait',
    '--for=condition=Established',
    '--timeout=30s',
    'crd/guests.krata.dev',
    'crd/xenhosts.krata.dev',
    'crd/guestsets.krata.dev',
  );
  assert.equal(wait.status, 0, wait.stderr);
  // Every object is stored, as written (names and kinds; the apiserver's defaults aside).
  const stored = kube('get', '-f', file, '-o', 'json');
  assert.equal(stored.status, 0, stored.stderr);
  const items = (JSON.parse(stored.stdout) as { items: Obj[] }).items;
  assert.deepEqual(
    items.map((o) => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`),
    objects.map((o) => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`),
  );
  for (const o of items) assert.equal(o.metadata.labels['app.kubernetes.io/version'], VERSION, `${o.kind}/${o.metadata.name}`);
  const again = kube('apply', '-f', file);
  assert.equal(again.status, 0, again.stderr);
  for (const line of again.stdout.trim().split('\n')) assert.match(line, / unchanged$/);
  // kubectl get guests shows READY by default, from the stored CRD (no Guest needs to exist).
  const crd = JSON.parse(kube('get', 'crd/guests.krata.dev', '-o', 'json').stdout) as Obj;
  const columns = (crd.spec.versions[0].additionalPrinterColumns as Obj[]).filter((c) => !c.priority).map((c) => c.name);
  assert.equal(columns[0], 'Ready');
  assert.deepEqual(crd.spec.names.categories, ['krata', 'all']);
  const applied = kube('apply', '-f', 'manifests/examples/nginx.yaml');
  assert.equal(applied.status, 0, applied.stderr);
  const get = kube('get', 'guests');
  assert.match(get.stdout, /^NAME +READY +PHASE +RESTARTS +NODE +IPV4 +AGE\nweb +/, get.stdout + get.stderr);
  // Categories: the Guest is listed by `kubectl get krata` and `kubectl get all`.
  for (const category of ['krata', 'all']) {
    const r = kube('get', category, '-o', 'name');
    assert.ok(r.stdout.split('\n').includes('guest.krata.dev/web'), `kubectl get ${category}: ${r.stdout}${r.stderr}`);
  }
});
