// `npm run bench -- xen-launch`: on the QEMU Xen host (bench/xen-launch.sh), krata's domain builder
// against libxl's, same kernel, initrd, memory and no devices, alternating: create -> paused domain
// ready to unpause (vs `xl create -p`), and create -> first console byte with earlyprintk=xen (vs
// `xl create` + xenconsoled). Prints the median per-phase breakdown of ours and what `xl -vvv`'s
// stamped log shows of libxl's, then returns the figures. Goals (issue 22): builder_ratio <= 0.7,
// first_byte_ratio <= 0.8.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { formatPhases, type Phase } from '../lib/phase-timer.js';
import { repoRoot } from '../lib/package-root.js';

type Kind = 'builder' | 'first_byte';

export interface XenLaunchRuns {
  ours: Record<Kind, { ms: number; phases: Phase[] }[]>;
  xl: Record<Kind, number[]>;
  /** One `xl -vvv create -p`: each line's arrival in dom0 (µs since the epoch) and its text. */
  xlLog: { us: number; text: string }[];
  dom0UsedMb: number;
}

/** The script's output lines, read back; lines it does not know are skipped. */
export function parseXenLaunchOutput(stdout: string): XenLaunchRuns {
  const runs: XenLaunchRuns = { ours: { builder: [], first_byte: [] }, xl: { builder: [], first_byte: [] }, xlLog: [], dom0UsedMb: NaN };
  for (const line of stdout.split('\n')) {
    const m = /^(OURS|XL) (builder|first_byte) (.*)$/.exec(line);
    if (m?.[1] === 'OURS') runs.ours[m[2] as Kind].push(JSON.parse(m[3]!) as { ms: number; phases: Phase[] });
    else if (m?.[1] === 'XL') runs.xl[m[2] as Kind].push(Number(m[3]));
    const log = /^XLLOG (\d+) (.*)$/.exec(line);
    if (log) runs.xlLog.push({ us: Number(log[1]), text: log[2]! });
    const result = /^RESULT (\d+)/.exec(line);
    if (result) runs.dom0UsedMb = Number(result[1]);
  }
  return runs;
}

export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

/** Each phase's median over the runs, in the order of the first run. */
export function medianPhases(runs: Phase[][]): Phase[] {
  const names = runs[0]?.map((p) => p.name) ?? [];
  return names.map((name, i) => ({ name, ms: median(runs.map((r) => r[i]?.ms ?? NaN).filter((v) => !Number.isNaN(v))) }));
}

/**
 * libxl's phases from one stamped `xl -vvv create -p` log: each landmark message closes the phase
 * running since the previous one (the first line opened by "(start)", the last closed by "(exit)").
 * Landmarks are matched in order; a missing one merges its phase into the next.
 */
export const XL_LANDMARKS: [RegExp, string][] = [
  [/^Parsing config/, 'start xl (exec, libraries)'],
  [/libxl__domain_make/, 'parse config, start libxl'],
  [/running bootloader/, 'create domain, xenstore'],
  [/xc_dom_kernel_file/, 'bootloader, builder set-up'],
  [/xc_dom_parse_image: called/, 'read files'],
  [/xc_dom_boot_mem_init: called/, 'parse kernel, plan'],
  [/xc_dom_build_image: called/, 'populate memory'],
  [/xc_dom_alloc_page +: +start info/, 'map, copy kernel'],
  [/xc_dom_boot_image: called/, 'map, decompress, copy initrd; map p2m'],
  [/start_info_x86_64: called/, 'p2m, page tables'],
  [/vcpu_x86_64: called/, 'start info, shared info'],
  [/xc_dom_set_gnttab_entry/, 'vcpu context, pin page tables'],
  [/xc_dom_release: called/, 'grant table'],
  [/do_domain_create: .*inprogress/, 'unmap, xenstore, introduce'],
  [/^\(exit\)$/, 'wait for xenconsoled, exit'],
];

export function xlPhases(log: { us: number; text: string }[], landmarks = XL_LANDMARKS): Phase[] {
  if (log.length === 0) return [];
  const out: Phase[] = [];
  let since = log[0]!.us;
  let at = 0;
  for (const [pattern, name] of landmarks) {
    const i = log.findIndex((l, k) => k > at && pattern.test(l.text));
    if (i < 0) continue;
    out.push({ name, ms: Math.round((log[i]!.us - since) / 10) / 100 });
    since = log[i]!.us;
    at = i;
  }
  return out;
}

const ratio = (a: number, b: number) => Number((a / b).toFixed(2));

export function xenLaunchBench(): Record<string, unknown> {
  const root = repoRoot();
  const r = spawnSync('bash', [join(root, 'test/xenhost/boot.sh'), join(root, 'bench/xen-launch.sh')], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'inherit'],
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  const runs = parseXenLaunchOutput(r.stdout);
  if (r.status !== 0 || runs.ours.builder.length === 0 || runs.xl.first_byte.length === 0) {
    process.stdout.write(r.stdout);
    throw new Error(`xen-launch failed (exit ${r.status})`);
  }
  const builderMs = median(runs.ours.builder.map((o) => o.ms));
  const firstByteMs = median(runs.ours.first_byte.map((o) => o.ms));
  const xlBuilderMs = median(runs.xl.builder);
  const xlFirstByteMs = median(runs.xl.first_byte);
  console.log(`krata, create -> paused (median phases of ${runs.ours.builder.length} runs):`);
  console.log(formatPhases(medianPhases(runs.ours.builder.map((o) => o.phases))));
  console.log(`krata, create -> first console byte (median phases of ${runs.ours.first_byte.length} runs):`);
  console.log(formatPhases(medianPhases(runs.ours.first_byte.map((o) => o.phases))));
  console.log('xl -vvv create -p (one run, log lines stamped on arrival; -vvv itself costs time):');
  console.log(formatPhases(xlPhases(runs.xlLog)));
  if (process.env.KRATA_BENCH_XL_LOG)
    for (const l of runs.xlLog) console.log(`${((l.us - runs.xlLog[0]!.us) / 1000).toFixed(1).padStart(8)} ${l.text}`);
  return {
    bench: 'xen-launch',
    builder_ms: builderMs,
    xl_builder_ms: xlBuilderMs,
    builder_ratio: ratio(builderMs, xlBuilderMs),
    first_byte_ms: firstByteMs,
    xl_first_byte_ms: xlFirstByteMs,
    first_byte_ratio: ratio(firstByteMs, xlFirstByteMs),
    runs: runs.ours.builder.length,
    ours: 'DomainBuilder (+ ConsoleBackend for the first byte) in a resident process (launch-main --serve)',
    baseline: 'xl create -p / xl create + xenconsoled (Xen 4.17, same QEMU host, alternating), timed as commands',
    dom0_used_mb: runs.dom0UsedMb,
  };
}
