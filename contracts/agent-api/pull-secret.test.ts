// Image pull Secret documents as a single host takes them: what is refused, with which field named,
// and that no message quotes a value.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatPath } from '../../crds/validate.js';
import { validatePullSecret } from './pull-secret.js';

const PASSWORD = 'hunter2-pa55';
const config = (auths: unknown) => Buffer.from(JSON.stringify({ auths })).toString('base64');
const good = { auth: Buffer.from(`me:${PASSWORD}`).toString('base64') };
const secret = (extra: Record<string, unknown> = {}) => ({
  apiVersion: 'v1',
  kind: 'Secret',
  metadata: { name: 'regcred', namespace: 'team' },
  type: 'kubernetes.io/dockerconfigjson',
  data: { '.dockerconfigjson': config({ 'registry.example': good }) },
  ...extra,
});
const errorsOf = (doc: unknown) => validatePullSecret(doc).errors.map((e) => `${formatPath(e.path)}: ${e.message}`);

test('a dockerconfigjson Secret is taken; stringData is folded into data; dockercfg too', () => {
  assert.deepEqual(errorsOf(secret()), []);
  const fromString = validatePullSecret(
    secret({ data: undefined, stringData: { '.dockerconfigjson': JSON.stringify({ auths: { 'registry.example': good } }) } }),
  );
  assert.deepEqual(fromString.errors, []);
  assert.equal(fromString.object!.data['.dockerconfigjson'], config({ 'registry.example': good }));
  assert.deepEqual(
    errorsOf(
      secret({
        type: 'kubernetes.io/dockercfg',
        data: { '.dockercfg': Buffer.from(JSON.stringify({ 'registry.example': good })).toString('base64') },
      }),
    ),
    [],
  );
});

test('names, type, keys, base64, size and the config inside are checked, naming the field and never the value', () => {
  const cases: Array<[unknown, RegExp]> = [
    [secret({ metadata: { name: 'Bad_Name' } }), /^metadata\.name: must be a DNS subdomain/],
    [secret({ metadata: { name: 'ok', namespace: 'a.b' } }), /^metadata\.namespace: must be a DNS label/],
    [secret({ type: 'Opaque' }), /^type: a single host keeps image pull secrets only.*not "Opaque"/],
    [
      secret({ data: { '.dockerconfigjson': config({}), password: 'eA==' } }),
      /^data\.password: a kubernetes\.io\/dockerconfigjson secret holds \.dockerconfigjson only/,
    ],
    [secret({ data: {} }), /^data: must hold \.dockerconfigjson/],
    [secret({ data: { '.dockerconfigjson': `!!${PASSWORD}` } }), /data\["\.dockerconfigjson"\]: not valid base64/],
    [
      secret({ data: { '.dockerconfigjson': Buffer.from(`{"auths": {"r.example": {"auth": "${PASSWORD}"}}}`).toString('base64') } }),
      /auth is not base64 of "username:password"/,
    ],
    [secret({ data: { '.dockerconfigjson': 'A'.repeat(1_500_000) } }), /^data: larger than 1048576 bytes/],
    [secret({ spec: {} }), /^spec: unknown field/],
    [{ ...secret(), kind: 'ConfigMap' }, /^kind: expected apiVersion v1, kind Secret/],
  ];
  for (const [doc, want] of cases) {
    const errors = errorsOf(doc);
    assert.ok(
      errors.some((e) => want.test(e)),
      `${want}: got ${JSON.stringify(errors)}`,
    );
    assert.ok(!errors.join('\n').includes(PASSWORD), `no value quoted: ${errors.join('; ')}`);
  }
});
