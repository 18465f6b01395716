import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatPath, resolveKind, validateObject, type FieldError } from './validate.js';

const guest = (spec: Record<string, unknown>, metadata: Record<string, unknown> = { name: 'web' }) => ({
  apiVersion: 'krata.dev/v1alpha1',
  kind: 'Guest',
  metadata,
  spec,
});

const messages = (errors: FieldError[]) => errors.map((e) => `${formatPath(e.path)}: ${e.message}`);

test('a minimal Guest gets every schema default, nested defaults included', () => {
  const { object, errors } = validateObject(guest({ image: 'alpine' }));
  assert.deepEqual(errors, []);
  assert.deepEqual(object!.spec, {
    image: 'alpine',
    tty: false,
    resources: { cpus: 1, memory: '512Mi' },
    network: { enabled: true },
    restartPolicy: 'Always',
    terminationGracePeriodSeconds: 30,
  });
});

test('defaults fill in inside given objects and list items, and given values are kept', () => {
  const { object } = validateObject(
    guest({ image: 'nginx', resources: { cpus: 2 }, network: { ports: [{ containerPort: 80 }] }, kernel: {} }),
  );
  assert.equal(object!.kind, 'Guest');
  if (object!.kind !== 'Guest') return;
  assert.deepEqual(object!.spec.resources, { cpus: 2, memory: '512Mi' });
  assert.deepEqual(object!.spec.network.ports, [{ containerPort: 80, protocol: 'TCP' }]);
  assert.deepEqual(object!.spec.kernel, { verbose: false });
});

test('the input object is not modified', () => {
  const input = guest({ image: 'alpine' });
  const copy = structuredClone(input);
  validateObject(input);
  assert.deepEqual(input, copy);
});

test('every error is reported at once, with its path', () => {
  const { object, errors } = validateObject(
    guest(
      { imagee: 'x', tty: 'yes', resources: { cpus: 0, memory: 'lots' }, restartPolicy: 'Sometimes', env: [{ name: 'A' }, { name: 'A' }] },
      { name: 'Bad_Name', labels: { 'a/b/c': 'x' } },
    ),
  );
  assert.equal(object, undefined);
  assert.deepEqual(messages(errors), [
    'metadata.labels["a/b/c"]: key "a/b/c": prefix must be a DNS subdomain (lowercase letters, digits, "-" and ".")',
    'metadata.name: must match DNS label (at most 63 lowercase letters, digits ' +
      'and "-", starting and ending with a letter or digit) (got string "Bad_Name")',
    'spec.env[1]: duplicate entry (name="A"), first at spec.env[0]',
    'spec.image: required field is missing',
    'spec.imagee: unknown field "imagee" (did you mean "image"?)',
    'spec.resources.cpus: must be >= 1 (got number 0)',
    'spec.resources.memory: must match quantity (such as 512Mi or 2Gi) (got string "lots")',
    'spec.restartPolicy: must be one of "Always", "OnFailure", "Never" (got string "Sometimes")',
    'spec.tty: must be a boolean (got string "yes")',
  ]);
  assert.equal(errors.find((e) => e.message.startsWith('unknown field'))!.onKey, true);
});

test('quantities may be integers (bytes) or strings, nothing else', () => {
  assert.deepEqual(validateObject(guest({ image: 'alpine', resources: { memory: 268435456 } })).errors, []);
  assert.deepEqual(messages(validateObject(guest({ image: 'alpine', resources: { memory: true } })).errors), [
    'spec.resources.memory: must be an integer or a string (got boolean true)',
  ]);
});

test('cross-field rules: memory bounds, maxCpus, kernel sources, host ports, ports without network', () => {
  const { errors } = validateObject(
    guest({
      image: 'alpine',
      resources: { cpus: 4, maxCpus: 2, memory: '1Gi', maxMemory: '512Mi' },
      kernel: { image: 'k:1', path: '/boot/k' },
      network: { enabled: false, ports: [{ containerPort: 80, hostPort: 8080 }, { containerPort: 8080 }] },
    }),
  );
  assert.deepEqual(messages(errors), [
    'spec.kernel.path: set either kernel.image or kernel.path, not both',
    'spec.network.ports: ports need the network: remove them or set network.enabled to true',
    'spec.network.ports[1].containerPort: host port TCP/8080 is already published by spec.network.ports[0]',
    'spec.resources.maxCpus: must be at least cpus (4), got 2',
    'spec.resources.maxMemory: must be at least memory (1Gi), got 512Mi',
  ]);
  assert.deepEqual(messages(validateObject(guest({ image: 'alpine', resources: { memory: '31Mi' } })).errors), [
    'spec.resources.memory: must be at least 32Mi (got 31Mi)',
  ]);
  assert.deepEqual(messages(validateObject(guest({ image: 'alpine', resources: { memory: '2Ti' } })).errors), [
    'spec.resources.memory: must be at most 1Ti (got 2Ti)',
  ]);
});

test('the same port number on TCP and UDP is two ports', () => {
  const ports = [{ containerPort: 53 }, { containerPort: 53, protocol: 'UDP' }];
  assert.deepEqual(validateObject(guest({ image: 'dns', network: { ports } })).errors, []);
});

test('image references follow the distribution grammar', () => {
  for (const ok of [
    'alpine',
    'alpine:3.20',
    'docker.io/library/alpine:latest',
    'localhost:5000/a/b_c__d-e:v1.0',
    `ghcr.io/o/app@sha256:${'a'.repeat(64)}`,
    '[::1]:5000/x',
  ]) {
    assert.deepEqual(validateObject(guest({ image: ok })).errors, [], ok);
  }
  for (const bad of ['Alpine', 'alpine:', 'alpine::1', 'a b', '/alpine', 'alpine@sha256:abc', 'alpine:' + 'x'.repeat(129)]) {
    assert.equal(validateObject(guest({ image: bad })).errors.length, 1, bad);
  }
});

test('kind and apiVersion are checked before anything else', () => {
  assert.deepEqual(messages(validateObject({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p' } }).errors), [
    'kind: unknown kind "Pod" (v1 is not a krata API): krata serves Guest, XenHost, GuestSet',
  ]);
  assert.deepEqual(messages(validateObject({ apiVersion: 'krata.dev/v2', kind: 'Guest' }).errors), [
    'apiVersion: Guest is served as krata.dev/v1alpha1, not "krata.dev/v2"',
  ]);
  assert.deepEqual(messages(validateObject({ kind: 'XenHost' }).errors), [
    'apiVersion: required field is missing (use krata.dev/v1alpha1)',
  ]);
  assert.deepEqual(messages(validateObject(['a']).errors), [
    '(document): must be a mapping with apiVersion, kind, metadata and spec (got a list)',
  ]);
  assert.deepEqual(messages(validateObject('text').errors), [
    '(document): must be a mapping with apiVersion, kind, metadata and spec (got string "text")',
  ]);
});

test('XenHosts are cluster-scoped objects named like nodes, with defaulted spec', () => {
  const { object, errors } = validateObject({
    apiVersion: 'krata.dev/v1alpha1',
    kind: 'XenHost',
    metadata: { name: 'xen-01.lab.example' },
  });
  assert.deepEqual(errors, []);
  assert.deepEqual(object!.spec, {
    unschedulable: false,
    reserved: { cpus: 0, memory: '0' },
    guestPolicy: { allowNodeName: true, hostPorts: [{ from: 1024, to: 65535 }] },
  });
  const backwards = validateObject({
    apiVersion: 'krata.dev/v1alpha1',
    kind: 'XenHost',
    metadata: { name: 'x' },
    spec: {
      guestPolicy: {
        hostPorts: [
          { from: 80, to: 80 },
          { from: 2000, to: 1000 },
        ],
      },
    },
  });
  assert.deepEqual(messages(backwards.errors), ['spec.guestPolicy.hostPorts[1].to: must be at least from (2000), got 1000']);
});

test('status is validated like the rest: conditions follow the Kubernetes convention', () => {
  const status = {
    phase: 'Running',
    conditions: [{ type: 'Ready', status: 'Maybe', reason: 'not camel', lastTransitionTime: 'yesterday', message: '' }, { type: 'Ready' }],
    domid: 0,
  };
  const { errors } = validateObject({ ...guest({ image: 'alpine' }), status });
  assert.deepEqual(messages(errors), [
    'status.conditions[0].lastTransitionTime: must be an RFC 3339 date-time (got string "yesterday")',
    'status.conditions[0].reason: must match CamelCase reason (got string "not camel")',
    'status.conditions[0].status: must be one of "True", "False", "Unknown" (got string "Maybe")',
    'status.conditions[1]: duplicate entry (type="Ready"), first at status.conditions[0]',
    'status.conditions[1].lastTransitionTime: required field is missing',
    'status.conditions[1].message: required field is missing',
    'status.conditions[1].reason: required field is missing',
    'status.conditions[1].status: required field is missing',
    'status.domid: must be >= 1 (got number 0)',
  ]);
});

test('metadata from `kubectl get -o yaml` is accepted; unknown metadata fields are not', () => {
  const meta = {
    name: 'web',
    namespace: 'prod',
    uid: 'u',
    resourceVersion: '5',
    generation: 2,
    creationTimestamp: '2026-01-01T00:00:00Z',
    finalizers: ['krata.dev/guest-cleanup'],
    managedFields: [{ manager: 'x' }],
  };
  assert.deepEqual(validateObject(guest({ image: 'alpine' }, meta)).errors, []);
  assert.deepEqual(messages(validateObject(guest({ image: 'alpine' }, { name: 'web', lables: {} })).errors), [
    'metadata.lables: unknown field "lables" (did you mean "labels"?)',
  ]);
});

test('annotations are limited to 256KiB in total', () => {
  const { errors } = validateObject(guest({ image: 'alpine' }, { name: 'web', annotations: { big: 'x'.repeat(256 * 1024) } }));
  assert.match(messages(errors)[0]!, /^metadata\.annotations: must total at most 256KiB/);
});

test('kinds resolve by kind, plural, singular, short name and qualified plural', () => {
  for (const name of ['Guest', 'guests', 'guest', 'gst', 'guests.krata.dev', 'GUEST']) assert.equal(resolveKind(name)?.kind, 'Guest', name);
  assert.equal(resolveKind('xh')?.kind, 'XenHost');
  assert.equal(resolveKind('pods'), undefined);
});

test('hostile depth is an error at its path, never a stack overflow (objects from Redis reach here parsed)', () => {
  let env: unknown = [];
  for (let i = 0; i < 100_000; i++) env = [env];
  const { object, errors } = validateObject(guest({ image: 'alpine', env }));
  assert.equal(object, undefined);
  assert.equal(errors.length, 1);
  assert.equal(errors[0]!.path.length, 100);
  assert.deepEqual(errors[0]!.path.slice(0, 3), ['spec', 'env', 0]);
  assert.match(errors[0]!.message, /^nested deeper than 100 levels/);
});

test('a number beyond a double (1e400 reads as Infinity) is out of range, not "got number null"', () => {
  const { errors } = validateObject(
    guest({ image: 'alpine', resources: { cpus: Infinity, memory: JSON.parse('1e400'), maxMemory: -Infinity } }),
  );
  assert.deepEqual(messages(errors), [
    'spec.resources.cpus: number out of range (beyond about ±1.8e308, so it reads as infinity)',
    'spec.resources.maxMemory: number out of range (beyond about ±1.8e308, so it reads as infinity)',
    'spec.resources.memory: number out of range (beyond about ±1.8e308, so it reads as infinity)',
  ]);
});

test('probes: Pod defaults, one handler, named ports that exist, successThreshold 1 for liveness and startup', () => {
  const ok = validateObject(
    guest({
      image: 'nginx',
      network: { ports: [{ name: 'http', containerPort: 80 }] },
      readinessProbe: { httpGet: { port: 'http' }, successThreshold: 2 },
      livenessProbe: { tcpSocket: { port: 80 } },
      startupProbe: { exec: { command: ['true'] } },
    }),
  );
  assert.deepEqual(messages(ok.errors), []);
  if (ok.object?.kind !== 'Guest') return assert.fail('not a Guest');
  assert.deepEqual(ok.object.spec.readinessProbe, {
    httpGet: { port: 'http', path: '/', scheme: 'HTTP' },
    initialDelaySeconds: 0,
    periodSeconds: 10,
    timeoutSeconds: 1,
    successThreshold: 2,
    failureThreshold: 3,
  });
  const { errors } = validateObject(
    guest({
      image: 'nginx',
      network: { ports: [{ name: 'dns', containerPort: 53, protocol: 'UDP' }] },
      readinessProbe: { tcpSocket: { port: 'web' }, exec: { command: ['true'] }, periodSeconds: 0 },
      livenessProbe: { httpGet: { port: 'dns', path: 'no-slash', httpHeaders: [{ name: 'X-A', value: 'a\r\nb' }] }, successThreshold: 2 },
      startupProbe: { timeoutSeconds: 1 },
    }),
  );
  assert.deepEqual(messages(errors), [
    'spec.livenessProbe.httpGet.httpHeaders[0].value: must match HTTP header value (no line breaks or NUL) (got string "a\\r\\nb")',
    'spec.livenessProbe.httpGet.path: must match HTTP path (starting with /, printable ASCII without spaces) (got string "no-slash")',
    'spec.readinessProbe.periodSeconds: must be >= 1 (got number 0)',
    'spec.startupProbe: must set exactly one of exec, tcpSocket or httpGet',
  ]);
  const semantic = validateObject(
    guest({
      image: 'nginx',
      network: { ports: [{ name: 'dns', containerPort: 53, protocol: 'UDP' }] },
      readinessProbe: { exec: { command: ['true'] }, tcpSocket: { port: 'web' } },
      livenessProbe: { httpGet: { port: 'dns' }, successThreshold: 2 },
      startupProbe: { tcpSocket: { port: 70000 } },
    }),
  );
  assert.deepEqual(messages(semantic.errors), [
    'spec.livenessProbe.httpGet.port: port "dns" is not a TCP port',
    'spec.livenessProbe.successThreshold: must be 1 for livenessProbe (got 2)',
    'spec.readinessProbe.tcpSocket: must set exactly one of exec, tcpSocket or httpGet (exec is set)',
    'spec.readinessProbe.tcpSocket.port: names no port: no spec.network.ports entry is named "web"',
    'spec.startupProbe.tcpSocket.port: must be 1-65535 (got 70000)',
  ]);
  const noNet = validateObject(guest({ image: 'nginx', network: { enabled: false }, readinessProbe: { tcpSocket: { port: 80 } } }));
  assert.deepEqual(messages(noNet.errors), [
    'spec.readinessProbe.tcpSocket.port: tcpSocket probes reach the guest over its network: set network.enabled to true',
  ]);
});
