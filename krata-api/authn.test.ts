import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { describe, it } from 'node:test';
import { authenticate, parseRequestHeaderConfig, type RequestHeaderConfig } from './authn.js';
import { StatusError } from './status.js';

const config: RequestHeaderConfig = parseRequestHeaderConfig({
  'requestheader-client-ca-file': '-----BEGIN CERTIFICATE-----\n...',
  'requestheader-allowed-names': '["front-proxy-client"]',
  'requestheader-username-headers': '["X-Remote-User"]',
  'requestheader-group-headers': '["X-Remote-Group"]',
  'requestheader-extra-headers-prefix': '["X-Remote-Extra-"]',
})!;

/** A request as node:https gives it: the TLS socket's verdict on the client certificate, and the headers. */
function request(cert: { cn?: string; authorized: boolean } | undefined, headers: Record<string, string[]>): IncomingMessage {
  const socket = {
    authorized: cert?.authorized ?? false,
    authorizationError: cert?.authorized ? null : 'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
    getPeerCertificate: () => (cert ? { subject: { CN: cert.cn } } : {}),
  };
  return { socket, headersDistinct: headers } as unknown as IncomingMessage;
}

const unauthorized = (fn: () => unknown, why: RegExp) =>
  assert.throws(fn, (e: unknown) => e instanceof StatusError && e.code === 401 && why.test(e.message));

describe('requestheader authentication', () => {
  it('reads the ConfigMap as the apiserver writes it, and knows when there is no front proxy', () => {
    assert.deepEqual(config.allowedNames, ['front-proxy-client']);
    assert.deepEqual(config.extraHeaderPrefixes, ['X-Remote-Extra-']);
    assert.equal(parseRequestHeaderConfig({ 'client-ca-file': 'x' }), undefined);
    assert.throws(() => parseRequestHeaderConfig({ 'requestheader-client-ca-file': 'x', 'requestheader-allowed-names': '"a"' }));
  });

  it('takes the user, groups and extra from the headers of a trusted front proxy', () => {
    const user = authenticate(
      request(
        { cn: 'front-proxy-client', authorized: true },
        {
          'x-remote-user': ['alice'],
          'x-remote-group': ['dev', 'system:authenticated'],
          'x-remote-extra-scopes': ['a', 'b'],
          'x-remote-extra-example.com%2fteam': ['x'],
        },
      ),
      config,
    );
    assert.deepEqual(user, {
      username: 'alice',
      groups: ['dev', 'system:authenticated'],
      extra: { scopes: ['a', 'b'], 'example.com/team': ['x'] },
    });
  });

  it('ignores the headers without a certificate from the requestheader CA, or with a CN not allowed', () => {
    const headers = { 'x-remote-user': ['admin'], 'x-remote-group': ['system:masters'] };
    unauthorized(() => authenticate(request(undefined, headers), config), /no client certificate/);
    unauthorized(() => authenticate(request({ cn: 'front-proxy-client', authorized: false }, headers), config), /not trusted/);
    unauthorized(() => authenticate(request({ cn: 'someone-else', authorized: true }, headers), config), /not an allowed front proxy/);
    unauthorized(() => authenticate(request({ cn: 'front-proxy-client', authorized: true }, {}), config), /named no user/);
    unauthorized(() => authenticate(request({ cn: 'front-proxy-client', authorized: true }, headers), undefined), /not loaded/);
    // An empty allowed-names list accepts any certificate the CA signed.
    const anyName = { ...config, allowedNames: [] };
    assert.equal(authenticate(request({ cn: 'someone-else', authorized: true }, headers), anyName).username, 'admin');
  });
});
