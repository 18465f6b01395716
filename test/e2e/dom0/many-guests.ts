// Run inside dom0: one process, one event-channel descriptor and one grant device serve the consoles of
// N guests built by krata at once. Prints one JSON line: how many guests showed their marker, and the
// thread count with 1 guest and with N (it must not grow per guest).
//   node dist/test/e2e/dom0/many-guests.js N [TIMEOUT_S]
// Used by scenario 080. Under QEMU's `-cpu max` this crashed (dom0 memory corruption by TCG while
// guests boot, see test/e2e/README.md); MG_NO_CONSOLE=1 (no console sessions), MG_FRESH_PRIVCMD=1 (a
// privcmd descriptor per build) and MG_DESTROY_BETWEEN=1 (each guest destroyed before the next build)
// remain for narrowing down failures like that one.
import { readFileSync } from 'node:fs';
import {
  ConsoleBackend,
  DomainBuilder,
  EventChannels,
  GrantMapper,
  Privcmd,
  XenControl,
  XenstoreClient,
  destroyDomain,
  type ConsoleSession,
  type DomainConfig,
} from '../../../node-agent/xen/index.js';

const count = Number(process.argv[2] ?? 8);
const timeoutS = Number(process.argv[3] ?? 240);
const threads = () => Number(/Threads:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))![1]);
const privcmd = Privcmd.open();
const xs = await XenstoreClient.connect();
const xen = new XenControl(privcmd);
const builder = new DomainBuilder(privcmd, xen, xs);
const evtchn = await EventChannels.open();
const grants = GrantMapper.open();
const backend = new ConsoleBackend(privcmd, evtchn, xs, grants);
const KERNEL = '/opt/xenhost/guest/vmlinux';
const INITRD = '/opt/xenhost/guest/initrd.gz';
const kernel = readFileSync(KERNEL);
const initrd = readFileSync(INITRD);
const sessions: ConsoleSession[] = [];
const domids: number[] = [];
const seen = new Set<number>();
let threadsWithOne = 0;
try {
  let resolveAll!: () => void;
  const allSeen = new Promise<void>((resolve) => (resolveAll = resolve));
  // One build after another (each maps and writes guest memory); the consoles of those already
  // running are served meanwhile, by the same event-channel read loop.
  for (let i = 0; i < count; i++) {
    const marker = `KRATA-GUEST-MARKER many-${i}-${process.pid}`;
    const b = process.env.MG_FRESH_PRIVCMD ? new DomainBuilder(Privcmd.open(), xen, xs) : builder;
    const cmdline = `console=hvc0 quiet loglevel=3 krata_marker=many-${i}-${process.pid}`;
    const config: DomainConfig = {
      name: `e2e-many-${i}`,
      kernel: KERNEL,
      initrd: INITRD,
      cmdline,
      memoryMiB: 96,
      maxMemoryMiB: 96,
      vcpus: 1,
      maxVcpus: 1,
      disks: [],
      nics: [],
    };
    const d = await b.launch(
      config,
      { kernel, initrd },
      {
        beforeUnpause: process.env.MG_NO_CONSOLE
          ? undefined
          : async (domid) => {
              const s = await backend.attach(domid);
              sessions.push(s);
              s.on('data', () => {
                if (s.history.contents().includes(marker)) {
                  seen.add(i);
                  if (seen.size === count) resolveAll();
                }
              });
            },
      },
    );
    domids.push(d.domid);
    if (i === 0) threadsWithOne = threads();
    if (process.env.MG_DESTROY_BETWEEN) await destroyDomain(xen, xs, d.domid);
  }
  const timeout = new Promise<void>((_, reject) =>
    setTimeout(() => reject(new Error(`only ${seen.size} of ${count} markers within ${timeoutS} s`)), timeoutS * 1000).unref(),
  );
  await Promise.race([allSeen, timeout]).catch((e) => {
    for (const [i, sess] of sessions.entries())
      process.stderr.write(
        `--- console of guest ${i} (domid ${sess.domid}):\n${sess.history.contents().toString('latin1').slice(-1500)}\n`,
      );
    throw e;
  });
  console.log(JSON.stringify({ guests: count, markers: seen.size, threadsWithOne, threadsWithAll: threads() }));
} finally {
  for (const s of sessions) s.close();
  for (const d of domids) await destroyDomain(xen, xs, d).catch(() => undefined);
  grants.close();
  await evtchn.close();
  xs.close();
  privcmd.close();
}
