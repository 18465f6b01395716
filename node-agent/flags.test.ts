// The TLS listener's flags: on by default in cluster mode only, "off", what is advertised by default, and
// usage errors that name the flag.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseFlags } from './flags.js';
import type { AgentConfig } from './container/config.js';

const config = (...args: string[]): AgentConfig => {
  const f = parseFlags(['--fake-hypervisor', '1024', ...args]);
  assert.ok('config' in f);
  return f.config;
};
const cluster = ['--redis', 'redis://127.0.0.1:6379', '--host', 'xen-1'];

test('cluster mode listens on 0.0.0.0:9444 by default and advertises nothing; a single host has no listener', () => {
  assert.deepEqual(config(...cluster).tls, { host: '0.0.0.0', port: 9444 });
  assert.equal(config().tls, undefined);
  assert.equal(config(...cluster, '--tls-listen', 'off').tls, undefined);
});

test('--tls-advertise defaults to a specific listen address; IPv6 in brackets', () => {
  assert.deepEqual(config(...cluster, '--tls-listen', '10.0.0.5:9555').tls, { host: '10.0.0.5', port: 9555, advertise: '10.0.0.5:9555' });
  assert.deepEqual(config(...cluster, '--tls-listen', '[::]:9444').tls, { host: '::', port: 9444 });
  assert.deepEqual(config(...cluster, '--tls-listen', '[fd00::5]:9444').tls, { host: 'fd00::5', port: 9444, advertise: '[fd00::5]:9444' });
  assert.deepEqual(config(...cluster, '--tls-advertise', 'xen-1.example.net:443').tls, {
    host: '0.0.0.0',
    port: 9444,
    advertise: 'xen-1.example.net:443',
  });
});

test('bad TLS flags are usage errors naming the flag', () => {
  for (const [args, why] of [
    [['--tls-listen', '0.0.0.0:9444'], /need --redis/],
    [['--tls-advertise', '10.0.0.1:9444'], /need --redis/],
    [[...cluster, '--tls-listen', 'localhost:9444'], /--tls-listen: expected IP:PORT/],
    [[...cluster, '--tls-listen', '10.0.0.1'], /--tls-listen/],
    [[...cluster, '--tls-listen', '10.0.0.1:70000'], /--tls-listen/],
    [[...cluster, '--tls-listen', '[10.0.0.1]:9444'], /--tls-listen/],
    [[...cluster, '--tls-advertise', 'a b:1'], /--tls-advertise: expected ADDRESS:PORT/],
    [[...cluster, '--tls-listen', 'off', '--tls-advertise', '10.0.0.1:9444'], /--tls-advertise needs the TLS listener/],
  ] as const) {
    assert.throws(() => config(...args), why, args.join(' '));
  }
});
