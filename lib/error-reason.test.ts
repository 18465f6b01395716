// errorReason: the word a failed reconcile is counted under, from what the error carries, never its message.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { errorReason } from './error-reason.js';

class KubeLikeError extends Error {
  constructor(
    readonly status: number,
    readonly reason?: string,
  ) {
    super('the apiserver said no');
  }
}
class HypercallError extends Error {}

test('a reason the error carries wins, along the cause chain', () => {
  const pull = Object.assign(new Error('registry down'), { reason: 'ErrImagePull' });
  assert.equal(errorReason(pull), 'ErrImagePull');
  assert.equal(errorReason(new Error('wrapped', { cause: new Error('again', { cause: pull }) })), 'ErrImagePull');
  assert.equal(errorReason(new KubeLikeError(409, 'Conflict')), 'Conflict');
});

test('an HTTP status says the Kubernetes reason when none came with it', () => {
  assert.equal(errorReason(new KubeLikeError(404)), 'NotFound');
  assert.equal(errorReason(new KubeLikeError(0)), 'Unreachable');
  assert.equal(errorReason(new KubeLikeError(502)), 'ServerError');
  assert.equal(errorReason(new KubeLikeError(418)), 'ClientError');
});

test('else an errno code or the class, outermost first; a plain Error is Error', () => {
  assert.equal(errorReason(Object.assign(new Error('full'), { code: 'ENOSPC' })), 'ENOSPC');
  assert.equal(errorReason(new Error('creating the domain failed', { cause: new HypercallError('EPERM') })), 'HypercallError');
  assert.equal(errorReason(new TypeError('x is undefined')), 'TypeError');
  assert.equal(errorReason(new Error('boom')), 'Error');
  assert.equal(errorReason('a string'), 'Error');
  assert.equal(errorReason(undefined), 'Error');
});

test('words that are not short identifiers are not labels', () => {
  const hostile = Object.assign(new Error('x'), { reason: 'a "reason"\nwith\nlines', code: 'not-errno' });
  assert.equal(errorReason(hostile), 'Error');
  assert.equal(errorReason(Object.assign(new Error('x'), { reason: 'R'.repeat(100) })), 'Error');
  // A cycle of causes ends.
  const a: Error & { cause?: unknown } = new Error('a');
  a.cause = a;
  assert.equal(errorReason(a), 'Error');
});
