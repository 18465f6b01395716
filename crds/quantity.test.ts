import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatBytes, quantityValue } from './quantity.js';

test('binary, decimal and exponent suffixes parse exactly', () => {
  assert.equal(quantityValue('512Mi'), 512n * 1024n * 1024n);
  assert.equal(quantityValue('1.5Gi'), 1536n * 1024n * 1024n);
  assert.equal(quantityValue('2G'), 2_000_000_000n);
  assert.equal(quantityValue('1e9'), 1_000_000_000n);
  assert.equal(quantityValue('16Ei'), 16n * 2n ** 60n);
  assert.equal(quantityValue(1073741824), 1073741824n);
  assert.equal(quantityValue('.5Ki'), 512n);
});

test('fractions round up to a whole unit, as the API server does', () => {
  assert.equal(quantityValue('0.1'), 1n);
  assert.equal(quantityValue('1500m'), 2n);
  assert.equal(quantityValue('1n'), 1n);
});

test('anything else is not a quantity', () => {
  for (const bad of ['lots', '1GB', '1 Gi', ' 1Gi', '', 'Gi', '1.2.3', '1e1000', '0x10']) assert.equal(quantityValue(bad), undefined, bad);
  assert.equal(quantityValue(Number.NaN), undefined);
});

test('negative quantities parse (bounds are checked by the caller)', () => {
  assert.equal(quantityValue('-1Gi'), -(2n ** 30n));
});

test('byte counts print in the largest exact binary unit', () => {
  assert.equal(formatBytes(32n << 20n), '32Mi');
  assert.equal(formatBytes(3n << 30n), '3Gi');
  assert.equal(formatBytes(1000n), '1000');
  assert.equal(formatBytes(0n), '0');
});
