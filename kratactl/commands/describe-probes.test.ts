// describe shows each probe as kubectl describe does, and the latest results from status.probes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Guest } from '../../crds/generated/types.js';
import { validateObject } from '../../crds/validate.js';
import { describeGuest } from './describe.js';

test('probes as kubectl prints them, then their latest results and the last kill', () => {
  const { object, errors } = validateObject({
    apiVersion: 'krata.dev/v1alpha1',
    kind: 'Guest',
    metadata: { name: 'web', namespace: 'default' },
    spec: {
      image: 'nginx',
      network: { ports: [{ name: 'http', containerPort: 8080 }] },
      readinessProbe: { httpGet: { port: 8080, path: '/healthz' } },
      livenessProbe: { exec: { command: ['cat', '/tmp/healthy'] }, initialDelaySeconds: 5, periodSeconds: 5 },
      startupProbe: { tcpSocket: { port: 'http' }, failureThreshold: 30 },
    },
  });
  assert.deepEqual(errors, []);
  const g = object as Guest;
  const now = Date.parse('2026-01-01T00:01:00Z');
  g.status = {
    phase: 'Running',
    probes: {
      startup: { result: 'Success', consecutiveSuccesses: 1, consecutiveFailures: 0 },
      readiness: {
        result: 'Failure',
        message: 'HTTP probe failed with statuscode: 503',
        lastProbeTime: '2026-01-01T00:00:50Z',
        consecutiveSuccesses: 0,
        consecutiveFailures: 4,
      },
      lastKill: { probe: 'Liveness', domid: 3, message: 'liveness probe failed 3 times in a row', time: '2026-01-01T00:00:00Z' },
    },
  };
  const out = describeGuest(g, [], now);
  assert.match(out, /^Liveness: +exec \[cat \/tmp\/healthy\] delay=5s timeout=1s period=5s #success=1 #failure=3$/m);
  assert.match(out, /^Readiness: +http-get http:\/\/:8080\/healthz delay=0s timeout=1s period=10s #success=1 #failure=3$/m);
  assert.match(out, /^Startup: +tcp-socket :http delay=0s timeout=1s period=10s #success=1 #failure=30$/m);
  assert.match(
    out,
    /^Probes:\n {2}Startup: +Success\n {2}Readiness: +Failure \(4 failures in a row\), last probed 10s ago: HTTP probe failed with statuscode: 503\n/m,
  );
  assert.match(out, /^ {2}Last probe kill: +Liveness probe stopped domain 3 60s ago: liveness probe failed 3 times in a row$/m);
});
