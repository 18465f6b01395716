import { test } from 'node:test';
import assert from 'node:assert/strict';
import { classify, lastOverFirst, parseMeminfo, perGuest, usedKiB, type Proc, type Snapshot } from './dom0-density-probe.js';

test('meminfo: used counts slab and tmpfs files, not reclaimable page cache', () => {
  const m = parseMeminfo('MemTotal: 1000 kB\nMemFree: 500 kB\nBuffers: 10 kB\nCached: 200 kB\nShmem: 50 kB\nSlab: 40 kB\nJunk\n');
  assert.equal(m.MemTotal, 1000);
  assert.equal(m.Slab, 40);
  assert.equal(m.KernelStack, 0, 'missing fields are 0');
  assert.equal(usedKiB(m), 1000 - 500 - 10 - 200 + 50);
});

test("per-guest figures: deltas divided by the guests, the bench's own growth left out", () => {
  const snap = (used: number, bench: number, agent: { rssKiB: number; threads: number; fds: number }): Snapshot => ({
    meminfo: { ...parseMeminfo(''), Slab: used / 10 },
    usedKiB: used,
    groups: { bench: { procs: 1, rssKiB: bench, threads: 1, fds: 1 }, agent: { procs: 1, ...agent } },
    others: [],
  });
  const r = perGuest(snap(1000, 100, { rssKiB: 500, threads: 10, fds: 20 }), snap(3000, 300, { rssKiB: 900, threads: 10, fds: 40 }), 4);
  assert.equal(r.dom0_kib_per_guest, (3000 - 1000 - 200) / 4);
  assert.equal(r.agent_rss_kib_per_guest, 100);
  assert.equal(r.agent_threads_per_guest, 0);
  assert.equal(r.agent_fds_per_guest, 5);
  assert.equal(r.slab_kib_per_guest, 50);
  assert.equal(r.bench_rss_kib_per_guest, undefined);
});

test('processes are grouped: agent by pid, kratanet by its script, backends by thread name', () => {
  const p = (over: Partial<Proc>): Proc => ({
    pid: 9,
    ppid: 1,
    comm: 'x',
    cmdline: 'x',
    rssKiB: 1,
    threads: 1,
    fds: 0,
    kernel: false,
    ...over,
  });
  assert.equal(classify(p({ pid: 5 }), 5, 6), 'agent');
  assert.equal(classify(p({ pid: 6 }), 5, 6), 'bench');
  assert.equal(classify(p({ cmdline: 'node /krata/dist/node-agent/net/main.js' }), 5, 6), 'kratanet');
  assert.equal(classify(p({ comm: 'vif3.0-q0-guest-rx', kernel: true, rssKiB: 0 }), 5, 6), 'kthread_backends');
  assert.equal(classify(p({ comm: '12.xvdb-0', kernel: true, rssKiB: 0 }), 5, 6), 'kthread_backends');
  assert.equal(classify(p({ comm: 'loop3', kernel: true, rssKiB: 0 }), 5, 6), 'kthread_loop');
  assert.equal(classify(p({ comm: 'xenconsoled' }), 5, 6), 'xenconsoled');
  assert.equal(classify(p({ comm: 'bash' }), 5, 6), 'other');
});

test('last over first launch: medians of three at each end', () => {
  assert.equal(lastOverFirst([10, 100, 12, 50, 50, 13, 24, 26]), 2);
  assert.equal(lastOverFirst([10, 20]), 2);
  assert.equal(lastOverFirst([7]), 1);
});
