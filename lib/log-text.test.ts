// The text log format: one line per record, levels named, nested objects as dotted keys, errors as their
// stack, and strings (a guest's among them) escaped so that no record becomes two lines or shows a field
// it does not have.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pino } from 'pino';
import { formatLine, formatRecord, textDestination } from './log-text.js';

const T = Date.parse('2026-12-06T05:00:00.123Z');

/** What pino writes for one call, through the text destination. */
function logged(call: (log: pino.Logger) => void): string {
  let out = '';
  const log = pino(
    { level: 'trace', base: { component: 'krata-test' } },
    textDestination({ write: (s) => (out += s) }, new Set(['component'])),
  );
  call(log);
  return out;
}

test('time, the level in five columns, the message, then the fields in order', () => {
  assert.equal(
    formatRecord({ level: 30, time: T, msg: 'guest started', guest: 'default/web', domid: 7, ready: true, none: null }),
    '2026-12-06T05:00:00.123Z INFO  guest started guest=default/web domid=7 ready=true none=null\n',
  );
  const levels = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const;
  const lines = logged((log) => levels.forEach((l) => log[l]('x')))
    .split('\n')
    .filter(Boolean);
  assert.deepEqual(
    lines.map((l) => l.slice(25)),
    ['TRACE x', 'DEBUG x', 'INFO  x', 'WARN  x', 'ERROR x', 'FATAL x'],
  );
  for (const l of lines) assert.match(l, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z /);
  assert.equal(formatRecord({ level: 35, time: T, msg: 'm' }), '2026-12-06T05:00:00.123Z L35   m\n');
  // The base field every record carries is left out; a child's fields are kept.
  assert.match(
    logged((log) => log.child({ guest: 'default/db' }).info({ n: 1 }, 'hello')),
    / INFO {2}hello guest=default\/db n=1\n$/,
  );
});

test('nested objects as dotted keys, arrays and deep objects as JSON, empty objects as {}', () => {
  const line = formatRecord({
    level: 30,
    time: T,
    msg: 'm',
    net: { v4: '10.75.0.2', ports: [80, 443], peer: { name: 'a b' } },
    empty: {},
    deep: { a: { b: { c: { d: { e: 1 } } } } },
  });
  assert.equal(
    line,
    '2026-12-06T05:00:00.123Z INFO  m net.v4=10.75.0.2 net.ports=[80,443] net.peer.name="a b" empty={} deep.a.b.c.d="{\\"e\\":1}"\n',
  );
});

test('an error as its stack, on the same line, with its other properties', () => {
  const err = Object.assign(new Error('disk full'), { code: 'ENOSPC' });
  const line = logged((log) => log.error({ err }, 'writing failed'));
  assert.equal(line.split('\n').length, 2, 'one line');
  assert.match(line, / ERROR writing failed err="Error: disk full\\n {4}at .*" err\.code=ENOSPC\n$/);
  const [, stack] = /err=("(?:[^"\\]|\\.)*")/.exec(line)!;
  assert.equal(JSON.parse(stack!), err.stack, 'the stack, whole');
  // An error logged alone: its message is the message.
  assert.match(
    logged((log) => log.warn(new TypeError('bad'))),
    / WARN {2}bad err="TypeError: bad\\n/,
  );
});

test('a hostile string cannot make a second line, a field, or a terminal escape', () => {
  const forged = 'pulled\n2026-12-06T05:00:00.000Z ERROR agent compromised';
  const cases: Record<string, unknown>[] = [
    { msg: forged },
    { msg: 'ok', guest: forged },
    { msg: 'x guest=other', name: 'web' },
    { msg: 'ok', output: 'a"b c\\d\r\t' },
    { msg: 'ok', [`k\ney=1 ${forged}`]: 'v' },
    { msg: 'ok', title: '\u001b]0;owned\u0007\u001b[2J' },
    { msg: 'ok', s: 'line\u2028sep\u2029para\u0085nel\u202eevil\u200b\u{E0041}\ud800' },
    { msg: 'ok', nested: { inner: forged, list: [forged] } },
    { msg: ' padded ' },
  ];
  for (const c of cases) {
    const line = formatRecord({ level: 30, time: T, ...c });
    assert.equal(line.indexOf('\n'), line.length - 1, `one line: ${line}`);
    assert.doesNotMatch(line.slice(0, -1), /[\p{C}\u2028\u2029]/u, `no control, format or separator character raw: ${line}`);
  }
  // What is quoted is a JSON string: it reads back exactly.
  const line = formatRecord({ level: 30, time: T, msg: forged, out: 'a"b\\c\u001b\u202e\u{E0041}\ud800 ' });
  const quoted = [...line.matchAll(/"(?:[^"\\]|\\.)*"/g)].map((m) => JSON.parse(m[0]) as string);
  assert.deepEqual(quoted, [forged, 'a"b\\c\u001b\u202e\u{E0041}\ud800 ']);
  // A message with `=` is quoted: it cannot pass for fields.
  assert.equal(
    formatRecord({ level: 40, time: T, msg: 'x guest=other', name: 'web' }),
    '2026-12-06T05:00:00.123Z WARN  "x guest=other" name=web\n',
  );
  // Quotes alone leave a message readable.
  assert.equal(formatRecord({ level: 30, time: T, msg: 'ignoring heartbeats under "w1"' }).slice(31), 'ignoring heartbeats under "w1"\n');
});

test('formatLine: JSON as a record; anything else kept as a quoted message of no level', () => {
  assert.equal(formatLine(JSON.stringify({ level: 50, time: T, msg: 'm' })), '2026-12-06T05:00:00.123Z ERROR m\n');
  assert.equal(formatLine('not json\u001b'), '- -     "not json\\u001b"\n');
  // Two records in one write: two lines.
  let out = '';
  textDestination({ write: (s) => (out += s) }).write(
    `${JSON.stringify({ level: 30, time: T, msg: 'a' })}\n${JSON.stringify({ level: 30, time: T, msg: 'b' })}\n`,
  );
  assert.equal(out, '2026-12-06T05:00:00.123Z INFO  a\n2026-12-06T05:00:00.123Z INFO  b\n');
});
