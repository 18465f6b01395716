// Run inside dom0: the guest channel's Xen plumbing through XenHypervisor, with a stand-in for the
// protocol (the transport is recorded, not spoken to). A busybox guest whose /init holds /dev/hvc1 open
// raw writes a greeting, 64 KiB and an end marker to it, and echoes on its console the bytes the host
// sent. Checked: console device 1 reaches state 4 on both ends, the bytes arrive in order, input reaches
// the guest, Xen's figures for the domain, and no console backend is left after destroy. One JSON line.
//   node dist/test/e2e/dom0/channel.js '{"stateDir","name"}'
// Used by scenario 105.
import { XenHypervisor } from '../../../node-agent/runtime/xen-hypervisor.js';
import type { ChannelTransport, GuestChannel } from '../../../node-agent/channel/types.js';
import { XenstoreClient } from '../../../node-agent/xen/index.js';
import { buildInitrd } from '../../../node-agent/guest/initrd.js';

const args = JSON.parse(process.argv[2] ?? '{}') as { stateDir: string; name: string };
const t0 = performance.now();
const ms = () => Math.round(performance.now() - t0);
const report: Record<string, unknown> = {};
const sleep = (n: number) => new Promise((r) => setTimeout(r, n));

class Mismatch extends Error {}
function expect(ok: unknown, what: string): asserts ok {
  if (!ok) throw new Mismatch(what);
}
async function waitFor<T>(what: string, timeoutMs: number, get: () => T | undefined | Promise<T | undefined>): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const v = await get();
    if (v !== undefined) return v;
    if (performance.now() > deadline) throw new Mismatch(`${what} within ${timeoutMs / 1000} s`);
    await sleep(200);
  }
}

// The stock e2e initrd with its /init replaced: an archive loaded after it (initrdAppend, as a guest's
// launch config is), which the kernel unpacks over it.
const INIT = `#!/bin/sh
PATH=/sbin:/bin:/usr/sbin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo KRATA-CHANNEL-GUEST-UP
i=0; while [ ! -c /dev/hvc1 ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
[ -c /dev/hvc1 ] || echo KRATA-CHANNEL-NO-HVC1
# One descriptor for the whole run: hvc resets its termios at the last close.
exec 3<>/dev/hvc1
stty raw -echo <&3 || echo KRATA-CHANNEL-NO-STTY
( echo "KRATA-CHANNEL-GOT $(head -c 14 <&3)" ) &
echo KRATA-CHANNEL-HELLO >&3
head -c 65536 /dev/zero | tr '\\000' z >&3
echo KRATA-CHANNEL-END >&3
echo KRATA-CHANNEL-WRITTEN
while :; do sleep 3600; done
`;

// The protocol's stand-in: records what the guest sends, sends a line once.
let received = Buffer.alloc(0);
let opened: { transport: ChannelTransport; software: string; atMs: number } | undefined;
const open = (transport: ChannelTransport, opts: { software: string }): GuestChannel => {
  opened = { transport, software: opts.software, atMs: ms() };
  transport.onData((d) => (received = Buffer.concat([received, d])));
  transport.write(Buffer.from('PING-FROM-HOST'));
  return { close: () => transport.close() } as unknown as GuestChannel;
};

const hv = await XenHypervisor.open({ stateDir: args.stateDir, channel: { open, connectTimeoutMs: 120_000 } });
const xs = await XenstoreClient.connect();
let domid: number | undefined;
let failed = false;
try {
  const d = await hv.create({
    name: args.name,
    guest: { namespace: 'e2e', name: 'channel', uid: 'uid-channel', specHash: 'h' },
    vcpus: 1,
    maxVcpus: 1,
    memoryMiB: 128,
    maxMemoryMiB: 128,
    kernel: '/opt/xenhost/guest/vmlinux',
    initrd: '/opt/xenhost/guest/initrd.gz',
    initrdAppend: buildInitrd([{ path: 'init', data: Buffer.from(INIT), mode: 0o755 }]),
    cmdline: 'console=hvc0 quiet loglevel=3',
    disks: [],
    nics: [],
  });
  domid = d.domid;
  report.domid = domid;
  report.createdMs = ms();
  const F = `/local/domain/${domid}/device/console/1`;
  const B = `/local/domain/0/backend/console/${domid}/1`;
  expect((await xs.read(`${B}/type`)) === 'krata-channel', 'backend type is not krata-channel');
  await waitFor('a channel from XenHypervisor.channel()', 120_000, () => hv.channel(domid!));
  report.channelMs = opened!.atMs;
  report.software = opened!.software;
  expect(/^krata-node-agent \d/.test(opened!.software), `software ${opened!.software}`);
  const states = await waitFor('state 4 on both ends', 30_000, async () => {
    const s = [await xs.tryRead(`${F}/state`), await xs.tryRead(`${B}/state`)];
    return s[0] === '4' && s[1] === '4' ? s : undefined;
  });
  report.states = { frontend: states[0], backend: states[1] };
  report.ringRef = await xs.tryRead(`${F}/ring-ref`);
  report.port = await xs.tryRead(`${F}/port`);
  const text = await waitFor('the guest’s bytes through the transport', 60_000, () => {
    const t = received.toString('latin1');
    return t.includes('KRATA-CHANNEL-END') ? t : undefined;
  });
  report.bytesReceived = received.length;
  report.dataMs = ms();
  const expected = 'KRATA-CHANNEL-HELLO\n' + 'z'.repeat(65536) + 'KRATA-CHANNEL-END\n';
  expect(text.endsWith(expected), `bytes out of order or missing: ${JSON.stringify(text.slice(0, 80))}...${text.length}`);
  const cons = hv.console(domid)!;
  await waitFor('the host’s bytes echoed on the guest’s console', 30_000, () =>
    cons.history().toString('latin1').includes('KRATA-CHANNEL-GOT PING-FROM-HOST') ? true : undefined,
  );
  const stats = hv.stats(domid);
  report.stats = stats;
  expect(stats && stats.memoryBytes > 64 * 1024 * 1024 && stats.vcpusOnline === 1 && stats.vcpusMax === 1 && stats.cpuSeconds > 0, 'stats');
  await hv.destroy(domid);
  expect(hv.channel(domid) === undefined, 'a channel for a destroyed domain');
  expect((await xs.tryList(`/local/domain/0/backend/console/${domid}`)).length === 0, 'console backend left after destroy');
  expect((await xs.tryRead(`/local/domain/0/backend/console/${domid}`)) === undefined, 'console backend dir left after destroy');
  domid = undefined;
  report.ok = true;
} catch (e) {
  failed = true;
  report.error = e instanceof Mismatch ? e.message : String((e as Error).stack ?? e);
  if (domid !== undefined) {
    report.console = hv.console(domid)?.history().toString('latin1').slice(-1500);
    report.received = received.toString('latin1').slice(0, 200);
    await hv.destroy(domid).catch(() => undefined);
  }
} finally {
  report.ms = ms();
  console.log(JSON.stringify(report));
  xs.close();
  await hv.close();
}
process.exit(failed ? 1 : 0);
