// For the node agent's controller and reconcile tests: the assembled Guest controller on the
// test-double hypervisor and a fake clock, an image provider whose pulls the test holds and fails,
// and the Agent service for applying and reading Guests. Config disks are real squashfs files.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Guest } from '../../crds/generated/types.js';
import { validateObject } from '../../crds/validate.js';
import { assembleGuestController, type GuestControllerOptions } from '../../node-agent/controller/assemble.js';
import type { GuestController } from '../../node-agent/controller/controller.js';
import { EventRecorder } from '../../node-agent/reconcile/events.js';
import { Ipam } from '../../node-agent/reconcile/ipam.js';
import type { ImageProvider } from '../../node-agent/reconcile/pulls.js';
import { FakeHypervisor } from '../../node-agent/runtime/fake-hypervisor.js';
import { NodeAgentService } from '../../node-agent/service/agent-service.js';
import { GuestStore } from '../../node-agent/store/guest-store.js';
import { FakeClock } from '../doubles/fake-clock.js';
import type { GuestDialer } from '../../node-agent/net/guest-dialer.js';
import { Prober } from '../../node-agent/probe/prober.js';

/** A scratch directory for this test process, removed when it exits. */
export const work = mkdtempSync(join(tmpdir(), 'krata-controller-test-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));
let n = 0;

export class FakeImages implements ImageProvider {
  failures: Error[] = [];
  calls = 0;
  readonly path: string;
  constructor(dir: string) {
    this.path = join(dir, 'image.sqfs');
    writeFileSync(this.path, 'not a real image');
  }
  /** References whose pulls wait until release() (registry.example/slow:*), and pulls running now. */
  readonly held = new Map<string, Array<(err?: Error) => void>>();
  running = 0;
  maxRunning = 0;
  readonly asked: string[] = [];
  async ensure(reference: string, _policy: string) {
    this.calls++;
    this.asked.push(reference);
    if (!this.cached(reference)) {
      this.maxRunning = Math.max(this.maxRunning, ++this.running);
      try {
        await new Promise<void>((resolve, reject) =>
          this.held.set(reference, [...(this.held.get(reference) ?? []), (err) => (err ? reject(err) : resolve())]),
        );
      } finally {
        this.running--;
      }
    }
    const f = this.failures.shift();
    if (f) throw f;
    const config = { architecture: 'amd64', os: 'linux', config: { Cmd: ['/bin/sh'], User: 'app' }, diffIds: [] };
    return { digest: `sha256:${'ab'.repeat(32)}`, path: this.path, config };
  }
  cached(reference: string): boolean {
    return !reference.startsWith('registry.example/slow:');
  }
  /** Ends the pulls of `reference` (with `err`, a failure). */
  release(reference: string, err?: Error): void {
    for (const done of this.held.get(reference) ?? []) done(err);
    this.held.delete(reference);
  }
}

export interface Harness {
  dir: string;
  clock: FakeClock;
  hv: FakeHypervisor;
  images: FakeImages;
  store: GuestStore;
  controller: GuestController;
  agent: NodeAgentService;
  recorder: EventRecorder;
  ipam: Ipam;
  /** The prober, when the harness was asked for one. */
  prober?: Prober;
  /** Runs the queue until `pred` holds, moving the clock `step` ms between rounds. */
  until(pred: () => boolean, step?: number, rounds?: number): Promise<void>;
  restart(): Harness;
  stop(): void;
}

export function harness(
  dir = join(work, `state-${++n}`),
  hv = new FakeHypervisor({ cpus: 8, memoryMiB: 4096 }, undefined),
  clock = new FakeClock(),
  /** Probes on: the prober with this dialer (tcpSocket, httpGet) and the fake hypervisor's channels. */
  probing?: { dialer?: GuestDialer },
  /** More controller options (e.g. onLaunch). */
  extra: Partial<GuestControllerOptions> = {},
): Harness {
  const images = new FakeImages(work);
  // The fake hypervisor's timers run on the same fake clock.
  (hv as unknown as { clock: FakeClock }).clock = clock;
  const store = new GuestStore(dir);
  const recorder = new EventRecorder(clock);
  const ipam = new Ipam(dir);
  const prober = probing
    ? new Prober({ channel: (domid) => hv.channel(domid), clock, events: recorder, ...(probing.dialer ? { dialer: probing.dialer } : {}) })
    : undefined;
  const controller = assembleGuestController(
    { store, hv, images, ipam, recorder, clock, ...(prober ? { probes: prober } : {}) },
    { stateDir: dir, kernel: '/k/vmlinuz', initrd: '/k/initrd', nodeName: 'host-1', resyncMs: 15_000, ...extra },
  );
  const agent = new NodeAgentService(store, hv, recorder, undefined, clock);
  controller.run();
  const h: Harness = {
    dir,
    clock,
    hv,
    images,
    store,
    controller,
    agent,
    recorder,
    ipam,
    ...(prober ? { prober } : {}),
    async until(pred, step = 5, rounds = 400) {
      for (let i = 0; i < rounds; i++) {
        // A handler may wait on the fake clock (a grace period): do not wait for idle forever.
        await Promise.race([controller.queue.idle(), new Promise((r) => setTimeout(r, 20))]);
        await new Promise((r) => setImmediate(r));
        if (pred()) return;
        clock.advance(step);
      }
      const statuses = store.list().map((g) => [g.metadata.name, g.status?.phase, g.status?.reason, g.status?.message]);
      assert.fail(`condition not reached; statuses: ${JSON.stringify(statuses)}`);
    },
    restart() {
      controller.stop();
      prober?.stopAll();
      return harness(dir, hv, clock, probing);
    },
    stop() {
      controller.stop();
      prober?.stopAll();
    },
  };
  return h;
}

export function guest(name: string, spec: Record<string, unknown> = {}): Guest {
  const r = validateObject({
    apiVersion: 'krata.dev/v1alpha1',
    kind: 'Guest',
    metadata: { name },
    spec: { image: 'registry.example/app:1.0', resources: { cpus: 2, memory: '256Mi' }, ...spec },
  });
  assert.deepEqual(r.errors, []);
  return r.object as Guest;
}

export const phase = (h: Harness, name: string) => h.agent.get('default', name)?.status?.phase;
