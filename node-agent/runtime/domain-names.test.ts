import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DomainNames } from './domain-names.js';

/** A xenstore of domain names that counts reads. */
function store(names: Record<number, string>) {
  const xs = {
    reads: 0,
    async tryRead(path: string) {
      xs.reads++;
      const m = /^\/local\/domain\/(\d+)\/name$/.exec(path);
      return m ? names[Number(m[1])] : undefined;
    },
  };
  return xs;
}
const dom = (domid: number, uuid = `u${domid}`) => ({ domid, uuid });

test('the name check of the n-th create reads only the new domain, not all n', async () => {
  const names: Record<number, string> = { 0: 'Domain-0' };
  const xs = store(names);
  const cache = new DomainNames();
  const live = [dom(0)];
  for (let i = 1; i <= 50; i++) {
    names[i] = `krata.default.g${i}`;
    live.push(dom(i)); // created by another toolstack: not remembered, read once
    const before = xs.reads;
    assert.equal(await cache.find(xs, live, `krata.default.g${i}`), i);
    assert.equal(xs.reads - before, i === 1 ? 2 : 1, `create ${i}`);
    assert.equal(await cache.find(xs, live, 'krata.default.other'), undefined);
  }
  assert.equal(xs.reads, 51);
});

test('domains named by this process are never read; gone domains are forgotten', async () => {
  const xs = store({ 0: 'Domain-0' });
  const cache = new DomainNames();
  cache.remember(5, 'u5', 'krata.a.b');
  assert.equal(await cache.find(xs, [dom(0), dom(5)], 'krata.a.b'), 5);
  assert.equal(xs.reads, 1, 'only Domain-0');
  assert.equal(await cache.find(xs, [dom(0)], 'krata.a.b'), undefined);
  assert.equal(cache.size, 1);
});

test('a domid reused by a new domain (another handle) is read again', async () => {
  const names: Record<number, string> = { 7: 'old' };
  const xs = store(names);
  const cache = new DomainNames();
  assert.equal(await cache.find(xs, [dom(7, 'a')], 'old'), 7);
  names[7] = 'new';
  assert.equal(await cache.find(xs, [dom(7, 'b')], 'old'), undefined);
  assert.equal(await cache.find(xs, [dom(7, 'b')], 'new'), 7);
  assert.equal(xs.reads, 2);
});

test('a domain without a name yet is read again next time, and a failed read is no name', async () => {
  const names: Record<number, string> = {};
  let fail = true;
  const xs = {
    reads: 0,
    async tryRead(path: string) {
      xs.reads++;
      if (fail) throw new Error('EACCES');
      return names[Number(/\d+/.exec(path)![0])];
    },
  };
  const cache = new DomainNames();
  assert.equal(await cache.find(xs, [dom(3)], 'x'), undefined);
  fail = false;
  assert.equal(await cache.find(xs, [dom(3)], 'x'), undefined);
  names[3] = 'x';
  assert.equal(await cache.find(xs, [dom(3)], 'x'), 3);
  assert.equal(xs.reads, 3);
});

test("a name held by a live domain is found (any domain, not only krata's); dead entries and near names do not count", async () => {
  // Domain 9's entry is a leftover of a dead domain: not in Xen's list.
  const xs = store({ 0: 'Domain-0', 3: 'krata.a-b.c', 7: 'krata.a.b-c', 9: 'krata.x.y' });
  const live = [dom(0), dom(3), dom(7)];
  const names = new DomainNames();
  assert.equal(await names.find(xs, live, 'krata.a.b-c'), 7);
  assert.equal(await names.find(xs, live, 'krata.a-b.c'), 3);
  assert.equal(await names.find(xs, live, 'krata.x.y'), undefined);
  assert.equal(await names.find(xs, live, 'krata.a.b'), undefined);
});
