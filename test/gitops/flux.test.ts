// The Flux example (manifests/gitops/flux/): what it waits for exists in manifests/examples/, under kinds
// krata serves. Flux and its CEL expressions do not run here (manifests/gitops/README.md says so).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, parseAllDocuments } from 'yaml';
import { resolveKind } from '../../crds/validate.js';
import { repoRoot } from '../../lib/package-root.js';

const root = repoRoot();

interface Ref {
  apiVersion: string;
  kind: string;
  name?: string;
  namespace?: string;
  current?: string;
  failed?: string;
}

test("the Flux Kustomization's healthChecks name example objects, and its healthCheckExprs krata's kinds", () => {
  const ks = parse(readFileSync(join(root, 'manifests/gitops/flux/krata-guests.yaml'), 'utf8')) as {
    apiVersion: string;
    kind: string;
    spec: { healthChecks: Ref[]; healthCheckExprs: Ref[] };
  };
  assert.equal(ks.apiVersion, 'kustomize.toolkit.fluxcd.io/v1');
  assert.equal(ks.kind, 'Kustomization');
  const examples = readdirSync(join(root, 'manifests/examples'))
    .filter((f) => f.endsWith('.yaml'))
    .flatMap((f) =>
      parseAllDocuments(readFileSync(join(root, 'manifests/examples', f), 'utf8')).map((d) => d.toJS() as Ref & { metadata: Ref }),
    );
  assert.ok(ks.spec.healthChecks.length >= 2);
  for (const h of ks.spec.healthChecks) {
    const info = resolveKind(h.kind);
    assert.equal(`${info?.apiVersion}/${info?.kind}`, `${h.apiVersion}/${h.kind}`, `${h.kind} is a krata kind`);
    const found = examples.find(
      (o) => o.kind === h.kind && o.metadata.name === h.name && (o.metadata.namespace ?? 'default') === h.namespace,
    );
    assert.ok(found, `${h.kind}/${h.name} is in manifests/examples/`);
  }
  assert.deepEqual(ks.spec.healthCheckExprs.map((e) => e.kind).sort(), ['Guest', 'GuestSet']);
  for (const e of ks.spec.healthCheckExprs) {
    assert.equal(e.apiVersion, 'krata.dev/v1alpha1');
    assert.ok(e.current && e.failed, `${e.kind}: current and failed`);
  }
});
