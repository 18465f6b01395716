// The documented kill points (fault-points.ts) and the faultPoint() calls in the agent are the same
// set: each listed point is called exactly once in the agent's code, and no call is left out of the
// list (the chaos scenario kills the agent at each listed point, so an unlisted one is never tested).
// On the test-double hypervisor, a create and a delete pass the points of reconcile/ in their order.
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { AGENT_FAULT_POINTS } from './fault-points.js';
import { resetFaultPoints } from '../lib/fault-points.js';
import { guest, harness, phase } from '../test/harness/node-controller.js';

/** The compiled agent (this file sits in dist/node-agent/), tests left out. */
function agentSources(dir = import.meta.dirname, out: string[] = []): string[] {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) agentSources(p, out);
    else if (e.name.endsWith('.js') && !e.name.endsWith('.test.js')) out.push(p);
  }
  return out;
}

test('every listed point is called once in the agent, and every call is listed', () => {
  const calls = new Map<string, string[]>();
  for (const file of agentSources()) {
    for (const m of readFileSync(file, 'utf8').matchAll(/faultPoint\(\s*(['"`])([^'"`]*)\1\s*\)/g)) {
      calls.set(m[2]!, [...(calls.get(m[2]!) ?? []), file]);
    }
  }
  const listed = AGENT_FAULT_POINTS.map((p) => p.name);
  assert.equal(new Set(listed).size, listed.length, 'a point is listed twice');
  for (const p of AGENT_FAULT_POINTS) {
    assert.ok(p.name.startsWith(`${p.op}.`), `${p.name} is not named after its operation ${p.op}`);
    assert.equal(calls.get(p.name)?.length, 1, `${p.name}: called in ${JSON.stringify(calls.get(p.name) ?? [])}, want once`);
  }
  assert.deepEqual(
    [...calls.keys()].filter((n) => !listed.includes(n)),
    [],
    'faultPoint() calls missing from AGENT_FAULT_POINTS',
  );
});

test('a create and a delete on the fake hypervisor pass the reconcile points in order', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'krata-fault-list-'));
  const trace = join(dir, 'trace');
  process.env.KRATA_FAULT_TRACE = trace;
  resetFaultPoints();
  try {
    const h = harness();
    await h.agent.apply([guest('traced')], false);
    await h.until(() => phase(h, 'traced') === 'Running');
    await h.agent.delete('default', 'traced', { wait: true });
    await h.until(() => !h.agent.get('default', 'traced'));
    h.stop();
    const passed = readFileSync(trace, 'utf8').trim().split('\n');
    assert.deepEqual(passed, [
      'create.addresses-reserved',
      'create.domain-running',
      'teardown.domains-stopped',
      'teardown.address-released',
    ]);
  } finally {
    delete process.env.KRATA_FAULT_TRACE;
    resetFaultPoints();
    rmSync(dir, { recursive: true, force: true });
  }
});
