// guest-init as PID 1, for real but without a kernel boot: in a new PID, mount and UTS namespace,
// chrooted into an initrd-like directory (/init, and the launch config archive unpacked over it as
// the kernel does: krata/launch.json), with the image as a squashfs file on a read-only loop device
// (as in a guest, where it is xvda). It mounts what a guest needs, builds the overlay root, switches
// into it, runs the process as the image's user and reports how the process ended on its console
// (stdout here). Needs root, loop devices, squashfs-tools, cpio and busybox-static
// (scripts/install-deps).
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { linkSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { holdLoop, type HeldLoop } from '../xen/index.js';
import { busyboxImage, launchArchive, type GuestSpecPart } from '../../test/guest-disks.js';
import { ChannelPeer, T } from '../../test/doubles/guest-channel-peer.js';
import type { GuestNetworkConfig, OciImageConfig } from './launch-config.js';

const crate = resolve(dirname(fileURLToPath(import.meta.url)), '../../../guest-init');
const init = join(crate, 'target/debug/guest-init');
const work = mkdtempSync(join(tmpdir(), 'krata-pid1-'));
const loops: HeldLoop[] = [];
let imageFile = '';

before(() => {
  execFileSync('/usr/bin/cargo', ['build', '--offline', '--quiet'], {
    cwd: crate,
    env: { ...process.env, PATH: `/usr/bin:/bin:${process.env.PATH ?? ''}` },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  imageFile = busyboxImage(work, ['sh', 'id', 'hostname', 'cat', 'sleep', 'kill', 'ping', 'ip', 'tty', 'touch', 'stty']);
});

after(() => {
  for (const l of loops) l.release(); // autoclear: each goes once its guest's mount is gone
  rmSync(work, { recursive: true, force: true });
});

/** The guest's initrd as the kernel would unpack it: /init, then the launch config archive over it. */
function initrdRoot(name: string, archive: string): string {
  const root = join(work, `initrd-${name}`);
  mkdirSync(root);
  linkSync(init, join(root, 'init'));
  execFileSync('cpio', ['-i', '--quiet', '--make-directories', '--no-absolute-filenames'], { cwd: root, input: readFileSync(archive) });
  return root;
}

/** unshare's arguments for a guest: guest-init reads its default /krata/launch.json, the image is a loop device. */
function disks(name: string, image: OciImageConfig, spec: GuestSpecPart, network?: GuestNetworkConfig): string[] {
  const root = initrdRoot(name, launchArchive(work, name, image, spec, network));
  const imageLoop = holdLoop(imageFile);
  loops.push(imageLoop);
  return ['--pid', '--mount', '--uts', '--fork', '--kill-child', 'chroot', root, '/init', '--image', imageLoop.path];
}

/** unshare --fork: the namespace's PID 1 is unshare's only child (waited for briefly as it starts). */
async function namespaceInit(unsharePid: number): Promise<number> {
  for (let i = 0; i < 200; i++) {
    try {
      const init = Number(readFileSync(`/proc/${unsharePid}/task/${unsharePid}/children`, 'utf8').trim().split(' ')[0]);
      if (init) return init;
    } catch {
      // not started yet
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`unshare ${unsharePid} started no namespace init`);
}

/** Boot in a network namespace of its own, joined to this host by a veth pair whose guest end is eth0. */
async function bootWithVeth(
  name: string,
  image: OciImageConfig,
  spec: GuestSpecPart,
  network: GuestNetworkConfig,
  hostAddress: string,
  onReady?: (init: number) => void,
): Promise<string> {
  const args = disks(name, image, spec, network);
  const child = spawn('unshare', ['--net', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  let init = 0;
  let readySeen = false;
  // The guest prints KRATA-TEST-READY when the host may look at it while it runs.
  const collect = (d: Buffer) => {
    output += d.toString();
    if (onReady && !readySeen && output.includes('KRATA-TEST-READY')) {
      readySeen = true;
      onReady(init);
    }
  };
  child.stdout.on('data', collect);
  child.stderr.on('data', collect);
  const ended = new Promise<void>((resolve) => child.on('close', () => resolve()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  init = await namespaceInit(child.pid!);
  // The host end is ready before the guest end appears in the namespace as eth0 (moved there last):
  // the guest may use it, or fail and take the namespace down, as soon as it sees it.
  const hostEnd = `kt${process.pid % 100000}`;
  const peer = `kp${process.pid % 100000}`;
  execFileSync('ip', ['link', 'add', hostEnd, 'type', 'veth', 'peer', 'name', peer]);
  try {
    execFileSync('ip', ['addr', 'add', hostAddress, 'dev', hostEnd]);
    execFileSync('ip', ['link', 'set', hostEnd, 'up']);
    execFileSync('ip', ['link', 'set', peer, 'netns', String(init), 'name', 'eth0']);
    await ended;
  } finally {
    clearTimeout(timer);
    // Gone with the namespace normally; removed here when the test failed before the move.
    spawnSync('ip', ['link', 'del', hostEnd], { stdio: 'ignore' });
  }
  return output;
}

function boot(name: string, image: OciImageConfig, spec: GuestSpecPart): { stdout: string; status: number | null } {
  // Something to read on init's stdin (the console): a process without a TTY must not get it.
  const r = spawnSync('unshare', disks(name, image, spec), { encoding: 'utf8', timeout: 60_000, input: 'typed-on-the-console\n' });
  return { stdout: r.stdout + r.stderr, status: r.status };
}

/** Boot, wait for `ready` on the console, send SIGTERM to the namespace's PID 1 (as a shutdown request does), collect the console. */
async function bootAndStop(name: string, image: OciImageConfig, spec: GuestSpecPart): Promise<string> {
  const child = spawn('unshare', disks(name, image, spec), { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const ended = new Promise<void>((resolve) => child.on('close', () => resolve()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  await new Promise<void>((resolve) => {
    const onData = (d: Buffer) => {
      output += d.toString();
      if (output.includes('ready')) resolve();
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('close', () => resolve());
  });
  process.kill(await namespaceInit(child.pid!), 'SIGTERM');
  await ended;
  clearTimeout(timer);
  return output;
}

const base = { tty: false, terminationGracePeriodSeconds: 5 };

test('runs the image as its user, with the Guest env and hostname, and reports the exit code', () => {
  const r = boot(
    'exit7',
    {
      Cmd: [
        'sh',
        '-c',
        'id; echo "greeting=$GREETING home=$HOME"; hostname; cat /etc/hostname; echo written > /home/app/f && cat /home/app/f; exit 7',
      ],
      User: 'app',
    },
    { ...base, env: [{ name: 'GREETING', value: 'hello' }] },
  );
  assert.match(r.stdout, /uid=1000\(app\) gid=1000\(app\) groups=(50\(staff\),1000\(app\)|1000\(app\),50\(staff\))$/m, r.stdout);
  assert.match(r.stdout, /greeting=hello home=\/home\/app/);
  assert.match(r.stdout, /^exit7$/m);
  assert.match(r.stdout, /^written$/m, 'the root is writable (overlay over the read-only image)');
  assert.match(r.stdout, /KRATA-EXIT \{"exitCode":7\}/);
});

test('without a TTY the process reads nothing; cgroup2 is mounted', () => {
  const r = boot(
    'stdin',
    { Cmd: ['sh', '-c', 'read line; echo "read=[$line] rc=$?"; cat /proc/self/mountinfo | grep -c " /sys/fs/cgroup .* cgroup2 "'] },
    base,
  );
  assert.match(r.stdout, /read=\[\] rc=1/, r.stdout);
  assert.match(r.stdout, /^1$/m, 'cgroup2 at /sys/fs/cgroup');
});

test('a process killed by a signal is reported as that signal, not as an exit code', () => {
  const r = boot('killed', { Cmd: ['sh', '-c', 'kill -9 $$'] }, base);
  assert.match(r.stdout, /KRATA-EXIT \{"signal":9\}/, r.stdout);
});

test('orphans are reaped and the main process decides the end', () => {
  // The shell leaves a background child behind and exits: init must not wait for it.
  const r = boot('orphan', { Cmd: ['sh', '-c', 'sleep 30 & exit 3'] }, base);
  assert.match(r.stdout, /KRATA-EXIT \{"exitCode":3\}/, r.stdout);
});

test('init failures are reported with their reason', () => {
  let r = boot('ghost', { Cmd: ['id'], User: 'ghost' }, base);
  assert.match(r.stdout, /KRATA-INIT-ERROR user "ghost" is not in the image's \/etc\/passwd/, r.stdout);
  r = boot('missing', { Cmd: ['no-such-command'] }, base);
  assert.match(r.stdout, /KRATA-INIT-ERROR "no-such-command": executable file not found in PATH/, r.stdout);
  r = boot('workdir', { Cmd: ['id'] }, { ...base, workingDir: '/nonexistent' });
  assert.match(r.stdout, /KRATA-INIT-ERROR chdir \/nonexistent: No such file or directory/, r.stdout);
});

test('a guest without its launch config is an init failure naming the file', () => {
  const args = disks('noconfig', { Cmd: ['id'] }, base);
  rmSync(join(work, 'initrd-noconfig/krata'), { recursive: true });
  const r = spawnSync('unshare', args, { encoding: 'utf8', timeout: 60_000 });
  assert.match(r.stdout + r.stderr, /KRATA-INIT-ERROR \/krata\/launch\.json: No such file or directory/, r.stdout + r.stderr);
});

test('a shutdown request reaches the process as SIGTERM', async () => {
  const out = await bootAndStop(
    'term',
    { Cmd: ['sh', '-c', 'trap "echo got-term; exit 0" TERM; echo ready; while :; do sleep 1; done'] },
    { ...base, terminationGracePeriodSeconds: 20 },
  );
  assert.match(out, /got-term/, out);
  assert.match(out, /KRATA-EXIT \{"exitCode":0\}/);
});

test('a process that ignores SIGTERM is killed when the grace period ends', async () => {
  const out = await bootAndStop(
    'stubborn',
    { Cmd: ['sh', '-c', 'trap "" TERM; echo ready; while :; do sleep 1; done'] },
    { ...base, terminationGracePeriodSeconds: 1 },
  );
  // Without the SIGKILL the test's own 60 s timer would end unshare and no KRATA-EXIT would appear.
  assert.match(out, /KRATA-EXIT \{"signal":9\}/, out);
});

test('the network: eth0 up with IPv4 and IPv6 addresses and routes (rtnetlink), resolv.conf, the host reachable', async () => {
  const out = await bootWithVeth(
    'net',
    {
      Cmd: [
        'sh',
        '-c',
        'ping -c1 -W5 10.99.5.1 >/dev/null && echo PING-OK; ip -o addr show dev eth0; ip route; ip -6 route; cat /etc/resolv.conf',
      ],
    },
    base,
    {
      interfaces: [{ name: 'eth0', addresses: ['10.99.5.2/24', 'fd99:5::2/64'], mtu: 1400 }],
      routes: [
        { to: 'default', via: '10.99.5.1' },
        { to: 'default', via: 'fd99:5::1' },
      ],
      nameservers: ['10.99.5.53'],
      searches: ['svc.krata.local'],
    },
    '10.99.5.1/24',
  );
  assert.match(out, /PING-OK/, out);
  assert.match(out, /eth0\s+inet 10\.99\.5\.2\/24/);
  assert.match(out, /eth0\s+inet6 fd99:5::2\/64/);
  assert.match(out, /default via 10\.99\.5\.1 dev eth0/);
  assert.match(out, /default via fd99:5::1 dev eth0/);
  assert.match(out, /nameserver 10\.99\.5\.53\nsearch svc\.krata\.local/);
  assert.match(out, /KRATA-EXIT \{"exitCode":0\}/);
});

test('a network that cannot be configured is an init failure with the reason', async () => {
  const r = boot('nonet', { Cmd: ['id'] }, base);
  assert.match(r.stdout, /KRATA-EXIT/, 'without a network section nothing is configured');
  const out = await bootWithVeth(
    'badroute',
    { Cmd: ['id'] },
    base,
    {
      interfaces: [{ name: 'eth0', addresses: ['10.99.6.2/24'] }],
      routes: [{ to: 'default', via: '10.50.0.1' }],
      nameservers: [],
      searches: [],
    },
    '10.99.6.1/24',
  );
  assert.match(out, /KRATA-INIT-ERROR add route to 0\.0\.0\.0\/0 via 10\.50\.0\.1: Network is unreachable/, out);
});

test('offloads off on an interface that asks for it (a userspace network on the host needs whole packets)', async () => {
  let features = '';
  const out = await bootWithVeth(
    'offloads',
    { Cmd: ['sh', '-c', 'echo KRATA-TEST-READY; sleep 2'] },
    base,
    { interfaces: [{ name: 'eth0', addresses: ['10.99.7.2/24'], offloads: false }], routes: [], nameservers: [], searches: [] },
    '10.99.7.1/24',
    (init) => (features = execFileSync('nsenter', ['-t', String(init), '-n', 'ethtool', '-k', 'eth0'], { encoding: 'utf8' })),
  );
  assert.match(out, /KRATA-EXIT \{"exitCode":0\}/, out);
  // Per feature, not per group: a newer host kernel lists segmentation kinds (AccECN) that the
  // legacy ioctls, and a guest's 6.1 kernel, do not know.
  for (const f of [
    'tx-checksumming',
    'scatter-gather',
    'tx-tcp-segmentation',
    'tx-tcp6-segmentation',
    'generic-segmentation-offload',
    'generic-receive-offload',
  ]) {
    assert.match(features, new RegExp(`^\\s*${f}: off`, 'm'), features);
  }
});

test('the control channel beside the main process: exec with its user, env and cwd, reaped by PID 1', async () => {
  const args = disks(
    'channel',
    { Cmd: ['sh', '-c', 'echo main-ready; while [ ! -e /home/app/stop ]; do sleep 1; done; exit 4'], User: 'app' },
    { ...base, env: [{ name: 'GREETING', value: 'hello' }] },
  );
  // Two ptys from script(1), one inside the other: the inner one is the channel's device (fd 3, opened
  // as /proc/self/fd/3 as /dev/hvc1 is in a guest), the outer one relays it and is also init's stdin,
  // the console RESIZE on stream 0 sizes. Each is opened by its name ($(tty)), not as /dev/tty, which
  // would mean whichever terminal controls the opener. Console output goes to a file.
  const log = join(work, 'channel-console.log');
  const guestInit = `exec 3<>$(tty) <&4 4<&- >${log} 2>&1; exec unshare ${args.join(' ')} --channel /proc/self/fd/3`;
  const command = `exec 4<>$(tty); exec script -q -e -c '${guestInit}' /dev/null`;
  const child = spawn('script', ['-q', '-e', '-c', command, '/dev/null'], { stdio: ['pipe', 'pipe', 'inherit'] });
  const consoleText = () => {
    try {
      return readFileSync(log, 'utf8');
    } catch {
      return '';
    }
  };
  const peer = new ChannelPeer(
    (d) => child.stdin.write(d),
    () => `console: ${consoleText()}`,
  );
  child.stdout.on('data', (d: Buffer) => peer.data(d));
  const ended = new Promise<void>((r) => child.on('close', () => r()));
  child.on('close', () => peer.close());
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  try {
    await peer.handshake();
    const s = peer.exec({ argv: ['sh', '-c', 'id -u; echo "$GREETING $HOME $(pwd)"; exit 5'] });
    assert.deepEqual(await s.ended(), { exitCode: 5 }, "the exit status came through PID 1's reaper");
    assert.equal(s.text(), '1000\nhello /home/app /\n', "the main process's user, env and working directory");

    const root = peer.exec({ argv: ['id', '-u'], user: 'root', cwd: '/home' });
    assert.deepEqual(await root.ended(), { exitCode: 0 });
    assert.equal(root.text(), '0\n');

    const tty = peer.exec({ argv: ['tty'], tty: true });
    assert.deepEqual(await tty.ended(), { exitCode: 0 });
    assert.match(tty.text(), /^\/dev\/pts\/\d+\r?\n$/, "a pty from the guest's own devpts");

    const rc = Buffer.alloc(4);
    rc.writeUInt16LE(41, 0);
    rc.writeUInt16LE(99, 2);
    peer.send(T.RESIZE, 0, rc);
    const size = peer.exec({ argv: ['stty', '-F', '/proc/1/fd/0', 'size'], user: 'root' });
    assert.deepEqual(await size.ended(), { exitCode: 0 }, size.text(T.STDERR));
    assert.equal(size.text(), '41 99\n', "RESIZE on stream 0 sized init's console");

    const stop = peer.exec({ argv: ['touch', '/home/app/stop'] });
    assert.deepEqual(await stop.ended(), { exitCode: 0 });
    await ended;
  } finally {
    clearTimeout(timer);
    child.kill('SIGKILL');
  }
  assert.match(consoleText(), /main-ready/);
  assert.match(consoleText(), /KRATA-EXIT \{"exitCode":4\}/, 'the main process still ends the guest');
});
