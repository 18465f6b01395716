// kratanet outlives no agent: when the agent that forked it dies by SIGKILL (no stop, no SIGTERM),
// kratanet's IPC channel closes and it exits, releasing its packet sockets and published host ports
// for the next agent's kratanet (e2e: 180-chaos kills the agent and checks that no second kratanet
// runs and that a published port answers again).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { once } from 'node:events';

const MAIN = join(import.meta.dirname, 'main.js');

/** Gone, or a zombie nobody reaped yet (its parent is dead): either way it has exited. */
function exited(pid: number): boolean {
  try {
    return /^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return true;
  }
}

/** A stand-in for the agent: node running `script` (an ES module), its stdout piped. */
function fakeAgent(script: string) {
  return spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
}

test('kratanet exits when the agent that forked it is SIGKILLed', async () => {
  // The "agent": forks kratanet as NetSupervisor does, prints its pid once kratanet says ready.
  const agent = fakeAgent(
    `import { fork } from 'node:child_process';
       const c = fork(${JSON.stringify(MAIN)}, [], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'], execArgv: [], serialization: 'json' });
       c.on('message', (m) => { if (m.type === 'ready') process.stdout.write(c.pid + '\\n'); });
       setInterval(() => {}, 1 << 30);`,
  );
  let out = '';
  agent.stdout.setEncoding('utf8');
  while (!out.includes('\n')) {
    const [chunk] = (await once(agent.stdout, 'data')) as [string];
    out += chunk;
  }
  const pid = Number(out.trim());
  assert.ok(pid > 0 && !exited(pid), `kratanet ${pid} runs`);
  agent.kill('SIGKILL');
  await once(agent, 'exit');
  // Generous: only that it ends matters, not how fast.
  for (let i = 0; i < 600 && !exited(pid); i++) await new Promise((r) => setTimeout(r, 50));
  assert.ok(exited(pid), `kratanet ${pid} still runs 30 s after its agent was killed`);
});

test('kratanet exits cleanly when its agent is gone before it is ready', async () => {
  // The "agent" forks kratanet and drops the channel at once, as a SIGKILL during kratanet's start does.
  const agent = fakeAgent(
    `import { fork } from 'node:child_process';
       const c = fork(${JSON.stringify(MAIN)}, [], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'], execArgv: [], serialization: 'json' });
       let err = '';
       c.stderr.on('data', (d) => (err += d));
       c.disconnect();
       c.on('exit', (code) => process.stdout.write(JSON.stringify({ code, err })));`,
  );
  let out = '';
  agent.stdout.setEncoding('utf8');
  agent.stdout.on('data', (d: string) => (out += d));
  await once(agent, 'exit');
  const { code, err } = JSON.parse(out) as { code: number; err: string };
  assert.doesNotMatch(err, /ERR_IPC_CHANNEL_CLOSED/);
  assert.equal(code, 0);
});
