// krata-api behind the REAL kube-apiserver's aggregation layer (envtest with `aggregation`): registered
// with an APIService, reached by token users through the apiserver, reaching a TLS agent double
// (test/doubles/tls-agent.ts) over mutual TLS. Discovery, log, top, exec, attach and portforward through
// the apiserver (the streams over its websocket upgrade path), RBAC on each subresource, the front-proxy
// certificate required, and an agent with the wrong identity refused.
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { get as httpGet } from 'node:http';
import { request } from 'node:https';
import { createServer as createTcpServer, type Server as TcpServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { PatchStrategy } from '@kubernetes/client-node';
import { WebSocket } from 'ws';
import { agentServerName, KRATA_API_CLIENT_NAME } from '../contracts/krata-api/agent-tls.js';
import { encodeExecFrame, ExecFrame, ExecFrameDecoder } from '../contracts/agent-api/exec.js';
import { APISERVICE_NAME, SUBRESOURCE_GROUP, SUBRESOURCE_VERSION, subresourcePath } from '../contracts/krata-api/subresources.js';
import { resolve } from '../lib/container.js';
import type { Running } from '../lib/lifecycle.js';
import { freePort } from '../test/free-port.js';
import { startTlsAgent, type TlsAgent } from '../test/doubles/tls-agent.js';
import { hostAddress, registerApiService, type HostAddress } from '../test/kube/aggregated-api.js';
import { newGuest, startKube, type TestKube } from '../test/kube/operator-env.js';
import { makeCa } from '../test/openssl-ca.js';
import { krataApiContainer, startKrataApi } from './container/daemon.js';
import { SERVER } from './container/ids.js';

/** The exec frames of the messages; each message is one whole frame (relay.ts). */
function decodeExecFrames(messages: Buffer[]): { type: number; payload: Buffer }[] {
  return messages.flatMap((m) => {
    const frames = new ExecFrameDecoder().push(m);
    assert.equal(frames.length, 1, 'one exec frame per message');
    return frames;
  });
}

const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined };

interface Answer {
  status: number;
  body: string;
}

/** A GET through the apiserver (or straight to krata-api with `direct` TLS options). */
function get(url: string, headers: Record<string, string>, tls: { cert?: Buffer; key?: Buffer } = {}): Promise<Answer> {
  return new Promise((done, fail) => {
    const req = request(url, { headers, rejectUnauthorized: false, ...tls }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => done({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', fail);
    req.end();
  });
}

/** Opens a websocket through the apiserver; resolves with it open, or rejects with the HTTP answer that refused it. */
function openWs(url: string, token: string, protocol: string): Promise<WebSocket> {
  return new Promise((done, fail) => {
    const ws = new WebSocket(url, [protocol], { headers: { authorization: `Bearer ${token}` }, rejectUnauthorized: false });
    ws.once('open', () => done(ws));
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => fail(Object.assign(new Error(`HTTP ${res.statusCode}: ${body}`), { status: res.statusCode, body })));
    });
    ws.once('error', fail);
  });
}

/** Messages until the socket closes, with its close code and reason. */
function collect(ws: WebSocket): Promise<{ messages: Buffer[]; code: number; reason: string }> {
  const messages: Buffer[] = [];
  ws.on('message', (d: Buffer) => messages.push(Buffer.from(d)));
  return new Promise((done) => ws.once('close', (code, reason) => done({ messages, code, reason: reason.toString() })));
}

describe('krata-api through the kube-apiserver', { timeout: 180_000 }, () => {
  let kube: TestKube;
  let dir: string;
  let host: HostAddress;
  let running: Running;
  let agent: TlsAgent;
  let impostor: TlsAgent;
  let strangerCa: TlsAgent;
  let echo: TcpServer;
  let apiUrl: string;
  let tokens: Record<string, string>;
  let frontProxy: { cert: Buffer; key: Buffer };
  let metricsPort: number;

  const path = (name: string, sub: Parameters<typeof subresourcePath>[2], query = '') =>
    `${kube.env.server}${subresourcePath('default', name, sub)}${query ? `?${query}` : ''}`;
  const wsPath = (name: string, sub: Parameters<typeof subresourcePath>[2], query = '') =>
    path(name, sub, query).replace(/^https:/, 'wss:');
  const as = (user: string) => ({ authorization: `Bearer ${tokens[user]}` });

  before(async () => {
    kube = await startKube({ aggregation: true, users: ['alice', 'bob'] });
    tokens = { ...kube.env.userTokens, admin: kube.env.token };
    frontProxy = { cert: readFileSync(kube.env.aggregation!.proxyClient.cert), key: readFileSync(kube.env.aggregation!.proxyClient.key) };
    dir = mkdtempSync(join(tmpdir(), 'krata-api-test-'));
    host = hostAddress();
    const krataCa = makeCa(dir, 'krata-ca');
    const otherCa = makeCa(dir, 'other-ca');
    const servingCa = makeCa(dir, 'serving-ca');
    const serving = servingCa.issue('serving', { cn: 'krata-api.krata-system.svc', dns: ['krata-api.krata-system.svc'], usage: 'server' });
    const client = krataCa.issue('client', { cn: KRATA_API_CLIENT_NAME, dns: [KRATA_API_CLIENT_NAME], usage: 'client' });
    const hostA = krataCa.issue('host-a', { cn: agentServerName('host-a'), dns: [agentServerName('host-a')], usage: 'server' });
    const hostC = otherCa.issue('host-c', { cn: agentServerName('host-c'), dns: [agentServerName('host-c')], usage: 'server' });
    agent = await startTlsAgent({ ...hostA, ca: krataCa.cert });
    // On host-b's endpoint, an agent certified for host-a; on host-c's, one certified by another CA.
    impostor = await startTlsAgent({ ...hostA, ca: krataCa.cert });
    strangerCa = await startTlsAgent({ ...hostC, ca: krataCa.cert });
    echo = createTcpServer((s) => s.pipe(s)).listen(0, '127.0.0.1');
    await new Promise((r) => echo.once('listening', r));

    metricsPort = await freePort();
    const container = krataApiContainer(
      {
        kubeconfig: kube.env.kubeconfig,
        listen: `${host.address}:0`,
        tlsCertFile: serving.cert,
        tlsKeyFile: serving.key,
        agentTls: { certFile: client.cert, keyFile: client.key, caFile: krataCa.cert },
        metricsAddr: `127.0.0.1:${metricsPort}`,
        refreshMs: 60_000,
      },
      quiet,
    );
    running = await startKrataApi(container);
    const { port } = (await resolve(container, SERVER)).address();
    apiUrl = `https://${host.address}:${port}`;
    await registerApiService(kube.client, {
      group: SUBRESOURCE_GROUP,
      version: SUBRESOURCE_VERSION,
      namespace: 'krata-system',
      service: 'krata-api',
      address: host.address,
      port,
      caFile: servingCa.cert,
    });

    // RBAC: alice may use every subresource; bob may get guests and read logs, nothing more.
    const rbac = '/apis/rbac.authorization.k8s.io/v1';
    await kube.client.request('POST', `${rbac}/clusterroles`, {
      body: {
        metadata: { name: 'guest-user' },
        rules: [
          { apiGroups: ['krata.dev'], resources: ['guests'], verbs: ['get', 'list'] },
          {
            apiGroups: [SUBRESOURCE_GROUP],
            resources: ['guests/log', 'guests/exec', 'guests/attach', 'guests/portforward', 'guests/top'],
            verbs: ['get'],
          },
        ],
      },
    });
    await kube.client.request('POST', `${rbac}/clusterroles`, {
      body: {
        metadata: { name: 'guest-reader' },
        rules: [
          { apiGroups: ['krata.dev'], resources: ['guests'], verbs: ['get', 'list'] },
          { apiGroups: [SUBRESOURCE_GROUP], resources: ['guests/log'], verbs: ['get'] },
        ],
      },
    });
    for (const [user, role] of [
      ['alice', 'guest-user'],
      ['bob', 'guest-reader'],
    ])
      await kube.client.request('POST', `${rbac}/namespaces/default/rolebindings`, {
        body: {
          metadata: { name: `${user}-${role}` },
          roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: role },
          subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: user }],
        },
      });

    // Hosts and Guests: web on host-a; fake on host-b (an impostor answers); far on host-c; new unplaced.
    const endpoints: Record<string, string> = { 'host-a': agent.endpoint, 'host-b': impostor.endpoint, 'host-c': strangerCa.endpoint };
    for (const [name, endpoint] of Object.entries(endpoints)) {
      await kube.client.request('POST', '/apis/krata.dev/v1alpha1/xenhosts', {
        body: { apiVersion: 'krata.dev/v1alpha1', kind: 'XenHost', metadata: { name }, spec: {} },
      });
      await kube.client.request('PATCH', `/apis/krata.dev/v1alpha1/xenhosts/${name}/status`, {
        body: { status: { agentEndpoint: endpoint } },
        contentType: PatchStrategy.MergePatch,
      });
    }
    for (const [name, node] of [
      ['web', 'host-a'],
      ['fake', 'host-b'],
      ['far', 'host-c'],
      ['new', undefined],
      ['stopped', 'host-a'],
      ['ghost', 'host-a'],
    ] as const) {
      await kube.client.request('POST', '/apis/krata.dev/v1alpha1/namespaces/default/guests', { body: newGuest(name) });
      if (node)
        await kube.client.request('PATCH', `/apis/krata.dev/v1alpha1/namespaces/default/guests/${name}/status`, {
          body: { status: { node, phase: 'Running' } },
          contentType: PatchStrategy.MergePatch,
        });
    }
    agent.guests.set('default/web', { console: 'booting\nline two\nline three\n' });
    agent.guests.set('default/stopped', { console: '', running: false });
    impostor.guests.set('default/fake', { console: 'should never be read\n' });
    strangerCa.guests.set('default/far', { console: 'should never be read\n' });
  });

  after(async () => {
    await running?.stop();
    await Promise.all([agent?.stop(), impostor?.stop(), strangerCa?.stop()]);
    echo?.close();
    host?.release();
    await kube?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('is Available and discovered through the apiserver', async () => {
    const svc = JSON.parse(
      (await get(`${kube.env.server}/apis/apiregistration.k8s.io/v1/apiservices/${APISERVICE_NAME}`, as('admin'))).body,
    ) as {
      status: { conditions: { type: string; status: string }[] };
    };
    assert.ok(svc.status.conditions.some((c) => c.type === 'Available' && c.status === 'True'));
    const list = await get(`${kube.env.server}/apis/${SUBRESOURCE_GROUP}/${SUBRESOURCE_VERSION}`, as('alice'));
    assert.equal(list.status, 200, list.body);
    const names = (JSON.parse(list.body) as { resources: { name: string; namespaced: boolean }[] }).resources.map((r) => r.name);
    assert.deepEqual(names, ['guests/log', 'guests/attach', 'guests/exec', 'guests/portforward', 'guests/top']);
    const groups = JSON.parse((await get(`${kube.env.server}/apis`, as('admin'))).body) as { groups: { name: string }[] };
    assert.ok(groups.groups.some((g) => g.name === SUBRESOURCE_GROUP));
  });

  it('serves a log through the apiserver, its tail, and top', async () => {
    const all = await get(path('web', 'log'), as('alice'));
    assert.equal(all.status, 200, all.body);
    assert.equal(all.body, 'booting\nline two\nline three\n');
    const tail = await get(path('web', 'log', 'tailLines=2'), as('bob'));
    assert.equal(tail.status, 200, tail.body);
    assert.equal(tail.body, 'line two\nline three\n');
    const top = await get(path('web', 'top'), as('alice'));
    assert.equal(top.status, 200, top.body);
    assert.equal((JSON.parse(top.body) as { name: string; domid: number }).domid, 7);
  });

  it('follows a log as the guest prints', { timeout: 20_000 }, async () => {
    const url = new URL(path('web', 'log', 'follow=true&tailLines=0'));
    const got = await new Promise<string>((done, fail) => {
      const req = request(url, { headers: as('alice'), rejectUnauthorized: false }, (res) => {
        let body = '';
        res.on('data', (d: Buffer) => {
          body += d.toString();
          if (body.includes('later\n')) {
            req.destroy();
            done(body);
          }
        });
        setTimeout(() => agent.print('default/web', 'later\n'), 200);
      });
      req.on('error', fail);
      req.end();
    });
    assert.equal(got, 'later\n');
  });

  it('answers bad queries, missing and unplaced Guests with a Status', async () => {
    const bad = await get(path('web', 'log', 'bogus=1'), as('alice'));
    assert.equal(bad.status, 400);
    assert.match((JSON.parse(bad.body) as { message: string }).message, /query parameter "bogus"/);
    const missing = await get(path('nobody', 'log'), as('alice'));
    assert.equal(missing.status, 404);
    assert.match((JSON.parse(missing.body) as { message: string }).message, /guests.krata.dev "nobody" not found/);
    const unplaced = await get(path('new', 'log'), as('alice'));
    assert.equal(unplaced.status, 409);
    assert.match(unplaced.body, /not placed/);
  });

  it("passes the agent's refusals on as a Status, before any upgrade", async () => {
    const stopped = await get(path('stopped', 'log'), as('alice'));
    assert.equal(stopped.status, 409, stopped.body);
    assert.match((JSON.parse(stopped.body) as { message: string }).message, /has no running domain/);
    const ghost = await get(path('ghost', 'top'), as('alice'));
    assert.equal(ghost.status, 404, ghost.body);
    assert.match((JSON.parse(ghost.body) as { message: string }).message, /answered 404: guest "ghost" not found/);
    const refused = (await openWs(wsPath('stopped', 'attach'), tokens.alice!, 'krata-console.v1').then(
      () => assert.fail('attached to a guest with no domain'),
      (e: unknown) => e,
    )) as { status: number; body: string };
    assert.equal(refused.status, 409);
    assert.equal((JSON.parse(refused.body) as { reason: string }).reason, 'Conflict');
  });

  it('serves kubectl get --raw of a log', async () => {
    const kubeconfig = join(dir, 'alice.kubeconfig');
    writeFileSync(
      kubeconfig,
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'envtest', cluster: { server: kube.env.server, 'insecure-skip-tls-verify': true } }],
        users: [{ name: 'alice', user: { token: tokens.alice } }],
        contexts: [{ name: 'envtest', context: { cluster: 'envtest', user: 'alice' } }],
        'current-context': 'envtest',
      }),
    );
    // Asynchronously: krata-api runs in this process.
    const { stdout: out } = await promisify(execFile)(
      'kubectl',
      ['--kubeconfig', kubeconfig, 'get', '--raw', `${subresourcePath('default', 'web', 'log')}?tailLines=3`],
      {
        encoding: 'utf8',
        timeout: 30_000,
      },
    );
    assert.match(out, /^line two\nline three\n/);
  });

  it('runs exec through the apiserver websocket: output and exit', async () => {
    const ws = await openWs(wsPath('web', 'exec', 'command=echo&command=hello&command=world'), tokens.alice!, 'krata-exec.v1');
    const { messages } = await collect(ws);
    const frames = decodeExecFrames(messages);
    assert.deepEqual(
      frames.map((f) => f.type),
      [ExecFrame.started, ExecFrame.stdout, ExecFrame.exit],
    );
    assert.equal(frames[1]!.payload.toString(), 'hello world\n');
    assert.deepEqual(JSON.parse(frames[2]!.payload.toString()), { exitCode: 0 });
  });

  it('relays exec stdin both ways', async () => {
    const ws = await openWs(wsPath('web', 'exec', 'command=cat&stdin=true'), tokens.alice!, 'krata-exec.v1');
    const done = collect(ws);
    ws.send(encodeExecFrame(ExecFrame.stdin, Buffer.from('typed\n')));
    ws.send(encodeExecFrame(ExecFrame.stdinEnd));
    const frames = decodeExecFrames((await done).messages);
    assert.equal(frames.find((f) => f.type === ExecFrame.stdout)?.payload.toString(), 'typed\n');
    assert.deepEqual(JSON.parse(frames.at(-1)!.payload.toString()), { exitCode: 0 });
  });

  it('closes the websocket with a reason when the agent ends an exec without its exit', async () => {
    const ws = await openWs(wsPath('web', 'exec', 'command=crash'), tokens.alice!, 'krata-exec.v1');
    const { messages, code, reason } = await collect(ws);
    assert.equal(code, 1011);
    assert.match(reason, /before the exit frame/);
    assert.deepEqual(
      decodeExecFrames(messages).map((f) => f.type),
      [ExecFrame.started, ExecFrame.stdout],
    );
  });

  it('attaches: a typed line reaches the console and comes back; a resize goes to console/size', async () => {
    const ws = await openWs(wsPath('web', 'attach', 'rows=24&cols=80'), tokens.alice!, 'krata-console.v1');
    let seen = '';
    const echoed = new Promise<void>((r) =>
      ws.on('message', (d: Buffer) => {
        seen += d.toString();
        if (seen.includes('uname -a\n')) r();
      }),
    );
    ws.send(Buffer.from('uname -a\n'));
    await echoed;
    ws.send(JSON.stringify({ resize: { rows: 30, cols: 100 } }));
    const deadline = Date.now() + 10_000;
    while (agent.sizes.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(
      agent.sizes.map((s) => [s.rows, s.cols]),
      [
        [24, 80],
        [30, 100],
      ],
    );
    assert.match(agent.guests.get('default/web')!.console, /uname -a\n$/);
    const closed = collect(ws);
    ws.close();
    assert.equal((await closed).code, 1005);
  });

  it('forwards a port', async () => {
    const port = (echo.address() as { port: number }).port;
    const ws = await openWs(wsPath('web', 'portforward', `port=${port}`), tokens.alice!, 'krata-portforward.v1');
    const back = new Promise<string>((r) => ws.once('message', (d: Buffer) => r(d.toString())));
    ws.send(Buffer.from('ping'));
    assert.equal(await back, 'ping');
    ws.close();
  });

  it("refuses exec to a user who may get guests and read logs but not exec (403 from the apiserver's RBAC)", async () => {
    const err = (await openWs(wsPath('web', 'exec', 'command=echo'), tokens.bob!, 'krata-exec.v1').then(
      () => assert.fail('bob opened an exec'),
      (e: unknown) => e,
    )) as { status: number; body: string };
    assert.equal(err.status, 403);
    const status = JSON.parse(err.body) as { message: string; reason: string };
    assert.equal(status.reason, 'Forbidden');
    assert.match(
      status.message,
      /User "bob" cannot get resource "guests\/exec" in API group "subresources.krata.dev" in the namespace "default"/,
    );
    const plain = await get(path('web', 'top'), as('bob'));
    assert.equal(plain.status, 403);
  });

  it("refuses an agent with another host's certificate, or one from another CA", async () => {
    const wrongHost = await get(path('fake', 'log'), as('alice'));
    assert.equal(wrongHost.status, 502, wrongHost.body);
    assert.match(wrongHost.body, /could not be verified as that host/);
    assert.match(wrongHost.body, /host-b/);
    const wrongCa = await get(path('far', 'log'), as('alice'));
    assert.equal(wrongCa.status, 502, wrongCa.body);
    assert.match(wrongCa.body, /could not be verified as that host/);
    const ws = await openWs(wsPath('fake', 'exec', 'command=echo'), tokens.alice!, 'krata-exec.v1').then(
      () => assert.fail('exec opened to an impostor'),
      (e: unknown) => e as { status: number; body: string },
    );
    assert.equal(ws.status, 502);
    assert.match(ws.body, /could not be verified/);
  });

  it('answers 401 straight to krata-api without the front-proxy certificate, and asks RBAC itself with it', async () => {
    const direct = await get(`${apiUrl}${subresourcePath('default', 'web', 'log')}`, {
      'x-remote-user': 'admin',
      'x-remote-group': 'system:masters',
    });
    assert.equal(direct.status, 401);
    assert.equal((JSON.parse(direct.body) as { reason: string }).reason, 'Unauthorized');
    // With it (as the aggregator calls), the headers name the user.
    const proxied = await get(`${apiUrl}${subresourcePath('default', 'web', 'log')}?tailLines=1`, { 'x-remote-user': 'alice' }, frontProxy);
    assert.equal(proxied.status, 200, proxied.body);
    assert.equal(
      proxied.body,
      agent.guests
        .get('default/web')!
        .console.split(/(?<=\n)/)
        .at(-1),
    );
    // The apiserver authorizes what it proxies; krata-api asks again (a SubjectAccessReview) for what reaches it.
    const bobTop = await get(`${apiUrl}${subresourcePath('default', 'web', 'top')}`, { 'x-remote-user': 'bob' }, frontProxy);
    assert.equal(bobTop.status, 403, bobTop.body);
    assert.match(
      (JSON.parse(bobTop.body) as { message: string }).message,
      /User "bob" cannot get resource "guests\/top" in API group "subresources.krata.dev" in the namespace "default"/,
    );
  });

  it('counts requests and streams in its metrics', async () => {
    const text = await new Promise<string>((done, fail) =>
      httpGet(`http://127.0.0.1:${metricsPort}/metrics`, (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => done(body));
      }).on('error', fail),
    );
    assert.match(text, /krata_api_requests_total\{subresource="log",code="200"\} [1-9]/);
    assert.match(text, /krata_api_requests_total\{subresource="top",code="403"\} [1-9]/);
    assert.match(text, /krata_api_requests_total\{subresource="exec",code="101"\} [1-9]/);
    assert.match(text, /^krata_api_access_reviews_total [1-9]/m);
    assert.match(text, /^krata_api_request_duration_seconds_count\{subresource="log"\} [1-9]/m);
    for (const [name, type] of [
      ['krata_api_requests_total', 'counter'],
      ['krata_api_request_duration_seconds', 'histogram'],
      ['krata_api_streams', 'gauge'],
      ['krata_api_access_reviews_total', 'counter'],
      ['krata_api_access_review_cache_hits_total', 'counter'],
      ['process_cpu_seconds_total', 'counter'],
      ['nodejs_eventloop_lag_seconds', 'gauge'],
    ])
      assert.match(text, new RegExp(`^# TYPE ${name} ${type}$`, 'm'));
  });
});
