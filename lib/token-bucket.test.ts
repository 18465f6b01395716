import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TokenBucket } from './token-bucket.js';

test('the token bucket refills at its rate up to its burst', () => {
  let now = 0;
  const b = new TokenBucket(1000, 100, () => now);
  assert.equal(b.available(), 100);
  b.take(100);
  assert.equal(b.available(), 0);
  assert.equal(b.msUntil(50), 50);
  now = 30;
  assert.equal(b.available(), 30);
  now = 10_000;
  assert.equal(b.available(), 100, 'never above the burst');
});

test('tryTake takes one whole token or none: a bucket of 1 a second says yes at most once a second', () => {
  let now = 0;
  const b = new TokenBucket(1, 1, () => now);
  assert.equal(b.tryTake(), true);
  assert.equal(b.tryTake(), false);
  now = 999;
  assert.equal(b.tryTake(), false, 'a partial token is not one');
  now = 1000;
  assert.equal(b.tryTake(), true);
  assert.equal(b.available(), 0);
});
