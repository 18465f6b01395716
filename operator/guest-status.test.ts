import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Guest, GuestStatus } from '../crds/generated/types.js';
import { deriveStatus, statusChanged } from './guest-status.js';

const guest = (generation = 1, status?: GuestStatus): Guest => ({
  apiVersion: 'krata.dev/v1alpha1',
  kind: 'Guest',
  metadata: { name: 'g', namespace: 'default', uid: 'u1', generation },
  spec: {
    image: 'alpine',
    tty: false,
    network: { enabled: true },
    restartPolicy: 'Always',
    terminationGracePeriodSeconds: 30,
    resources: { cpus: 1, memory: '512Mi' },
  },
  ...(status ? { status } : {}),
});
const cond = (s: GuestStatus, type: string) => s.conditions?.find((c) => c.type === type);
const running: GuestStatus = {
  phase: 'Running',
  observedGeneration: 1,
  domid: 7,
  conditions: [
    {
      type: 'Ready',
      status: 'True',
      observedGeneration: 1,
      lastTransitionTime: '2026-01-01T00:00:00Z',
      reason: 'Running',
      message: 'domain 7 is running',
    },
  ],
};

test('unplaced: Pending, Scheduled=False with the reason, Reconciling (kstatus: in progress, not failed)', () => {
  const s = deriveStatus({
    guest: guest(),
    unschedulable: { reason: 'Unschedulable', message: '0/1 hosts are available: 1 insufficient memory' },
    hostReady: false,
    now: 't1',
  });
  assert.equal(s.phase, 'Pending');
  assert.equal(s.observedGeneration, 1);
  assert.deepEqual([cond(s, 'Scheduled')?.status, cond(s, 'Scheduled')?.reason], ['False', 'Unschedulable']);
  assert.equal(cond(s, 'Reconciling')?.status, 'True');
  assert.equal(cond(s, 'Ready')?.status, 'False');
});

test("the agent's report for this uid is the status; Scheduled is added; a report for another uid is not used", () => {
  const s = deriveStatus({
    guest: guest(),
    node: 'h1',
    report: { uid: 'u1', generation: 1, status: running, time: 't' },
    hostReady: true,
    now: 't1',
  });
  assert.equal(s.phase, 'Running');
  assert.equal(s.node, 'h1');
  assert.equal(s.domid, 7);
  assert.equal(cond(s, 'Ready')?.status, 'True');
  assert.equal(cond(s, 'Scheduled')?.status, 'True');
  const other = deriveStatus({
    guest: guest(),
    node: 'h1',
    report: { uid: 'old', generation: 1, status: running, time: 't' },
    hostReady: true,
    now: 't1',
  });
  assert.equal(other.phase, 'Pending');
  assert.equal(cond(other, 'Ready')?.reason, 'WaitingForHost');
});

test('a report for an older generation keeps Reconciling=True so GitOps tools wait', () => {
  const s = deriveStatus({
    guest: guest(2),
    node: 'h1',
    report: { uid: 'u1', generation: 2, status: running, time: 't' },
    hostReady: true,
    now: 't1',
  });
  assert.equal(s.observedGeneration, 1);
  assert.equal(cond(s, 'Reconciling')?.status, 'True');
  assert.equal(cond(s, 'Reconciling')?.reason, 'Progressing');
});

test('a host that stops reporting makes the phase Unknown and Ready Unknown; finished guests stay finished', () => {
  const s = deriveStatus({
    guest: guest(),
    node: 'h1',
    report: { uid: 'u1', generation: 1, status: running, time: 't' },
    hostReady: false,
    now: 't1',
  });
  assert.equal(s.phase, 'Unknown');
  assert.deepEqual([cond(s, 'Ready')?.status, cond(s, 'Ready')?.reason], ['Unknown', 'NodeNotReady']);
  const done = deriveStatus({
    guest: guest(),
    node: 'h1',
    report: { uid: 'u1', generation: 1, status: { ...running, phase: 'Succeeded' }, time: 't' },
    hostReady: false,
    now: 't1',
  });
  assert.equal(done.phase, 'Succeeded');
});

test('the same inputs give the same status, so nothing is written twice; transition times are kept', () => {
  const inputs = { node: 'h1', report: { uid: 'u1', generation: 1, status: running, time: 't' }, hostReady: true };
  const first = deriveStatus({ guest: guest(), ...inputs, now: '2026-01-01T00:00:01Z' });
  const second = deriveStatus({ guest: guest(1, first), ...inputs, now: '2026-01-01T00:05:00Z' });
  assert.equal(statusChanged(first, second), false);
  assert.equal(cond(second, 'Scheduled')?.lastTransitionTime, '2026-01-01T00:00:01Z');
  const lost = deriveStatus({ guest: guest(1, second), ...inputs, hostReady: false, now: '2026-01-01T00:06:00Z' });
  assert.equal(statusChanged(second, lost), true);
  assert.equal(cond(lost, 'Ready')?.lastTransitionTime, '2026-01-01T00:06:00Z');
});

test("refused by the admins' policy (a host port, nodeName): Scheduled=False and Stalled=True with the reason", () => {
  const message = "0/1 hosts are available: 1 didn't allow host port TCP/80 of spec.network.ports[0].containerPort (allowed: 1024-65535)";
  const s = deriveStatus({ guest: guest(), unschedulable: { reason: 'HostPortNotAllowed', message }, hostReady: false, now: 't1' });
  assert.deepEqual(
    [cond(s, 'Scheduled')?.status, cond(s, 'Scheduled')?.reason, cond(s, 'Scheduled')?.message],
    ['False', 'HostPortNotAllowed', message],
  );
  assert.deepEqual(
    [cond(s, 'Stalled')?.status, cond(s, 'Stalled')?.reason, cond(s, 'Stalled')?.message],
    ['True', 'HostPortNotAllowed', message],
  );
  assert.equal(s.node, undefined);
  const n = deriveStatus({
    guest: guest(),
    unschedulable: { reason: 'NodeNameNotAllowed', message: 'XenHost a does not allow ...' },
    hostReady: false,
    now: 't1',
  });
  assert.equal(cond(n, 'Stalled')?.status, 'True');
});
