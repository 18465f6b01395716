// The node agent's default guest kernel and initrd: its own STATE/guest/ layout, else krata's seed layout.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseFlags } from './flags.js';
import type { AgentConfig } from './container/config.js';

const config = (...args: string[]): AgentConfig => {
  const f = parseFlags(['--fake-hypervisor', '1024', ...args]);
  assert.ok('config' in f);
  return f.config;
};

test("the default kernel and initrd: STATE/guest/, else krata's STATE/default/ when only that exists", () => {
  const state = mkdtempSync(join(tmpdir(), 'krata-flags-'));
  try {
    const boot = () => {
      const c = config('--state', state);
      return [c.kernel, c.initrd];
    };
    assert.deepEqual(boot(), [join(state, 'guest/vmlinuz'), join(state, 'guest/initrd')]);
    mkdirSync(join(state, 'default'));
    writeFileSync(join(state, 'default/kernel'), '');
    writeFileSync(join(state, 'default/initrd'), '');
    assert.deepEqual(boot(), [join(state, 'default/kernel'), join(state, 'default/initrd')]);
    mkdirSync(join(state, 'guest'));
    writeFileSync(join(state, 'guest/vmlinuz'), '');
    assert.deepEqual(boot(), [join(state, 'guest/vmlinuz'), join(state, 'default/initrd')]);
    assert.deepEqual(config('--state', state, '--kernel', '/k', '--initrd', '/i').kernel, '/k');
  } finally {
    rmSync(state, { recursive: true, force: true });
  }
});
