// `npm run bench -- operator`: 10,000 Guests across 100 simulated hosts (node agents in cluster mode on
// the test-double hypervisor, all in one process) against a real kube-apiserver on etcd and a real
// Redis. Measures the time from the first create until every Guest is Running, the operator's peak
// RSS, and the operator's writes to the API server per Guest (counted by the apiserver's own
// apiserver_request_total, minus the benchmark's creates). Goals: < 120 s, < 300 MB, < 6 writes.
// KRATA_BENCH_GUESTS and KRATA_BENCH_HOSTS scale it down for a quick look.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Guest } from '../crds/generated/types.js';
import { Informer } from '../operator/kube/informer.js';
import { newGuest, startKube, waitFor } from '../test/kube/operator-env.js';
import { createXenNodes } from '../test/cluster/xen-nodes.js';
import { startRedis } from '../test/redis.js';

/** CPU seconds (user + system) a process has used so far. */
function cpuSeconds(pid: number): number {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return NaN;
  }
}

/** The pids of processes whose command line contains `needle` (the envtest's etcd and apiserver). */
function pidsWith(needle: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const cmd = readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0');
      // Redis rewrites its title ("/usr/bin/redis-server 127.0.0.1:PORT"): the name is the first word.
      if (cmd.some((a) => a.includes(needle))) out.set(cmd[0]!.split(' ')[0]!.split('/').pop()!, Number(d));
    } catch {
      // gone
    }
  }
  return out;
}

function peakRssMb(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

/** Mutating requests the apiserver has served (its own counter), for all resources. */
function apiserverWrites(server: string, token: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(`${server}/metrics`, { headers: { authorization: `Bearer ${token}` }, rejectUnauthorized: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (text += d));
      res.on('end', () => {
        let n = 0;
        const by: Record<string, number> = {};
        for (const line of text.split('\n')) {
          if (!line.startsWith('apiserver_request_total{')) continue;
          const verb = /verb="(\w+)"/.exec(line)?.[1];
          const resource = /resource="([\w.]+)"/.exec(line)?.[1];
          const sub = /subresource="(\w*)"/.exec(line)?.[1];
          const k = `${verb} ${resource}${sub ? `/${sub}` : ''}`;
          by[k] = (by[k] ?? 0) + Number(line.slice(line.lastIndexOf(' ') + 1));
          if (
            /verb="(POST|PUT|PATCH|DELETE|APPLY|CREATE|UPDATE)"/.test(line) &&
            !/resource="(tokenreviews|subjectaccessreviews|selfsubjectaccessreviews)"/.test(line)
          )
            n += Number(line.slice(line.lastIndexOf(' ') + 1));
        }
        if (process.env.KRATA_BENCH_VERBOSE) console.error(JSON.stringify(by));
        resolve(n);
      });
    });
    req.on('error', reject);
    req.end();
  });
}

function spawnLogged(args: string[], log: string[]): ChildProcess {
  const p = spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  const keep = (d: Buffer) => {
    log.push(...d.toString().split('\n').filter(Boolean));
    if (log.length > 200) log.splice(0, log.length - 200);
  };
  p.stdout!.on('data', keep);
  p.stderr!.on('data', keep);
  return p;
}

export async function operatorBench(): Promise<Record<string, unknown>> {
  const guests = Number(process.env.KRATA_BENCH_GUESTS ?? 10_000);
  const hostCount = Number(process.env.KRATA_BENCH_HOSTS ?? 100);
  const dist = join(fileURLToPath(import.meta.url), '../..');
  const work = mkdtempSync(join(tmpdir(), 'krata-bench-operator-'));
  const [kube, redis] = await Promise.all([startKube(), startRedis()]);
  const procs: ChildProcess[] = [];
  const simLog: string[] = [];
  const opLog: string[] = [];
  try {
    // State on tmpfs when there is one: the hosts' stores are not what is measured.
    const simState = mkdtempSync(join('/dev/shm', 'krata-bench-hosts-'));
    // The operator makes XenHosts only for Nodes labelled krata.dev/xen=true.
    await createXenNodes(
      kube.client,
      Array.from({ length: hostCount }, (_, i) => `xen-${i + 1}`),
    );
    procs.push(
      spawnLogged(
        [
          join(dist, 'test/cluster/sim-hosts.js'),
          '--redis',
          redis.url,
          '--state',
          simState,
          '--count',
          String(hostCount),
          '--prefix',
          'xen-',
        ],
        simLog,
      ),
    );
    const op = spawnLogged(
      [
        join(dist, 'operator/main.js'),
        '--kubeconfig',
        kube.env.kubeconfig,
        '--redis',
        redis.url,
        '--health-addr',
        'off',
        '--metrics-addr',
        'off',
        '--log-level',
        'warn',
      ],
      opLog,
    );
    procs.push(op);
    const dump = () => `--- hosts\n${simLog.slice(-20).join('\n')}\n--- operator\n${opLog.slice(-20).join('\n')}`;
    await waitFor(
      async () =>
        (await kube.client.listXenHosts()).items.filter((h) => h.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'))
          .length === hostCount,
      `${hostCount} ready XenHosts`,
      120_000,
    ).catch((e) => {
      throw new Error(`${(e as Error).message}\n${dump()}`);
    });
    console.error(`bench operator: ${hostCount} hosts ready; creating ${guests} guests`);

    // Count Running Guests from a watch, as a user's dashboard would, not by listing 10,000 objects.
    const watcher = new Informer<Guest>(kube.clientVia(kube.env.server), 'guests', {});
    let running = 0;
    const seen = new Map<string, boolean>();
    const note = (g: Guest) => {
      const r = g.status?.phase === 'Running';
      const key = `${g.metadata.namespace}/${g.metadata.name}`;
      if (seen.get(key) !== r) running += r ? 1 : seen.has(key) ? -1 : 0;
      seen.set(key, r);
    };
    watcher.on('add', note);
    watcher.on('update', note);
    watcher.start();

    const envPids = pidsWith(dirname(kube.env.kubeconfig));
    const redisPid = pidsWith(`127.0.0.1:${redis.port}`).get('redis-server') ?? 0;
    const cpu = () => ({
      apiserver: cpuSeconds(envPids.get('kube-apiserver') ?? 0),
      etcd: cpuSeconds(envPids.get('etcd') ?? 0),
      operator: cpuSeconds(op.pid!),
      hosts: cpuSeconds(procs[0]!.pid!),
      redis: cpuSeconds(redisPid),
      bench: process.cpuUsage().user / 1e6 + process.cpuUsage().system / 1e6,
    });
    const cpuBefore = cpu();
    const writesBefore = await apiserverWrites(kube.env.server, kube.env.token);
    const t0 = performance.now();
    const creator = kube.clientVia(kube.env.server, { maxInFlight: 32 });
    const creates: Promise<unknown>[] = [];
    for (let i = 0; i < guests; i++) {
      const g = newGuest(`g-${i}`);
      g.spec = { image: 'example.test/app:1', resources: { cpus: 1, memory: '32Mi' } } as Guest['spec'];
      creates.push(creator.createGuest(g));
    }
    await Promise.all(creates);
    const createdS = (performance.now() - t0) / 1000;
    console.error(`bench operator: ${guests} created in ${createdS.toFixed(1)} s`);
    let last = 0;
    let progress = { running: -1, at: performance.now() };
    await waitFor(
      () => {
        const now = performance.now();
        if (now - last > 10_000) {
          last = now;
          console.error(`bench operator: ${running}/${guests} running at ${((now - t0) / 1000).toFixed(0)} s`);
        }
        if (running !== progress.running) progress = { running, at: now };
        else if (now - progress.at > 60_000) throw new Error(`no progress for 60 s at ${running}/${guests} running`);
        return running >= guests;
      },
      'every guest Running',
      900_000,
    ).catch((e) => {
      throw new Error(`${(e as Error).message} (${running} running)\n${dump()}`);
    });
    const convergeS = (performance.now() - t0) / 1000;
    // Let trailing writes land (events, the last statuses) before counting.
    await new Promise((r) => setTimeout(r, 3000));
    const writes = (await apiserverWrites(kube.env.server, kube.env.token)) - writesBefore - guests;
    if (process.env.KRATA_BENCH_VERBOSE) console.error(JSON.stringify(await kube.client.getGuest('default', 'g-0')));
    const rss = peakRssMb(op.pid!);
    const cpuAfter = cpu();
    const cpuS = Object.fromEntries(
      Object.entries(cpuAfter).map(([k, v]) => [k, Number((v - cpuBefore[k as keyof typeof cpuBefore]).toFixed(1))]),
    );
    await watcher.stop();
    rmSync(simState, { recursive: true, force: true });
    return {
      bench: 'operator',
      guests,
      hosts: hostCount,
      converge_s: Number(convergeS.toFixed(1)),
      create_s: Number(createdS.toFixed(1)),
      peak_rss_mb: Number(rss.toFixed(1)),
      writes_per_guest: Number((writes / guests).toFixed(2)),
      cpu_s: cpuS,
      goal: 'converge_s < 120, peak_rss_mb < 300, writes_per_guest < 6',
    };
  } finally {
    for (const p of procs) p.kill('SIGKILL');
    await redis.stop();
    await kube.stop();
    rmSync(work, { recursive: true, force: true });
  }
}
