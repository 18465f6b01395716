// The daemons' log format choice: --log-format, else KRATA_LOG_FORMAT, else json; a bad value names its source.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { daemonLogger, logFlagsHelp, logFormat } from './daemon-log.js';

test('--log-format wins over KRATA_LOG_FORMAT; json by default', () => {
  assert.equal(logFormat(undefined, undefined), 'json');
  assert.equal(logFormat(undefined, ''), 'json');
  assert.equal(logFormat(undefined, 'text'), 'text');
  assert.equal(logFormat('json', 'text'), 'json');
  assert.equal(logFormat('text', undefined), 'text');
});

test('a bad value is an error naming the flag or the variable', () => {
  assert.throws(() => logFormat('yaml', 'text'), { message: '--log-format: expected text or json, not "yaml"' });
  assert.throws(() => logFormat('', undefined), { message: '--log-format: expected text or json, not ""' });
  assert.throws(() => logFormat(undefined, 'TEXT'), { message: 'KRATA_LOG_FORMAT: expected text or json, not "TEXT"' });
});

test('the logger writes text lines or JSON records with the component', () => {
  let out = '';
  const sink = { write: (s: string) => (out += s) };
  daemonLogger('krata-test', 'info', 'text', sink).info({ guest: 'default/web' }, 'started');
  assert.match(out, /^\S+Z INFO {2}started guest=default\/web\n$/);
  assert.match(logFlagsHelp(26), /^ {2}--log-format FORMAT {5}json .*\n {26}without it, \$KRATA_LOG_FORMAT\n$/m);
});
