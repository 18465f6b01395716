// settleAll: everything runs at once, and a failure is thrown only once the rest has settled, so the
// cleanup that follows finds all of it (the console session and the exit watch of a failed create).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { settleAll } from './settle-all.js';

function deferred<T>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => ((resolve = res), (reject = rej)));
  return { promise, resolve, reject };
}

test('all values in argument order, whatever order they settle in', async () => {
  const a = deferred<number>();
  const b = deferred<string>();
  const both = settleAll<[number, string]>([a.promise, b.promise]);
  b.resolve('watch');
  a.resolve(1);
  assert.deepEqual(await both, [1, 'watch']);
});

test('a failure waits for the rest: what they made exists when the caller cleans up', async () => {
  const attach = deferred<void>();
  const watch = deferred<void>();
  const made: string[] = [];
  let settled = false;
  const both = settleAll([attach.promise, watch.promise.then(() => void made.push('watch'))]).finally(() => (settled = true));
  attach.reject(new Error('no console ring'));
  await new Promise((r) => setImmediate(r));
  assert.equal(settled, false, 'still waiting for the watch');
  watch.resolve();
  await assert.rejects(both, /no console ring/);
  assert.deepEqual(made, ['watch']);
});

test('with several failures, the first in argument order is thrown', async () => {
  const a = deferred<void>();
  const b = deferred<void>();
  const both = settleAll([a.promise, b.promise]);
  b.reject(new Error('second'));
  a.reject(new Error('first'));
  await assert.rejects(both, /first/);
});
