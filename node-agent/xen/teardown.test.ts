// Stopping a domain without Xen: the power-off request and its wait, and the forced teardown's order
// (loops read before the domain goes, destroydomain, xenstore trees) with a domain already gone.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { XenstoreClient } from './xenstore/client.js';
import { destroyDomain, domainUuid, requestPoweroff } from './teardown.js';

type Flags = { shutdown: boolean; dying: boolean; uuid: string };
const UUID = '6f1c2d8e-1b7a-4c3e-9d2f-6a1b2c3d4e5f';

function fakes(domains: Map<number, Flags>, values: Record<string, string> = {}) {
  const log: string[] = [];
  const xen = {
    domain: (domid: number) => domains.get(domid),
    destroy: (domid: number) => {
      log.push(`destroydomain ${domid}`);
      if (!domains.delete(domid)) throw Object.assign(new Error('no such domain'), { code: 'ESRCH' });
    },
  };
  const xs = {
    write: async (path: string, v: string) => void log.push(`write ${path}=${v}`),
    tryRead: async (path: string) => values[path],
    readBytes: async (path: string) => {
      log.push(`read ${path}`);
      if (values[path] === undefined) throw Object.assign(new Error('ENOENT'), { code: 'ENOENT' });
      return Buffer.from(values[path]);
    },
    rm: async (path: string) => void log.push(`rm ${path}`),
    releaseDomain: async (domid: number) => void log.push(`release ${domid}`),
  };
  return { xen, xs, log };
}

test('a power-off request is written once and the wait ends when the domain stops, or at the grace period', async () => {
  const domains = new Map([[5, { shutdown: false, dying: false, uuid: UUID }]]);
  const { xen, xs, log } = fakes(domains);
  let wake: (() => void) | undefined;
  let unwoken = false;
  const stopping = requestPoweroff(xen, xs, 5, 60_000, {
    pollMs: 60_000,
    wake: (check) => {
      wake = check;
      return () => void (unwoken = true);
    },
  });
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(log, ['write /local/domain/5/control/shutdown=poweroff']);
  domains.get(5)!.shutdown = true;
  wake!();
  assert.equal(await stopping, true, 'stopped within the grace period');
  assert.equal(unwoken, true, 'the wake-up is undone');

  assert.equal(await requestPoweroff(xen, xs, 5, 0), true, 'a stopped domain is not asked again');
  assert.equal(await requestPoweroff(xen, xs, 6, 0), true, 'a missing domain counts as stopped');
  assert.equal(log.length, 1);

  domains.set(7, { shutdown: false, dying: false, uuid: UUID });
  const t0 = performance.now();
  assert.equal(await requestPoweroff(xen, xs, 7, 30, { pollMs: 5 }), false, 'a guest that ignores the request');
  assert.ok(performance.now() - t0 >= 25);
});

test('destroyDomain reads the loops first, tolerates a domain already gone and removes its xenstore trees', async () => {
  const home = '/local/domain/9';
  const { xen, xs, log } = fakes(new Map(), { [`${home}/vm`]: `/vm/${UUID}`, [`${home}/krata/loops`]: '' });
  assert.equal(await domainUuid(xen, xs, 9), UUID, 'from the vm path once Xen has forgotten the domain');
  await destroyDomain(xen, xs as unknown as XenstoreClient, 9);
  assert.deepEqual(log, [
    `read ${home}/krata/loops`,
    'destroydomain 9',
    'rm /local/domain/0/backend/vbd/9',
    'rm /local/domain/0/backend/vif/9',
    'rm /local/domain/0/backend/console/9',
    'release 9',
    `rm ${home}`,
    `rm /vm/${UUID}`,
  ]);
  const bad = fakes(new Map(), { '/local/domain/3/vm': '/vm/../../local' });
  assert.equal(await domainUuid(bad.xen, bad.xs, 3), undefined, 'a vm path that is no uuid is not used');
  const failing = { ...xen, destroy: () => assert.fail(Object.assign(new Error('EPERM'), { code: 'EPERM' })) };
  await assert.rejects(destroyDomain(failing, xs as unknown as XenstoreClient, 9));
});
