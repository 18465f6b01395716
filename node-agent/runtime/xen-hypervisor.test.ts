// What XenHypervisor does without Xen: the mapping of Xen's domain flags to states, loop device
// discovery, and opening off Xen (one clear NotOnXenError). The parsing of what guests write under
// krata/guest/ is tested in xen/krata-keys.test.ts. The rest runs on a real Xen host:
// test/e2e/scenarios/100-hypervisor.sh.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NotOnXenError, XenHypervisor, domainState, domainStats, isUnder, strayBuilds, watchedExit } from './xen-hypervisor.js';
import { attachedLoops, isKrataHandle, krataHandle, type Watch } from '../xen/index.js';
import { getDomainInfo } from '../xen/abi.js';
import { parseDomainInfo } from '../xen/control.js';
import { setField } from '../../lib/c-layout.js';

test("Xen's domain flags map to states: dying, crashed, shutdown, paused, running", () => {
  const base = { dying: false, shutdown: false, shutdownReason: undefined, paused: false };
  assert.equal(domainState(base), 'running');
  assert.equal(domainState({ ...base, paused: true }), 'paused');
  assert.equal(domainState({ ...base, shutdown: true, shutdownReason: 0 }), 'shutdown', 'poweroff');
  assert.equal(domainState({ ...base, shutdown: true, shutdownReason: 1 }), 'shutdown', 'reboot');
  assert.equal(domainState({ ...base, shutdown: true, shutdownReason: 3 }), 'crashed');
  assert.equal(domainState({ ...base, shutdown: true, shutdownReason: 4 }), 'crashed', 'watchdog');
  assert.equal(domainState({ ...base, shutdown: true, shutdownReason: 0, paused: true }), 'shutdown', 'a shut-down domain is also paused');
  assert.equal(domainState({ ...base, dying: true, shutdown: true, shutdownReason: 3 }), 'dying');
});

test('loop devices and their backing files are read from sysfs; only files below the state dir are krata’s', (t) => {
  const sys = mkdtempSync(join(tmpdir(), 'krata-sysblock-'));
  t.after(() => rmSync(sys, { recursive: true, force: true }));
  const loop = (name: string, backing?: string) => {
    mkdirSync(join(sys, name, 'loop'), { recursive: true });
    if (backing !== undefined) writeFileSync(join(sys, name, 'loop', 'backing_file'), backing);
  };
  loop('loop10', '/var/lib/krata/images/a.sqfs\n');
  loop('loop2', '/var/lib/krata/configs/b.sqfs (deleted)\n');
  mkdirSync(join(sys, 'loop3')); // not attached: no loop/ directory
  loop('loop4'); // loop/ without backing_file
  loop('sda', '/x');
  assert.deepEqual(attachedLoops(sys), [
    { path: '/dev/loop2', backingFile: '/var/lib/krata/configs/b.sqfs' },
    { path: '/dev/loop10', backingFile: '/var/lib/krata/images/a.sqfs' },
  ]);
  assert.deepEqual(attachedLoops(join(sys, 'missing')), []);
  assert.equal(isUnder('/var/lib/krata/images/a.sqfs', '/var/lib/krata'), true);
  assert.equal(isUnder('/var/lib/krata/images/a.sqfs', '/var/lib/krata/'), true);
  assert.equal(isUnder('/var/lib/krata2/a.sqfs', '/var/lib/krata'), false);
  assert.equal(isUnder('/var/lib/krata', '/var/lib/krata'), false);
});

const onXen = existsSync('/dev/xen/privcmd');

test('off Xen, open() is one NotOnXenError that says what is missing', { skip: onXen && 'this host runs Xen' }, async () => {
  await assert.rejects(XenHypervisor.open(), (e: Error) => e instanceof NotOnXenError && /\/dev\/xen\/privcmd is missing/.test(e.message));
});

test('a privcmd path that is no privcmd device: NotOnXenError, not a crash, nothing left open', async () => {
  await assert.rejects(XenHypervisor.open({ privcmdPath: '/nonexistent/privcmd' }), NotOnXenError);
  // /dev/null opens but answers no hypercall.
  const fds = () => (existsSync('/proc/self/fd') ? readdirSync('/proc/self/fd').length : 0);
  const before = fds();
  await assert.rejects(
    XenHypervisor.open({ privcmdPath: '/dev/null' }),
    (e: Error) => e instanceof NotOnXenError && /hypervisor does not answer/.test(e.message),
  );
  assert.equal(fds(), before, 'no descriptor leaked');
});

test("a domain's figures come from getdomaininfo: CPU time in seconds, pages as bytes, vCPUs online and in all", () => {
  // The buffer as the domctl returns it (struct xen_domctl_getdomaininfo, checked against domctl.h in xen/abi.test.ts).
  const buf = Buffer.alloc(getDomainInfo.size);
  setField(buf, getDomainInfo, 'domain', 5);
  setField(buf, getDomainInfo, 'tot_pages', 32768n);
  setField(buf, getDomainInfo, 'max_pages', 65792n);
  setField(buf, getDomainInfo, 'cpu_time', 2_500_000_000n);
  setField(buf, getDomainInfo, 'nr_online_vcpus', 2);
  setField(buf, getDomainInfo, 'max_vcpu_id', 3);
  const info = parseDomainInfo(buf, 0);
  assert.deepEqual(domainStats(info), {
    cpuSeconds: 2.5,
    memoryBytes: 32768 * 4096,
    maxMemoryBytes: 65792 * 4096,
    vcpusOnline: 2,
    vcpusMax: 4,
  });
  setField(buf, getDomainInfo, 'max_vcpu_id', 0xffffffff);
  setField(buf, getDomainInfo, 'nr_online_vcpus', 0);
  assert.equal(domainStats(parseDomainInfo(buf, 0)).vcpusMax, 0, 'XEN_INVALID_MAX_VCPU_ID: no vCPUs');
});

test("list() takes a watched running domain's exit from its watch, and reads an ended or unwatched one's", () => {
  const watch = {} as Watch;
  const exit = { exitCode: 3 };
  const t = { exit, exitKnown: true, exitCheckQueued: false, watch };
  assert.deepEqual(watchedExit(t, 'running'), { exit });
  assert.deepEqual(watchedExit({ ...t, exit: undefined }, 'paused'), { exit: undefined }, 'known: no exit yet');
  for (const state of ['shutdown', 'crashed', 'dying'] as const) assert.equal(watchedExit(t, state), undefined, state);
  assert.equal(watchedExit({ ...t, exitKnown: false }, 'running'), undefined, 'the watch has not delivered yet');
  assert.equal(watchedExit({ ...t, exitCheckQueued: true }, 'running'), undefined, 'a newer event waits');
  assert.equal(watchedExit({ ...t, watch: undefined }, 'running'), undefined, 'no watch');
});

test('a domain with krata’s handle but no krata keys is a stray build, unless this process is building it', () => {
  const stray = { domid: 7, uuid: krataHandle() };
  const keyedDomain = { domid: 8, uuid: krataHandle() };
  const mine = { domid: 9, uuid: krataHandle() };
  const foreign = { domid: 10, uuid: '0b6a7c1e-3f1d-4c55-9d7e-1f2a3b4c5d6e' };
  const dying = { domid: 11, uuid: krataHandle() };
  const found = strayBuilds([{ domid: 0, uuid: '00000000-0000-0000-0000-000000000000' }, stray, keyedDomain, mine, foreign, dying], {
    keyed: new Set([8]),
    building: new Set([mine.uuid]),
    destroying: new Set([11]),
  });
  assert.deepEqual(found, [stray]);
  assert.match(stray.uuid, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/, 'still a version-4 UUID');
  assert.ok(isKrataHandle(stray.uuid) && !isKrataHandle(foreign.uuid));
  assert.notEqual(krataHandle(), krataHandle());
});
