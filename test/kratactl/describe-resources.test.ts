// kratactl describe: the resources applied to a running domain beside what the spec requests.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Guest } from '../../crds/generated/types.js';
import { appliedResources, describeGuest } from '../../kratactl/commands/describe.js';

const guest = (resources: Guest['spec']['resources'], status: Guest['status']): Guest =>
  ({
    apiVersion: 'krata.dev/v1alpha1',
    kind: 'Guest',
    metadata: { name: 'web', namespace: 'default' },
    spec: { image: 'alpine', resources, network: { enabled: false }, restartPolicy: 'Always', terminationGracePeriodSeconds: 30 },
    status,
  }) as Guest;

test('describe shows the applied resources, what the guest holds, and the request when it differs', () => {
  const spec = { cpus: 2, maxCpus: 2, memory: '96Mi', maxMemory: '192Mi' };
  const held = guest(spec, {
    phase: 'Running',
    domid: 5,
    resources: {
      cpus: 2,
      memory: '96Mi',
      vcpusOnline: 2,
      memoryActual: '150Mi',
      reason: 'BalloonPending',
      message: 'the guest holds 150Mi of its 96Mi target: it has not ballooned yet',
    },
  });
  const out = describeGuest(held, [], Date.now());
  assert.match(out, /^ {2}Resources: +2 vCPUs \(2 online\), memory 96Mi \(guest holds 150Mi\)$/m);
  assert.match(out, /^ {2}Resources pending: +the guest holds 150Mi of its 96Mi target: it has not ballooned yet$/m);
  // Requested 100663296 bytes is the same as 96Mi; a different request is shown.
  assert.equal(
    appliedResources(guest({ ...spec, memory: '100663296' }, held.status)),
    '2 vCPUs (2 online), memory 96Mi (guest holds 150Mi)',
  );
  assert.equal(
    appliedResources(guest({ ...spec, cpus: 1, memory: '160Mi' }, { resources: { cpus: 2, memory: '96Mi' } })),
    '2 vCPUs, memory 96Mi; requested 1 vCPU, memory 160Mi',
  );
  assert.equal(appliedResources(guest(spec, { phase: 'Pending' })), undefined);
});
