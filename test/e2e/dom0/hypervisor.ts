// Run inside dom0: the node agent's Hypervisor (XenHypervisor) against real guests booted with krata's
// guest-init, one phase per process so that an agent restart is a new process. Each phase prints one JSON
// line (what it saw, with timings) and exits non-zero with a message on the first mismatch.
//   node dist/test/e2e/dom0/hypervisor.js start  '{"name","guestKey","guestUid","specHash","stateDir","initrd","image","config","until"}'
//   node dist/test/e2e/dom0/hypervisor.js adopt  '{"domid","uuid","guestKey","guestUid","specHash","stateDir","orphan"}'
//   node dist/test/e2e/dom0/hypervisor.js exit \
//     '{"name","guestKey","guestUid","specHash","stateDir","initrd","image","config","exitCode"}'
// "config" is the guest's launch config archive (cpio), loaded after the initrd (initrdAppend).
// Used by scenario 100.
import { readFileSync } from 'node:fs';
import { XenHypervisor } from '../../../node-agent/runtime/xen-hypervisor.js';
import type { Console, DomainInfo, GuestDomainConfig } from '../../../node-agent/runtime/hypervisor.js';

interface Args {
  name: string;
  guestKey: string;
  guestUid: string;
  specHash: string;
  stateDir: string;
  initrd: string;
  image: string;
  config: string;
  until: string;
  domid: number;
  uuid: string;
  orphan: string;
  exitCode: number;
}

const [phase, json] = process.argv.slice(2);
const args = JSON.parse(json ?? '{}') as Args;
const t0 = performance.now();
const ms = () => Math.round(performance.now() - t0);
const report: Record<string, unknown> = { phase };

class Mismatch extends Error {}
function expect(ok: unknown, what: string): asserts ok {
  if (!ok) throw new Mismatch(what);
}

/** The Guest of a scenario argument's "namespace/name" guest key. */
function guestOf(a: Pick<Args, 'guestKey' | 'guestUid' | 'specHash'>): GuestDomainConfig['guest'] {
  const [namespace, name] = a.guestKey.split('/');
  return { namespace: namespace!, name: name!, uid: a.guestUid, specHash: a.specHash };
}

function launchOf(a: Args): GuestDomainConfig {
  return {
    name: a.name,
    guest: guestOf(a),
    vcpus: 1,
    maxVcpus: 2,
    memoryMiB: 128,
    maxMemoryMiB: 160,
    kernel: '/opt/xenhost/guest/vmlinux',
    initrd: a.initrd,
    initrdAppend: readFileSync(a.config),
    cmdline: 'console=hvc0 quiet loglevel=3',
    disks: [{ file: a.image, vdev: 'xvda' }],
    nics: [],
  };
}

/** Resolves when `test` holds for the console's text (history first, then live output). */
function waitConsole(c: Console, test: (text: string) => boolean, timeoutMs: number, what: string, from = 0): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = c.history().toString('latin1').slice(from);
    const done = (ok: boolean) => {
      clearTimeout(timer);
      off();
      if (ok) resolve(text);
      else reject(new Mismatch(`${what} within ${timeoutMs / 1000} s; console: ${JSON.stringify(text.slice(-600))}`));
    };
    const off = c.onData((chunk) => {
      text += chunk.toString('latin1');
      if (test(text)) done(true);
    });
    const timer = setTimeout(() => done(false), timeoutMs);
    if (test(text)) done(true);
  });
}

/** Resolves with the first 'change' for `domid` after which list() shows `test` true. */
function waitChange(
  hv: XenHypervisor,
  domid: number,
  test: (d: DomainInfo | undefined) => boolean,
  timeoutMs: number,
  what: string,
): Promise<DomainInfo | undefined> {
  return new Promise((resolve, reject) => {
    let busy = false;
    let again = false;
    const check = async () => {
      if (busy) return void (again = true);
      busy = true;
      try {
        do {
          again = false;
          const d = (await hv.list()).find((x) => x.domid === domid);
          if (test(d)) {
            clearTimeout(timer);
            hv.events.off('change', onChange);
            return resolve(d);
          }
        } while (again);
      } catch (e) {
        reject(e as Error);
      } finally {
        busy = false;
      }
    };
    const onChange = (id: number) => void (id === domid && check());
    const timer = setTimeout(() => {
      hv.events.off('change', onChange);
      reject(new Mismatch(`no 'change' for domain ${domid} with ${what} within ${timeoutMs / 1000} s`));
    }, timeoutMs);
    hv.events.on('change', onChange);
  });
}

function checkListed(d: DomainInfo | undefined, a: Args, domid: number): DomainInfo {
  expect(d, `domain ${domid} is not in list()`);
  expect(d.state === 'running', `domain ${domid} is ${d.state}, not running`);
  expect(JSON.stringify(d.guest) === JSON.stringify(guestOf(a)), `wrong krata keys: ${JSON.stringify(d)}`);
  expect(d.name === a.name, `wrong name ${d.name}`);
  expect(d.createdAt > Date.now() - 15 * 60_000 && d.createdAt <= Date.now(), `createdAt ${d.createdAt} is not recent`);
  expect(d.exit === undefined, `an exit is reported for a running guest: ${JSON.stringify(d.exit)}`);
  return d;
}

const hv = await XenHypervisor.open({ stateDir: args.stateDir, consoleHistoryBytes: 64 * 1024 });
report.openMs = ms();
let failed = false;
try {
  if (phase === 'start') {
    const changes: number[] = [];
    hv.events.on('change', (id: number) => changes.push(id));
    const host = await hv.host();
    expect(
      /^4\.\d+/.test(host.xenVersion) && host.cpus >= 1 && host.freeMemoryMiB > 0 && host.totalMemoryMiB >= host.freeMemoryMiB,
      `host(): ${JSON.stringify(host)}`,
    );
    report.host = host;
    const created = await hv.create(launchOf(args));
    report.createMs = ms();
    report.domid = created.domid;
    report.uuid = created.uuid;
    expect(created.state === 'running' && created.guest.name === guestOf(args).name, `create() returned ${JSON.stringify(created)}`);
    const c = hv.console(created.domid);
    expect(c, 'no console after create()');
    await waitConsole(c, (t) => t.includes(args.until), 120_000, `"${args.until}" on the console`);
    report.markerMs = ms();
    const listed = checkListed(
      (await hv.list()).find((d) => d.domid === created.domid),
      args,
      created.domid,
    );
    expect(listed.uuid === created.uuid, `uuid ${listed.uuid} != ${created.uuid}`);
    expect(listed.createdAt === created.createdAt, 'createdAt differs between create() and list()');
    expect(!changes.includes(created.domid), "a 'change' fired for a guest that only started");
    report.listed = listed;
  } else if (phase === 'adopt') {
    const domid = args.domid;
    const listed = checkListed(
      (await hv.list()).find((d) => d.domid === domid),
      args,
      domid,
    );
    expect(listed.uuid === args.uuid, `domain ${domid} has uuid ${listed.uuid}, not ${args.uuid}: not the same domain`);
    report.adoptMs = ms();
    const c = hv.console(domid);
    expect(c, 'list() did not attach the console of the adopted domain');
    // Live output through the new process's backend: two ticks one after the other.
    const from = c.history().length;
    const live = await waitConsole(c, (t) => (t.match(/tick-\d+/g) ?? []).length >= 2, 20_000, 'two ticks after adoption', from);
    const ticks = (live.match(/tick-(\d+)/g) ?? []).map((s) => Number(s.slice(5)));
    expect(ticks[1] === ticks[0]! + 1, `ticks not consecutive: ${ticks.join(',')}`);
    report.ticksAfterAdoption = ticks.slice(0, 2);
    report.ticksMs = ms();
    // A second list() does not attach again (one session per domain).
    await hv.list();
    expect(hv.console(domid) === c, 'a second list() replaced the console session');

    // cleanupOrphans: the orphan loop under the state dir goes, the running guest's stay.
    const removed = await hv.cleanupOrphans();
    report.cleanupOrphans = removed;
    expect(
      removed.some((r) => r.includes(args.orphan)),
      `the orphan loop over ${args.orphan} was not removed: ${JSON.stringify(removed)}`,
    );
    expect(removed.filter((r) => r.startsWith('loop ')).length === 1, `more than the orphan removed: ${JSON.stringify(removed)}`);
    expect((await hv.list()).find((d) => d.domid === domid)?.state === 'running', 'the guest is not running after cleanupOrphans');

    // Graceful stop: the exit report and the shutdown each fire 'change'.
    // Each 'change' with what list() says right then (the domain may already be gone).
    const changes: { id: number; ms: number; state?: string; exit?: unknown }[] = [];
    hv.events.on('change', (id: number) => {
      const c: (typeof changes)[number] = { id, ms: ms() };
      changes.push(c);
      hv.list().then(
        (l) => {
          const d = l.find((x) => x.domid === id);
          c.state = d?.state ?? 'gone';
          if (d?.exit) c.exit = d.exit;
        },
        () => undefined,
      );
    });
    const exited = waitChange(hv, domid, (d) => d?.exit !== undefined, 60_000, 'an exit reported');
    exited.catch(() => undefined);
    const how = await hv.shutdown(domid, 60_000);
    report.shutdown = how;
    report.shutdownMs = ms();
    expect(how === 'graceful', `shutdown() was ${how}`);
    const d = await exited;
    report.exit = d!.exit;
    expect(d!.exit?.exitCode === 0 && d!.exit.signal === undefined, `exit ${JSON.stringify(d!.exit)}, not exitCode 0`);
    expect(c.history().toString('latin1').includes('got-term'), 'the process did not see SIGTERM');
    expect(
      changes.some((x) => x.id === domid),
      "no 'change' for the stopped domain",
    );
    report.changes = changes;
    expect(!(await hv.list()).some((x) => x.domid === domid), 'the domain is still listed after shutdown()');
    expect(hv.console(domid) === undefined, 'a console is still served for the destroyed domain');
    await hv.destroy(domid); // idempotent
    expect((await hv.shutdown(domid, 1000)) === 'graceful', 'shutdown() of a missing domain');
    c.write(Buffer.from('ignored\n')); // writing to a closed console is harmless
  } else if (phase === 'exit') {
    // A create that fails after the domain exists (a bad MAC, refused while writing xenstore) leaves nothing.
    const bad = { ...launchOf(args), guest: guestOf({ ...args, guestKey: `${args.guestKey}-bad` }), nics: [{ mac: 'not-a-mac' }] };
    const failedCreate = await hv.create(bad).then(
      () => undefined,
      (e: Error) => e.message,
    );
    expect(failedCreate && /bad MAC/.test(failedCreate), `a create with a bad MAC did not fail as expected: ${failedCreate}`);
    expect(!(await hv.list()).some((d) => d.guest.name === bad.guest.name), 'the failed create left a listed domain');
    report.failedCreate = failedCreate;
    report.failedCreateMs = ms();
    const created = await hv.create(launchOf(args));
    report.createMs = ms();
    report.domid = created.domid;
    const exited = await waitChange(hv, created.domid, (d) => d?.exit !== undefined, 120_000, 'an exit reported');
    report.exitMs = ms();
    report.exit = exited!.exit;
    expect(exited!.exit?.exitCode === args.exitCode, `exit ${JSON.stringify(exited!.exit)}, not exitCode ${args.exitCode}`);
    // guest-init then powers the guest off: @releaseDomain -> 'change', state shutdown, exit still there.
    const off = await waitChange(hv, created.domid, (d) => d?.state === 'shutdown', 60_000, 'state shutdown');
    report.shutdownSeenMs = ms();
    expect(off!.exit?.exitCode === args.exitCode, 'the exit is gone once the domain shut down');
    await hv.destroy(created.domid);
    report.destroyMs = ms();
    expect(!(await hv.list()).some((x) => x.domid === created.domid), 'the domain is still listed after destroy()');
  } else {
    throw new Mismatch(`unknown phase ${phase}`);
  }
} catch (e) {
  failed = true;
  report.error = e instanceof Mismatch ? e.message : String((e as Error).stack ?? e);
} finally {
  await hv.close();
  report.totalMs = ms();
}
console.log(JSON.stringify(report));
process.exit(failed ? 1 : 0);
