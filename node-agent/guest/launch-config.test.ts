// Both sides of the launch config: what the agent composes, guest-init (built here with Debian's
// cargo, offline) reads and resolves as the container process. Also runs guest-init's own cargo tests.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { composeLaunchConfig, LAUNCH_CONFIG_PATH, launchConfigArchive, LaunchConfigError, serializeLaunchConfig } from './launch-config.js';

const crate = resolve(dirname(fileURLToPath(import.meta.url)), '../../../guest-init');
// Debian's toolchain (scripts/install-deps), never a rustup one that may shadow it in PATH.
const cargo = '/usr/bin/cargo';
const env = { ...process.env, PATH: `/usr/bin:/bin:${process.env.PATH ?? ''}` };
const binary = join(crate, 'target/debug/guest-init');

before(() => {
  assert.ok(existsSync(cargo), `${cargo} is missing: run scripts/install-deps (Debian's cargo and rustc build guest-init)`);
  execFileSync(cargo, ['build', '--offline', '--quiet'], { cwd: crate, env, stdio: ['ignore', 'inherit', 'inherit'] });
});

test("guest-init's own tests pass (cargo test, offline, Debian's toolchain)", () => {
  const r = spawnSync(cargo, ['test', '--offline', '--quiet'], { cwd: crate, env, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /test result: ok\. [1-9]\d* passed; 0 failed/);
});

function imageRoot(): string {
  const root = mkdtempSync(join(tmpdir(), 'krata-image-'));
  mkdirSync(join(root, 'etc'));
  mkdirSync(join(root, 'usr/sbin'), { recursive: true });
  writeFileSync(join(root, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\nnginx:x:101:101:nginx:/var/cache/nginx:/sbin/nologin\n');
  writeFileSync(join(root, 'etc/group'), 'root:x:0:\nnginx:x:101:\nwww-data:x:33:nginx\n');
  writeFileSync(join(root, 'usr/sbin/nginx'), '#!/bin/sh\n');
  chmodSync(join(root, 'usr/sbin/nginx'), 0o755);
  writeFileSync(join(root, 'usr/sbin/not-executable'), '');
  return root;
}

function plan(config: Buffer | string, root: string): { status: number | null; out: Record<string, unknown>; stderr: string } {
  const file = join(mkdtempSync(join(tmpdir(), 'krata-launch-')), 'launch.json');
  writeFileSync(file, config);
  const r = spawnSync(binary, ['plan', file, root], { encoding: 'utf8' });
  return { status: r.status, out: r.status === 0 ? JSON.parse(r.stdout) : {}, stderr: r.stderr };
}

const nginx = {
  Entrypoint: ['/docker-entrypoint.sh'],
  Cmd: ['nginx', '-g', 'daemon off;'],
  Env: ['PATH=/usr/local/sbin:/usr/sbin:/bin', 'NGINX_VERSION=1.25.3'],
  WorkingDir: '',
  User: 'nginx',
};

test('what the agent composes, guest-init resolves: Pod command/args, env expansion, the image user, PATH', () => {
  const config = composeLaunchConfig(
    'web',
    {
      command: ['nginx'],
      args: ['-g', 'daemon off; worker_processes $(WORKERS);'],
      env: [
        { name: 'WORKERS', value: '2' },
        { name: 'NGINX_VERSION', value: 'pinned-$(WORKERS)' },
      ],
      tty: false,
      terminationGracePeriodSeconds: 20,
    },
    nginx,
  );
  const r = plan(serializeLaunchConfig(config), imageRoot());
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(r.out.argv, ['/usr/sbin/nginx', '-g', 'daemon off; worker_processes 2;']);
  assert.deepEqual([r.out.uid, r.out.gid, r.out.groups], [101, 101, [101, 33]]);
  assert.equal(r.out.home, '/var/cache/nginx');
  assert.equal(r.out.workingDir, '/');
  const envOut = r.out.env as string[];
  assert.ok(envOut.includes('NGINX_VERSION=pinned-2'), envOut.join(' '));
  assert.ok(envOut.includes('HOSTNAME=web'));
  assert.ok(envOut.includes('PATH=/usr/local/sbin:/usr/sbin:/bin'));
});

test('without command and args the image runs as built; a user override and workingDir win', () => {
  const config = composeLaunchConfig(
    'web',
    { user: '0:0', workingDir: '/srv', hostname: 'front', tty: true, terminationGracePeriodSeconds: 30 },
    { ...nginx, Entrypoint: null, Cmd: ['nginx'] },
  );
  const r = plan(serializeLaunchConfig(config), imageRoot());
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(r.out.argv, ['/usr/sbin/nginx']);
  assert.deepEqual([r.out.uid, r.out.gid, r.out.workingDir], [0, 0, '/srv']);
  assert.ok((r.out.env as string[]).includes('TERM=xterm'));
  assert.ok((r.out.env as string[]).includes('HOSTNAME=front'));
});

test('guest-init reports what it cannot run, naming it', () => {
  const root = imageRoot();
  const compose = (image: typeof nginx) =>
    serializeLaunchConfig(composeLaunchConfig('web', { tty: false, terminationGracePeriodSeconds: 30 }, image));
  let r = plan(compose({ ...nginx, Entrypoint: ['not-executable'] }), root);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /"not-executable": executable file not found in PATH/);
  r = plan(compose({ ...nginx, User: 'ghost' }), root);
  assert.match(r.stderr, /user "ghost" is not in the image's \/etc\/passwd/);
  r = plan('{"version":2}', root);
  assert.match(r.stderr, /launch.json: version: launch config version 2 is not the version this init reads \(1\)/);
  r = plan('{"version":1,"process":{"comand":["x"]}}', root);
  assert.match(r.stderr, /process\.comand: unknown field/);
});

test('the agent refuses what guest-init would, with the Guest field named', () => {
  const base = { tty: false, terminationGracePeriodSeconds: 30 };
  assert.throws(
    () => composeLaunchConfig('g', { ...base, args: ['a\0b'] }, {}),
    (e: unknown) => e instanceof LaunchConfigError && e.message === 'spec.args[0]: contains a NUL character',
  );
  assert.throws(
    () => composeLaunchConfig('g', { ...base, env: [{ name: 'A=B' }] }, {}),
    /spec\.env\[0\]\.name: "A=B" is not a variable name/,
  );
  assert.throws(() => composeLaunchConfig('g', { ...base, workingDir: 'srv' }, {}), /spec\.workingDir: "srv" is not an absolute path/);
  assert.throws(() => composeLaunchConfig('g', base, { Cmd: ['x\0'] }), /image\.Cmd\[0\]: contains a NUL character/);
  assert.throws(
    () => serializeLaunchConfig(composeLaunchConfig('g', base, { Env: ['X=' + 'y'.repeat(1 << 20)] })),
    /launch\.json: \d+ bytes, more than 1048576/,
  );
});

test('the archive appended to the initrd holds krata/launch.json, for PID 1 only', () => {
  const config = composeLaunchConfig('web', { env: [{ name: 'A', value: '1' }], tty: false, terminationGracePeriodSeconds: 30 }, nginx);
  const archive = launchConfigArchive(config);
  const dir = mkdtempSync(join(tmpdir(), 'krata-launch-archive-'));
  try {
    execFileSync('cpio', ['-i', '--quiet', '--make-directories', '--no-absolute-filenames'], { cwd: dir, input: archive });
    const file = join(dir, LAUNCH_CONFIG_PATH);
    assert.ok(readFileSync(file).equals(serializeLaunchConfig(config)));
    assert.equal(statSync(file).mode & 0o777, 0o600);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
