#!/usr/bin/env node
// Start or stop a PV domain with krata's own builder, without the node agent: the e2e suite and the
// benchmark use it, and it is the quickest way to check that a kernel boots on a host.
//   launch-main.js --name NAME --kernel PATH [--initrd PATH] [--cmdline STR]
//                  [--memory MiB] [--max-memory MiB] [--vcpus N] [--max-vcpus N]
//                  [--disk FILE:xvdX ...]   read-only, through a loop device and blkback
//                  [--initrd-append FILE]   a cpio archive loaded after the initrd (krata/launch.json)
//                  [--mac MAC ...]          a vif per MAC, served by netback
//                  [--console xenconsoled|krata] [--attach-until TEXT [--attach-timeout SECONDS]]
//     With --console krata and --attach-until, krata's own console backend (attached before the guest
//     runs) streams the console to stdout until TEXT appears; an empty TEXT stops at the first byte.
//     --paused leaves the domain paused once it is ready to run (print, then unpause or destroy it).
//   launch-main.js --serve --name NAME --kernel PATH ...
//     The benchmark's resident mode: each line on stdin ("paused" or "first-byte") launches the domain
//     once (files read again only when they changed), prints one JSON line {ms, phases} and destroys it:
//     ms is to the paused domain ready to run, or to the first console byte. EOF ends.
//   launch-main.js --destroy DOMID                 forced
//   launch-main.js --shutdown DOMID [--grace SEC]  control/shutdown=poweroff, then destroy
import { existsSync, fstatSync, readFileSync, statSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { startPhaseTimer, type PhaseTimer } from '../../lib/phase-timer.js';
import { DomainBuilder } from './builder/build.js';
import type { DomainConfig } from './domain-config.js';
import { ConsoleBackend } from './console/backend.js';
import { XenControl } from './control.js';
import { EventChannels } from './evtchn.js';
import { GNTDEV_PATH, GrantMapper } from './gntdev.js';
import { NotOnXenError, Privcmd } from './privcmd.js';
import { MAP_POPULATE, MAP_PRIVATE, PROT_READ, sysClose, sysMmap, sysOpen } from '../../lib/libc.js';
import { XenstoreClient } from './xenstore/client.js';
import { destroyDomain, requestPoweroff } from './teardown.js';

const { values } = parseArgs({
  options: {
    name: { type: 'string' },
    kernel: { type: 'string' },
    initrd: { type: 'string' },
    memory: { type: 'string', default: '128' },
    'max-memory': { type: 'string' },
    vcpus: { type: 'string', default: '1' },
    'max-vcpus': { type: 'string' },
    shutdown: { type: 'string' },
    grace: { type: 'string', default: '10' },
    cmdline: { type: 'string', default: 'console=hvc0' },
    console: { type: 'string', default: 'krata' },
    destroy: { type: 'string' },
    disk: { type: 'string', multiple: true },
    'initrd-append': { type: 'string' },
    mac: { type: 'string', multiple: true },
    'attach-until': { type: 'string' },
    'attach-timeout': { type: 'string', default: '60' },
    paused: { type: 'boolean', default: false },
    serve: { type: 'boolean', default: false },
  },
});

/**
 * The file's bytes without reading them all up front: mapped, so the builder copies each kernel segment
 * straight from the page cache into the guest (a 66 MiB vmlinux is not copied twice).
 */
function mapFile(path: string): Buffer {
  const fd = sysOpen(path, 0);
  try {
    const size = fstatSync(fd).size;
    // MAP_POPULATE: the kernel reads the file in at once instead of one page fault per page.
    return sysMmap(size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0).bytes;
  } finally {
    sysClose(fd);
  }
}

interface ConsoleDevices {
  evtchn: EventChannels;
  grants?: GrantMapper;
  /** Opened for one console, closed with it; otherwise the resident process's, kept open. */
  own: boolean;
}

async function openConsoleDevices(own: boolean): Promise<ConsoleDevices> {
  return { evtchn: await EventChannels.open(), grants: existsSync(GNTDEV_PATH) ? GrantMapper.open() : undefined, own };
}

/** --serve's event channel and grant devices, opened once as the node agent does. */
let residentDevices: ConsoleDevices | undefined;

async function openConsole(privcmd: Privcmd, xs: XenstoreClient, domid: number, timer?: PhaseTimer) {
  const { evtchn, grants, own } = residentDevices ?? (await openConsoleDevices(true));
  const session = await new ConsoleBackend(privcmd, evtchn, xs, grants).attach(domid);
  let firstByteMs: number | undefined;
  session.once('data', () => timer?.mark('first console byte'));
  session.on('data', () => (firstByteMs ??= performance.now()));
  return { evtchn, grants, own, session, firstByte: () => firstByteMs };
}

/** A mapped file kept while its identity (device, inode, size, change times) stays the same. */
const mapped = new Map<string, { id: string; bytes: Buffer }>();
function mapFileOnce(path: string): Buffer {
  const st = statSync(path, { bigint: true });
  const id = `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
  const had = mapped.get(path);
  if (had?.id === id) return had.bytes;
  const bytes = mapFile(path);
  mapped.set(path, { id, bytes });
  return bytes;
}

/** Print the guest's console through krata's own backend until `until` shows up. */
async function streamConsoleUntil(
  c: Awaited<ReturnType<typeof openConsole>>,
  until: string,
  timeoutMs: number,
  t0: number,
  quiet = false,
): Promise<{ consoleFirstByteMs?: number; untilMs: number }> {
  const { session } = c;
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`"${until}" did not appear on the console within ${timeoutMs / 1000}s`)), timeoutMs);
      const check = () => {
        const text = session.history.contents();
        if (until === '' ? text.length > 0 : text.includes(until)) {
          clearTimeout(timer);
          resolve();
        }
      };
      session.on('data', (chunk: Buffer) => {
        if (!quiet) process.stdout.write(chunk);
        check();
      });
      if (!quiet) process.stdout.write(session.history.contents());
      check();
    });
    const first = c.firstByte();
    const figures = {
      consoleFirstByteMs: first === undefined ? undefined : Math.round(first - t0),
      untilMs: Math.round(performance.now() - t0),
    };
    if (!quiet) console.log(`\n${JSON.stringify(figures)}`);
    return figures;
  } finally {
    session.close();
    if (c.own) {
      c.grants?.close();
      await c.evtchn.close();
    }
  }
}

/**
 * Build the domain from the command line's options. `ms` is to the domain running (or ready to, with
 * --paused), or in --serve mode with --attach-until to the first console byte.
 */
async function launchOnce(
  builder: DomainBuilder,
  privcmd: Privcmd,
  xs: XenstoreClient,
  t0: number,
  timer: PhaseTimer,
  serve: boolean,
  paused: boolean,
  attachUntil: string | undefined,
): Promise<{ domid: number; ms: number; attach?: () => Promise<void> }> {
  if (!values.name || !values.kernel) throw new Error('--name and --kernel are required');
  const attach = attachUntil !== undefined && values.console !== 'xenconsoled' && !paused;
  let console_: Awaited<ReturnType<typeof openConsole>> | undefined;
  // No guest: a domain launched here is not krata's (the node agent neither adopts nor removes it).
  const config: DomainConfig = {
    name: values.name,
    kernel: values.kernel,
    initrd: values.initrd,
    memoryMiB: Number(values.memory),
    maxMemoryMiB: Number(values['max-memory'] ?? values.memory),
    vcpus: Number(values.vcpus),
    maxVcpus: Number(values['max-vcpus'] ?? values.vcpus),
    cmdline: values.cmdline!,
    initrdAppend: values['initrd-append'] ? readFileSync(values['initrd-append']) : undefined,
    disks: (values.disk ?? []).map((d) => {
      const at = d.lastIndexOf(':');
      if (at < 0) throw new Error(`--disk ${d}: expected FILE:xvdX`);
      return { file: d.slice(0, at), vdev: d.slice(at + 1) };
    }),
    nics: (values.mac ?? []).map((mac) => ({ mac })),
  };
  const read = serve ? mapFileOnce : mapFile;
  const boot = { kernel: read(config.kernel), initrd: config.initrd ? read(config.initrd) : undefined };
  timer.mark('read files');
  const d = await builder.launch(config, boot, {
    consoleBackend: values.console === 'xenconsoled' ? 'xenconsoled' : 'krata',
    // The console is attached before the guest runs, so nothing it prints is missed.
    beforeUnpause: attach ? async (domid) => void (console_ = await openConsole(privcmd, xs, domid, serve ? timer : undefined)) : undefined,
    phases: timer,
    startPaused: paused,
  });
  const ms = Math.round(performance.now() - t0);
  if (!serve) console.log(JSON.stringify({ domid: d.domid, uuid: d.uuid, ms }));
  if (!console_) return { domid: d.domid, ms };
  const c = console_;
  const until = attachUntil!;
  const timeoutMs = Number(values['attach-timeout']) * 1000;
  if (!serve) return { domid: d.domid, ms, attach: async () => void (await streamConsoleUntil(c, until, timeoutMs, t0)) };
  const figures = await streamConsoleUntil(c, until, timeoutMs, t0, true);
  return { domid: d.domid, ms: figures.consoleFirstByteMs ?? figures.untilMs };
}

let privcmd: Privcmd | undefined;
let xs: XenstoreClient | undefined;
try {
  privcmd = Privcmd.open();
  const xen = new XenControl(privcmd);
  xs = await XenstoreClient.connect();
  const builder = new DomainBuilder(privcmd, xen, xs);
  if (values.destroy !== undefined || values.shutdown !== undefined) {
    const domid = Number(values.destroy ?? values.shutdown);
    if (values.shutdown !== undefined) {
      const graceful = await requestPoweroff(xen, xs, domid, Number(values.grace) * 1000, { pollMs: 100 });
      await destroyDomain(xen, xs, domid);
      console.log(JSON.stringify({ stopped: domid, graceful }));
    } else {
      await destroyDomain(xen, xs, domid);
      console.log(JSON.stringify({ destroyed: domid }));
    }
  } else if (values.serve) {
    // Resident: Node started and xenstore connected once, as in the node agent. The first launch warms
    // the JIT and the page cache for the ones measured after it.
    residentDevices = await openConsoleDevices(false);
    for await (const line of createInterface({ input: process.stdin })) {
      const mode = line.trim();
      if (mode !== 'paused' && mode !== 'first-byte') throw new Error(`--serve: expected "paused" or "first-byte", got "${mode}"`);
      const t0 = performance.now();
      const timer = startPhaseTimer();
      const r = await launchOnce(builder, privcmd, xs, t0, timer, true, mode === 'paused', mode === 'first-byte' ? '' : undefined);
      await destroyDomain(xen, xs, r.domid);
      console.log(JSON.stringify({ ms: r.ms, phases: timer.phases() }));
    }
  } else {
    const t0 = performance.now();
    const r = await launchOnce(builder, privcmd, xs, t0, startPhaseTimer(), false, values.paused!, values['attach-until']);
    if (r.attach) await r.attach();
  }
} catch (e) {
  process.stderr.write(`${e instanceof NotOnXenError ? '' : 'launch failed: '}${(e as Error).message}\n`);
  process.exitCode = 1;
} finally {
  residentDevices?.grants?.close();
  await residentDevices?.evtchn.close();
  xs?.close();
  privcmd?.close();
}
