// krata's xenstore keys: what dom0 writes reads back as the same record; what does not parse (a guest
// key that names no Guest, a malformed uid, anything over the bound) is refused; what guests write
// under krata/guest/ is parsed as hostile input; the key names match what guest-init writes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../../lib/package-root.js';
import type { DomainConfig } from './domain-config.js';
import { writeDomainStore } from './domain-store.js';
import {
  GUEST_VALUE_MAX_BYTES,
  INIT_ERROR_MAX_CHARS,
  KrataKey,
  krataEntries,
  parseGuestExit,
  parseInitError,
  parseKrataDomain,
  parseLoops,
  parseStrictInt,
  readGuestExit,
  readKrataDomain,
  readLoops,
} from './krata-keys.js';
import type { Permission } from './xenstore/permissions.js';
import type { XenstoreClient } from './xenstore/client.js';

/** An in-memory xenstore: values and permissions by path; reads of missing nodes fail like ENOENT. */
function memoryStore(values = new Map<string, Buffer>()) {
  const perms = new Map<string, Permission[]>();
  const ops = {
    write: async (path: string, v: string | Buffer) => void values.set(path, Buffer.from(v)),
    setPerms: async (path: string, p: Permission[]) => void perms.set(path, p),
    readBytes: async (path: string) => {
      const v = values.get(path);
      if (!v) throw Object.assign(new Error(`ENOENT ${path}`), { code: 'ENOENT' });
      return v;
    },
    tryRead: async (path: string) => values.get(path)?.toString('utf8'),
  };
  const xs = { ...ops, transaction: async <T>(body: (tx: typeof ops) => Promise<T>) => body(ops) };
  return { xs, values, perms };
}

const guest = { namespace: 'team-a', name: 'web', uid: '0f5c2d8e-1b7a-4c3e-9d2f-6a1b2c3d4e5f', specHash: '0123456789abcdef' };

test('the keys dom0 writes, by name and value: the ABI shared with earlier agents', () => {
  assert.deepEqual(krataEntries({ guest, createdAt: 1700000000000, loops: ['/dev/loop3', '/dev/loop4'] }), [
    ['krata/guest-key', 'team-a/web'],
    ['krata/guest-uid', guest.uid],
    ['krata/spec-hash', guest.specHash],
    ['krata/created', '1700000000000'],
    ['krata/loops', '/dev/loop3,/dev/loop4'],
  ]);
  assert.deepEqual(krataEntries({ loops: [] }), [['krata/loops', '']], 'a domain without a guest records only its loops');
});

test('a domain record written by writeDomainStore reads back as the same identity; the guest may write only krata/guest', async () => {
  const { xs, perms } = memoryStore();
  const config: DomainConfig = {
    name: 'krata.team-a.web',
    guest,
    vcpus: 1,
    maxVcpus: 2,
    memoryMiB: 128,
    maxMemoryMiB: 256,
    kernel: '/k',
    initrd: '/i',
    cmdline: 'console=hvc0',
    disks: [],
    nics: [],
  };
  const rings = { domid: 7, uuid: '6f1c2d8e-1b7a-4c3e-9d2f-6a1b2c3d4e5f', storeMfn: 1n, storeEvtchn: 1, consoleMfn: 2n, consoleEvtchn: 2 };
  const loops = [{ path: '/dev/loop9', major: 7, minor: 9 }];
  await writeDomainStore(xs as unknown as XenstoreClient, config, rings, { loops, createdAt: 1700000000123 });
  assert.deepEqual(await readKrataDomain(xs, 7), { name: 'krata.team-a.web', guest, createdAt: 1700000000123 });
  assert.deepEqual(await readLoops(xs, 7), ['/dev/loop9']);
  assert.equal(await readKrataDomain(xs, 8), undefined, "another domain is not krata's");
  assert.deepEqual(perms.get('/local/domain/7/krata/guest'), [{ domid: 7, access: 'none' }], "krata/guest is the guest's");
  // Every other krata/ key inherits the home's permissions (dom0 owns, the guest reads).
  assert.deepEqual(perms.get('/local/domain/7'), [
    { domid: 0, access: 'none' },
    { domid: 7, access: 'read' },
  ]);
  assert.deepEqual(
    [...perms.keys()].filter((p) => p.includes('/krata/')),
    ['/local/domain/7/krata/guest'],
  );
});

test("a guest key that names no Guest makes a domain not krata's; a bad uid or spec hash matches no Guest", () => {
  const b = (s: string) => Buffer.from(s);
  const ok = { name: b('krata.a.b'), guestKey: b('a/b'), guestUid: b('u-1'), specHash: b('h'), created: b('5') };
  const expected = { name: 'krata.a.b', guest: { namespace: 'a', name: 'b', uid: 'u-1', specHash: 'h' }, createdAt: 5 };
  assert.deepEqual(parseKrataDomain(ok), expected);
  const label63 = 'x'.repeat(63);
  assert.equal(parseKrataDomain({ ...ok, guestKey: b(`${label63}/${label63}`) })?.guest.name, label63);
  const badKeys = ['', 'ab', 'a/', '/b', 'a/b/c', 'A/b', 'a/B', '-a/b', 'a/b-', 'a.b/c', ' a/b', 'a/b\n', 'a/b\u0000'];
  badKeys.push(`${label63}x/b`, 'a/é');
  for (const bad of badKeys) {
    assert.equal(parseKrataDomain({ ...ok, guestKey: b(bad) }), undefined, `guest key ${JSON.stringify(bad)}`);
  }
  assert.equal(parseKrataDomain({ ...ok, guestKey: undefined }), undefined);
  for (const bad of ['', ' u', 'u\n', '-u', 'u/1', 'x'.repeat(129)]) {
    const d = parseKrataDomain({ ...ok, guestUid: b(bad), specHash: b(bad) })!;
    assert.deepEqual([d.guest.uid, d.guest.specHash], ['', ''], `uid/spec hash ${JSON.stringify(bad)}`);
  }
  const missing = parseKrataDomain({ guestKey: b('a/b') })!;
  assert.deepEqual(missing, { name: '', guest: { namespace: 'a', name: 'b', uid: '', specHash: '' }, createdAt: 0 });
  assert.equal(parseKrataDomain({ ...ok, created: b('-5') })!.createdAt, 0);
});

test('values over the bound are not read at all', async () => {
  const home = '/local/domain/3';
  const { xs, values } = memoryStore(new Map([[`${home}/krata/guest-key`, Buffer.from('a/b')]]));
  values.set(`${home}/name`, Buffer.alloc(GUEST_VALUE_MAX_BYTES + 1, 0x61));
  values.set(`${home}/krata/guest/exit-code`, Buffer.from('3'));
  values.set(`${home}/krata/guest/init-error`, Buffer.alloc(GUEST_VALUE_MAX_BYTES + 1, 0x61));
  assert.equal((await readKrataDomain(xs, 3))!.name, '');
  assert.deepEqual(await readGuestExit(xs, 3), { exitCode: 3 });
  values.set(`${home}/krata/guest-key`, Buffer.concat([Buffer.from('a/b'), Buffer.alloc(GUEST_VALUE_MAX_BYTES)]));
  assert.equal(await readKrataDomain(xs, 3), undefined);
  assert.equal(await readGuestExit(xs, 4), undefined, 'nothing reported');
});

test('krata/loops keeps only loop devices', () => {
  assert.deepEqual(parseLoops('/dev/loop0,/dev/loop12'), ['/dev/loop0', '/dev/loop12']);
  assert.deepEqual(parseLoops('/dev/sda,,/dev/loop1,../../dev/loop2,/dev/loop3x'), ['/dev/loop1']);
  assert.deepEqual(parseLoops(undefined), []);
});

test('the guest reports under the keys guest-init writes', () => {
  const src = readFileSync(join(repoRoot(), 'guest-init/src/runtime.rs'), 'utf8');
  assert.match(src, /format!\("krata\/guest\/\{\}", key\)/, 'guest-init writes krata/guest/<key>');
  for (const key of [KrataKey.exitCode, KrataKey.signal, KrataKey.initError]) {
    assert.ok(key.startsWith(`${KrataKey.guestDir}/`));
    assert.ok(src.includes(`"${key.slice(KrataKey.guestDir.length + 1)}"`), `guest-init writes ${key}`);
  }
});

test('exit codes and signals are parsed strictly; anything else is ignored', () => {
  assert.deepEqual(parseGuestExit({ exitCode: '0' }), { exitCode: 0 });
  assert.deepEqual(parseGuestExit({ exitCode: Buffer.from('3') }), { exitCode: 3 });
  assert.deepEqual(parseGuestExit({ exitCode: '255' }), { exitCode: 255 });
  assert.deepEqual(parseGuestExit({ signal: '15' }), { signal: 15 });
  assert.deepEqual(parseGuestExit({ signal: '64' }), { signal: 64 });
  for (const bad of [
    '',
    ' 3',
    '3 ',
    '3\n',
    '+3',
    '-1',
    '03',
    '0x3',
    '3e0',
    '3.0',
    '256',
    '1e3',
    'NaN',
    'Infinity',
    '٣',
    '99999999999999999999',
    '3\u00003',
  ]) {
    assert.equal(parseGuestExit({ exitCode: bad }), undefined, `exit-code ${JSON.stringify(bad)}`);
  }
  for (const bad of ['0', '65', '-9', '9 ', 'KILL'])
    assert.equal(parseGuestExit({ signal: bad }), undefined, `signal ${JSON.stringify(bad)}`);
  assert.equal(parseGuestExit({}), undefined);
  // A bad value next to a good one: the good one counts.
  assert.deepEqual(parseGuestExit({ exitCode: 'x', signal: '9' }), { signal: 9 });
  assert.equal(parseStrictInt(Buffer.alloc(4096, 0x31), 0, 255), undefined, 'a huge number is no number');
  assert.equal(parseStrictInt('1700000000000', 0, Number.MAX_SAFE_INTEGER), 1700000000000);
  assert.equal(parseStrictInt('9007199254740993', 0, Number.MAX_SAFE_INTEGER), undefined);
});

test('an init error is bounded, printable text', () => {
  assert.deepEqual(parseGuestExit({ initError: 'execve /bin/app: ENOENT' }), { initError: 'execve /bin/app: ENOENT' });
  assert.equal(parseInitError(''), undefined);
  assert.equal(parseInitError('   \n'), undefined);
  assert.equal(parseInitError('\x1b[2Jgone\x07'), '?[2Jgone?', 'terminal escapes are defused');
  assert.equal(parseInitError('line one\nline two\tend'), 'line one\nline two\tend');
  assert.equal(parseInitError(Buffer.from([0x66, 0xff, 0xfe, 0x6f])), 'f\ufffd\ufffdo', 'invalid UTF-8 is replaced');
  assert.equal(parseInitError('é'.repeat(INIT_ERROR_MAX_CHARS + 10))!.length, INIT_ERROR_MAX_CHARS);
  assert.equal(parseInitError('😀'.repeat(INIT_ERROR_MAX_CHARS))!.length, INIT_ERROR_MAX_CHARS * 2, 'cut at characters, not inside one');
  assert.equal(parseInitError(Buffer.alloc(GUEST_VALUE_MAX_BYTES + 1, 0x61)), undefined, 'over-long values are not read');
  assert.deepEqual(parseGuestExit({ exitCode: '1', initError: 'mount: EIO' }), { exitCode: 1, initError: 'mount: EIO' });
});
