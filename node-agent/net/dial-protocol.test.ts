import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  DialProtocolError,
  formatDialAnswer,
  formatDialRequest,
  MAX_DIAL_TIMEOUT_MS,
  MAX_LINE,
  parseDialAnswer,
  parseDialRequest,
} from './dial-protocol.js';

test('a request round-trips; the timeout is whole milliseconds, at least 1, at most the maximum', () => {
  const line = formatDialRequest({ key: 'default/web-0', port: 8080, timeoutMs: 999.2 });
  assert.equal(line, 'dial default/web-0 8080 1000\n');
  assert.deepEqual(parseDialRequest(line.slice(0, -1)), { key: 'default/web-0', port: 8080, timeoutMs: 1000 });
  assert.equal(formatDialRequest({ key: 'a/b', port: 1, timeoutMs: 0 }), 'dial a/b 1 1\n');
  assert.equal(formatDialRequest({ key: 'a/b', port: 65535, timeoutMs: Infinity }), `dial a/b 65535 ${MAX_DIAL_TIMEOUT_MS}\n`);
  assert.equal(parseDialRequest('dial a/b 80 999999999').timeoutMs, MAX_DIAL_TIMEOUT_MS);
});

test('the client refuses to write a request it could not parse back', () => {
  for (const key of ['', 'a b', 'a\nb', 'é', 'x'.repeat(301)])
    assert.throws(() => formatDialRequest({ key, port: 80, timeoutMs: 1 }), DialProtocolError, JSON.stringify(key));
  for (const port of [0, -1, 65536, 1.5, NaN])
    assert.throws(
      () => formatDialRequest({ key: 'a/b', port, timeoutMs: 1 }),
      (e: DialProtocolError) => e.field === 'port',
    );
  assert.throws(
    () => formatDialRequest({ key: 'a b', port: 80, timeoutMs: 1 }),
    (e: DialProtocolError) => e.field === 'key',
  );
  assert.throws(() => formatDialRequest({ key: 'a/b', port: 80, timeoutMs: NaN }), /timeout/);
});

test('a malformed request line is refused, naming what is wrong', () => {
  const bad: [string, RegExp][] = [
    ['', /expected/],
    ['dial a/b 80', /expected/],
    ['dial a/b 80 1000 extra', /expected/],
    ['DIAL a/b 80 1000', /expected/],
    ['dial  a/b 80 1000', /expected/],
    ['dial a/b 0 1000', /port/],
    ['dial a/b 65536 1000', /port/],
    ['dial a/b 080 1000', /port/],
    ['dial a/b 80x 1000', /port/],
    ['dial a/b 80 0', /timeout/],
    ['dial a/b 80 -5', /timeout/],
    ['dial a/b 80 1e3', /timeout/],
    ['dial a/b 80 1234567890', /timeout/],
    ['dial a\tb 80 1000', /key/],
    [`dial ${'k'.repeat(301)} 80 1000`, /key/],
    [`dial ${'k'.repeat(MAX_LINE)} 80 1000`, /too long/],
  ];
  for (const [line, why] of bad) assert.throws(() => parseDialRequest(line), why, JSON.stringify(line));
});

test('answers: OK, or ERR with a known reason and a one-line bounded message', () => {
  assert.equal(formatDialAnswer({ ok: true }), 'OK\n');
  assert.deepEqual(parseDialAnswer('OK'), { ok: true });
  const line = formatDialAnswer({ ok: false, reason: 'Refused', message: 'ns/g refused port 80' });
  assert.equal(line, 'ERR Refused ns/g refused port 80\n');
  assert.deepEqual(parseDialAnswer(line.slice(0, -1)), { ok: false, reason: 'Refused', message: 'ns/g refused port 80' });
  const long = formatDialAnswer({ ok: false, reason: 'Timeout', message: `a\nb\r${'x'.repeat(2000)}` });
  assert.ok(long.length <= MAX_LINE);
  assert.equal(long.indexOf('\n'), long.length - 1);
  assert.ok(long.startsWith('ERR Timeout a?b?x'));
  for (const reason of ['NoSuchGuest', 'Refused', 'Timeout', 'Unavailable', 'BadRequest'])
    assert.equal((parseDialAnswer(`ERR ${reason}`) as { reason: string }).reason, reason);
  for (const bad of ['', 'ok', 'OK ', 'ERR', 'ERR Nope x', 'HTTP/1.1 200 OK']) assert.throws(() => parseDialAnswer(bad), DialProtocolError);
});
