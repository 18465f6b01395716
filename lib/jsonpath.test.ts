// The JSONPath engine on its own: client-go's results and messages for what the kubectl comparison
// (test/kratactl/kubectl-parity.test.ts) does not reach: parse errors, unions, escapes, nested ranges,
// filters' comparisons, Go's printing of values, and bounds on hostile templates.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { JsonPath, JsonPathError, relaxedJsonPath } from './jsonpath.js';
import { goJson, goText } from './go-format.js';

const data = {
  kind: 'List',
  items: [
    { name: 'a', n: 1, tags: ['x', 'y'], meta: { 'dotted.key': 'd', z: 1, b: { c: '<&>' } }, ok: true },
    { name: 'b', n: 2.5, tags: [], meta: {}, ok: false, nothing: null },
    { name: 'c', n: 10, tags: ['z'], meta: { z: 3 } },
  ],
};
const run = (t: string, d: unknown = data) => new JsonPath(t).execute(d);

test('fields, indexes, slices, unions and wildcards', () => {
  assert.equal(run('{.items[*].name}'), 'a b c');
  assert.equal(run('{.items[-1].name}'), 'c');
  assert.equal(run('{.items[0:2].name}'), 'a b');
  assert.equal(run('{.items[::2].name}'), 'a c');
  assert.equal(run('{.items[0,2].name}'), 'a c');
  assert.equal(run('{.items[0].tags[*]}'), 'x y');
  assert.equal(run("{.items[0].meta['dotted\\.key']}"), 'd');
  assert.equal(run("{.items[0].meta['dotted.key']}"), '', "client-go reads ['a.b'] as .a.b: the dot needs its backslash");
  assert.equal(run('{.items[0].meta.dotted\\.key}'), 'd');
  assert.equal(run('{$.kind}'), 'List');
  assert.equal(run('{.items[1:1].name}'), '');
  assert.equal(run('{.missing.deeper}'), '', 'missing keys print nothing (kubectl allows them)');
  assert.throws(() => new JsonPath('{.missing}', false).execute(data), new JsonPathError('missing is not found'));
});

test('ranges, nested ranges, an empty range, literals and text around actions', () => {
  assert.equal(run('{range .items[*]}[{.name}]{end}'), '[a][b][c]');
  assert.equal(run('{range .items[*]}{.name}:{range .tags[*]}<{@}>{end};{end}'), 'a:<x><y>;b:;c:<z>;');
  assert.equal(run('{range .items[5:5]}never{end}after'), 'after');
  assert.equal(run('x{"\\t"}y{\'\\n\'}z {"\\u00e9"}'), 'x\ty\nz é');
  assert.throws(() => run('{end}'), new JsonPathError('not in range, nothing to end'));
});

test('filters: ==, !=, <, >=, existence, mismatched types (ints and floats are two kinds, as in Go)', () => {
  const ints = {
    items: [
      { name: 'a', n: 1 },
      { name: 'c', n: 10 },
    ],
  };
  assert.equal(run('{.items[?(@.n>1)].name}', ints), 'c');
  assert.equal(run('{.items[?(@.n<=10)].name}', ints), 'a c');
  assert.throws(() => run('{.items[?(@.n>1.5)].name}', ints), new JsonPathError('incompatible types for comparison'));
  assert.throws(() => run('{.items[?(@.n>1)].name}'), new JsonPathError('incompatible types for comparison'), '2.5 is a float');
  assert.equal(run('{.items[?(@.n==2.5)].name}', { items: [{ name: 'b', n: 2.5 }] }), 'b');
  assert.equal(run('{.items[?(@.name!="b")].name}'), 'a c');
  assert.equal(run('{.items[?(@.ok==true)].name}'), 'a');
  assert.throws(() => new JsonPath('{.items[?(@.name=~"^[ab]$")].name}'), /unrecognized character in action: U\+007E '~'/);
  assert.equal(run('{.items[?(@.meta.z)].name}'), 'a c');
  assert.throws(() => run('{.items[?(@.name>1)].name}'), new JsonPathError('incompatible types for comparison'));
  assert.throws(() => run('{.kind[?(@.x)]}'), /is not array or slice and cannot be filtered/);
});

test('recursive descent visits containers depth first', () => {
  assert.equal(run('{..c}'), '<&>');
  assert.equal(run('{.items[0]..z}'), '1');
  assert.throws(() => new JsonPath('{.....a}'), new JsonPathError('invalid multiple recursive descent'));
});

test("client-go's parse and walk errors", () => {
  const parseError = (t: string, message: string) => assert.throws(() => new JsonPath(t), new JsonPathError(message), t);
  parseError('{.a', 'unclosed action');
  parseError('{.a[1}', 'unterminated array');
  parseError('{.a[x]}', 'invalid array index x');
  parseError('{.a[?(@.x=="y"}', 'unterminated filter');
  parseError('{"abc}', 'unterminated quoted string');
  parseError('{.a %}', "unrecognized character in action: U+0025 '%'");
  parseError('{1.2.3}', 'cannot parse number 1.2.3');
  assert.throws(() => run('{.items[7]}'), new JsonPathError('array index out of bounds: index 7, length 3'));
  assert.throws(() => run('{.items[2:1]}'), new JsonPathError('starting index 2 is greater than ending index 1'));
  assert.throws(() => run('{.kind[0]}'), new JsonPathError('string is not array or slice'));
  assert.throws(() => run('{foo}'), new JsonPathError('unrecognized identifier foo'));
  assert.throws(() => new JsonPath(`{${'['.repeat(40)}}`), JsonPathError);
  assert.throws(() => new JsonPath('{.a}'.repeat(20_000)), /longer than/);
});

test('values print as Go prints them: JSON with sorted keys and HTML escapes, %v for scalars', () => {
  assert.equal(run('{.items[0].meta}'), '{"b":{"c":"\\u003c\\u0026\\u003e"},"dotted.key":"d","z":1}');
  assert.equal(run('{.items[*].n}'), '1 2.5 10');
  assert.equal(run('{.items[1].nothing}'), '<nil>');
  assert.equal(run('{.items[*].ok}'), 'true false');
  assert.equal(goText({ b: [1, 'x'], a: { c: null } }), 'map[a:map[c:<nil>] b:[1 x]]');
  assert.equal(goText(1e-7), '1e-07');
  assert.equal(goText(1e21), '1e+21');
  assert.equal(goText(0.25), '0.25');
  assert.equal(goJson(['\u2028']), '["\\u2028"]');
});

test("relaxed paths for custom-columns and --sort-by, as kubectl's RelaxedJSONPathExpression", () => {
  assert.equal(relaxedJsonPath('.a.b'), '{.a.b}');
  assert.equal(relaxedJsonPath('a.b'), '{.a.b}');
  assert.equal(relaxedJsonPath('{a.b}'), '{.a.b}');
  assert.equal(relaxedJsonPath('{.a.b}'), '{.a.b}');
  assert.throws(() => relaxedJsonPath('{.a}{.b}'), /unexpected path string/);
});
