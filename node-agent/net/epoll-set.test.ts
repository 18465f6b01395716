// The epoll set on its own, with eventfds (readable while their counter is above zero) as the sockets.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EFD_CLOEXEC, EFD_NONBLOCK, EPOLLIN, libc, sysClose } from '../../lib/libc.js';
import { EpollSet } from './epoll-set.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const eventfd = (readable: boolean) => libc().eventfd(readable ? 1 : 0, EFD_NONBLOCK | EFD_CLOEXEC);

test('ready fds reach their handlers; modify(0) and remove() stop them; a failed add leaves nothing', async () => {
  const set = new EpollSet();
  const a = eventfd(true);
  const b = eventfd(true);
  try {
    const calls = { a: 0, b: 0 };
    set.add(a, EPOLLIN, (ev) => {
      assert.equal(ev & EPOLLIN, EPOLLIN);
      calls.a++;
    });
    set.add(b, EPOLLIN, () => calls.b++);
    assert.equal(set.size, 2);
    assert.throws(() => set.add(a, EPOLLIN, () => {}), /already in the epoll set/);
    assert.throws(() => set.add(1 << 20, EPOLLIN, () => {}), /epoll_ctl fd 1048576: EBADF/);
    assert.equal(set.size, 2);
    await sleep(20);
    assert.ok(calls.a > 0 && calls.b > 0, 'level-triggered: both reported');
    set.modify(a, 0);
    set.remove(b);
    assert.equal(set.size, 1);
    const seen = { ...calls };
    await sleep(20);
    assert.deepEqual(calls, seen, 'neither is reported any more');
    set.modify(a, EPOLLIN);
    await sleep(20);
    assert.ok(calls.a > seen.a, 'watched again');
  } finally {
    set.close();
    sysClose(a);
    sysClose(b);
  }
});

test("an fd closed by a handler and its number reused in the same batch does not get the old fd's event", async () => {
  const set = new EpollSet();
  const fds = [eventfd(true), eventfd(true)];
  let reused = -1;
  let closed = -1;
  let staleCalls = 0;
  let first = true;
  const handler = (mine: number) => () => {
    if (!first) return;
    first = false;
    // Close the other one (ready in this same batch) and take its number for a new, idle fd.
    const other = fds[1 - mine]!;
    set.remove(other);
    sysClose(other);
    closed = other;
    reused = eventfd(false);
    assert.equal(reused, other, 'the kernel hands out the lowest free number');
    set.add(reused, EPOLLIN, () => staleCalls++);
    set.modify(fds[mine]!, 0);
  };
  try {
    set.add(fds[0]!, EPOLLIN, handler(0));
    set.add(fds[1]!, EPOLLIN, handler(1));
    await sleep(30);
    assert.equal(first, false);
    assert.equal(staleCalls, 0, 'the idle fd was never reported');
  } finally {
    set.close();
    for (const fd of fds) if (fd !== closed) sysClose(fd);
    if (reused >= 0) sysClose(reused);
  }
});
