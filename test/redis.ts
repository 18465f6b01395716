// A throwaway redis-server for tests (Debian's /usr/bin/redis-server), on loopback and a free port,
// without persistence: restart() brings it back on the same port with nothing in it, which is how
// tests play "Redis lost everything". Servers still running when the test process exits are killed.
// With `acl` it runs krata's ACL (contracts/redis/acl.ts) with those passwords, as the install does, and
// `url` carries no credentials (the test chooses which user connects).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { renderAclFile } from '../contracts/redis/acl.js';
import { freePort } from './free-port.js';

export const REDIS_SERVER = '/usr/bin/redis-server';

export interface TestRedis {
  /** redis://127.0.0.1:PORT */
  url: string;
  port: number;
  /** SIGTERM, waits for the exit, removes the directory it created. */
  stop(): Promise<void>;
  /** SIGKILL, waits for the exit (restart() may follow). */
  kill(): Promise<void>;
  /** Kills a running server if need be, then starts again on the same port, empty. */
  restart(): Promise<void>;
  /** redis://USER:PASSWORD@127.0.0.1:PORT for a user of the ACL (with `acl`). */
  urlAs(user: string, password: string): string;
}

/** Passwords for krata's two Redis users (the operator generates random ones in a cluster). */
export interface TestAcl {
  operator: string;
  agent: string;
}

const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of running) c.kill('SIGKILL');
});

/** The process id of the redis-server answering on `port` (INFO server), if one answers. */
function serverPid(port: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const sock = connect(port, '127.0.0.1');
    let answer = '';
    const done = (pid: number | undefined) => {
      sock.destroy();
      resolve(pid);
    };
    sock.setTimeout(1000, () => done(undefined));
    sock.on('error', () => done(undefined));
    sock.on('connect', () => sock.write('INFO server\r\n'));
    sock.on('data', (d) => {
      answer += d.toString();
      const m = /\r\nprocess_id:(\d+)\r\n/.exec(answer);
      if (m) done(Number(m[1]));
      else if (answer.startsWith('-')) done(undefined);
    });
  });
}

function exited(c: ChildProcess): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null) return Promise.resolve();
  return new Promise((r) => c.once('exit', () => r()));
}

/**
 * `args` replace the default server arguments (no persistence); port, bind address, directory and log
 * level are always the test's. `acl` writes krata's ACL file into the directory and loads it.
 */
export async function startRedis(opts: { port?: number; dir?: string; args?: string[]; acl?: TestAcl } = {}): Promise<TestRedis> {
  let port = opts.port ?? (await freePort());
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'krata-redis-'));
  const args = [...(opts.args ?? ['--save', '', '--appendonly', 'no'])];
  if (opts.acl) {
    const aclFile = join(dir, 'users.acl');
    writeFileSync(aclFile, renderAclFile(opts.acl), { mode: 0o600 });
    args.push('--aclfile', aclFile);
  }
  let child: ChildProcess | undefined;
  let output = '';

  const start = async () => {
    output = '';
    const c = spawn(REDIS_SERVER, [...args, '--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--loglevel', 'notice'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child = c;
    running.add(c);
    c.on('exit', () => running.delete(c));
    for (const stream of [c.stdout!, c.stderr!]) stream.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-4000)));
    const spawned = new Promise<Error | undefined>((r) => {
      c.once('spawn', () => r(undefined));
      c.once('error', r);
    });
    const err = await spawned;
    if (err) throw new Error(`${REDIS_SERVER}: ${err.message}`);
    // Ready when our process answers: a port another server took meanwhile is not ours. Unauthenticated
    // clients cannot ask an ACL'd server its pid (INFO): then its own log says it listens.
    const deadline = Date.now() + 10_000;
    const ours = async () =>
      opts.acl ? c.exitCode === null && /Ready to accept connections/.test(output) : (await serverPid(port)) === c.pid;
    while (!(await ours())) {
      if (c.exitCode !== null || Date.now() > deadline) {
        c.kill('SIGKILL');
        throw new Error(`redis-server on port ${port} did not start: ${output.trim().split('\n').slice(-5).join('\n')}`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  const signal = async (sig: NodeJS.Signals) => {
    if (!child) return;
    const c = child;
    child = undefined;
    c.kill(sig);
    await exited(c);
  };

  // A free port can be taken by another test's server before ours binds it: then try another.
  for (let attempt = 1; ; attempt++) {
    try {
      await start();
      break;
    } catch (e) {
      if (opts.port !== undefined || attempt === 5) throw e;
      port = await freePort();
    }
  }
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    async stop() {
      await signal('SIGTERM');
      if (!opts.dir) rmSync(dir, { recursive: true, force: true });
    },
    kill: () => signal('SIGKILL'),
    urlAs: (user, password) => `redis://${encodeURIComponent(user)}:${encodeURIComponent(password)}@127.0.0.1:${port}`,
    async restart() {
      await signal('SIGKILL');
      await start();
    },
  };
}
