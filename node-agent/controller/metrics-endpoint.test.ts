// The agent's /metrics, scraped over HTTP from the agent the container builds: the reconcile series
// (the operator's names, labelled by controller) with their types, a failing reconcile counted by the
// reason its status shows, each reconcile observed by the histogram, and Node's process metrics unprefixed.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Guest } from '../../crds/generated/types.js';
import { validateObject } from '../../crds/validate.js';
import { replace, resolve } from '../../lib/container.js';
import { freePort } from '../../test/free-port.js';
import { silentLog, testAgentConfig } from '../../test/harness/node-agent.js';
import { agentContainer, startAgent } from '../container/agent.js';
import { AGENT, IMAGE_PROVIDER, IMAGE_STORE } from '../container/ids.js';
import { ImageError, type ImageProvider } from '../reconcile/pulls.js';

const work = mkdtempSync(join(tmpdir(), 'krata-metrics-test-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));
const image = join(work, 'image.sqfs');
writeFileSync(image, 'not a real image');

/** Every image is there but `absent/app:1`, which policy Never keeps from being pulled. */
const images: ImageProvider = {
  ensure: async (reference) => {
    if (reference.startsWith('absent/'))
      throw new ImageError('ErrImageNeverPull', 'the image is not in the cache and imagePullPolicy is Never');
    return {
      digest: `sha256:${'ab'.repeat(32)}`,
      path: image,
      config: { architecture: 'amd64', os: 'linux', config: { Cmd: ['/bin/sh'] }, diffIds: [] },
    };
  },
};

function guest(name: string, ref: string): Guest {
  const r = validateObject({
    apiVersion: 'krata.dev/v1alpha1',
    kind: 'Guest',
    metadata: { name },
    spec: { image: ref, imagePullPolicy: 'Never', resources: { cpus: 1, memory: '64Mi' } },
  });
  assert.deepEqual(r.errors, []);
  return r.object as Guest;
}

/** The value of the series `series` (name and labels as printed), or undefined. */
function value(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

test('/metrics: reconciles by controller and result, errors by reason, the duration histogram, process metrics', async (t) => {
  const port = await freePort();
  const container = agentContainer(testAgentConfig(join(work, 'state'), { metrics: `127.0.0.1:${port}` }), silentLog);
  replace(container, IMAGE_PROVIDER, images);
  container.unbind(IMAGE_STORE);
  const agent = await resolve(container, AGENT);
  const running = await startAgent(container);
  t.after(() => running.stop());
  const scrape = async () => {
    const res = await fetch(`http://127.0.0.1:${port}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    return res.text();
  };

  const before = await scrape();
  // Both controllers' series exist before their first reconcile, at 0.
  for (const controller of ['guest', 'guestset']) {
    assert.equal(value(before, `krata_reconcile_total{controller="${controller}",result="error"}`), 0);
    assert.equal(value(before, `krata_reconcile_duration_seconds_count{controller="${controller}"}`), 0);
    assert.equal(value(before, `krata_reconcile_queue_depth{controller="${controller}"}`), 0);
  }
  for (const [name, type] of [
    ['krata_reconcile_total', 'counter'],
    ['krata_reconcile_errors_total', 'counter'],
    ['krata_reconcile_duration_seconds', 'histogram'],
    ['krata_reconcile_queue_depth', 'gauge'],
    ['krata_guests', 'gauge'],
    ['krata_console_throttled_total', 'counter'],
    ['process_cpu_seconds_total', 'counter'],
    ['process_resident_memory_bytes', 'gauge'],
    ['nodejs_eventloop_lag_seconds', 'gauge'],
  ])
    assert.match(before, new RegExp(`^# TYPE ${name} ${type}$`, 'm'), name);
  assert.doesNotMatch(before, /^krata_agent_(process|nodejs)_/m, 'the process metrics carry no prefix');

  await agent.apply([guest('web', 'example.test/app:1'), guest('missing', 'absent/app:1')], false);
  const errors = 'krata_reconcile_errors_total{controller="guest",reason="ErrImageNeverPull"}';
  const successes = 'krata_reconcile_total{controller="guest",result="success"}';
  // Until `missing` failed twice and the reconcile that started `web` has returned.
  const done = (text: string) => (value(text, errors) ?? 0) >= 2 && (value(text, successes) ?? 0) >= 1;
  let text = before;
  for (let i = 0; i < 500 && !(done(text) && agent.get('default', 'web')?.status?.phase === 'Running'); i++) {
    await new Promise((r) => setTimeout(r, 20));
    text = await scrape();
  }
  assert.equal(agent.get('default', 'web')?.status?.phase, 'Running');
  assert.equal(agent.get('default', 'missing')?.status?.reason, 'ErrImageNeverPull');
  // Each failed reconcile of `missing` is counted, with the reason its status shows, and retried.
  const failed = value(text, errors)!;
  assert.ok(failed >= 2, `${errors} is ${failed}`);
  const errored = value(text, 'krata_reconcile_total{controller="guest",result="error"}')!;
  assert.equal(errored, failed, 'every error has its reason');
  const ok = value(text, successes)!;
  assert.ok(ok >= 1, 'web reconciled');
  // The histogram observed every reconcile, failed or not.
  const count = value(text, 'krata_reconcile_duration_seconds_count{controller="guest"}')!;
  assert.equal(count, ok + errored);
  assert.equal(value(text, 'krata_reconcile_duration_seconds_bucket{le="+Inf",controller="guest"}'), count);
  assert.ok(value(text, 'krata_reconcile_duration_seconds_sum{controller="guest"}')! > 0);
  assert.equal(value(text, 'krata_guests{phase="Running"}'), 1);
});
