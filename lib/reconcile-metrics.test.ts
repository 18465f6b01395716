// ReconcileMetrics on a registry: series per controller from its first observer, errors by reason with a
// bound on distinct reasons, and timed() telling the observer of successes and failures alike.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Registry } from 'prom-client';
import { ReconcileMetrics, timed } from './reconcile-metrics.js';

const value = async (registry: Registry, series: string) =>
  Number(
    (await registry.metrics())
      .split('\n')
      .find((l) => l.startsWith(`${series} `))
      ?.slice(series.length + 1),
  );

test('timed() observes each reconcile; a failure is counted by its reason and still thrown', async () => {
  const registry = new Registry();
  const metrics = new ReconcileMetrics(registry);
  const handler = timed(async (key) => {
    if (key === 'bad') throw Object.assign(new Error('nope'), { reason: 'Conflict' });
    return key === 'later' ? { requeueAfterMs: 5 } : undefined;
  }, metrics.observer('guest'));
  assert.equal(await value(registry, 'krata_reconcile_total{controller="guest",result="success"}'), 0);
  assert.deepEqual(await handler('later'), { requeueAfterMs: 5 });
  await handler('good');
  await assert.rejects(handler('bad'), /nope/);
  assert.equal(await value(registry, 'krata_reconcile_total{controller="guest",result="success"}'), 2);
  assert.equal(await value(registry, 'krata_reconcile_total{controller="guest",result="error"}'), 1);
  assert.equal(await value(registry, 'krata_reconcile_errors_total{controller="guest",reason="Conflict"}'), 1);
  assert.equal(await value(registry, 'krata_reconcile_duration_seconds_count{controller="guest"}'), 3);
  metrics.queue('guest', () => 7);
  assert.equal(await value(registry, 'krata_reconcile_queue_depth{controller="guest"}'), 7);
  const text = await registry.metrics();
  assert.match(text, /^# TYPE krata_reconcile_errors_total counter$/m);
  assert.match(text, /^# TYPE krata_reconcile_duration_seconds histogram$/m);
});

test('past 24 distinct reasons of a controller, errors are counted as Other', async () => {
  const registry = new Registry();
  const metrics = new ReconcileMetrics(registry);
  const observe = metrics.observer('guestset');
  for (let i = 0; i < 30; i++) observe(1, Object.assign(new Error('x'), { reason: `Reason${i}` }));
  observe(1, Object.assign(new Error('x'), { reason: 'Reason3' }));
  assert.equal(await value(registry, 'krata_reconcile_errors_total{controller="guestset",reason="Reason3"}'), 2);
  assert.equal(await value(registry, 'krata_reconcile_errors_total{controller="guestset",reason="Other"}'), 6);
  // A second observer of the same controller shares the bound.
  metrics.observer('guestset')(1, Object.assign(new Error('x'), { reason: 'Reason99' }));
  assert.equal(await value(registry, 'krata_reconcile_errors_total{controller="guestset",reason="Other"}'), 7);
});
