// One xenstore session exercising the protocol end to end, run against a real xenstored to record it
// and against the recording in unit tests. Two connections, so that a transaction can conflict.
// Returns a transcript of what the client observed; the unit test compares it with the recording's.
import type { XenstoreClient, XenstoreError } from '../../node-agent/xen/xenstore/client.js';

export const SCENARIO_ROOT = '/krata-test';

export async function xenstoreScenario(a: XenstoreClient, b: XenstoreClient): Promise<unknown[]> {
  const out: unknown[] = [];
  const note = (what: string, value: unknown) => {
    out.push([what, value]);
    if (process.env.XS_SCENARIO_TRACE) process.stderr.write(`${what}: ${JSON.stringify(value)}\n`);
  };
  const code = async (p: Promise<unknown>) =>
    p.then(
      () => 'ok',
      (e: XenstoreError) => e.code,
    );

  await a.rm(SCENARIO_ROOT);
  await a.write(`${SCENARIO_ROOT}/name`, 'guest-é');
  note('read', await a.read(`${SCENARIO_ROOT}/name`));
  await a.write(`${SCENARIO_ROOT}/bytes`, Buffer.from([1, 2, 255]));
  note('readBytes', [...(await a.readBytes(`${SCENARIO_ROOT}/bytes`))]);
  note('tryRead missing', await a.tryRead(`${SCENARIO_ROOT}/missing`));
  note('read missing', await code(a.read(`${SCENARIO_ROOT}/missing`)));
  await a.mkdir(`${SCENARIO_ROOT}/dir/sub`);
  note('list', (await a.list(SCENARIO_ROOT)).sort());
  note('tryList missing', await a.tryList(`${SCENARIO_ROOT}/nope`));
  note('relative path', await code(a.read('relative/path')));

  await a.setPerms(`${SCENARIO_ROOT}/name`, [
    { domid: 0, access: 'none' },
    { domid: 5, access: 'read' },
    { domid: 7, access: 'both' },
  ]);
  note('getPerms', await a.getPerms(`${SCENARIO_ROOT}/name`));

  // A directory too large for one 4096-byte reply is read with XS_DIRECTORY_PART.
  const many = Array.from({ length: 120 }, (_, i) => `child-with-a-rather-long-name-${String(i).padStart(3, '0')}`);
  await a.transaction(async (tx) => {
    for (const name of many) await tx.write(`${SCENARIO_ROOT}/big/${name}`, '');
  });
  const listed = await a.list(`${SCENARIO_ROOT}/big`);
  note('big list', [listed.length, listed.sort().join(',') === many.join(',')]);

  // Watches fire once on registration, then on changes below the path.
  const events: string[] = [];
  const watch = await a.watch(`${SCENARIO_ROOT}/w`, (path) => events.push(path));
  await b.write(`${SCENARIO_ROOT}/w/x`, '1');
  await a.read(`${SCENARIO_ROOT}/w/x`); // a round trip on a, so the event has arrived before we look
  note('watch events', [...events]);
  await watch.unwatch();
  await b.write(`${SCENARIO_ROOT}/w/y`, '2');
  await a.read(`${SCENARIO_ROOT}/w/y`);
  note('events after unwatch', events.length);

  // A transaction that conflicts with a write on the other connection is retried and then commits.
  await a.write(`${SCENARIO_ROOT}/counter`, '0');
  let runs = 0;
  const result = await a.transaction(async (tx) => {
    runs++;
    const n = Number(await tx.read(`${SCENARIO_ROOT}/counter`));
    if (runs === 1) await b.write(`${SCENARIO_ROOT}/counter`, '10');
    await tx.write(`${SCENARIO_ROOT}/counter`, String(n + 1));
    return n + 1;
  });
  note('transaction', [runs, result, await a.read(`${SCENARIO_ROOT}/counter`)]);
  note(
    'aborted transaction',
    await code(
      a.transaction(async (tx) => {
        await tx.write(`${SCENARIO_ROOT}/aborted`, 'x');
        throw Object.assign(new Error('body failed'), { code: 'EBODY' });
      }),
    ),
  );
  note('after abort', await a.tryRead(`${SCENARIO_ROOT}/aborted`));

  note('domain path', await a.getDomainPath(0));
  note('dom0 introduced', await a.isDomainIntroduced(0));
  note('rm missing', await code(a.rm(`${SCENARIO_ROOT}/nope/deeper`)));
  await a.rm(SCENARIO_ROOT);
  note('after rm', await a.tryList(SCENARIO_ROOT));
  return out;
}
