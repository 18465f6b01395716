// kratactl image pull|import|ls|rm|prune against a real registry (Debian's docker-registry on
// 127.0.0.1), both ways: through a node agent (the real Agent and image cache behind the API server,
// on the test hypervisor) and --offline (krata-node-agent image on a state directory, no agent). The
// same commands say the same things either way. Then what only one way has: no agent, the cache's lock.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startRegistry, type Registry } from '../registry.js';
import { buildImage, pushImage, writeDockerSave, writeOciLayout, type BuiltImage } from '../oci-images.js';
import { kratactl as cli, type CliResult } from '../harness/kratactl.js';
import { buildTar } from '../../lib/tar.js';
import { systemClock } from '../../lib/clock.js';
import type { StoredImage } from '../../contracts/agent-api/types.js';
import type { Guest } from '../../crds/generated/types.js';
import { startApiServer, type ApiServer } from '../../node-agent/api/server.js';
import { NodeAgentService } from '../../node-agent/service/agent-service.js';
import { EventRecorder } from '../../node-agent/reconcile/events.js';
import { FakeHypervisor } from '../../node-agent/runtime/fake-hypervisor.js';
import { GuestStore, guestKey } from '../../node-agent/store/guest-store.js';
import { ImageStore } from '../../node-agent/image/store.js';
import { lockImageCache } from '../../node-agent/image/cache-lock.js';
import { InvalidRequest } from '../../node-agent/service/service.js';
import { FakeAgentService } from '../doubles/fake-agent-service.js';

const work = mkdtempSync(join(tmpdir(), 'krata-image-cli-test-'));
// No ~/.docker/config.json of the machine's: HOME is an empty directory.
const env = { HOME: join(work, 'home') };
let reg: Registry;
let n = 0;

function image(text: string): BuiltImage {
  return buildImage({
    layers: [
      {
        compression: 'gzip',
        tar: buildTar([
          { path: 'etc/', type: 'dir' },
          { path: 'etc/motd', data: Buffer.from(text) },
        ]),
      },
      { compression: 'zstd', tar: buildTar([{ path: 'srv/data', data: Buffer.from(`${text}\n`.repeat(1000)) }]) },
    ],
    config: { Cmd: ['/bin/sh'] },
  });
}

const short = (digest: string) => digest.slice('sha256:'.length, 'sha256:'.length + 12);

/** A host's state directory and the way kratactl image reaches its cache. */
interface Host {
  state: string;
  /** The host's stored Guests (the agent's own store when one runs). */
  guests: GuestStore;
  /** kratactl image SUB ARGS against this host. */
  run(args: string[]): Promise<CliResult>;
  close(): Promise<void>;
}

async function agentHost(): Promise<Host> {
  const state = join(work, `state-${++n}`);
  const guests = new GuestStore(state);
  const images = new ImageStore({ root: join(state, 'images'), registry: { insecure: [reg.host] } });
  const agent = new NodeAgentService(
    guests,
    new FakeHypervisor({ cpus: 8, memoryMiB: 8192 }),
    new EventRecorder(systemClock),
    images,
    systemClock,
  );
  const socket = join(work, `agent-${n}.sock`);
  const server: ApiServer = await startApiServer(agent, { socketPath: socket, log: () => {} });
  return {
    state,
    guests,
    run: ([sub, ...rest]) => cli(['image', sub!, '--agent', socket, ...rest], { env }),
    close: () => server.close(),
  };
}

async function offlineHost(): Promise<Host> {
  const state = join(work, `state-${++n}`);
  return {
    state,
    guests: new GuestStore(state),
    run: ([sub, ...rest]) => cli(['image', sub!, '--offline', '--store', state, '--insecure-registry', reg.host, ...rest], { env }),
    close: async () => {},
  };
}

async function listed(host: Host): Promise<StoredImage[]> {
  const r = await host.run(['ls', '-o', 'json']);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as StoredImage[];
}

/** A Guest on the host whose domain runs from `digest`. */
function guestUsing(host: Host, digest: string): void {
  const metadata = { name: `user-${++n}`, namespace: 'default' };
  const g = { apiVersion: 'krata.dev/v1alpha1', kind: 'Guest', metadata, spec: { image: 'x', resources: { cpus: 1, memory: '64Mi' } } };
  host.guests.putAll([g as Guest], new Date());
  host.guests.setStatus(guestKey('default', g.metadata.name), { phase: 'Running', imageDigest: digest } as never);
}

const app = image('app');
const other = image('other');

before(async () => {
  reg = await startRegistry();
  await pushImage(reg, 'test/app', 'v1', app);
  await pushImage(reg, 'test/other', 'v1', other);
});
after(async () => {
  await reg?.stop();
  rmSync(work, { recursive: true, force: true });
});

for (const [mode, newHost] of [
  ['through the node agent', agentHost],
  ['--offline', offlineHost],
] as const) {
  describe(`kratactl image ${mode}`, () => {
    let host: Host;
    before(async () => {
      host = await newHost();
    });
    after(() => host.close());

    test('pull -q prints the digest and nothing else', async () => {
      const r = await host.run(['pull', '-q', `${reg.host}/test/app:v1`]);
      assert.equal(r.stderr, '');
      assert.equal(r.code, 0);
      assert.equal(r.stdout, `${app.manifestDigest}\n`);
    });

    test('ls -o json lists the pulled image with its names, digest and path', async () => {
      const images = await listed(host);
      assert.equal(images.length, 1);
      const img = images[0]!;
      assert.deepEqual(img.names, [`${reg.host}/test/app:v1`]);
      assert.equal(img.digest, app.manifestDigest);
      assert.equal(img.format, 'squashfs');
      assert.equal(img.source, 'registry');
      assert.equal(img.path, join(host.state, 'images', `sha256-${app.manifestDigest.slice(7)}.squashfs`));
      assert.ok(existsSync(img.path));
      assert.ok(img.size > 0);
    });

    test('ls prints a table: NAME, DIGEST (short), SIZE, LAST USED; -o wide adds the platform and path', async () => {
      const r = await host.run(['ls']);
      assert.equal(r.code, 0, r.stderr);
      const lines = r.stdout.trimEnd().split('\n');
      assert.equal(lines.length, 2);
      assert.match(lines[0]!, /^NAME\s+DIGEST\s+SIZE\s+LAST USED$/);
      const [name, digest, ...rest] = lines[1]!.split(/\s{3,}/);
      assert.equal(name, `${reg.host}/test/app:v1`);
      assert.equal(digest, app.manifestDigest.slice(0, 19));
      assert.match(rest[0]!, /^\d+(\.\d)? (B|KiB|MiB)$/);
      assert.match(rest[1]!, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
      // The columns line up: DIGEST starts where the digest does.
      assert.equal(lines[0]!.indexOf('DIGEST'), lines[1]!.indexOf(app.manifestDigest.slice(0, 19)));
      const wide = await host.run(['ls', '-o', 'wide']);
      assert.match(wide.stdout, /^NAME\s+DIGEST\s+SIZE\s+LAST USED\s+PLATFORM\s+PATH\n/);
      assert.ok(wide.stdout.includes(app.manifestDigest) && wide.stdout.includes('linux/amd64') && wide.stdout.includes('.squashfs'));
    });

    test('pull of a missing tag exits 1 with "error: … not found"', async () => {
      const r = await host.run(['pull', '-q', `${reg.host}/test/app:missing`]);
      assert.equal(r.code, 1);
      assert.equal(r.stdout, '');
      assert.match(r.stderr, new RegExp(`^error: ${reg.host.replace(/\./g, '\\.')}/test/app:missing: .*HTTP 404: not found`));
      assert.equal(r.stderr.trimEnd().split('\n').length, 1, 'one line, no stack trace');
    });

    test('pull without -q reports progress on a non-terminal stderr, one line per step', async () => {
      const ref = `${reg.host}/test/other:v1`;
      const r = await host.run(['pull', ref]);
      assert.equal(r.code, 0, r.stderr);
      const total = other.layers.reduce((s, l) => s + l.size, 0);
      const lines = r.stderr.trimEnd().split('\n');
      assert.equal(lines[0], `${ref}: ${other.manifestDigest}, 2 layers, ${(total / 1e6).toFixed(1)} MB`);
      for (const l of other.layers) {
        assert.ok(
          lines.includes(`${short(l.digest)}: downloaded ${(l.size / 1e6).toFixed(1)} MB`),
          `downloaded line for ${l.digest} in:\n${r.stderr}`,
        );
        assert.ok(lines.includes(`${short(l.digest)}: unpacked`), `unpacked line for ${l.digest} in:\n${r.stderr}`);
      }
      assert.equal(lines.length, 1 + 2 * other.layers.length);
      assert.ok(!r.stderr.includes('\x1b'), 'no terminal escapes in line mode');
      assert.match(r.stdout, new RegExp(`^${ref.replace(/\./g, '\\.')} ${other.manifestDigest} \\d+(\\.\\d)? (B|KiB|MiB)\\n$`));
      // Again: a cache hit, said in one line.
      const again = await host.run(['pull', ref]);
      assert.equal(again.code, 0);
      assert.equal(again.stderr, `${ref}: ${other.manifestDigest} is cached\n`);
    });

    test('rm NAME removes it; an unknown image exits 1', async () => {
      const r = await host.run(['rm', `${reg.host}/test/other:v1`]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, `removed ${reg.host}/test/other:v1 (${other.manifestDigest})\n`);
      assert.deepEqual(
        (await listed(host)).map((i) => i.digest),
        [app.manifestDigest],
      );
      const missing = await host.run(['rm', `${reg.host}/test/other:v1`]);
      assert.equal(missing.code, 1);
      assert.match(missing.stderr, /^error: no image .*test\/other:v1 in the cache\n$/);
    });

    test('import of an OCI layout directory and of a docker save tarball', async () => {
      const offline = image('offline');
      const layout = join(work, `layout-${++n}`);
      writeOciLayout(layout, offline, 'example.com/offline/app:1.0');
      const r = await host.run(['import', '-q', layout]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, `${offline.manifestDigest}\n`);
      const img = (await listed(host)).find((i) => i.digest === offline.manifestDigest);
      assert.deepEqual(img?.names, ['example.com/offline/app:1.0']);
      assert.equal(img?.source, 'import');
      // --name overrides the layout's name; an import with progress says what it unpacked.
      const renamed = join(work, `layout-${++n}`);
      const second = image('renamed');
      writeOciLayout(renamed, second);
      const named = await host.run(['import', '--name', 'example.com/renamed:2', renamed]);
      assert.equal(named.code, 0, named.stderr);
      assert.match(named.stderr, new RegExp(`^example\\.com/renamed:2: ${second.manifestDigest}, 2 layers`));
      assert.ok(named.stderr.includes(`${short(second.layers[0]!.digest)}: unpacked`));
      assert.match(named.stdout, new RegExp(`^example\\.com/renamed:2 ${second.manifestDigest} `));
      const archive = join(work, `saved-${++n}.tar`);
      writeDockerSave(archive, image('saved'), ['example.com/saved:3']);
      const saved = await host.run(['import', archive]);
      assert.equal(saved.code, 0, saved.stderr);
      assert.match(saved.stdout, /^example\.com\/saved:3 sha256:[0-9a-f]{64} /);
      assert.ok((await listed(host)).some((i) => i.names.includes('example.com/saved:3')));
      const bad = await host.run(['import', join(work, 'nothing-here')]);
      assert.equal(bad.code, 1);
      assert.match(bad.stderr, /^error: .*nothing-here: no such file or directory\n$/);
    });

    test('rm and prune leave alone what the Guests use', async () => {
      const digest = app.manifestDigest;
      guestUsing(host, digest);
      const rm = await host.run(['rm', digest]);
      assert.equal(rm.code, 1);
      assert.match(rm.stderr, /used by a Guest/);
      const prune = await host.run(['prune', '--budget', '0']);
      assert.equal(prune.code, 0, prune.stderr);
      const lines = prune.stdout.trimEnd().split('\n');
      assert.ok(lines.length >= 2 && lines.slice(0, -1).every((l) => /^removed \S+ \(\d+(\.\d)? (B|KiB|MiB)\)$/.test(l)), prune.stdout);
      assert.match(lines.at(-1)!, /^freed \d+(\.\d)? (B|KiB|MiB), cache holds \d/);
      assert.deepEqual(
        (await listed(host)).map((i) => i.digest),
        [digest],
        'the image in use stays',
      );
    });

    test('prune --budget keeps what fits; without Guests, --budget 0 removes every image', async () => {
      const fresh = await newHost();
      try {
        assert.equal((await fresh.run(['pull', '-q', `${reg.host}/test/app:v1`])).code, 0);
        const r = await fresh.run(['prune', '--budget', '1G']);
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stdout, /^freed 0 B, cache holds \d/);
        assert.equal((await listed(fresh)).length, 1);
        const all = await fresh.run(['prune']);
        assert.equal(all.code, 0, all.stderr);
        assert.match(all.stdout, /^removed .*\nfreed \d+(\.\d)? (B|KiB|MiB), cache holds 0 B\n$/);
        assert.equal((await fresh.run(['ls'])).stdout, 'NAME   DIGEST   SIZE   LAST USED\n');
      } finally {
        await fresh.close();
      }
    });

    test('usage errors exit 2 and point to the usage text', async () => {
      const cases: Array<[string[], RegExp]> = [
        [['prune', '--budget', 'lots'], /^error: --budget "lots" is not a size \(e\.g\. 500M, 20G\)\n/],
        [['frobnicate'], /^error: unknown image command "frobnicate" \(pull, import, ls, rm, prune\)\n/],
        [['ls', '-o', 'yaml'], /^error: --output must be table, wide or json, not "yaml"\n/],
        [['pull'], /^error: image pull takes one REFERENCE\n/],
        [['rm'], /^error: image rm takes one or more IMAGE/],
        [['ls', '--frob'], /^error: unknown flag: --frob\n/],
      ];
      for (const [args, message] of cases) {
        const r = await host.run(args);
        assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
        assert.equal(r.stdout, '');
        assert.match(r.stderr, message);
        assert.match(r.stderr, /Run 'kratactl image --help' for usage\.\n$/);
      }
    });
  });
}

test('image with no command, and --help', async () => {
  const none = await cli(['image'], { env });
  assert.equal(none.code, 2);
  assert.match(none.stderr, /^error: image needs a command: pull, import, ls, rm or prune\n/);
  const help = await cli(['image', '--help'], { env });
  assert.equal(help.code, 0);
  assert.match(help.stdout, /^Manage the host's image cache/);
  assert.match(help.stdout, /kratactl image prune \[--budget SIZE\]/);
  assert.match(help.stdout, /--offline/);
});

test('with no agent, kratactl image names the socket and suggests --offline', async () => {
  const socket = join(work, 'no-agent.sock');
  for (const args of [['ls'], ['pull', 'alpine'], ['rm', 'alpine', 'busybox'], ['prune'], ['import', work]]) {
    const r = await cli(['image', ...args, '--agent', socket], { env });
    assert.equal(r.code, 1, args.join(' '));
    assert.equal(
      r.stderr,
      `error: cannot reach the node agent at ${socket}: is krata-node-agent running? ` +
        'Without one, add --offline to work on the cache itself (as root; --store DIR, default /var/lib/krata).\n' +
        '  another socket: --agent SOCKET or KRATA_AGENT_SOCKET=SOCKET\n' +
        '  start the agent as root in dom0: krata-node-agent (its options: krata-node-agent --help)\n',
      args.join(' '),
    );
  }
});

test("--offline's options are refused through the agent, and --agent with --offline", async () => {
  const cases: Array<[string[], RegExp]> = [
    [
      ['pull', 'alpine', '--store', work],
      /^error: --store is for --offline \(kratactl on the cache itself\); through the node agent, its own cache and registry settings apply\n/,
    ],
    [['ls', '--docker-config', '/dev/null'], /^error: --docker-config is for --offline/],
    [['pull', 'alpine', '--platform', 'linux/arm64'], /^error: --platform is for --offline/],
    [['pull', 'alpine', '--mirror', 'docker.io=http://m'], /^error: --mirror is for --offline/],
    [['ls', '--offline', '--agent', '/x.sock'], /^error: --agent names the node agent, which --offline does without\n/],
  ];
  for (const [args, message] of cases) {
    const r = await cli(['image', ...args], { env });
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message);
  }
});

test('an import the agent refuses before reading it: the error, and the upload stops', async () => {
  const service = new FakeAgentService();
  const socketPath = join(work, `fake-${++n}.sock`);
  const server = await startApiServer(service, { socketPath, log: () => {} });
  try {
    const archive = join(work, `big-${n}.tar`);
    writeFileSync(archive, Buffer.alloc(32 * 1024 * 1024));
    service.failures.set('importImage', new InvalidRequest('this agent has no image cache', [], 503));
    const r = await cli(['image', 'import', archive, '--agent', socketPath], { env });
    assert.equal(r.code, 1);
    assert.equal(r.stderr, 'error: this agent has no image cache\n');
    // The connection was cut: the server is free for the next request.
    assert.equal((await cli(['image', 'ls', '--agent', socketPath], { env })).code, 0);
  } finally {
    await server.close();
  }
});

test('in cluster mode the agent refuses imports: the cache serves tenants, names come from registries', async () => {
  const state = join(work, `state-${++n}`);
  const images = new ImageStore({ root: join(state, 'images') });
  const hv = new FakeHypervisor({ cpus: 8, memoryMiB: 8192 });
  const agent = new NodeAgentService(new GuestStore(state), hv, new EventRecorder(systemClock), images, systemClock, {
    managedBy: 'Redis redis://r:6379',
  });
  const socketPath = join(work, `cluster-${n}.sock`);
  const server = await startApiServer(agent, { socketPath, log: () => {} });
  try {
    const layout = join(work, `layout-${++n}`);
    writeOciLayout(layout, image('planted'), 'docker.io/library/nginx:latest');
    const r = await cli(['image', 'import', layout, '--agent', socketPath], { env });
    assert.equal(r.code, 1);
    assert.equal(
      r.stderr,
      'error: this host is managed by the cluster (Redis redis://r:6379): its images come from registries; import is for a single host\n',
    );
    assert.deepEqual(images.list(), []);
  } finally {
    await server.close();
  }
});

test('--offline: a writer fails while another holds the cache, naming it; readers go on; a dead holder is taken over', async () => {
  const host = await offlineHost();
  const root = join(host.state, 'images');
  const agentLock = lockImageCache(root, 'krata-node-agent');
  try {
    for (const args of [['pull', `${reg.host}/test/app:v1`], ['rm', 'x'], ['prune'], ['import', work]]) {
      const r = await host.run(args);
      assert.equal(r.code, 1, args.join(' '));
      assert.equal(
        r.stderr,
        `error: the image cache ${root} is in use by krata-node-agent (pid ${process.pid}): ` +
          'the node agent runs; drop --offline and kratactl image goes through it\n',
      );
    }
    assert.deepEqual(await listed(host), [], 'ls reads without the lock');
  } finally {
    agentLock.release();
  }
  const other = lockImageCache(root, 'krata-node-agent image');
  try {
    const r = await host.run(['prune']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /in use by krata-node-agent image \(pid \d+\); --offline writes the cache only while nothing else does/);
  } finally {
    other.release();
  }
  assert.equal((await host.run(['pull', '-q', `${reg.host}/test/app:v1`])).code, 0, 'free again');
});

test('krata-node-agent holds the cache while it runs: --offline is refused, kratactl image goes through it', async () => {
  const state = join(work, `state-${++n}`);
  const socket = join(work, `daemon-${n}.sock`);
  const main = fileURLToPath(new URL('../../node-agent/main.js', import.meta.url));
  const args = ['--state', state, '--socket', socket, '--fake-hypervisor', '4096', '--metrics', 'off', '--insecure-registry', reg.host];
  const daemon = spawn(process.execPath, [main, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  daemon.stderr!.on('data', (c) => (log += c));
  try {
    for (let i = 0; i < 300 && !existsSync(socket); i++) await new Promise((r) => setTimeout(r, 20));
    assert.ok(existsSync(socket), `the agent serves its socket:\n${log}`);
    const offline = await cli(['image', 'pull', '--offline', '--store', state, `${reg.host}/test/app:v1`], { env });
    assert.equal(offline.code, 1);
    assert.match(
      offline.stderr,
      /^error: the image cache .* is in use by krata-node-agent \(pid \d+\): the node agent runs; drop --offline/,
    );
    const through = await cli(['image', 'pull', '-q', '--agent', socket, `${reg.host}/test/app:v1`], { env });
    assert.equal(through.code, 0, through.stderr);
    assert.equal(through.stdout, `${app.manifestDigest}\n`);
  } finally {
    daemon.kill('SIGTERM');
    await new Promise((r) => (daemon.exitCode !== null ? r(undefined) : daemon.on('exit', r)));
  }
  const after = await cli(['image', 'ls', '-q', '--offline', '--store', state, '-o', 'json'], { env });
  assert.equal(JSON.parse(after.stdout).length, 1, 'the agent stopped: --offline works, and sees what the agent pulled');
  assert.equal((await cli(['image', 'prune', '--offline', '--store', state], { env })).code, 0);
});
