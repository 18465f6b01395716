// The agent's TLS identity and its certificate requests, on a real redis-server with openssl standing in
// for the operator's CA: the key made once (0600) and kept across restarts, a request whose proof
// verifies, nothing asked again while the certificate is good, a new request two thirds into its life,
// and every wrong answer refused with one log line.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { verify } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { certKey, certRequestKey, certRequestProof, type IssuedCertificate } from '../../contracts/redis/contract.js';
import { startRedis, type TestRedis } from '../../test/redis.js';
import { FakeClock } from '../../test/doubles/fake-clock.js';
import { TestCa, answerCertRequest, readCertRequest } from '../../test/doubles/cert-authority.js';
import { captureLog, until } from '../../test/harness/cluster-agent.js';
import { AgentIdentity, MAX_ISSUED_BYTES } from './agent-identity.js';
import { CertRequester } from './cert-requester.js';
import { RedisLink } from './redis-link.js';

const HOST = 'xen-1.example';
const DAY = 86_400_000;
const limit = { timeout: 60_000 };

interface Rig {
  redis: TestRedis;
  op: Redis;
  dir: string;
  clock: FakeClock;
  log: ReturnType<typeof captureLog>;
  /** An agent (identity + requester) on the state directory, as one agent start makes it. */
  agent(): Promise<{ identity: AgentIdentity; requester: CertRequester; link: RedisLink }>;
  close(): Promise<void>;
}

async function rig(): Promise<Rig> {
  const redis = await startRedis();
  const op = new Redis(redis.url);
  const dir = mkdtempSync(join(tmpdir(), 'krata-tls-'));
  // A minute ahead of the wall clock: openssl dates what it signs by the wall clock, which on a loaded
  // machine can pass the fake clock before the certificate is read (then "not yet valid").
  const clock = new FakeClock(Date.now() + 60_000);
  const log = captureLog();
  const links: RedisLink[] = [];
  return {
    redis,
    op,
    dir,
    clock,
    log,
    async agent() {
      const identity = AgentIdentity.open(dir, HOST, clock.now(), (m) => log.warn({}, m));
      const link = new RedisLink({ port: redis.port, host: '127.0.0.1' }, redis.url, log);
      links.push(link);
      await until(() => link.up, 'connected to Redis');
      return { identity, link, requester: new CertRequester(link, identity, log, { clock }) };
    },
    async close() {
      for (const l of links) await l.close();
      op.disconnect();
      await redis.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

test(
  'the key is made once (0600) and kept; the request proves it; a good certificate is kept and renewed at two thirds',
  limit,
  async () => {
    const r = await rig();
    try {
      const ca = TestCa.create();
      const a = await r.agent();
      const keyFile = join(r.dir, 'tls/agent.key');
      assert.equal(statSync(keyFile).mode & 0o777, 0o600, 'the key is private to root');
      assert.equal(statSync(join(r.dir, 'tls')).mode & 0o777, 0o700);
      const keyPem = readFileSync(keyFile, 'utf8');
      assert.ok(a.identity.needsCertificate(r.clock.now()));

      await a.requester.poll();
      const req = await readCertRequest(r.op, HOST);
      assert.ok(req, 'a request is written');
      assert.equal(req.publicKey, a.identity.publicKey);
      assert.ok(verify('sha256', certRequestProof(HOST, req.publicKey), req.publicKey, Buffer.from(req.proof, 'base64')));
      assert.ok(!verify('sha256', certRequestProof('xen-2.example', req.publicKey), req.publicKey, Buffer.from(req.proof, 'base64')));
      assert.doesNotMatch(JSON.stringify(req), /PRIVATE/, 'the request carries no private key');
      assert.ok(!existsSync(join(r.dir, 'tls/agent.crt')));

      const issued = await answerCertRequest(r.op, HOST, ca, { days: 3 });
      await a.requester.poll();
      assert.ok(a.identity.certificate, 'the certificate is taken');
      assert.equal(a.identity.certificate.notAfter, Date.parse(issued.notAfter));
      assert.equal(a.requester.waiting, undefined);
      assert.equal(readFileSync(join(r.dir, 'tls/ca.crt'), 'utf8').trim(), ca.cert.trim());
      assert.ok(r.log.lines.some((l) => l.msg.startsWith('took the TLS certificate')));
      await a.requester.stop();
      await a.link.close();

      // A restart: the same key, the stored certificate, and nothing asked while it is good.
      await r.op.del(certRequestKey(HOST));
      const b = await r.agent();
      assert.equal(b.identity.publicKey, a.identity.publicKey);
      assert.equal(readFileSync(keyFile, 'utf8'), keyPem, 'the key file is not rewritten');
      assert.equal(b.identity.certificate?.certificate, a.identity.certificate.certificate);
      await b.requester.poll();
      r.clock.advance(DAY);
      await b.requester.poll();
      assert.equal(await r.op.get(certRequestKey(HOST)), null, 'no request while the certificate has more than a third of its life');

      // Two thirds into its life (3 days): asked again, for the same key; the renewed one is taken.
      r.clock.advance(DAY + 60_000);
      assert.ok(b.identity.needsCertificate(r.clock.now()));
      await b.requester.poll();
      const again = await readCertRequest(r.op, HOST);
      assert.ok(again, 'a new request near the end of its life');
      assert.equal(again.publicKey, a.identity.publicKey);
      assert.notEqual(again.time, req.time);
      // The old certificate still in Redis is not mistaken for an answer.
      await b.requester.poll();
      assert.ok(b.identity.needsCertificate(r.clock.now()));
      const renewed = await answerCertRequest(r.op, HOST, ca, { days: 10 });
      await b.requester.poll();
      assert.equal(b.identity.certificate?.notAfter, Date.parse(renewed.notAfter));
      assert.ok(!b.identity.needsCertificate(r.clock.now()));
      assert.equal(r.log.lines.filter((l) => l.level === 'warn' || l.level === 'error').length, 0, JSON.stringify(r.log.lines));
      await b.requester.stop();
    } finally {
      await r.close();
    }
  },
);

test('wrong answers are not used: another key, another CA, another name, expired, not a CA, malformed, too large', limit, async () => {
  const r = await rig();
  try {
    const ca = TestCa.create();
    const other = TestCa.create('another CA');
    const { identity, requester } = await r.agent();
    await requester.poll();
    const req = (await readCertRequest(r.op, HOST))!;
    const stranger = AgentIdentity.open(mkdtempSync(join(tmpdir(), 'krata-tls-other-')), HOST, r.clock.now());
    const good = ca.issue(HOST, req.publicKey);
    const wrong: [string, IssuedCertificate | string, RegExp][] = [
      ['another key', ca.issue(HOST, stranger.publicKey), /another key/],
      ['signed by another CA', { ...other.issue(HOST, req.publicKey), ca: ca.cert }, /not signed by the CA/],
      ['another host', ca.issue('xen-2.example', req.publicKey), /does not name xen-1\.example\.agents\.krata\.internal/],
      ['no DNS name, only the CN', ca.issue(HOST, req.publicKey, { dns: [], cn: 'xen-1.example.agents.krata.internal' }), /does not name/],
      ['a leaf as the CA', { ...good, ca: good.certificate }, /not a CA certificate/],
      ['malformed', '{"certificate": 1', /malformed JSON/],
      ['not PEM', { certificate: 'x', ca: 'y', notAfter: '' }, /not a PEM certificate/],
      ['too large', 'x'.repeat(MAX_ISSUED_BYTES + 1), /over the limit/],
    ];
    for (const [what, answer, why] of wrong) {
      await r.op.set(certKey(HOST), typeof answer === 'string' ? answer : JSON.stringify(answer));
      const before = r.log.lines.length;
      await requester.poll();
      await requester.poll();
      assert.equal(identity.certificate, undefined, `${what}: not used`);
      const lines = r.log.lines.slice(before).filter((l) => l.level === 'warn');
      assert.equal(lines.length, 1, `${what}: one log line, not one per poll: ${JSON.stringify(lines)}`);
      assert.match(lines[0]!.msg, why, what);
      assert.doesNotMatch(lines[0]!.msg, /PRIVATE KEY/);
    }
    assert.ok(!existsSync(join(r.dir, 'tls/agent.crt')), 'nothing stored');
    assert.ok(requester.waiting, 'still waiting for an answer');

    // Expired by the time it is read (the clock 11 days on), then a good one.
    await r.op.set(certKey(HOST), JSON.stringify(ca.issue(HOST, req.publicKey, { days: 10 })));
    r.clock.advance(11 * DAY);
    await requester.poll();
    assert.equal(identity.certificate, undefined, 'expired: not used');
    assert.match(r.log.lines.at(-1)!.msg, /valid from .* not now/);
    await r.op.set(certKey(HOST), JSON.stringify(ca.issue(HOST, req.publicKey, { days: 30 })));
    await requester.poll();
    assert.ok(identity.certificate, 'a good answer is taken after the bad ones');
    await requester.stop();

    // A stored certificate that expired while the agent was down is not used at the next start.
    r.clock.advance(31 * DAY);
    const later = AgentIdentity.open(r.dir, HOST, r.clock.now(), (m) => r.log.warn({}, m));
    assert.equal(later.certificate, undefined);
    assert.match(r.log.lines.at(-1)!.msg, /stored TLS certificate is not used/);
    assert.ok(later.needsCertificate(r.clock.now()));
  } finally {
    await r.close();
  }
});

test('the requester polls on its own timer while waiting, and rewrites its request after Redis lost it', limit, async () => {
  const r = await rig();
  try {
    const ca = TestCa.create();
    const { identity, link } = await r.agent();
    const requester = new CertRequester(link, identity, r.log, { waitMs: 50 });
    requester.start();
    await until(async () => (await r.op.exists(certRequestKey(HOST))) === 1, 'the request');
    await r.redis.restart();
    await until(
      async () => (await r.op.exists(certRequestKey(HOST)).catch(() => 0)) === 1,
      'the request again after Redis restarted empty',
    );
    await answerCertRequest(r.op, HOST, ca);
    await until(() => identity.certificate !== undefined, 'the answer taken without a call');
    await requester.stop();
  } finally {
    await r.close();
  }
});
