// The operator's follower of the status stream, on a real Redis: it records reports from the hosts it
// knows and drops stream entries under any other host name (any agent can write any `host` there).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { STATUS_STREAM, type StatusReport } from '../contracts/redis/contract.js';
import { startRedis } from '../test/redis.js';
import { waitFor } from '../test/kube/operator-env.js';
import { StatusReports } from './status-reports.js';

test(
  'status stream: entries under hosts the operator does not know are dropped, known hosts are recorded',
  { timeout: 30_000 },
  async () => {
    const redis = await startRedis();
    const [reader, writer] = [new Redis(redis.url), new Redis(redis.url)];
    const changed: string[] = [];
    const reports = new StatusReports(reader, writer, (key) => changed.push(key));
    try {
      reports.start(() => ['xen-a']);
      const report = (uid: string): string =>
        JSON.stringify({ uid, generation: 1, status: { phase: 'Running' }, time: new Date().toISOString() } satisfies StatusReport);
      // The follower starts at the stream's end (what came before is in the hashes): write until it reads.
      await waitFor(async () => {
        await writer.xadd(STATUS_STREAM, '*', 'host', 'xen-a', 'key', 'default/probe', 'report', report('u-probe'));
        await new Promise((r) => setTimeout(r, 50));
        return reports.from('xen-a', 'default/probe');
      }, 'the follower reading the stream');
      for (let i = 0; i < 50; i++)
        await writer.xadd(STATUS_STREAM, '*', 'host', `invented-${i}`, 'key', `default/g${i}`, 'report', report(`u${i}`));
      await writer.xadd(STATUS_STREAM, '*', 'host', 'xen-a', 'key', 'default/web', 'report', report('u-web'));
      await waitFor(() => reports.from('xen-a', 'default/web'), 'the known host recorded');
      assert.equal(reports.unknownHost, 50);
      assert.deepEqual(
        changed.filter((k) => k !== 'default/probe'),
        ['default/web'],
      );
      assert.deepEqual(reports.get('default/g0'), []);
    } finally {
      await reports.stop();
      writer.disconnect();
      await redis.stop();
    }
  },
);
