// Prefix each line read from the fifo named by argv[2] with the microseconds since the epoch at which it
// arrived, as "XLLOG <us> <line>" (bench/xen-launch.sh). Prints "ready" once running, so the
// writer starts only after this process (slow to start under TCG) is reading: stamps then lag the writer
// by microseconds, not by Node's start-up.
import { createReadStream } from 'node:fs';
import { performance } from 'node:perf_hooks';

const stamp = () => Math.round((performance.timeOrigin + performance.now()) * 1000);
let rest = '';
const input = createReadStream(process.argv[2], { encoding: 'utf8' });
// Opening a fifo waits for its writer, so "ready" means running and about to read, not opened.
process.stderr.write('ready\n');
input.on('data', (chunk) => {
  const lines = (rest + chunk).split('\n');
  rest = lines.pop();
  const t = stamp();
  for (const l of lines) process.stdout.write(`XLLOG ${t} ${l}\n`);
});
input.on('end', () => {
  if (rest) process.stdout.write(`XLLOG ${stamp()} ${rest}\n`);
});
