// Run in dom0 by bench/density.sh: starts guests (96 MiB by default) one after another until the host has no memory
// for another, measures what dom0 spends on them, then removes them all. Prints one JSON line.
//   dom0-density.js ours MAX   guests through the node agent's API (as `kratactl apply`), each to Running
//                              with its network (kratanet) and console; stops when the agent reports
//                              InsufficientMemory or cannot create the domain
//   dom0-density.js xl MAX     `xl create` of the same kernel and memory with a read-only vbd (loop device) and a
//                              vif on xenbr0 (block and vif-bridge hotplug scripts, xenconsoled)
// Each launch starts once the guest before it has finished booting (bootSettled): under TCG a booting
// guest takes the emulated CPUs from dom0, so launches that overlap boots measure the boots, not what
// the running guests cost the next launch.
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { AgentClient } from '../kratactl/agent-client.js';
import type { Guest } from '../crds/generated/types.js';
import { lastOverFirst, perGuest, snapshot, type Snapshot } from './dom0-density-probe.js';

const [mode, maxArg] = process.argv.slice(2);
const max = Number(maxArg ?? 64);
/** Guest memory: 96 MiB, since Debian's kernel loads at 16 MiB and ends near 78 MiB with the initrd (64 MiB fails for both). */
const guestMiB = Number(process.env.KRATA_DENSITY_GUEST_MIB ?? 96);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const log = (s: string): void => void process.stderr.write(`density ${mode}: ${s}\n`);

function xenFreeMiB(): number {
  const m = /^free_memory\s*:\s*(\d+)/m.exec(execFileSync('xl', ['info'], { encoding: 'utf8' }));
  return m ? Number(m[1]) : -1;
}

/** A domain's CPU seconds, from `xl list` (undefined once it is gone). */
function cpuSeconds(name: string): number | undefined {
  const r = spawnSync('xl', ['list', name], { encoding: 'utf8' });
  const cols = r.status === 0 ? r.stdout.trim().split('\n')[1]?.trim().split(/\s+/) : undefined;
  return cols ? Number(cols[5]) : undefined;
}

/** Waits until the guest uses under 10% of a CPU over a second (booted), at most 120 s; returns ms waited. */
async function bootSettled(name: string): Promise<number> {
  const t0 = performance.now();
  let last = cpuSeconds(name);
  while (last !== undefined && performance.now() - t0 < 120_000) {
    await sleep(1000);
    const now = cpuSeconds(name);
    if (now === undefined || now - last < 0.1) break;
    last = now;
  }
  return Math.round(performance.now() - t0);
}

async function settle(): Promise<void> {
  // Let the last guests finish booting (their backends connect) before measuring.
  await sleep(Number(process.env.KRATA_DENSITY_SETTLE_MS ?? 8000));
}

/**
 * What each guest costs is the slope from the first guest to the last: what the first launch loads once
 * (the agent's boot-file and kernel caches, code paged in) is reported apart, as first_guest_kib.
 */
async function settledSnapshot(pid: number): Promise<Snapshot> {
  await settle();
  return snapshot(pid);
}

function report(
  extra: Record<string, unknown>,
  before: Snapshot,
  first: Snapshot | undefined,
  after: Snapshot,
  guests: number,
  ms: number[],
): void {
  console.log(
    JSON.stringify({
      mode,
      guests,
      guest_mib: guestMiB,
      launch_ms: ms,
      last_over_first_launch: lastOverFirst(ms),
      xen_free_mib_at_end: xenFreeMiB(),
      ...perGuest(first ?? before, after, first ? guests - 1 : guests),
      first_guest_kib: first ? first.usedKiB - before.usedKiB : null,
      others_after: after.others.slice(0, 20),
      before_used_kib: before.usedKiB,
      after_used_kib: after.usedKiB,
      ...extra,
    }),
  );
}

async function ours(): Promise<void> {
  const agentPid = Number(readFileSync('/run/krata/agent.pid', 'utf8').trim());
  const client = new AgentClient('/run/krata/agent.sock', 300_000);
  const before = snapshot(agentPid);
  let first: Snapshot | undefined;
  const names: string[] = [];
  const ms: number[] = [];
  /** How long each guest took to settle after its launch (not part of the launch time). */
  const boots: number[] = [];
  let stop = '';
  for (let i = 1; i <= max && !stop; i++) {
    const name = `d${String(i).padStart(3, '0')}`;
    const guest = {
      apiVersion: 'krata.dev/v1alpha1',
      kind: 'Guest',
      metadata: { name, namespace: 'default' },
      spec: {
        image: 'bench/busybox:1',
        command: ['sh', '-c', 'while :; do sleep 60; done'],
        resources: { cpus: 1, memory: `${guestMiB}Mi` },
        terminationGracePeriodSeconds: 1,
      },
    } as unknown as Guest;
    const t0 = performance.now();
    await client.apply([guest]);
    names.push(name);
    for (;;) {
      const g = await client.get('default', name);
      const s = g.status;
      if (s?.phase === 'Running') {
        ms.push(Math.round(performance.now() - t0));
        log(`${name} Running in ${ms.at(-1)} ms`);
        boots.push(await bootSettled(`krata.default.${name}`));
        if (i === 1) first = await settledSnapshot(agentPid);
        break;
      }
      // Out of memory: the agent's own check, or Xen refusing the domain's memory. Other create failures
      // (a xenstore timeout on a loaded host) are retried by the agent, and waited for.
      const noMemory = s?.reason === 'FailedCreate' && /memory|ENOMEM/i.test(s.message ?? '');
      if (s?.reason === 'InsufficientMemory' || noMemory || s?.phase === 'Failed') {
        stop = `${name}: ${s.phase}/${s.reason}: ${s.message ?? ''}`;
        break;
      }
      if (performance.now() - t0 > 300_000) {
        stop = `${name}: not Running after 300 s (${s?.phase}/${s?.reason})`;
        break;
      }
      await sleep(200);
    }
  }
  stop ||= `reached ${max}`;
  log(`stopped: ${stop}`);
  // The one that could not be placed does not count; remove it before measuring.
  if (names.length > ms.length) await client.delete('default', names.pop()!, { wait: true, gracePeriodSeconds: 0 });
  await settle();
  const after = snapshot(agentPid);
  const started = ms.length;
  const t = performance.now();
  await Promise.all(names.map((n) => client.delete('default', n, { wait: true, gracePeriodSeconds: 0 })));
  const deleteMs = Math.round(performance.now() - t);
  await sleep(3000);
  const end = snapshot(agentPid);
  report(
    { stop, boot_settle_ms: boots, delete_all_ms: deleteMs, left_after_delete_kib: end.usedKiB - before.usedKiB },
    before,
    first,
    after,
    started,
    ms,
  );
}

async function xl(): Promise<void> {
  const diskImage = '/opt/xenhost/guest/disk.sqfs';
  const image = process.argv[4] ?? diskImage;
  const loopsOf = new Map<string, string[]>();
  const before = snapshot(-1);
  let first: Snapshot | undefined;
  const ms: number[] = [];
  /** How long each guest took to settle after its launch (not part of the launch time). */
  const boots: number[] = [];
  const names: string[] = [];
  let stop = '';
  for (let i = 1; i <= max && !stop; i++) {
    const name = `dx${String(i).padStart(3, '0')}`;
    const cfg = `/tmp/${name}.cfg`;
    const t0 = performance.now();
    // Read-only loop devices made here, as scenario 010 does: libxl's phy backend takes a plain file only
    // through the block hotplug script, whose file path (locking, sharing checks) outlasts libxl's
    // timeout under TCG on a loaded host; the phy path of the script still runs for each vbd.
    const loops = [image].map((f) =>
      execFileSync('sh', ['-c', 'd=$(losetup -f) && losetup -r "$d" "$1" && echo "$d"', 'sh', f], { encoding: 'utf8' }).trim(),
    );
    loopsOf.set(name, loops);
    writeFileSync(
      cfg,
      [
        `name = "${name}"`,
        'type = "pv"',
        'kernel = "/opt/xenhost/guest/vmlinux"',
        'ramdisk = "/opt/xenhost/guest/initrd.gz"',
        `extra = "console=hvc0 quiet loglevel=3 krata_marker=${name} krata_devices=1 krata_ip=10.99.${i >> 8}.${(i & 255) + 1}"`,
        `memory = ${guestMiB}`,
        'vcpus = 1',
        `disk = [ "phy:${loops[0]},xvda,r" ]`,
        `vif = [ "mac=00:16:3e:01:${(i >> 8).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')},bridge=xenbr0" ]`,
        '',
      ].join('\n'),
    );
    const r = spawnSync('xl', ['create', '-q', cfg], { encoding: 'utf8' });
    if (r.status !== 0) {
      stop = `${name}: xl create exited ${r.status}: ${(r.stderr ?? '').trim().split('\n').slice(0, 4).join(' | ')}`;
      spawnSync('xl', ['destroy', name]);
      for (const l of loops) spawnSync('losetup', ['-d', l]);
      break;
    }
    ms.push(Math.round(performance.now() - t0));
    names.push(name);
    log(`${name} created in ${ms.at(-1)} ms`);
    boots.push(await bootSettled(name));
    if (i === 1) first = await settledSnapshot(-1);
  }
  stop ||= `reached ${max}`;
  log(`stopped: ${stop}`);
  await settle();
  const booted = names.filter((n) => {
    try {
      return readFileSync(`/var/log/xen/console/guest-${n}.log`, 'utf8').includes('KRATA-GUEST-NET eth0 up');
    } catch {
      return false;
    }
  }).length;
  const after = snapshot(-1);
  const t = performance.now();
  for (const n of names) {
    spawnSync('xl', ['destroy', n]);
    for (const l of loopsOf.get(n) ?? []) spawnSync('losetup', ['-d', l]);
  }
  const deleteMs = Math.round(performance.now() - t);
  await sleep(3000);
  const end = snapshot(-1);
  report(
    {
      stop,
      booted_with_network: booted,
      boot_settle_ms: boots,
      delete_all_ms: deleteMs,
      left_after_delete_kib: end.usedKiB - before.usedKiB,
    },
    before,
    first,
    after,
    ms.length,
    ms,
  );
}

if (mode === 'ours') await ours();
else if (mode === 'xl') await xl();
else if (mode !== undefined) throw new Error(`usage: dom0-density.js ours|xl MAX [IMAGE]`);
