// One pull bound for the host: pulls through the API (POST /v1/images/pull) take the same slots as the
// reconciler's, so --pull-concurrency bounds every pull, whoever starts it. Real image store, real
// reconciler, against an HTTP registry that holds its answers until the test lets them go.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import type { Guest } from '../../crds/generated/types.js';
import { validateObject } from '../../crds/validate.js';
import { resolve } from '../../lib/container.js';
import { agentContainer, startAgent } from '../container/agent.js';
import { AGENT } from '../container/ids.js';
import { silentLog, testAgentConfig } from '../../test/harness/node-agent.js';

const until = async (pred: () => boolean, what: string) => {
  for (let i = 0; i < 500 && !pred(); i++) await new Promise((r) => setTimeout(r, 20));
  assert.ok(pred(), what);
};

test("with --pull-concurrency 1 and a Guest's pull held open, an API pull waits for the slot", { timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'krata-pull-slots-'));
  const seen: string[] = [];
  const held: ServerResponse[] = [];
  const registry = createServer((req, res) => {
    seen.push(req.url ?? '');
    held.push(res);
  });
  await new Promise<void>((r) => registry.listen(0, '127.0.0.1', r));
  const host = `127.0.0.1:${(registry.address() as AddressInfo).port}`;
  const answer = () => {
    for (const res of held.splice(0))
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"errors":[{"code":"MANIFEST_UNKNOWN"}]}');
  };
  // The agent as main.ts builds it: the reconciler and the API share its pull slots.
  const config = testAgentConfig(dir, { pullConcurrency: 1, images: { insecure: [host], mirrors: {}, dockerConfigs: [] } });
  const container = agentContainer(config, silentLog);
  const agent = await resolve(container, AGENT);
  const running = await startAgent(container);
  try {
    const g = validateObject({
      apiVersion: 'krata.dev/v1alpha1',
      kind: 'Guest',
      metadata: { name: 'web' },
      spec: { image: `${host}/guest/app:1`, resources: { cpus: 1, memory: '128Mi' } },
    });
    assert.deepEqual(g.errors, []);
    await agent.apply([g.object as Guest], false);
    await until(() => seen.some((u) => u.startsWith('/v2/guest/app/')), "the Guest's pull reached the registry");
    // The only slot is the Guest's: the API pull asks nothing of the registry while it is held.
    const apiPull = agent
      .pullImage(`${host}/api/app:1`, () => {})
      .then(
        () => 'pulled',
        (e: Error) => e.message,
      );
    await new Promise((r) => setTimeout(r, 500));
    assert.deepEqual(
      seen.filter((u) => u.startsWith('/v2/api/')),
      [],
      `the API pull waited for the slot; the registry saw ${JSON.stringify(seen)}`,
    );
    // The Guest's pull ends (unknown manifest): its slot goes to the API pull.
    answer();
    await until(() => seen.some((u) => u.startsWith('/v2/api/app/')), 'the API pull started once the slot was free');
    answer();
    assert.match(await apiPull, /404|not found|unknown/i);
  } finally {
    answer();
    registry.closeAllConnections();
    registry.close();
    await running.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
