// A node:test reporter that prints how long each test file took, slowest first, when the run ends
// (`npm test` uses it next to the spec reporter). It is how the suite's time is watched: files run in
// parallel, so the slowest ones bound the wall time. A file's time runs from its process's start (the
// dequeue of the file) to its end; where a Node version reports no file-level events, from the file's
// first event to its last.
import type { TestEvent } from 'node:test/reporters';

const SHOWN = 15;

export default async function* fileTimes(source: AsyncIterable<TestEvent>): AsyncGenerator<string> {
  const started = Date.now();
  const files = new Map<string, { first: number; last: number; ms?: number }>();
  for await (const e of source) {
    const file = e.data && 'file' in e.data ? e.data.file : undefined;
    if (!file) continue;
    const now = Date.now();
    const f = files.get(file) ?? { first: now, last: now };
    f.last = now;
    files.set(file, f);
    if (e.type === 'test:complete' && e.data.name === file) f.ms = e.data.details.duration_ms;
  }
  const rows = [...files].map(([file, f]) => ({ file, ms: f.ms ?? f.last - f.first })).sort((a, b) => b.ms - a.ms);
  const total = rows.reduce((s, r) => s + r.ms, 0);
  const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
  yield `\nslowest test files (${rows.length} files, ${s(total)} in all, ${s(Date.now() - started)} wall):\n`;
  for (const r of rows.slice(0, SHOWN)) yield `${s(r.ms).padStart(9)}  ${r.file.replace(`${process.cwd()}/`, '')}\n`;
}
