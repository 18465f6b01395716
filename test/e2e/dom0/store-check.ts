// The power-cut scenario's store check (195-powercut), in dom0 after the reboot, before the agent
// starts: what the cut left in STATE/guests (temporaries, batch backups, a batch record), then the
// store as the agent loads it (lib: GuestStore), which must load without a problem, hold every
// acknowledged apply and leave nothing behind.
//   node store-check.js STATE < ACKS    (ACKS: apply-stream.js's output, kept on the host)
// A Guest holds an apply when its spec's sequence number (command [sleep, SEQ]) is at least the
// apply's: a later apply, acknowledged or cut short after its commit, may have replaced it. Prints one
// line per check; exit 1 if one fails.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { GuestStore } from '../../../node-agent/store/guest-store.js';

const state = process.argv[2];
if (!state) {
  console.error('usage: store-check.js STATE < ACKS');
  process.exit(2);
}
let failed = 0;
const check = (ok: boolean, line: string) => {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${line}`);
  if (!ok) failed++;
};
const guests = join(state, 'guests');
const leftovers = () => readdirSync(guests, { recursive: true, encoding: 'utf8' }).filter((f) => f.includes('.tmp-') || f.startsWith('.'));

const acks = new Map<string, number>();
let requests = 0;
for (const line of readFileSync(0, 'utf8').split('\n')) {
  const [tag, seq, ...names] = line.split(' ');
  if (tag !== 'ACK') continue;
  requests++;
  for (const n of names) acks.set(n, Math.max(acks.get(n) ?? 0, Number(seq)));
}
const before = leftovers();
console.log(`     the cut left ${before.length} temporaries/records in ${guests}${before.length ? `: ${before.join(' ')}` : ''}`);
const problems: string[] = [];
const store = new GuestStore(state, problems);
check(problems.length === 0, `the store loads without a problem${problems.length ? `: ${problems.join('; ')}` : ''}`);
const missing: string[] = [];
let newer = 0;
for (const [name, seq] of acks) {
  const g = store.get(`default/${name}`)?.guest;
  const stored = Number(g?.spec.command?.[1] ?? -1);
  if (stored < seq) missing.push(`${name} (acknowledged seq ${seq}, stored ${g ? stored : 'nothing'})`);
  else if (stored > seq) newer++;
}
check(
  acks.size > 0 && missing.length === 0,
  `every acknowledged apply is in the store: ${requests} requests acknowledged, ${acks.size} Guests` +
    `${newer ? ` (${newer} hold a later apply cut short after its commit)` : ''}` +
    `${missing.length ? `; missing: ${missing.join(', ')}` : ''}`,
);
const torn = store.list().filter((g) => !g.metadata.uid || !g.spec?.image || g.metadata.resourceVersion === undefined);
check(torn.length === 0, `no stored Guest is torn (uid, spec, resourceVersion present in all ${store.list().length})`);
const after = leftovers();
check(after.length === 0, `the load left no temporary, backup or batch record${after.length ? `: ${after.join(' ')}` : ''}`);
process.exit(failed ? 1 : 0);
