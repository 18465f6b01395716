// "All or nothing" on a real full disk: a tiny tmpfs is the state directory (the tests run as root, as
// the agent does). A batch that does not fit stores nothing, leaves no temporary, shows watchers
// nothing and is answered 507 naming ENOSPC; retries on a full disk do not fill it further.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Guest } from '../../crds/generated/types.js';
import { validateObject } from '../../crds/validate.js';
import { startApiServer } from '../api/server.js';
import { writeFileAtomic } from '../../lib/atomic-file.js';
import { NodeAgentService } from '../service/agent-service.js';
import { EventRecorder } from '../reconcile/events.js';
import { FakeClock } from '../../test/doubles/fake-clock.js';
import { FakeHypervisor } from '../runtime/fake-hypervisor.js';
import { GuestStore } from './guest-store.js';
import type { WatchEvent } from '../../contracts/agent-api/types.js';

/** A tmpfs of `size` mounted on a fresh directory, unmounted (and removed) when the test ends. */
function tinyDisk(t: TestContext, size: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'krata-full-disk-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0700`, 'krata-full-disk-test', dir]);
  t.after(() => {
    execFileSync('umount', [dir]);
    rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}

/** Fills the filesystem of `dir` to the last byte. */
function fill(dir: string): void {
  const free = () => {
    const s = statfsSync(dir);
    return s.bavail * s.bsize;
  };
  for (let i = 0; free() > 0; i++) {
    try {
      writeFileSync(join(dir, `filler-${i}`), Buffer.alloc(Math.max(1, free())));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
    }
  }
}

/** Every file below `dir` (relative paths). */
function files(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((d) => d.isFile())
    .map((d) => join(d.parentPath, d.name).slice(dir.length + 1))
    .sort();
}

function guest(name: string, namespace = 'default', image = 'registry.example/app:1.0'): Guest {
  const r = validateObject({
    apiVersion: 'krata.dev/v1alpha1',
    kind: 'Guest',
    metadata: { name, namespace },
    spec: { image, resources: { cpus: 1, memory: '64Mi' } },
  });
  assert.deepEqual(r.errors, []);
  return r.object as Guest;
}

function post(socketPath: string, path: string, body: unknown): Promise<{ status: number; json: { message: string } }> {
  const data = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request(
      { socketPath, method: 'POST', path, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode!, json: JSON.parse(Buffer.concat(chunks).toString()) }));
      },
    );
    req.on('error', reject);
    req.end(data);
  });
}

test('a 20-Guest apply on a full disk is 507 naming ENOSPC: nothing stored, no temporary, no watch event', async (t) => {
  // 64 KiB of tmpfs holds 16 pages: each record takes one, so 20 new Guests do not fit (16 would).
  const state = tinyDisk(t, '64k');
  const clock = new FakeClock();
  const store = new GuestStore(state);
  const agent = new NodeAgentService(
    store,
    new FakeHypervisor({ cpus: 8, memoryMiB: 4096 }, undefined),
    new EventRecorder(clock),
    undefined,
    clock,
  );
  const sockDir = mkdtempSync(join(tmpdir(), 'krata-full-disk-api-'));
  const server = await startApiServer(agent, { socketPath: join(sockDir, 'agent.sock'), log: () => {} });
  t.after(async () => {
    await server.close();
    rmSync(sockDir, { recursive: true, force: true });
  });
  const seen: WatchEvent[] = [];
  const unwatch = agent.watch(0, (e) => seen.push(e));
  t.after(unwatch);

  // Two Guests in another namespace are stored first: a failed batch must leave them as they are.
  assert.equal(
    (await post(join(sockDir, 'agent.sock'), '/v1/apply', { objects: [guest('keep-1', 'other'), guest('keep-2', 'other')] })).status,
    200,
  );
  const before = files(state);
  const stored = store.list().map((g) => JSON.stringify(g));
  seen.length = 0;

  const batch = [guest('keep-1', 'other', 'registry.example/app:2.0'), ...Array.from({ length: 20 }, (_, i) => guest(`g${i}`))];
  const r = await post(join(sockDir, 'agent.sock'), '/v1/apply', { objects: batch });
  assert.equal(r.status, 507, JSON.stringify(r.json));
  assert.match(r.json.message, /ENOSPC/);
  assert.match(r.json.message, /nothing was applied/);
  assert.deepEqual(files(state), before, 'no record and no temporary left on disk');
  assert.deepEqual(readdirSync(join(state, 'guests')), ['other'], 'no namespace directory left either');
  assert.deepEqual(
    store.list().map((g) => JSON.stringify(g)),
    stored,
    'the store is unchanged (keep-1 keeps its image)',
  );
  assert.deepEqual(seen, [], 'watchers saw nothing of the batch');
  assert.deepEqual(
    new GuestStore(state)
      .list()
      .map((g) => g.metadata.name)
      .sort(),
    ['keep-1', 'keep-2'],
    'a restart reads the old state',
  );

  // Room for the batch: it applies whole.
  rmSync(join(state, 'guests', 'other', 'keep-2.json'));
  const small = await post(join(sockDir, 'agent.sock'), '/v1/apply', { objects: [guest('a'), guest('b')] });
  assert.equal(small.status, 200, JSON.stringify(small.json));
});

test('retries on a full disk leave no temporaries (store status writes, writeFileAtomic)', (t) => {
  const state = tinyDisk(t, '64k');
  const store = new GuestStore(state);
  store.put(guest('web'), new Date());
  fill(state);
  const before = files(state);
  for (let i = 0; i < 50; i++) {
    assert.throws(() => store.setStatus('default/web', { phase: 'Running', domid: i + 1, message: 'x'.repeat(5000) }), { code: 'ENOSPC' });
    assert.throws(() => store.setStatus('default/web', store.get('default/web')!.guest.status!, { failures: i + 1 }), { code: 'ENOSPC' });
    assert.throws(() => writeFileAtomic(join(state, 'other.json'), 'y'.repeat(8192)), { code: 'ENOSPC' });
  }
  assert.deepEqual(files(state), before, 'no .tmp- file accumulated');
  assert.equal(store.get('default/web')!.guest.status!.phase, 'Pending', 'a failed status write changes nothing in memory');
});

test('a batch whose commit fails half way is rolled back: the renamed record is put back from its backup', (t) => {
  const state = mkdtempSync(join(tmpdir(), 'krata-rollback-'));
  t.after(() => rmSync(state, { recursive: true, force: true }));
  const store = new GuestStore(state);
  store.put(guest('a'), new Date());
  const onDisk = () => readFileSync(join(state, 'guests', 'default', 'a.json'), 'utf8');
  const before = onDisk();
  // Where b's record would go stands a directory: its rename fails after a's has been done.
  mkdirSync(join(state, 'guests', 'default', 'b.json', 'x'), { recursive: true });
  const seen: WatchEvent[] = [];
  store.on('change', (e: WatchEvent) => seen.push(e));
  assert.throws(() => store.putAll([guest('a', 'default', 'registry.example/app:2.0'), guest('b')], new Date()), /EISDIR|ENOTEMPTY|EEXIST/);
  assert.equal(onDisk(), before, "a's record is the old one again");
  assert.equal(store.get('default/a')!.guest.spec.image, 'registry.example/app:1.0');
  assert.equal(store.get('default/b'), undefined);
  assert.deepEqual(seen, []);
  assert.deepEqual(files(state), ['guests/default/a.json'], 'no temporary or backup left');
});
