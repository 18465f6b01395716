// The domain-list cache on its own: one hypervisor list serves the reconciles of 500 ms; a create or
// destroy made while a list was being read makes it read again, so a Guest is never created twice.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock } from '../../test/doubles/fake-clock.js';
import type { DomainInfo } from '../runtime/hypervisor.js';
import { DomainCache } from './domain-cache.js';

const dom = (domid: number): DomainInfo => ({
  domid,
  uuid: `uuid-${domid}`,
  name: `krata.default.g${domid}`,
  guest: { namespace: 'default', name: `g${domid}`, uid: `uid-${domid}`, specHash: 'h' },
  state: 'running',
  createdAt: 0,
});

/** A hypervisor whose list() answers, when the test lets it (`answer`), what `domains` held when it began. */
function slowHypervisor() {
  const hv = {
    domains: [dom(1)],
    lists: 0,
    pending: [] as Array<() => void>,
    list(): Promise<DomainInfo[]> {
      hv.lists++;
      const seen = [...hv.domains];
      return new Promise((resolve) => hv.pending.push(() => resolve(seen)));
    },
    answer(): void {
      for (const done of hv.pending.splice(0)) done();
    },
  };
  return hv;
}

const tick = () => new Promise((r) => setImmediate(r));

test('one list serves 500 ms; invalidate() and age make the next list() read the hypervisor', async () => {
  const clock = new FakeClock();
  const hv = slowHypervisor();
  const cache = new DomainCache(hv, clock);
  const first = cache.list();
  hv.answer();
  assert.deepEqual(
    (await first).map((d) => d.domid),
    [1],
  );
  clock.advance(499);
  assert.deepEqual(
    (await cache.list()).map((d) => d.domid),
    [1],
  );
  assert.equal(hv.lists, 1);
  clock.advance(1);
  const aged = cache.list();
  await tick();
  hv.answer();
  await aged;
  assert.equal(hv.lists, 2);
  cache.invalidate();
  const fresh = cache.list();
  await tick();
  hv.answer();
  await fresh;
  assert.equal(hv.lists, 3);
});

test('a create or destroy during a list makes it read again; both show in the cached list at once', async () => {
  const clock = new FakeClock();
  const hv = slowHypervisor();
  const cache = new DomainCache(hv, clock);
  const listing = cache.list();
  // Domain 2 is created while the list is in flight: the answer read before it is not kept.
  hv.domains.push(dom(2));
  cache.created(dom(2));
  hv.answer();
  await tick();
  assert.equal(hv.lists, 2, 'read again');
  hv.answer();
  assert.deepEqual(
    (await listing).map((d) => d.domid),
    [1, 2],
  );
  // Within the 500 ms the cached list follows this agent's own creates and destroys.
  cache.created(dom(3));
  cache.removed(1);
  assert.deepEqual(
    (await cache.list()).map((d) => d.domid),
    [2, 3],
  );
  assert.equal(hv.lists, 2);
});
