// The Redis that `kubectl apply -k manifests/` installs, run for real: redis-server with the rendered
// Deployment's arguments and the ACL file the operator renders from its passwords (contracts/redis/acl.ts).
// Nobody gets in without a password; the agent's user, as the DaemonSet connects, runs the agent's real
// cluster-mode path but cannot change any host's desired state or administer Redis; the operator's user
// does what the operator does. kubectl is $KRATA_KUBECTL or the one on PATH.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { Redis } from 'ioredis';
import { parseAllDocuments } from 'yaml';
import { EPOCH_KEY, STATUS_STREAM, certKey, certRequestKey, desiredKey, heartbeatKey, statusKey } from '../../contracts/redis/contract.js';
import { AGENT_USER, BULLMQ_SCRIPT_COMMANDS, OPERATOR_USER, renderAclFile, sha256 } from '../../contracts/redis/acl.js';
import { repoRoot } from '../../lib/package-root.js';
import { desired, harness, until, HOST } from '../harness/cluster-agent.js';
import { ACL_KEY, ACL_SECRET, AGENT_SECRET, PASSWORD_KEY } from '../../operator/redis-credentials.js';
import { startRedis } from '../redis.js';

type Obj = Record<string, any>;
const root = repoRoot();
const limit = { timeout: 60_000 };
const PASSWORDS = { operator: 'operator-password-0123456789', agent: 'agent-password-0123456789' };

function rendered(): Obj[] {
  const r = spawnSync(process.env.KRATA_KUBECTL ?? 'kubectl', ['kustomize', 'manifests/'], { cwd: root, encoding: 'utf8' });
  assert.equal(r.status, 0, `kubectl kustomize manifests/: ${r.stderr}`);
  return parseAllDocuments(r.stdout).map((d) => d.toJS() as Obj);
}
const find = (objs: Obj[], kind: string, name: string): Obj => {
  const o = objs.find((x) => x.kind === kind && x.metadata.name === name);
  assert.ok(o, `${kind}/${name} is in the build`);
  return o;
};
const flag = (args: string[], name: string) => {
  const i = args.indexOf(name);
  return i < 0 ? undefined : args[i + 1];
};
/** The Secret mounted at `dir` in a pod, and the key that appears as `file` there. */
function mountedSecret(pod: Obj, container: Obj, file: string): { secret: string; key: string } {
  const mount = container.volumeMounts.find((m: Obj) => m.mountPath === dirname(file));
  assert.ok(mount, `${file} is in a mounted volume`);
  assert.equal(mount.readOnly, true, `${mount.mountPath} is mounted read-only`);
  const vol = pod.volumes.find((v: Obj) => v.name === mount.name);
  assert.ok(vol?.secret, `${file} comes from a Secret`);
  const item = vol.secret.items?.find((i: Obj) => i.path === basename(file));
  return { secret: vol.secret.secretName, key: item ? item.key : basename(file) };
}

/** One command on a fresh unauthenticated connection, as any client on the network would send it: the reply's first line. */
function raw(port: number, ...cmd: (string | number)[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = connect(port, '127.0.0.1');
    let got = '';
    sock.setTimeout(5000, () => sock.destroy(new Error(`no answer to ${cmd[0]}`)));
    sock.on('error', reject);
    sock.on('connect', () => sock.write(`*${cmd.length}\r\n${cmd.map((a) => `$${Buffer.byteLength(String(a))}\r\n${a}\r\n`).join('')}`));
    sock.on('data', (d) => {
      got += d.toString();
      const nl = got.indexOf('\r\n');
      if (nl >= 0) {
        sock.destroy();
        resolve(got.slice(0, nl));
      }
    });
  });
}

/** A client with no retries, for one answer at a time. */
function client(port: number, auth: { username?: string; password?: string } = {}): Redis {
  const r = new Redis({
    port,
    host: '127.0.0.1',
    ...auth,
    enableReadyCheck: false,
    retryStrategy: () => null,
    maxRetriesPerRequest: 0,
    lazyConnect: true,
  });
  r.on('error', () => undefined);
  return r;
}
/**
 * 'OK' when the command runs (whatever it answers); 'NOPERM' when the ACL refuses it, in a script too,
 * or the server refuses it to every connection from the network (DEBUG, MODULE); else the error.
 */
async function answer(r: Redis, ...cmd: (string | number)[]): Promise<string> {
  try {
    await r.call(String(cmd[0]), ...cmd.slice(1).map(String));
    return 'OK';
  } catch (e) {
    const msg = (e as Error).message;
    return /^NOPERM |^ERR The user executing the script can't access|^ERR (DEBUG|MODULE) command not allowed/.test(msg) ? 'NOPERM' : msg;
  }
}

test('BULLMQ_SCRIPT_COMMANDS lists every command BullMQ scripts call (the ACL applies inside scripts)', () => {
  const dir = join(root, 'node_modules/bullmq/dist/esm/commands');
  const used = new Set<string>();
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(d, e.name));
      else if (e.name.endsWith('.lua') && !e.name.startsWith('relay')) {
        // relay* scripts belong to BullMQ's relay backend, which krata does not use.
        for (const m of readFileSync(join(d, e.name), 'utf8').matchAll(/(?:rcall|redis\.p?call)\(\s*["']([A-Za-z]+)["']/g))
          used.add(m[1]!.toLowerCase());
      }
    }
  };
  walk(dir);
  assert.ok(used.size > 30, `found ${used.size} commands`);
  assert.deepEqual([...used].filter((c) => !BULLMQ_SCRIPT_COMMANDS.includes(c)).sort(), []);
});

test('the ACL file: default off without a password, two users by SHA-256 only, no clear-text password', () => {
  const acl = renderAclFile(PASSWORDS);
  assert.ok(!acl.includes(PASSWORDS.operator) && !acl.includes(PASSWORDS.agent));
  assert.match(acl, new RegExp(`^user ${OPERATOR_USER} on #${sha256(PASSWORDS.operator)} `, 'm'));
  assert.match(acl, new RegExp(`^user ${AGENT_USER} on #${sha256(PASSWORDS.agent)} `, 'm'));
  const def = acl.split('\n').find((l) => l.startsWith('user default '))!;
  assert.match(def, / off /);
  assert.doesNotMatch(def, /nopass|[>#]/);
  assert.throws(
    () => renderAclFile({ operator: 'short', agent: PASSWORDS.agent }),
    /krata-operator: a Redis password must be 16 to 256 printable/,
  );
  assert.throws(() => renderAclFile({ operator: PASSWORDS.operator, agent: 'has a space in it, 12345' }), /krata-agent: a Redis password/);
});

test(
  'kubectl apply -k manifests/ gives a Redis that refuses unauthenticated clients; agents and operator authenticate with least privilege',
  limit,
  async () => {
    const objs = rendered();
    const rd = find(objs, 'Deployment', 'krata-redis').spec.template.spec;
    const rc = rd.containers[0];
    const args = rc.args as string[];
    assert.equal(args[0], 'redis-server');
    assert.ok(!args.includes('--protected-mode'), 'protected mode is left on (its default)');
    const aclFile = flag(args, '--aclfile');
    assert.ok(aclFile, 'redis-server loads an ACL file');
    assert.deepEqual(mountedSecret(rd, rc, aclFile), { secret: ACL_SECRET, key: ACL_KEY });

    const ad = find(objs, 'DaemonSet', 'krata-node-agent').spec.template.spec;
    const ac = ad.containers[0];
    const agentUrl = new URL(flag(ac.args, '--redis')!);
    assert.equal(agentUrl.username, AGENT_USER);
    assert.equal(agentUrl.password, '', 'no password in the agent URL');
    const agentPasswordFile = flag(ac.args, '--redis-password-file')!;
    assert.deepEqual(mountedSecret(ad, ac, agentPasswordFile), { secret: AGENT_SECRET, key: PASSWORD_KEY });
    const oc = find(objs, 'Deployment', 'krata-operator').spec.template.spec.containers[0];
    assert.equal(new URL(flag(oc.args, '--redis')!).username, OPERATOR_USER);
    assert.equal(flag(oc.args, '--redis-credentials-namespace'), '$(POD_NAMESPACE)');

    // The rendered server arguments, with the ACL file where this test keeps it.
    const i = args.indexOf('--aclfile');
    const redis = await startRedis({ args: [...args.slice(1, i), ...args.slice(i + 2)], acl: PASSWORDS });
    const dir = mkdtempSync(join(tmpdir(), 'krata-acl-'));
    const clients: Redis[] = [];
    const open = (auth?: { username?: string; password?: string }) => {
      const c = client(redis.port, auth);
      clients.push(c);
      return c;
    };
    try {
      // Nobody without a password: not the default user, not a guessed one.
      for (const cmd of [
        ['PING'],
        ['GET', EPOCH_KEY],
        ['HSET', desiredKey('xen-1'), 'default/x', '{}'],
        ['SET', heartbeatKey('forged'), '{}'],
        ['INFO'],
        ['CONFIG', 'GET', '*'],
        ['KEYS', '*'],
        ['FLUSHALL'],
      ]) {
        assert.match(await raw(redis.port, ...cmd), /^-NOAUTH /, `unauthenticated ${cmd.join(' ')}`);
      }
      for (const [user, password] of [
        ['default', 'anything'],
        [AGENT_USER, PASSWORDS.operator],
        [OPERATOR_USER, PASSWORDS.agent],
      ]) {
        assert.match(await raw(redis.port, 'AUTH', user!, password!), /^-WRONGPASS /, `AUTH ${user}`);
      }
      assert.match(await raw(redis.port, 'AUTH', 'anything'), /^-WRONGPASS /);
      assert.match(await raw(redis.port, 'HELLO', 3, 'AUTH', 'default', ''), /^-WRONGPASS /);

      // The agent exactly as the DaemonSet runs it: user from the URL, password from the file.
      const passwordFile = join(dir, 'password');
      writeFileSync(passwordFile, `${PASSWORDS.agent}\n`);
      agentUrl.hostname = '127.0.0.1';
      agentUrl.port = String(redis.port);
      // Polls a minute apart: Guests arrive through jobs on the host's queue (the BullMQ worker).
      const h = await harness({
        redis,
        url: agentUrl.toString(),
        passwordFile,
        opUrl: redis.urlAs(OPERATOR_USER, PASSWORDS.operator),
        pollMs: 60_000,
        resyncMs: 60_000,
      });
      try {
        const a = desired('a');
        await h.op.put(a);
        await h.op.complete('e1');
        await h.op.nudge(a);
        await until(() => h.agent.get('default', 'a')?.status?.phase === 'Running', 'a Running (desired hash and epoch read)');
        await until(async () => (await h.op.status('a'))?.status?.phase === 'Running', 'status hash written');
        assert.ok(
          (await h.op.streamed('a')).some((r) => r.status?.phase === 'Running'),
          'status stream written',
        );
        await until(async () => (await h.op.client.exists(heartbeatKey(HOST))) === 1, 'heartbeat written');
        const b = desired('b');
        await h.op.put(b);
        await h.op.nudge(b);
        await until(() => h.agent.get('default', 'b')?.status?.phase === 'Running', 'b Running');
        // Redis back empty (its ACL loaded again, no scripts cached): BullMQ's scripts come back by EVAL.
        await redis.restart();
        await until(() => h.cluster.link.up, 'the agent reconnected');
        const c = desired('c');
        await h.op.put(a, b, c);
        await h.op.complete('e2');
        await h.op.nudge(c);
        await until(() => h.agent.get('default', 'c')?.status?.phase === 'Running', 'c Running after the restart');
        await until(async () => (await h.op.status('c'))?.status?.phase === 'Running', 'status after the restart');
        const problems = h.log.lines.filter(
          (l) => l.level === 'error' || (l.level === 'warn' && !l.msg.startsWith('Redis is unreachable')),
        );
        assert.deepEqual(problems, [], 'the agent met no refusal');
      } finally {
        await h.cluster.stop();
        h.controller.stop();
        await h.op.close();
      }

      const agent = open({ username: AGENT_USER, password: PASSWORDS.agent });
      // What the agent does, on any host's keys (all agents share the user).
      assert.equal(await answer(agent, 'GET', EPOCH_KEY), 'OK');
      assert.equal(await answer(agent, 'HGETALL', desiredKey(HOST)), 'OK');
      assert.equal(await answer(agent, 'HSET', statusKey(HOST), 'default/x', '{}'), 'OK');
      assert.equal(await answer(agent, 'SET', heartbeatKey(HOST), '{}', 'EX', 40), 'OK');
      assert.equal(await answer(agent, 'XADD', STATUS_STREAM, 'MAXLEN', '~', 100000, '*', 'host', HOST), 'OK');
      // Its certificate request, and the operator's answer (read only).
      assert.equal(await answer(agent, 'SET', certRequestKey(HOST), '{}'), 'OK');
      assert.equal(await answer(agent, 'GET', certRequestKey(HOST)), 'OK');
      assert.equal(await answer(agent, 'DEL', certRequestKey(HOST)), 'OK');
      assert.equal(await answer(agent, 'GET', certKey(HOST)), 'OK');
      // What only the operator may do: desired state and the epoch, directly, by rename or copy, or from a script.
      const refused: (string | number)[][] = [
        ['HSET', desiredKey(HOST), 'default/evil', '{}'],
        ['HDEL', desiredKey(HOST), 'default/a'],
        ['DEL', desiredKey(HOST)],
        ['SET', EPOCH_KEY, 'forged'],
        // Certificates are the operator's to issue.
        ['SET', certKey(HOST), '{}'],
        ['DEL', certKey(HOST)],
        ['DEL', EPOCH_KEY],
        ['RENAME', statusKey(HOST), desiredKey('xen-2')],
        ['RENAME', desiredKey(HOST), statusKey('xen-2')],
        ['COPY', statusKey(HOST), desiredKey('xen-2')],
        ['PEXPIRE', desiredKey(HOST), 1],
        ['PEXPIRE', EPOCH_KEY, 1],
        ['EVAL', "return redis.call('hset', KEYS[1], 'default/evil', '{}')", 1, desiredKey(HOST)],
        ['EVAL', `return redis.call('set', '${EPOCH_KEY}', 'forged')`, 0],
        // Certificates are the operator's to write, for any host: directly, by rename or copy, or from a script.
        ['SET', certKey(HOST), '{"certificate":"forged"}'],
        ['SET', certKey('xen-2'), '{}'],
        ['DEL', certKey(HOST)],
        ['PEXPIRE', certKey(HOST), 1],
        ['RENAME', certRequestKey(HOST), certKey(HOST)],
        ['COPY', certRequestKey(HOST), certKey('xen-2')],
        ['EVAL', "return redis.call('set', KEYS[1], 'forged')", 1, certKey(HOST)],
        // Other hosts' reports are not readable from the stream.
        ['XRANGE', STATUS_STREAM, '-', '+'],
        ['XREAD', 'STREAMS', STATUS_STREAM, '0'],
        // Keys outside krata's.
        ['SET', 'elsewhere', '1'],
        ['GET', 'elsewhere'],
        // Administration, enumeration and the like.
        ['FLUSHALL'],
        ['FLUSHDB'],
        ['CONFIG', 'GET', '*'],
        ['CONFIG', 'SET', 'appendonly', 'yes'],
        ['ACL', 'SETUSER', 'evil', 'on', '>x', '~*', '+@all'],
        ['ACL', 'LIST'],
        ['KEYS', '*'],
        ['SCAN', 0],
        ['INFO'],
        ['DEBUG', 'SLEEP', 0],
        ['MODULE', 'LIST'],
        ['SHUTDOWN', 'NOSAVE'],
        ['CLIENT', 'LIST'],
        ['CLIENT', 'KILL', 'TYPE', 'normal'],
        ['MONITOR'],
        ['SELECT', 1],
        ['SCRIPT', 'FLUSH'],
        ['SCRIPT', 'LOAD', 'return 1'],
        ['FUNCTION', 'FLUSH'],
        ['SUBSCRIBE', 'x'],
      ];
      for (const cmd of refused) assert.equal(await answer(agent, ...cmd), 'NOPERM', `agent: ${cmd.join(' ')}`);
      assert.equal(await agent.hget(desiredKey(HOST), 'default/evil'), null);

      const operator = open({ username: OPERATOR_USER, password: PASSWORDS.operator });
      for (const cmd of [
        ['HSET', desiredKey(HOST), 'default/c', '{}'],
        ['SET', EPOCH_KEY, 'e2'],
        ['SCAN', 0, 'MATCH', 'krata:host:*:heartbeat'],
        ['XRANGE', STATUS_STREAM, '-', '+'],
        // Agents' certificate requests (a bounded read) and the answers (operator/pki/agent-certs.ts).
        ['SCAN', 0, 'MATCH', 'krata:host:*:cert-request'],
        ['GETRANGE', certRequestKey(HOST), 0, 8192],
        ['EXISTS', certKey(HOST)],
        ['SET', certKey(HOST), '{}'],
        ['GET', certKey(HOST)],
      ]) {
        assert.equal(await answer(operator, ...cmd), 'OK', `operator: ${cmd.join(' ')}`);
      }
      for (const cmd of [
        ['FLUSHALL'],
        ['CONFIG', 'GET', '*'],
        ['ACL', 'SETUSER', 'evil'],
        ['KEYS', '*'],
        ['SET', 'elsewhere', '1'],
        ['SHUTDOWN', 'NOSAVE'],
        ['DEBUG', 'SLEEP', 0],
      ]) {
        assert.equal(await answer(operator, ...cmd), 'NOPERM', `operator: ${cmd.join(' ')}`);
      }
    } finally {
      for (const c of clients) c.disconnect();
      await redis.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
