import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FlagError, parseFlags } from './cli-flags.js';

const OPTIONS = {
  output: { type: 'string', short: 'o' },
  namespace: { type: 'string', short: 'n' },
  stdin: { type: 'boolean', short: 'i' },
  tty: { type: 'boolean', short: 't' },
  watch: { type: 'boolean', short: 'w' },
  env: { type: 'string', short: 'e', multiple: true },
} as const;

test('every spelling kubectl accepts for a value flag gives the same value', () => {
  for (const args of [['-o', 'wide'], ['-owide'], ['-o=wide'], ['--output', 'wide'], ['--output=wide']])
    assert.equal(parseFlags(args, OPTIONS).values.output, 'wide', args.join(' '));
  assert.equal(parseFlags(['-n=web'], OPTIONS).values.namespace, 'web');
  assert.equal(parseFlags(['--output='], OPTIONS).values.output, '');
});

test('combined shorthands: booleans, then one that takes the rest or the next word', () => {
  const a = parseFlags(['-it', 'guest'], OPTIONS);
  assert.deepEqual([a.values.stdin, a.values.tty, a.positionals], [true, true, ['guest']]);
  const b = parseFlags(['-itn', 'ns', 'guest'], OPTIONS);
  assert.deepEqual([b.values.stdin, b.values.tty, b.values.namespace, b.positionals], [true, true, 'ns', ['guest']]);
  assert.equal(parseFlags(['-itnweb'], OPTIONS).values.namespace, 'web');
});

test('booleans take =true/=false; a following word stays a positional', () => {
  assert.equal(parseFlags(['--watch=false'], OPTIONS).values.watch, false);
  assert.equal(parseFlags(['-w=false'], OPTIONS).values.watch, false);
  assert.equal(parseFlags(['--watch=T'], OPTIONS).values.watch, true);
  const p = parseFlags(['--watch', 'false'], OPTIONS);
  assert.deepEqual([p.values.watch, p.positionals], [true, ['false']]);
  assert.throws(() => parseFlags(['--watch=maybe'], OPTIONS), /invalid argument "maybe" for "--watch" flag/);
});

test('repeated flags collect when multiple, the last wins otherwise', () => {
  const p = parseFlags(['-e', 'A=1', '--env=B=2', '-eC=3', '-o', 'yaml', '-o', 'json'], OPTIONS);
  assert.deepEqual(p.values.env, ['A=1', 'B=2', 'C=3']);
  assert.equal(p.values.output, 'json');
});

test('-- ends the flags; positionals on both sides are kept with the count before it', () => {
  const p = parseFlags(['guest', '-i', '--', 'sh', '-c', '--output'], OPTIONS);
  assert.deepEqual(p.positionals, ['guest', 'sh', '-c', '--output']);
  assert.equal(p.beforeDash, 1);
  assert.equal(parseFlags(['a', 'b'], OPTIONS).beforeDash, 2);
  assert.deepEqual(parseFlags(['-f', '-'].slice(1), OPTIONS).positionals, ['-'], 'a lone - is a word (stdin)');
});

test("errors are pflag's, with a suggestion for a mistyped long flag", () => {
  assert.throws(() => parseFlags(['--outptu', 'yaml'], OPTIONS), { message: 'unknown flag: --outptu (did you mean --output?)' });
  assert.throws(() => parseFlags(['--frobnicate'], OPTIONS), { message: 'unknown flag: --frobnicate' });
  assert.throws(() => parseFlags(['-x'], OPTIONS), { message: "unknown shorthand flag: 'x' in -x" });
  assert.throws(() => parseFlags(['-o'], OPTIONS), { message: "flag needs an argument: 'o' in -o" });
  assert.throws(() => parseFlags(['--output'], OPTIONS), { message: 'flag needs an argument: --output' });
  assert.throws(() => parseFlags(['--output'], OPTIONS), FlagError);
});

test('interspersed: false ends the flags at the first word, as pflag does; -- still ends them too', () => {
  const p = parseFlags(['-i', '-n', 'web', 'alpine', 'ls', '-l', '--output', 'x'], OPTIONS, { interspersed: false });
  assert.deepEqual([p.values.stdin, p.values.namespace, p.positionals], [true, 'web', ['alpine', 'ls', '-l', '--output', 'x']]);
  assert.equal(p.values.output, undefined);
  const d = parseFlags(['-i', '--', '-image', '-x'], OPTIONS, { interspersed: false });
  assert.deepEqual(d.positionals, ['-image', '-x']);
  assert.deepEqual(parseFlags(['-', '-i'], OPTIONS, { interspersed: false }).positionals, ['-', '-i']);
  assert.throws(() => parseFlags(['--bogus', 'alpine'], OPTIONS, { interspersed: false }), { message: 'unknown flag: --bogus' });
});
