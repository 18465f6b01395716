// The operator's /metrics, scraped over HTTP from the operator the container builds (a real apiserver and
// Redis): the node agent's reconcile series by controller, with their types; a Guest reconcile that fails
// (a conflict, injected into the first finalizer write) counted by its reason and retried; every reconcile
// observed by the histogram; the operator's own totals as counters named _total; process metrics unprefixed.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { KubeError } from './kube/client.js';
import { freePort } from '../test/free-port.js';
import { startKube, newGuest, waitFor, type TestKube } from '../test/kube/operator-env.js';
import { startRedis, type TestRedis } from '../test/redis.js';
import { startTestOperator, type TestOperator } from '../test/harness/operator.js';

let kube: TestKube;
let redis: TestRedis;
let op: TestOperator;
let port: number;
let injected = 0;

before(async () => {
  [kube, redis, port] = await Promise.all([startKube(), startRedis(), freePort()]);
  const patch = kube.client.patchGuestMetadata.bind(kube.client);
  kube.client.patchGuestMetadata = (namespace, name, ...rest) => {
    if (name !== 'flaky' || injected++ > 0) return patch(namespace, name, ...rest);
    return Promise.reject(new KubeError(409, 'the object has been modified (injected)', 'Conflict'));
  };
  op = await startTestOperator(kube.client, { redis: { url: redis.url }, metricsAddr: `127.0.0.1:${port}` });
});
after(async () => {
  await op?.stop();
  await Promise.all([kube?.stop(), redis?.stop()]);
});

async function scrape(): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  assert.equal(res.status, 200);
  return res.text();
}

function value(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

test('series names and types: the agent’s reconcile series, counters named _total, unprefixed process metrics', async () => {
  const text = await scrape();
  for (const [name, type] of [
    ['krata_reconcile_total', 'counter'],
    ['krata_reconcile_errors_total', 'counter'],
    ['krata_reconcile_duration_seconds', 'histogram'],
    ['krata_reconcile_queue_depth', 'gauge'],
    ['krata_operator_leader', 'gauge'],
    ['krata_operator_unattributed_hosts', 'gauge'],
    ['krata_operator_kube_writes_total', 'counter'],
    ['process_cpu_seconds_total', 'counter'],
    ['nodejs_eventloop_lag_seconds', 'gauge'],
  ])
    assert.match(text, new RegExp(`^# TYPE ${name} ${type}$`, 'm'), name);
  for (const controller of ['guest', 'guestset']) {
    assert.notEqual(value(text, `krata_reconcile_total{controller="${controller}",result="error"}`), undefined, controller);
    assert.notEqual(value(text, `krata_reconcile_queue_depth{controller="${controller}"}`), undefined, controller);
  }
  assert.equal(value(text, 'krata_operator_leader'), 1);
  // Counters whose names say so: no total lives on as a gauge.
  for (const m of text.matchAll(/^# TYPE (\S+) counter$/gm)) assert.match(m[1]!, /_total$/);
  assert.doesNotMatch(text, /^krata_operator_(reconciles|queue_depth|kube_writes) /m);
});

test('a failed Guest reconcile is counted by reason and retried; each reconcile is observed', { timeout: 60_000 }, async () => {
  const before = await scrape();
  const errors = 'krata_reconcile_errors_total{controller="guest",reason="Conflict"}';
  assert.equal(value(before, errors), undefined);
  await kube.client.createGuest(newGuest('flaky'));
  // The retry adds the finalizer the failed reconcile could not.
  await waitFor(
    async () => (await kube.client.getGuest('default', 'flaky')).metadata.finalizers?.length,
    'the finalizer, on retry',
    20_000,
  );
  const text = await waitFor(async () => {
    const t = await scrape();
    return (value(t, 'krata_reconcile_total{controller="guest",result="success"}') ?? 0) >= 1 ? t : undefined;
  }, 'a successful reconcile');
  assert.equal(injected >= 2, true);
  assert.equal(value(text, errors), 1);
  const failed = value(text, 'krata_reconcile_total{controller="guest",result="error"}')!;
  const ok = value(text, 'krata_reconcile_total{controller="guest",result="success"}')!;
  assert.equal(failed, 1);
  assert.equal(value(text, 'krata_reconcile_duration_seconds_count{controller="guest"}'), ok + failed);
  assert.ok(value(text, 'krata_operator_kube_writes_total')! >= 1);
});
