import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseFlags } from './flags.js';

const files = [
  '--tls-cert-file=s.crt',
  '--tls-private-key-file=s.key',
  '--agent-client-cert-file=c.crt',
  '--agent-client-key-file=c.key',
  '--agent-ca-file=ca.crt',
];

describe('krata-api flags', () => {
  it('makes the config, with the defaults', () => {
    assert.deepEqual(parseFlags(files), {
      config: {
        listen: '0.0.0.0:8443',
        tlsCertFile: 's.crt',
        tlsKeyFile: 's.key',
        agentTls: { certFile: 'c.crt', keyFile: 'c.key', caFile: 'ca.crt' },
        metricsAddr: ':8080',
        refreshMs: 60_000,
      },
      logLevel: 'info',
      logFormat: process.env.KRATA_LOG_FORMAT === 'text' ? 'text' : 'json',
    });
    const f = parseFlags([...files, '--metrics=off', '--refresh=5m', '--kubeconfig=k', '--listen=10.0.0.1:9443']);
    assert.ok('config' in f);
    assert.equal(f.config.metricsAddr, undefined);
    assert.equal(f.config.refreshMs, 300_000);
    assert.equal(f.config.kubeconfig, 'k');
    assert.equal(f.config.listen, '10.0.0.1:9443');
  });

  it('needs every certificate file', () => {
    for (const missing of files) {
      const flag = missing.split('=')[0]!;
      assert.throws(() => parseFlags(files.filter((f) => f !== missing)), new RegExp(`${flag} is required`));
    }
    assert.throws(() => parseFlags([...files, '--refresh=0']), /--refresh/);
  });
});
