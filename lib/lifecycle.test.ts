import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startInOrder, type Component } from './lifecycle.js';

function recording(log: string[], name: string, extra: Partial<Component> = {}): Component {
  return { name, start: () => void log.push(`start ${name}`), stop: () => void log.push(`stop ${name}`), ...extra };
}

test('components start in order and stop in reverse, once', async () => {
  const log: string[] = [];
  const running = await startInOrder([recording(log, 'a'), recording(log, 'b'), { name: 'c' }]);
  await Promise.all([running.stop(), running.stop()]);
  assert.deepEqual(log, ['start a', 'start b', 'stop b', 'stop a']);
});

test('a stop in the background does not hold up the stops after it, and is awaited before stop() resolves', async () => {
  const log: string[] = [];
  let exited!: () => void;
  const net = recording(log, 'net', {
    stop: () => new Promise<void>((r) => (exited = () => (log.push('net exited'), r()))),
    stopInBackground: true,
  });
  const running = await startInOrder([recording(log, 'api'), net]);
  let done = false;
  const stopped = running.stop().then(() => (done = true));
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(log, ['start api', 'start net', 'stop api']);
  assert.equal(done, false);
  exited();
  await stopped;
  assert.deepEqual(log.slice(3), ['net exited']);
});

test('a component that fails to start stops those started before it, and its error is rethrown', async () => {
  const log: string[] = [];
  const boom = new Error('listen EADDRINUSE');
  const failing = recording(log, 'b', { start: () => Promise.reject(boom) });
  await assert.rejects(startInOrder([recording(log, 'a'), failing, recording(log, 'c')]), boom);
  assert.deepEqual(log, ['start a', 'stop a']);
});
