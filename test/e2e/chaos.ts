// The chaos driver of scenario 180-chaos (runs on the host): a seeded churn of Guests in namespace
// `chaos` while the node agent in dom0 is killed with SIGKILL, at random moments and at each of its
// named kill points (node-agent/fault-points.ts), and after each restart the checks that it converged:
// one domain per Guest that should run, on the spec its status names; none for deleted Guests; the
// Guest list the churn's model expects; the published port of `web` answers; each crash-looping Guest
// (`loop` in every run, and those the churn makes) at most one domain, its restart count and back-off
// never lower than before, its next restart not overdue; dom0/leaks.sh finds nothing. At the end the
// last agent must have restarted `loop` once more.
//   node dist/test/e2e/chaos.js        (env below; the scenario sets it up)
// KRATA_XENHOST_EXEC, KRATA_AGENT_SOCKET (the agent's API, relayed to the host), CHAOS_AGENT (the agent's
// command line in dom0), CHAOS_STAGE (a host directory dom0 sees), KRATA_CHAOS_SEED (replays a run),
// KRATA_CHAOS_ROUNDS (random kills), KRATA_CHAOS_POINTS (`all`, or names, comma-separated).
import { spawnSync } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { join } from 'node:path';
import type { Guest } from '../../crds/generated/types.js';
import { AgentClient, AgentError } from '../../kratactl/agent-client.js';
import { AGENT_FAULT_POINTS } from '../../node-agent/fault-points.js';
import { specHash } from '../../node-agent/reconcile/identity.js';
import { buildTar } from '../../lib/tar.js';
import { buildImage, writeDockerSave } from '../oci-images.js';

const env = (name: string, dflt?: string): string => {
  const v = process.env[name] ?? dflt;
  if (v === undefined) throw new Error(`${name} is not set`);
  return v;
};
const EXEC = env('KRATA_XENHOST_EXEC');
const AGENT = env('CHAOS_AGENT');
const STAGE = env('CHAOS_STAGE');
const STATE = '/var/lib/krata';
const NS = 'chaos';
const WEB_PORT = 18010;
/** The Guests every run has throughout, which the churn leaves alone: `web` serves, `loop` crash-loops. */
const FIXED = ['web', 'loop'];
const MAX_GUESTS = 4;
const client = new AgentClient(env('KRATA_AGENT_SOCKET'), 60_000);

// ---- the seed ------------------------------------------------------------------------------------
const seed = Number(process.env.KRATA_CHAOS_SEED || Math.floor(Math.random() * 2 ** 32)) >>> 0;
console.log(`seed ${seed} (KRATA_CHAOS_SEED=${seed} replays this run)`);
/** mulberry32: small, fast, and the same sequence for the same seed everywhere. */
let prngState = seed;
function random(): number {
  prngState = (prngState + 0x6d2b79f5) >>> 0;
  let t = prngState;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
}
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;

// The CI default: one random kill and two points the issue names: inside the domain builder (its loop
// devices attached, no xenstore entry for them yet) and half-way through a teardown. A soak
// (KRATA_CHAOS_ROUNDS set) takes every point unless KRATA_CHAOS_POINTS says otherwise.
const CI_POINTS = 'create.domain-created,teardown.domain-destroyed';
const rounds = Number(process.env.KRATA_CHAOS_ROUNDS || 1);
const pointsSpec = process.env.KRATA_CHAOS_POINTS || (process.env.KRATA_CHAOS_ROUNDS ? 'all' : CI_POINTS);
const points =
  pointsSpec === 'all'
    ? AGENT_FAULT_POINTS.map((p) => p.name)
    : pointsSpec
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean);
for (const p of points) if (!AGENT_FAULT_POINTS.some((q) => q.name === p)) throw new Error(`KRATA_CHAOS_POINTS: no point ${p}`);

// ---- dom0 ----------------------------------------------------------------------------------------
function x(cmd: string, opts: { ok?: boolean } = {}): string {
  if (process.env.CHAOS_DEBUG) console.log(`dom0: ${cmd.slice(0, 100)}`);
  const r = spawnSync(EXEC, [cmd], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20 });
  if (r.status !== 0 && !opts.ok)
    throw new Error(`dom0: ${cmd.slice(0, 120)}: exit ${r.status}: ${r.stderr.trim()} ${r.stdout.trim()}`.slice(0, 2000));
  return r.stdout;
}
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const t0 = Date.now();
const secs = () => ((Date.now() - t0) / 1000).toFixed(0);
let failures = 0;
function check(ok: boolean, what: string, detail = ''): void {
  console.log(`${ok ? 'ok  ' : 'FAIL'} [${secs()} s] ${what}${!ok && detail ? `: ${detail}` : ''}`);
  if (!ok) failures++;
}
function fatal(what: string): never {
  console.log(`FAIL [${secs()} s] ${what}`);
  console.log(x('tail -40 /tmp/agent.log; xl list', { ok: true }));
  process.exit(1);
}

const agentPid = () => x('cat /run/krata/agent.pid 2>/dev/null || true').trim();
const alive = (pid: string) => pid !== '' && x(`kill -0 ${pid} 2>/dev/null && echo y || true`).trim() === 'y';

/** Starts the agent (armed with `point` if given) and waits until its API answers, or it died. */
async function startAgent(point?: string): Promise<boolean> {
  const vars = point ? `env KRATA_FAULT_POINTS=${point} KRATA_FAULT_TRACE=/tmp/chaos-trace` : '';
  x(
    'rm -f /tmp/chaos-trace; mkdir -p /run/krata; ' +
      `(setsid ${vars} ${AGENT} >>/tmp/agent.log 2>&1 </dev/null & echo $! >/run/krata/agent.pid)`,
  );
  const pid = agentPid();
  for (let i = 0; i < 600; i++) {
    try {
      await client.version();
      return true;
    } catch {
      if (i % 10 === 9 && !alive(pid)) return false;
      await sleep(500);
    }
  }
  fatal('the agent did not answer within 300 s of its start');
}

/** SIGKILL: as a crash would end the agent (its kratanet child is left to notice). */
async function killAgent(): Promise<void> {
  const pid = agentPid();
  x(`kill -KILL ${pid} 2>/dev/null; for i in $(seq 100); do kill -0 ${pid} 2>/dev/null || exit 0; sleep 0.1; done; exit 1`);
}

/** Waits for an armed agent to kill itself; the trace file's last line names the point. */
async function awaitDeath(point: string, timeoutS = 240): Promise<void> {
  const pid = agentPid();
  for (let i = 0; i < timeoutS; i++) {
    if (!alive(pid)) {
      const last = x('tail -1 /tmp/chaos-trace 2>/dev/null || true').trim();
      check(last === point, `${point}: the agent died there`, `the last point it passed was "${last}"`);
      return;
    }
    await sleep(1000);
  }
  fatal(`${point}: the agent was still alive ${timeoutS} s after the operation that reaches it`);
}

// ---- the model -----------------------------------------------------------------------------------
interface Want {
  kind: 'steady' | 'crash' | 'web';
  gen: number;
  cpus: number;
}
const model = new Map<string, Want>();
const deleted = new Set<string>();
let nextName = 0;

function guest(name: string, w: Want): Guest {
  const command =
    w.kind === 'crash'
      ? ['sh', '-c', 'echo crashing; sleep 1; exit 3']
      : w.kind === 'web'
        ? ['sh', '-c', 'mkdir -p /tmp/www && echo CHAOS-WEB-$CHAOS_GEN >/tmp/www/id.txt && exec busybox httpd -f -p 8000 -h /tmp/www']
        : ['sh', '-c', 'echo up $CHAOS_GEN; while :; do sleep 5; done'];
  return {
    apiVersion: 'krata.dev/v1alpha1',
    kind: 'Guest',
    metadata: { name, namespace: NS },
    spec: {
      image: 'e2e/busybox:1',
      command,
      env: [{ name: 'CHAOS_GEN', value: String(w.gen) }],
      resources: { cpus: w.cpus, maxCpus: 2, memory: '128Mi' },
      restartPolicy: 'Always',
      terminationGracePeriodSeconds: 2,
      ...(w.kind === 'web' ? { network: { ports: [{ containerPort: 8000, hostPort: WEB_PORT }] } } : {}),
    },
  } as unknown as Guest;
}
async function apply(name: string, w: Want): Promise<void> {
  model.set(name, w);
  deleted.delete(name);
  await client.apply([guest(name, w)]);
}

type Op = 'create' | 'replace' | 'resize' | 'delete';
/** One churn step, chosen by the seed: returns what it did. */
async function churn(op?: Op): Promise<string> {
  const names = [...model.keys()].filter((n) => !FIXED.includes(n));
  op ??=
    names.length === 0
      ? 'create'
      : names.length >= MAX_GUESTS
        ? pick(['replace', 'resize', 'delete'] as const)
        : pick(['create', 'create', 'replace', 'resize', 'delete'] as const);
  if (op === 'create') {
    const name = `g${nextName++}`;
    const kind = random() < 0.3 ? 'crash' : 'steady';
    await apply(name, { kind, gen: 1, cpus: 1 });
    return `create ${name} (${kind})`;
  }
  const name = pick(names.length ? names : ['web']);
  const w = model.get(name)!;
  if (op === 'replace') {
    await apply(name, { ...w, gen: w.gen + 1 });
    return `replace ${name} (CHAOS_GEN=${w.gen + 1})`;
  }
  if (op === 'resize') {
    await apply(name, { ...w, cpus: 3 - w.cpus });
    return `resize ${name} (cpus ${3 - w.cpus})`;
  }
  if (name === 'web') return 'nothing (web stays)';
  model.delete(name);
  deleted.add(name);
  await client.delete(NS, name);
  return `delete ${name}`;
}

// ---- convergence and the checks --------------------------------------------------------------------
interface Dom {
  domid: number;
  name: string;
  state: string;
  key: string;
  uid: string;
  hash: string;
}
function domains(): Dom[] {
  // One xenstore-read per domain: each process started in dom0 costs a second or two under emulation
  // (and xenstore-ls a round trip per node). It stops at the first key missing: the keys come in order.
  const out = x(
    'xl list | awk \'NR > 1 && $2 != 0 {print $2, $5}\' | while read id st; do echo "@$id $st"; h=/local/domain/$id; ' +
      'xenstore-read $h/name $h/krata/guest-key $h/krata/guest-uid $h/krata/spec-hash 2>/dev/null; done; true',
  );
  return out
    .split('@')
    .filter((b) => b.trim())
    .map((block) => {
      const [head, name = '', key = '', uid = '', hash = ''] = block.trim().split('\n');
      const [domid, state] = head!.split(' ');
      return { domid: Number(domid), state: state!, name, key, uid, hash };
    });
}

/** What is not (yet) as the model wants it; empty once converged. */
function differences(list: Guest[], doms: Dom[]): string[] {
  const diffs: string[] = [];
  const byName = new Map(list.map((g) => [g.metadata.name!, g]));
  const names = [...byName.keys()].sort();
  const want = [...model.keys()].sort();
  if (names.join(',') !== want.join(',')) diffs.push(`Guests ${names.join(',')}, want ${want.join(',')}`);
  for (const [name, w] of model) {
    const g = byName.get(name);
    if (!g) continue;
    const s = g.status ?? {};
    const mine = doms.filter((d) => d.key === `${NS}/${name}`);
    const env = g.spec.env?.find((e) => e.name === 'CHAOS_GEN')?.value;
    if (env !== String(w.gen)) diffs.push(`${name}: spec CHAOS_GEN ${env}, want ${w.gen}`);
    if (s.observedGeneration !== g.metadata.generation)
      diffs.push(`${name}: observedGeneration ${s.observedGeneration} of ${g.metadata.generation}`);
    if (mine.length > 1) diffs.push(`${name}: ${mine.length} domains (${mine.map((d) => d.domid).join(',')})`);
    const hash = specHash(g);
    for (const d of mine) {
      if (d.uid !== g.metadata.uid || d.hash !== hash)
        diffs.push(`${name}: domain ${d.domid} on uid ${d.uid} spec ${d.hash}, want ${g.metadata.uid} ${hash}`);
    }
    if (w.kind === 'crash') continue; // its domain comes and goes
    if (s.phase !== 'Running') diffs.push(`${name}: phase ${s.phase} (${s.reason ?? ''} ${s.message ?? ''})`);
    else if (mine.length !== 1 || mine[0]!.domid !== s.domid || mine[0]!.state.includes('p'))
      diffs.push(`${name}: status names domain ${s.domid}, Xen has ${mine.map((d) => `${d.domid}(${d.state})`).join(',') || 'none'}`);
    if (s.resources && s.resources.vcpusOnline !== undefined && s.resources.vcpusOnline !== w.cpus)
      diffs.push(`${name}: ${s.resources.vcpusOnline} vCPUs online, want ${w.cpus}`);
  }
  for (const d of doms) {
    const name = d.key.startsWith(`${NS}/`) ? d.key.slice(NS.length + 1) : undefined;
    if (d.key === '' || name === undefined || !model.has(name))
      diffs.push(`domain ${d.domid} (${d.name || 'no name'}, ${d.state}) belongs to no wanted Guest`);
  }
  return diffs;
}

async function converge(label: string, timeoutS = 600): Promise<void> {
  let diffs: string[] = [];
  const start = Date.now();
  let shown = '';
  for (;;) {
    let list: Guest[];
    try {
      list = await client.list(NS);
    } catch (e) {
      diffs = [`the agent does not answer: ${(e as Error).message}`];
      list = [];
    }
    if (list.length || model.size === 0) diffs = differences(list, domains());
    if (diffs.length === 0) break;
    // What it waits for, whenever that changes: a stuck run says why while it runs.
    if (diffs.join('; ') !== shown) console.log(`     [${secs()} s] ${label}: waiting for ${(shown = diffs.join('; '))}`);
    if (Date.now() - start > timeoutS * 1000) {
      check(false, `${label}: converged within ${timeoutS} s`, diffs.join('; '));
      fatal(`${label}: not converged`);
    }
    await sleep(2000);
  }
  const list = await client.list(NS);
  const doms = domains();
  const running = [...model].filter(([, w]) => w.kind !== 'crash').map(([n]) => n);
  check(true, `${label}: converged: one domain each for ${running.join(',') || 'none'} on the spec hash and uid status names`);
  const crash = [...model].filter(([, w]) => w.kind === 'crash').map(([n]) => n);
  if (crash.length) {
    const dom0Now = Number(x('date +%s').trim());
    for (const n of crash)
      checkCrashLoop(
        label,
        n,
        list.find((g) => g.metadata.name === n),
        doms.filter((d) => d.key === `${NS}/${n}`),
        dom0Now,
      );
  }
  const gone = [...deleted].filter((n) => doms.some((d) => d.key === `${NS}/${n}`) || list.some((g) => g.metadata.name === n));
  check(gone.length === 0, `${label}: deleted Guests (${deleted.size}) have neither record nor domain`, gone.join(','));
  check(list.length === model.size, `${label}: no Guest forgotten: ${list.length} Guests, the model has ${model.size}`);
  const web = x(
    `for i in $(seq 60); do r=$(timeout 5 wget -q -O- http://127.0.0.1:${WEB_PORT}/id.txt 2>/dev/null) && { echo "$r"; exit 0; }; sleep 1; done; exit 1`,
    { ok: true },
  ).trim();
  check(
    web === `CHAOS-WEB-${model.get('web')!.gen}`,
    `${label}: web answers on published port ${WEB_PORT} with its current spec`,
    `got "${web}"`,
  );
  // A crash-looping Guest's domain comes and goes: a range of krata domains then.
  const expected = crash.length === 0 ? String(model.size) : `${model.size - crash.length}-${model.size}`;
  // (stderr too: a run that printed no summary, as when leaks.sh itself failed, is no pass)
  const runLeaks = () => x(`bash /krata/test/e2e/dom0/leaks.sh ${STATE} ${expected} 2>&1; echo "exit $?"`, { ok: true }).trim();
  let leaks = runLeaks();
  // A crash loop's next domain may be mid-build as leaks.sh looks (its loop devices attached, no
  // xenstore entries yet): a finding counts only if it is still there 20 s later.
  for (let i = 0; i < 2 && crash.length && !leaks.endsWith('exit 0'); i++) {
    console.log(`     [${secs()} s] ${label}: leaks.sh: ${leaks.split('\n').join('; ').slice(0, 600)}; again in 20 s`);
    await sleep(20_000);
    leaks = runLeaks();
  }
  const lines = leaks.split('\n');
  const summary = lines.at(-2) ?? '';
  check(
    lines.at(-1) === 'exit 0' && summary.startsWith('leaks: '),
    `${label}: leaks.sh (${expected} krata domains): ${summary}`,
    lines.filter((l) => l.startsWith('LEAK')).join('; ') || leaks.slice(-500) || 'no output',
  );
}

// ---- the crash loops -------------------------------------------------------------------------------
// A crash-looping Guest (exit 3 under restartPolicy Always) is restarted after a back-off of 10 s
// doubling to 300 s (node-agent/reconcile/observe.ts), which the agent keeps in its store: a restart
// of the agent must not reset the count or the back-off, nor lose the restart it owes.
const RESTART_SLACK_S = 120; // from the back-off's end to the create's status Creating, under TCG
const seenRestarts = new Map<string, number>();
const seenBackoff = new Map<string, number>();

function checkCrashLoop(label: string, name: string, g: Guest | undefined, mine: Dom[], dom0Now: number): void {
  const s = g?.status ?? {};
  const count = s.restartCount ?? 0;
  const before = seenRestarts.get(name) ?? 0;
  seenRestarts.set(name, Math.max(before, count));
  const doms = mine.map((d) => `${d.domid}(${d.state})`).join(',') || 'none';
  const phase = `${s.phase}${s.reason ? ` ${s.reason}` : ''}`;
  const what = `${label}: ${name} crash-loops: restartCount ${count} (${before} before), ${phase}, domains ${doms}`;
  if (count < before) return check(false, what, 'its restart count went down');
  if (s.phase === 'Running' || s.phase === 'Creating') {
    const ok = s.phase === 'Creating' ? mine.length <= 1 : mine.length === 1 && mine[0]!.domid === s.domid;
    return check(ok, what, `status names domain ${s.domid}`);
  }
  if (s.phase !== 'Pending' || s.reason !== 'CrashLoopBackOff') return check(false, what, 'want Creating, Running or CrashLoopBackOff');
  const backoff = Number(/^back-off (\d+)s /.exec(s.message ?? '')?.[1] ?? NaN);
  const was = seenBackoff.get(name) ?? 0;
  seenBackoff.set(name, Math.max(was, backoff));
  const late = Math.round(dom0Now - (Date.parse(s.finishTime ?? '') / 1000 + backoff));
  check(
    mine.length === 0 && s.exitCode === 3 && backoff >= was && late < RESTART_SLACK_S,
    `${what}, exit ${s.exitCode}, back-off ${backoff} s (${was} before), restart ${late <= 0 ? `due in ${-late} s` : `${late} s overdue`}`,
    `want no domain, exit 3, no shorter back-off, at most ${RESTART_SLACK_S} s overdue`,
  );
}

/** The last agent keeps the loop going: `name` is restarted (and crashes) once more after its last check. */
async function crashLoopGoesOn(name: string): Promise<void> {
  const before = seenRestarts.get(name) ?? 0;
  const status = async () => (await client.list(NS)).find((g) => g.metadata.name === name)?.status ?? {};
  const s = await status();
  const due = s.reason === 'CrashLoopBackOff' ? Number(/^back-off (\d+)s /.exec(s.message ?? '')?.[1] ?? 0) : 0;
  const waitS = Math.max(0, Date.parse(s.finishTime ?? '') / 1000 + due - Number(x('date +%s').trim())) + 300;
  let count = s.restartCount ?? 0;
  for (const end = Date.now() + waitS * 1000; count <= before && Date.now() < end;) {
    await sleep(5000);
    count = (await status()).restartCount ?? 0;
  }
  check(
    count > before,
    `${name}: the last agent restarted it again: restartCount ${count} (${before} at its last check)`,
    `not within ${waitS} s`,
  );
}

// ---- the run -------------------------------------------------------------------------------------
/** A small image of its own (a unique file: a new digest each time) for the image.* points. */
let images = 0;
async function importImage(): Promise<void> {
  const tag = `e2e/chaos-image:${seed}-${images++}`;
  const tar = buildTar([{ path: 'chaos.txt', data: Buffer.from(`${tag} ${Date.now()} ${random()}\n`) }]);
  const file = join(STAGE, 'chaos-image.tar');
  writeDockerSave(file, buildImage({ layers: [{ tar, compression: 'gzip' }], config: { Cmd: ['/chaos.txt'] } }), [tag]);
  await client.importImage(createReadStream(file), { name: tag, source: 'chaos-image.tar' }).catch(() => undefined);
}

/** Drives what reaches `point`, with the agent armed there. */
async function drive(point: string): Promise<string> {
  const op = AGENT_FAULT_POINTS.find((p) => p.name === point)!.op;
  if (op === 'create') return churn('create');
  if (op === 'image') {
    await importImage();
    return 'image import';
  }
  if (op === 'store') {
    // Two new Guests in one apply: a batch. Cut before its record, neither is stored; after, both are
    // (the next load finishes the renames).
    const ws: Array<[string, Want]> = [0, 1].map(() => [`g${nextName++}`, { kind: 'steady', gen: 1, cpus: 1 }]);
    await client.apply(ws.map(([n, w]) => guest(n, w))).catch(() => undefined);
    for (const [n, w] of ws) {
      if (point === 'store.batch-prepared') deleted.add(n);
      else model.set(n, w);
    }
    return `apply batch ${ws.map(([n]) => n).join(' ')}`;
  }
  // teardown: delete a steady guest (created first if there is none).
  const victim = [...model].find(([, w]) => w.kind === 'steady')?.[0];
  if (!victim) return churn('create').then((c) => `${c} (no steady Guest to delete; its replacement of nothing passes no teardown)`);
  model.delete(victim);
  deleted.add(victim);
  // The armed point may be reached first by another Guest's teardown (the crash-looping one's), the
  // agent dying before it stored this delete: unanswered, it is sent again once the agent is back.
  await client.delete(NS, victim).catch(() => unanswered.add(victim));
  return `delete ${victim}`;
}

/** Deletes the agent died without answering: sent again, as a client retries, once it is back. */
const unanswered = new Set<string>();

async function resendUnanswered(): Promise<void> {
  for (const name of unanswered) {
    await client.delete(NS, name).catch((e: unknown) => {
      // Stored before the agent died: gone by now, or going.
      if (!(e instanceof AgentError && e.status === 404)) throw e;
    });
    console.log(`resent the unanswered delete of ${name}`);
  }
  unanswered.clear();
}

async function main(): Promise<void> {
  console.log(`${rounds} random kills; named points: ${points.join(' ')}`);
  // The scenario started the agent (its API relay needs one); started here otherwise.
  if (
    !(await client.version().then(
      () => true,
      () => false,
    )) &&
    !(await startAgent())
  )
    fatal('the agent did not start');
  await apply('web', { kind: 'web', gen: 1, cpus: 1 });
  await apply('loop', { kind: 'crash', gen: 1, cpus: 1 });
  await churn('create');
  await churn('create');
  await converge('start');

  // Kratanet alone: SIGKILLed, restarted by the agent; the published port answers again.
  const kn = () =>
    x(
      // one grep over every process ([m]: not its own command line), then each match's parent
      "for f in $(grep -ls 'node-agent/net/[m]ain\\.js' /proc/[0-9]*/cmdline); do p=${f%/cmdline}; " +
        'read -r _ _ _ pp _ <$p/stat 2>/dev/null && echo "${p#/proc/} $pp"; done; true',
    )
      .split('\n')
      .filter(Boolean)
      .map((l) => l.split(' '));
  const before = kn();
  const agent = agentPid();
  check(
    before.length === 1 && before[0]![1] === agent,
    `kratanet: one process, the agent's child (${before.map((p) => p.join(' parent ')).join('; ')})`,
  );
  x(`kill -KILL ${before[0]![0]}`);
  let after: string[][] = [];
  for (let i = 0; i < 60; i++) {
    await sleep(1000);
    after = kn();
    if (after.length === 1 && after[0]![0] !== before[0]![0]) break;
  }
  check(
    after.length === 1 && after[0]![0] !== before[0]![0] && after[0]![1] === agent,
    `kratanet SIGKILLed: the agent runs a new one (${after.map((p) => p[0]).join(',')}), no second one`,
  );
  await converge('kratanet killed');

  // Random kills during the churn.
  for (let r = 1; r <= rounds; r++) {
    const ops: string[] = [];
    for (let i = 1 + Math.floor(random() * 3); i > 0; i--) ops.push(await churn());
    const delay = Math.floor(random() * 8000);
    await sleep(delay);
    await killAgent();
    console.log(`round ${r}: ${ops.join(', ')}; agent SIGKILLed ${delay} ms later`);
    if (!(await startAgent())) fatal(`round ${r}: the agent did not start again`);
    await converge(`round ${r}`);
  }

  // Each named point: armed agent, the operation that reaches it, the kill, an unarmed restart.
  for (const point of points) {
    await killAgent();
    const started = await startAgent(point);
    const did = started ? await drive(point) : 'nothing (it died starting)';
    console.log(`${point}: ${did}`);
    await awaitDeath(point);
    if (!(await startAgent())) fatal(`${point}: the agent did not start again`);
    await resendUnanswered();
    await converge(point);
  }
  await crashLoopGoesOn('loop');
  await killAgent();
  console.log(
    `${failures === 0 ? 'PASS' : 'FAIL'}: seed ${seed}, ${rounds} random kills, ${points.length} named points, ` +
      `${failures} failed checks, ${secs()} s`,
  );
  process.exit(failures === 0 ? 0 : 1);
}

main().catch((e) => fatal(`${(e as Error).stack ?? e}`));
