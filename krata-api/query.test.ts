import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { agentQuery, attachSize } from './query.js';
import { StatusError } from './status.js';

const q = (s: string) => new URLSearchParams(s);

function refused(fn: () => unknown, param: string): void {
  assert.throws(fn, (e: unknown) => e instanceof StatusError && e.code === 400 && e.message.includes(`"${param}"`));
}

describe('subresource queries', () => {
  it('maps log to the agent query, and refuses what the contract does not name', () => {
    assert.equal(agentQuery('log', q('')), '');
    assert.equal(agentQuery('log', q('follow=true&tailLines=5')), 'follow=true&tail=5');
    assert.equal(agentQuery('log', q('follow=false')), '');
    refused(() => agentQuery('log', q('tail=5')), 'tail');
    refused(() => agentQuery('log', q('tailLines=-1')), 'tailLines');
    refused(() => agentQuery('log', q('tailLines=1&tailLines=2')), 'tailLines');
    refused(() => agentQuery('log', q('follow=yes')), 'follow');
    refused(() => agentQuery('top', q('watch=true')), 'watch');
  });

  it('needs a port in 1..65535 for portforward', () => {
    assert.equal(agentQuery('portforward', q('port=8080')), 'port=8080');
    refused(() => agentQuery('portforward', q('')), 'port');
    refused(() => agentQuery('portforward', q('port=0')), 'port');
    refused(() => agentQuery('portforward', q('port=65536')), 'port');
  });

  it('passes exec through as the agent reads it, and needs a command', () => {
    assert.equal(
      agentQuery('exec', q('command=sh&command=-c&command=echo+hi&env=A%3D1&tty=true&stdin=true&rows=24&cols=80')),
      'command=sh&command=-c&command=echo+hi&env=A%3D1&stdin=true&tty=true&rows=24&cols=80',
    );
    refused(() => agentQuery('exec', q('tty=true')), 'command');
    refused(() => agentQuery('exec', q('command=ls&env=NOEQUALS')), 'env');
    refused(() => agentQuery('exec', q('command=ls&rows=0')), 'rows');
  });

  it('checks attach sizes and reads them only when both are given', () => {
    assert.equal(agentQuery('attach', q('rows=24&cols=80')), '');
    assert.deepEqual(attachSize(q('rows=24&cols=80')), { rows: 24, cols: 80 });
    assert.equal(attachSize(q('rows=24')), undefined);
    refused(() => agentQuery('attach', q('cols=abc')), 'cols');
  });
});
