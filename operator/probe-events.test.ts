// Cluster mode: the agent's probe results reach the Guest as the kubelet's Events (Unhealthy, Killing),
// derived from the status it reports, once per news.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { GuestStatus } from '../crds/generated/types.js';
import { probeEvents } from './guest-controller.js';

const failing = (n: number, message = 'HTTP probe failed with statuscode: 503'): GuestStatus => ({
  phase: 'Running',
  probes: {
    readiness: { result: 'Failure', message, lastProbeTime: `2026-01-01T00:00:0${n}Z`, consecutiveSuccesses: 0, consecutiveFailures: n },
  },
});

test('Unhealthy when readiness fails anew or again, nothing when nothing is new', () => {
  assert.deepEqual(probeEvents({ phase: 'Running' }, failing(1)), [
    { type: 'Warning', reason: 'Unhealthy', message: 'Readiness probe failed: HTTP probe failed with statuscode: 503' },
  ]);
  assert.equal(probeEvents(failing(1), failing(3)).length, 1);
  assert.deepEqual(probeEvents(failing(3), failing(3)), []);
  assert.deepEqual(probeEvents(failing(3), { phase: 'Running', probes: { readiness: { result: 'Success' } } }), []);
  // Readiness before its first probe is Failure too, but says nothing yet.
  assert.deepEqual(probeEvents(undefined, { phase: 'Running', probes: { readiness: { result: 'Failure' } } }), []);
});

test('a probe kill: Unhealthy with the failure, then Killing saying whether the guest restarts', () => {
  const killed = (phase: GuestStatus['phase']): GuestStatus => ({
    phase,
    probes: {
      lastKill: {
        probe: 'Liveness',
        domid: 4,
        message: 'liveness probe failed 3 times in a row: exit code 1',
        time: '2026-01-01T00:01:00Z',
      },
    },
  });
  assert.deepEqual(probeEvents({ phase: 'Running', domid: 4 }, killed('Pending')), [
    { type: 'Warning', reason: 'Unhealthy', message: 'Liveness probe failed 3 times in a row: exit code 1' },
    { type: 'Normal', reason: 'Killing', message: 'domain 4 failed liveness probe, will be restarted' },
  ]);
  assert.equal(probeEvents(killed('Pending'), killed('Failed')).length, 0, 'the same kill again is no news');
  assert.equal(probeEvents({ phase: 'Running' }, killed('Failed'))[1]!.message, 'domain 4 failed liveness probe, will not be restarted');
});
