import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync, spawnSync } from 'node:child_process';
import { parseAllDocuments } from 'yaml';
import { repoRoot } from '../lib/package-root.js';
import { kratactl } from '../test/harness/kratactl.js';

const root = repoRoot();
process.chdir(root); // error messages name files relative to the working directory
const INVALID = 'test/fixtures/invalid';

// Each broken manifest has a golden file with kratactl's exact complaint: every error, file:line:column,
// the field path and the message. Regenerate with UPDATE_GOLDEN=1 after a deliberate change, and read the diff.
for (const name of readdirSync(join(root, INVALID)).filter((f) => /\.(yaml|yml|json)$/.test(f))) {
  test(`broken manifest ${name} is refused with its expected errors`, async () => {
    const file = `${INVALID}/${name}`;
    const r = await kratactl(['apply', '--dry-run', '-f', file]);
    const golden = join(root, `${file}.expected`);
    if (process.env.UPDATE_GOLDEN) writeFileSync(golden, r.stderr);
    assert.equal(r.code, 1, 'exit status');
    assert.equal(r.stdout, '', 'nothing is printed as applied');
    assert.equal(r.stderr, readFileSync(golden, 'utf8'));
    for (const line of r.stderr.trimEnd().split('\n').slice(0, -1)) assert.match(line, new RegExp(`^${file}(:\\d+:\\d+)?: error: `));
  });
}

test('at least 15 broken manifests are covered', () => {
  assert.ok(readdirSync(join(root, INVALID)).filter((f) => f.endsWith('.expected')).length >= 15);
});

test('a file over 1 MiB is refused before it is parsed', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'krata-big-'));
  t.after(() => rmSync(dir, { recursive: true }));
  const file = join(dir, 'big.yaml');
  writeFileSync(file, 'apiVersion: krata.dev/v1alpha1\n' + '#'.repeat(1024 * 1024));
  const r = await kratactl(['apply', '--dry-run', '-f', file]);
  assert.equal(r.code, 1);
  assert.equal(r.stderr, `${file}: error: larger than the 1 MiB limit for a manifest file\n1 error; nothing was applied\n`);
});

test('the examples apply with --dry-run and print defaulted objects as YAML', async () => {
  const r = await kratactl(['apply', '--dry-run', '-f', 'manifests/examples/']);
  assert.equal(r.stderr, '');
  assert.equal(r.code, 0);
  const docs = parseAllDocuments(r.stdout, { version: '1.1' }) as ReturnType<typeof parseAllDocuments> & unknown[];
  const objects = (docs as { toJS(): Record<string, any> }[]).map((d) => d.toJS());
  assert.ok(objects.length >= 5);
  for (const o of objects) {
    assert.equal(o.apiVersion, 'krata.dev/v1alpha1');
    if (o.kind === 'Guest') {
      assert.equal(o.metadata.namespace, 'default');
      assert.equal(typeof o.spec.restartPolicy, 'string');
      assert.equal(typeof o.spec.resources.cpus, 'number');
      assert.equal(o.spec.network.enabled, true);
    }
  }
  // Keys come out in the schema's order, the way kubectl users read objects.
  assert.match(r.stdout, /^apiVersion: krata\.dev\/v1alpha1\nkind: Guest\nmetadata:\n  name: /);
  // A string YAML 1.1 would read as a boolean stays a string on the way out.
  assert.match(r.stdout, /value: "yes"/);
});

test('the output of --dry-run applies again unchanged (round trip)', async () => {
  const first = await kratactl(['apply', '--dry-run', '-f', 'manifests/examples/']);
  const second = await kratactl(['apply', '--dry-run', '-f', '-'], { stdin: first.stdout });
  assert.equal(second.code, 0, second.stderr);
  assert.equal(second.stdout, first.stdout);
});

test('-o json and -o name', async () => {
  const json = await kratactl(['apply', '--dry-run', '-o', 'json', '-f', 'manifests/examples/nginx.yaml']);
  assert.equal(JSON.parse(json.stdout).spec.network.ports[0].protocol, 'TCP');
  const list = await kratactl(['apply', '--dry-run', '-o', 'json', '-f', 'manifests/examples/pinned.yaml']);
  assert.equal(JSON.parse(list.stdout).kind, 'List');
  const names = await kratactl(['apply', '--dry-run', '-o', 'name', '-f', 'manifests/examples/pinned.yaml']);
  assert.equal(names.stdout, 'guest.krata.dev/cache\nguest.krata.dev/worker\n');
});

test('a kind: List (what -o json prints for several objects) applies as its items, errors located inside it', async () => {
  const list = await kratactl(['apply', '--dry-run', '-o', 'json', '-f', 'manifests/examples/pinned.yaml']);
  const again = await kratactl(['apply', '--dry-run', '-o', 'json', '-f', '-'], { stdin: list.stdout });
  assert.equal(again.code, 0, again.stderr);
  assert.equal(again.stdout, list.stdout);
  const broken = list.stdout.replace('"memory": "1Gi"', '"memory": "1 Gi"');
  const r = await kratactl(['apply', '--dry-run', '-f', '-'], { stdin: broken });
  const line = broken.split('\n').findIndex((l) => l.includes('"1 Gi"')) + 1;
  assert.equal(
    r.stderr.split('\n')[0],
    `<stdin>:${line}:21: error: Guest "worker": spec.resources.memory: must match quantity (such as 512Mi or 2Gi) (got string "1 Gi")`,
  );
});

test('--dry-run=server has the node agent check the batch without storing it', async (t) => {
  const agent = await fakeAgent(t, (req, res) =>
    res.end(JSON.stringify({ results: req.body.objects.map((o: any) => ({ kind: o.kind, metadata: o.metadata, action: 'created' })) })),
  );
  const r = await kratactl(['apply', '--dry-run=server', '-o', 'name', '-f', 'manifests/examples/nginx.yaml', '--agent', agent.socket]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(agent.requests[0]!.body.dryRun, true);
  assert.equal(r.stdout, 'guest.krata.dev/web created (server dry run)\n');
});

test('-n sets the namespace of objects without one and conflicts with one that differs', async () => {
  const stdin = 'apiVersion: krata.dev/v1alpha1\nkind: Guest\nmetadata:\n  name: a\nspec:\n  image: alpine\n';
  const ok = await kratactl(['apply', '--dry-run', '-n', 'team-a', '-o', 'json', '-f', '-'], { stdin });
  assert.equal(JSON.parse(ok.stdout).metadata.namespace, 'team-a');
  const clash = await kratactl(['apply', '--dry-run', '-n', 'team-b', '-f', '-'], {
    stdin: stdin.replace('name: a', 'name: a\n  namespace: team-a'),
  });
  assert.equal(clash.code, 1);
  assert.equal(
    clash.stderr.split('\n')[0],
    '<stdin>:5:14: error: Guest "a": metadata.namespace: "team-a" does not match --namespace "team-b"',
  );
});

test('one name in two namespaces is two objects; a cluster-scoped namespace is dropped with a warning', async () => {
  const g = (ns: string) =>
    `apiVersion: krata.dev/v1alpha1\nkind: Guest\nmetadata:\n  name: a\n  namespace: ${ns}\nspec:\n  image: alpine\n`;
  const host = 'apiVersion: krata.dev/v1alpha1\nkind: XenHost\nmetadata:\n  name: h\n  namespace: default\n';
  const r = await kratactl(['apply', '--dry-run', '-o', 'name', '-f', '-'], { stdin: [g('ns-x'), g('ns-y'), host].join('---\n') });
  assert.equal(r.code, 0);
  assert.equal(r.stdout, 'guest.krata.dev/a\nguest.krata.dev/a\nxenhost.krata.dev/h\n');
  assert.equal(
    r.stderr,
    '<stdin>:21:3: warning: XenHost "h": metadata.namespace: XenHost is cluster-scoped; namespace "default" ignored\n',
  );
});

test('status in a manifest is ignored with a warning, as the API server ignores it', async () => {
  const stdin = 'apiVersion: krata.dev/v1alpha1\nkind: Guest\nmetadata:\n  name: a\nspec:\n  image: alpine\nstatus:\n  phase: Running\n';
  const r = await kratactl(['apply', '--dry-run', '-o', 'json', '-f', '-'], { stdin });
  assert.equal(r.code, 0);
  assert.equal(JSON.parse(r.stdout).status, undefined);
  assert.equal(r.stderr, '<stdin>:7:1: warning: Guest "a": status is written by krata; ignored\n');
});

test('errors from several files come out in file order, then by line', async () => {
  const r = await kratactl(['apply', '--dry-run', '-f', `${INVALID}/04-bad-enum.yaml`, '-f', `${INVALID}/02-bad-quantity.yaml`]);
  const files = r.stderr
    .trimEnd()
    .split('\n')
    .slice(0, -1)
    .map((l) => l.split(':')[0]);
  assert.deepEqual(files, [`${INVALID}/04-bad-enum.yaml`, `${INVALID}/04-bad-enum.yaml`, `${INVALID}/02-bad-quantity.yaml`]);
  assert.match(r.stderr, /3 errors; nothing was applied\n$/);
});

interface Recorded {
  method?: string;
  url?: string;
  body: any;
}

async function fakeAgent(t: { after: (fn: () => void) => void }, respond: (req: Recorded, res: ServerResponse) => void) {
  const dir = mkdtempSync(join(tmpdir(), 'krata-agent-'));
  const socket = join(dir, 'agent.sock');
  const requests: Recorded[] = [];
  const server = createServer((req: IncomingMessage, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const rec = { method: req.method, url: req.url, body: JSON.parse(Buffer.concat(chunks).toString() || 'null') };
      requests.push(rec);
      respond(rec, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(socket, resolve));
  t.after(() => {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { socket, requests };
}

test('apply sends every object to the node agent in one batch and prints what happened', async (t) => {
  const agent = await fakeAgent(t, (req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(
      JSON.stringify({
        results: req.body.objects.map((o: any, i: number) => ({
          kind: o.kind,
          metadata: { namespace: o.metadata.namespace, name: o.metadata.name },
          action: i ? 'configured' : 'created',
        })),
      }),
    );
  });
  const r = await kratactl(['apply', '-f', 'manifests/examples/pinned.yaml', '--agent', agent.socket]);
  assert.equal(r.stderr, '');
  assert.equal(r.code, 0);
  assert.equal(r.stdout, 'guest.krata.dev/cache created\nguest.krata.dev/worker configured\n');
  assert.equal(agent.requests.length, 1);
  assert.equal(agent.requests[0]!.method, 'POST');
  assert.equal(agent.requests[0]!.url, '/v1/apply');
  assert.deepEqual(
    agent.requests[0]!.body.objects.map((o: any) => o.metadata.name),
    ['cache', 'worker'],
  );
  assert.equal(agent.requests[0]!.body.objects[1].spec.restartPolicy, 'OnFailure', 'objects are sent defaulted');
});

test('nothing reaches the node agent when any document is invalid', async (t) => {
  const agent = await fakeAgent(t, (_req, res) => res.end('{"results":[]}'));
  const r = await kratactl([
    'apply',
    '-f',
    'manifests/examples/nginx.yaml',
    '-f',
    `${INVALID}/19-second-document.yaml`,
    '--agent',
    agent.socket,
  ]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /nothing was applied/);
  assert.equal(agent.requests.length, 0);
});

test("the agent's refusal is shown against the file and line of each object", async (t) => {
  const agent = await fakeAgent(t, (_req, res) => {
    res.statusCode = 422;
    res.end(
      JSON.stringify({
        message: 'the batch was refused',
        errors: [{ index: 1, path: 'spec.nodeName', message: 'no XenHost "x" on this node' }],
      }),
    );
  });
  const r = await kratactl(['apply', '-f', 'manifests/examples/pinned.yaml', '--agent', agent.socket]);
  assert.equal(r.code, 1);
  assert.equal(r.stderr, 'error: the batch was refused\n  manifests/examples/pinned.yaml:19: spec.nodeName: no XenHost "x" on this node\n');
});

test('without a node agent, apply says where it looked and what to do', async () => {
  const socket = join(tmpdir(), `krata-absent-${process.pid}.sock`);
  const r = await kratactl(['apply', '-f', 'manifests/examples/nginx.yaml'], { env: { KRATA_AGENT_SOCKET: socket } });
  assert.equal(r.code, 1);
  assert.equal(
    r.stderr,
    `error: cannot reach the node agent at ${socket}: is krata-node-agent running? (--dry-run only validates)\n` +
      '  another socket: --agent SOCKET or KRATA_AGENT_SOCKET=SOCKET\n' +
      '  start the agent as root in dom0: krata-node-agent (its options: krata-node-agent --help)\n',
  );
});

test('usage errors exit 2 and say what is wrong', async () => {
  const cases: [string[], RegExp][] = [
    [['apply'], /apply needs at least one -f PATH/],
    [['apply', '-f', 'x', '--bogus'], /^error: unknown flag: --bogus\n/],
    [['apply', '--dry-run=maybe', '-f', 'x'], /--dry-run takes client, server or none/],
    [['apply', '-o', 'xml', '-f', 'x'], /--output must be one of yaml, json, name/],
    [['apply', '-n', 'Bad_NS', '-f', 'x'], /not a valid namespace name/],
    [['frobnicate'], /unknown command "frobnicate" for "kratactl"\n\nRun 'kratactl --help'/],
    [['gte'], /unknown command "gte" for "kratactl"\n\nDid you mean this\?\n\tget\n/],
    [['apply', '--filname', 'x'], /^error: unknown flag: --filname \(did you mean --filename\?\)\n/],
    [['apply', '-f'], /^error: flag needs an argument: 'f' in -f\n/],
    [['explain', 'pods'], /unknown kind "pods"/],
    [['explain', 'guest.spec.nope'], /Guest\.spec has no field "nope" \(fields: image, imagePullPolicy/],
    [['explain', 'guest.spec.imagee'], /^error: Guest\.spec has no field "imagee": did you mean "guest\.spec\.image"\? \(fields: image, /],
    [['explain', 'gst.spec.resources.memroy'], /has no field "memroy": did you mean "gst\.spec\.resources\.memory"\?/],
    [['explain', 'guets'], /^error: unknown kind "guets": did you mean "guests"\? \(kinds: Guest, /],
  ];
  for (const [args, message] of cases) {
    const r = await kratactl(args);
    assert.equal(r.code, 2, args.join(' '));
    assert.match(r.stderr, message, args.join(' '));
  }
});

test('kubectl spellings: flags before the verb, -o=FORMAT, -n=NS, --dry-run=server', async (t) => {
  const agent = await fakeAgent(t, (_req, res) => res.end('{"results":[]}'));
  for (const args of [
    ['-n', 'web', '--agent', agent.socket, 'apply', '-f', 'manifests/examples/hello.yaml', '--dry-run=server', '-o=name'],
    ['--namespace=web', 'apply', '--agent=' + agent.socket, '-f=manifests/examples/hello.yaml', '--dry-run=server', '-oname'],
    ['apply', '-n=web', '-fmanifests/examples/hello.yaml', '--agent', agent.socket, '--dry-run=server', '--output', 'name'],
  ]) {
    const r = await kratactl(args);
    assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
  }
  assert.equal(agent.requests.length, 3);
  for (const req of agent.requests)
    assert.deepEqual(
      req.body.objects.map((o: any) => o.metadata.namespace),
      ['web'],
    );
});

test('--dry-run=client is kubectl’s spelling of --dry-run', async () => {
  const r = await kratactl(['apply', '--dry-run=client', '-o', 'name', '-f', 'manifests/examples/nginx.yaml']);
  assert.equal(r.stdout, 'guest.krata.dev/web\n');
});

test('explain documents kinds and fields from the schema', async () => {
  const kind = await kratactl(['explain', 'guests']);
  assert.equal(kind.code, 0);
  assert.match(kind.stdout, /^KIND: {5}Guest\nVERSION: {2}krata\.dev\/v1alpha1\n/);
  assert.match(kind.stdout, /spec\t<Object> -required-/);
  const field = await kratactl(['explain', 'gst.spec.restartPolicy']);
  assert.match(field.stdout, /FIELD: {4}restartPolicy <string>/);
  assert.match(field.stdout, /One of: Always, OnFailure, Never\. Default: Always\./);
  const list = await kratactl(['explain', 'guest.spec.env']);
  assert.match(list.stdout, /FIELD: {4}env <\[\]Object>/);
  assert.match(list.stdout, /name\t<string> -required-/);
  const recursive = await kratactl(['explain', 'xenhost', '--recursive']);
  assert.match(recursive.stdout, /\n {6}conditions\t<\[\]Object>\n {9}type\t<string> -required-/);
});

test('help and version', async () => {
  const help = await kratactl(['--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /Commands:\n {2}apply/);
  const applyHelp = await kratactl(['apply', '--help']);
  assert.match(applyHelp.stdout, /Usage: kratactl apply -f PATH/);
  const bare = await kratactl([]);
  assert.equal(bare.code, 2);
  const version = await kratactl(['version']);
  assert.match(version.stdout, /^kratactl \d+\.\d+\.\d+ \(API krata\.dev\/v1alpha1, node v\d+/);
});

test('the kratactl bin entry runs as a program', () => {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { bin: Record<string, string> };
  for (const bin of Object.values(pkg.bin)) assert.ok(existsSync(join(root, bin)), `${bin} is built`);
  const out = execFileSync(process.execPath, [join(root, pkg.bin.kratactl!), 'apply', '--dry-run', '-o', 'name', '-f', '-'], {
    input: readFileSync(join(root, 'manifests/examples/job.yaml')),
  });
  assert.equal(out.toString(), 'guest.krata.dev/checksum-job\n');
  const bad = spawnSync(process.execPath, [join(root, pkg.bin.kratactl!), 'apply', '--dry-run', '-f', `${INVALID}/02-bad-quantity.yaml`]);
  assert.equal(bad.status, 1);
});
