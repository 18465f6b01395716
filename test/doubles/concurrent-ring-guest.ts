// A guest vCPU racing the agent on one console page: a worker thread plays hvc_xen with aligned 32-bit
// index accesses (as the guest kernel does) while the test drives ConsoleRing on the main thread. It
// checks what a real guest would trip over: a consumer index that runs backwards or past the producer.
import { Worker } from 'node:worker_threads';

/** Word offsets of the indexes and of the result words the worker fills in. */
const IN_CONS = 3072 / 4;
const IN_PROD = 3076 / 4;
const OUT_CONS = 3080 / 4;
const OUT_PROD = 3084 / 4;
export const RESULT = { done: 1024 - 4, error: 1024 - 3, inputGot: 1024 - 2, inputBad: 1024 - 1 } as const;

const GUEST = `
const { workerData } = require('node:worker_threads');
const { sab, total, start } = workerData;
const u32 = new Uint32Array(sab);
const bytes = new Uint8Array(sab);
const R = ${JSON.stringify(RESULT)};
let prod = start, lastOutCons = start, inCons = start, produced = 0, got = 0, bad = 0, error = 0;
// Seeded chunk sizes: the same run every time.
let seed = 12345;
const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 16);
while ((produced < total || got < total) && !error) {
  if (produced < total) {
    // Like hvc_xen waiting for room, look at the consumer index many times between writes.
    let cons = lastOutCons;
    for (let k = 0; k < 64 && !error; k++) {
      cons = Atomics.load(u32, ${OUT_CONS});
      if (((cons - lastOutCons) | 0) < 0) error = 1; // ran backwards
      else if (((prod - cons) >>> 0) > 2048) error = 2; // xencons: Illegal ring page indices
      lastOutCons = cons;
    }
    const room = 2048 - ((prod - cons) >>> 0);
    const n = Math.min(room, 1 + (rand() % 300), total - produced);
    for (let i = 0; i < n; i++) bytes[1024 + ((prod + i) >>> 0) % 2048] = (produced + i) % 251;
    prod = (prod + n) >>> 0;
    produced += n;
    Atomics.store(u32, ${OUT_PROD}, prod);
  }
  const inProd = Atomics.load(u32, ${IN_PROD});
  const avail = (inProd - inCons) >>> 0;
  if (avail > 1024) error = 3;
  else {
    for (let i = 0; i < avail; i++) if (bytes[((inCons + i) >>> 0) % 1024] !== (got + i) % 253) bad++;
    got += avail;
    inCons = (inCons + avail) >>> 0;
    Atomics.store(u32, ${IN_CONS}, inCons);
  }
}
Atomics.store(u32, R.error, error);
Atomics.store(u32, R.inputGot, got);
Atomics.store(u32, R.inputBad, bad);
Atomics.store(u32, R.done, 1);
`;

/** Starts the racing guest on `sab` (a 4 KiB page whose indexes all start at `start`). */
export function startConcurrentGuest(sab: SharedArrayBuffer, total: number, start: number): Worker {
  const u32 = new Uint32Array(sab);
  for (const w of [IN_CONS, IN_PROD, OUT_CONS, OUT_PROD]) u32[w] = start;
  return new Worker(GUEST, { eval: true, workerData: { sab, total, start } });
}
