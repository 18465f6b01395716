#!/usr/bin/env node
// Start or stop a PV domain with krata's own builder, without the node agent: the e2e suite and the
// benchmark use it, and it is the quickest way to check that a kernel boots on a host.
//   launch-main.js --name NAME --kernel PATH [--initrd PATH] [--cmdline STR]
//                  [--memory MiB] [--max-memory MiB] [--vcpus N] [--max-vcpus N]
//                  [--disk FILE:xvdX ...]   read-only, through a loop device and blkback
//                  [--mac MAC ...]          a vif per MAC, served by netback
//                  [--console xenconsoled|krata] [--attach-until TEXT [--attach-timeout SECONDS]]
//     With --console krata and --attach-until, krata's own console backend (attached before the guest
//     runs) streams the console to stdout until TEXT appears; an empty TEXT stops at the first byte.
//   launch-main.js --destroy DOMID                 forced
//   launch-main.js --shutdown DOMID [--grace SEC]  control/shutdown=poweroff, then destroy
import { existsSync, fstatSync } from 'node:fs';
import { parseArgs } from 'node:util';
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
    mac: { type: 'string', multiple: true },
    'attach-until': { type: 'string' },
    'attach-timeout': { type: 'string', default: '60' },
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

async function openConsole(privcmd: Privcmd, xs: XenstoreClient, domid: number) {
  const evtchn = await EventChannels.open();
  const grants = existsSync(GNTDEV_PATH) ? GrantMapper.open() : undefined;
  const session = await new ConsoleBackend(privcmd, evtchn, xs, grants).attach(domid);
  let firstByteMs: number | undefined;
  session.on('data', () => (firstByteMs ??= performance.now()));
  return { evtchn, grants, session, firstByte: () => firstByteMs };
}

/** Print the guest's console through krata's own backend until `until` shows up. */
async function streamConsoleUntil(c: Awaited<ReturnType<typeof openConsole>>, until: string, timeoutMs: number, t0: number): Promise<void> {
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
        process.stdout.write(chunk);
        check();
      });
      process.stdout.write(session.history.contents());
      check();
    });
    const first = c.firstByte();
    const figures = {
      consoleFirstByteMs: first === undefined ? undefined : Math.round(first - t0),
      untilMs: Math.round(performance.now() - t0),
    };
    console.log(`\n${JSON.stringify(figures)}`);
  } finally {
    session.close();
    c.grants?.close();
    await c.evtchn.close();
  }
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
  } else {
    if (!values.name || !values.kernel) throw new Error('--name and --kernel are required');
    const t0 = performance.now();
    const attach = values['attach-until'] !== undefined && values.console !== 'xenconsoled';
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
      disks: (values.disk ?? []).map((d) => {
        const at = d.lastIndexOf(':');
        if (at < 0) throw new Error(`--disk ${d}: expected FILE:xvdX`);
        return { file: d.slice(0, at), vdev: d.slice(at + 1) };
      }),
      nics: (values.mac ?? []).map((mac) => ({ mac })),
    };
    const d = await builder.launch(
      config,
      { kernel: mapFile(config.kernel), initrd: config.initrd ? mapFile(config.initrd) : undefined },
      {
        consoleBackend: values.console === 'xenconsoled' ? 'xenconsoled' : 'krata',
        // The console is attached before the guest runs, so nothing it prints is missed.
        beforeUnpause: attach ? async (domid) => void (console_ = await openConsole(privcmd!, xs!, domid)) : undefined,
      },
    );
    console.log(JSON.stringify({ domid: d.domid, uuid: d.uuid, ms: Math.round(performance.now() - t0) }));
    if (console_) await streamConsoleUntil(console_, values['attach-until']!, Number(values['attach-timeout']) * 1000, t0);
  }
} catch (e) {
  process.stderr.write(`${e instanceof NotOnXenError ? '' : 'launch failed: '}${(e as Error).message}\n`);
  process.exitCode = 1;
} finally {
  xs?.close();
  privcmd?.close();
}
