// kratactl's verbs for scripts where kubectl has no shape to compare with here: tables with
// --show-labels/--no-headers and several kinds, events, diff (built-in and external), -f URL refused,
// wait on GuestSets; against the real API server over the in-memory agent service.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startFakeAgentApi, testGuest } from '../harness/agent-api.js';
import { kratactl, startKratactl } from '../harness/kratactl.js';
import type { KratObject } from '../../crds/validate.js';

const set = (name: string, replicas = 1) =>
  ({
    apiVersion: 'krata.dev/v1alpha1',
    kind: 'GuestSet',
    metadata: { name, namespace: 'default', labels: { app: name } },
    spec: {
      replicas,
      selector: { matchLabels: { app: name } },
      template: { metadata: { labels: { app: name } }, spec: { image: 'app:1' } },
    },
  }) as unknown as KratObject;

const labelled = (name: string, labels: Record<string, string>) => {
  const g = testGuest(name, 'default', { image: 'app:1' });
  (g.metadata as { labels?: Record<string, string> }).labels = labels;
  return g;
};

test('tables: --show-labels, --no-headers, several kinds, TYPE/NAME of two kinds', async (t) => {
  const { socket, service } = await startFakeAgentApi(t);
  await service.apply([labelled('web', { app: 'web', tier: 'front' }), testGuest('db'), set('api')], false);
  const k = (...args: string[]) => kratactl([...args, '--agent', socket]);
  let r = await k('get', 'guests', '--show-labels');
  assert.equal(r.code, 0, r.stderr);
  const rows = r.stdout.trimEnd().split('\n');
  assert.match(rows[0]!, /^NAME +PHASE +READY +RESTARTS +IP +AGE +LABELS$/);
  assert.match(rows[1]!, /^web .* app=web,tier=front$/);
  assert.match(rows[2]!, /^db .* <none>$/);
  r = await k('get', 'guests', '--no-headers', '-l', 'tier');
  assert.match(r.stdout, /^web +Pending +0\/1 +0 +<none> +\d+s\n$/);
  r = await k('get', 'guests,gs', '--no-headers', '-o', 'name');
  assert.equal(r.stdout, 'guest.krata.dev/web\nguest.krata.dev/db\nguestset.krata.dev/api\n');
  r = await k('get', 'guest/db', 'gs/api');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^NAME +PHASE .*\ndb +Pending .*\n\nNAME +READY +UP-TO-DATE +AVAILABLE +AGE\napi +0\/1 +0 +0 +\S+\n$/);
  r = await k('get', 'guest', 'web', 'nope', '-o', 'name');
  assert.deepEqual([r.code, r.stdout, r.stderr], [1, 'guest.krata.dev/web\n', 'error: guest "nope" not found in namespace "default"\n']);
  r = await k('get', 'guests', '-l', 'tier in (front', '-o', 'name');
  assert.equal(r.code, 2);
  assert.match(r.stderr, /^error: unable to parse requirement/);
  r = await k('get', 'guests', '-o', 'jsonpath={.items[*]');
  assert.deepEqual([r.code, r.stderr.split('\n')[0]], [2, 'error: error parsing jsonpath {.items[*], unclosed action']);
  r = await k('get', 'guests', '-o', 'jsonpath={.items[9]}');
  assert.deepEqual(
    [r.code, r.stderr],
    [
      1,
      'error: error executing jsonpath "{.items[9]}": Error executing template: array index out of bounds: index 9, length 2. ' +
        'Printing more information for debugging the template:\n\ttemplate was:\n\t\t{.items[9]}\n',
    ],
  );
  r = await k('get', 'guests', '-o', 'yamll');
  assert.match(r.stderr, /^error: unable to match a printer suitable for the output format "yamll"/);
});

test('events: kubectl events columns, --for, --types, -A, -o yaml', async (t) => {
  const { socket, service } = await startFakeAgentApi(t);
  await service.apply([testGuest('web'), testGuest('db'), testGuest('web', 'team')], false);
  service.record('default', 'web', 'Normal', 'Pulled', 'pulled app:1');
  service.record('default', 'db', 'Warning', 'BackOff', 'back-off restarting the guest', 3);
  service.record('team', 'web', 'Normal', 'Started', 'domain 7 started');
  const k = (...args: string[]) => kratactl([...args, '--agent', socket]);
  let r = await k('events');
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.split('\n');
  assert.match(lines[0]!, /^LAST SEEN +TYPE +REASON +OBJECT +MESSAGE$/);
  assert.match(lines[1]!, /^\d+s +Normal +Pulled +Guest\/web +pulled app:1$/);
  assert.match(lines[2]!, /^\d+s \(x3 over \d+s\) +Warning +BackOff +Guest\/db +back-off restarting the guest$/);
  assert.equal(lines.length, 4);
  r = await k('events', '--for', 'guest/db', '--types', 'Warning', '--no-headers');
  assert.match(r.stdout, /^\d+s \(x3 over \d+s\) +Warning +BackOff +Guest\/db +back-off restarting the guest\n$/);
  r = await k('events', '-A');
  assert.deepEqual(
    r.stdout
      .trimEnd()
      .split('\n')
      .map((l) => l.split(/ +/)[0]),
    ['NAMESPACE', 'default', 'default', 'team'],
  );
  r = await k('events', '-n', 'team', '-o', 'json');
  const list = JSON.parse(r.stdout) as { kind: string; items: { kind: string; involvedObject: { name: string }; reason: string }[] };
  assert.equal(list.kind, 'EventList');
  assert.deepEqual(
    list.items.map((i) => [i.kind, i.involvedObject.name, i.reason]),
    [['Event', 'web', 'Started']],
  );
  r = await k('events', '-n', 'nobody');
  assert.deepEqual([r.code, r.stdout, r.stderr], [0, '', 'No events found in nobody namespace.\n']);
  r = await k('events', '--for', 'gs/x');
  assert.equal(r.code, 2);
});

test('events -w prints the list, then new and repeated events', async (t) => {
  const { socket, service, server } = await startFakeAgentApi(t);
  await service.apply([testGuest('web')], false);
  service.record('default', 'web', 'Normal', 'Pulled', 'pulled app:1');
  const p = startKratactl(['events', '-w', '--agent', socket]);
  await p.until(() => p.stdout.includes('Pulled'), 'the list first');
  service.record('default', 'web', 'Warning', 'BackOff', 'back-off');
  await p.until(() => p.stdout.includes('BackOff'), 'a new event');
  await server.close();
  await p.until(() => true, 'closed');
  assert.match(
    p.stdout,
    /^LAST SEEN +TYPE +REASON +OBJECT +MESSAGE\n\d+s +Normal +Pulled +Guest\/web +pulled app:1\n\d+s +Warning +BackOff/,
  );
});

test('diff: nothing to change (0), changes as a unified diff (1), a new object, errors (2), an external program', async (t) => {
  const { socket, service, dir } = await startFakeAgentApi(t);
  const k = (...args: string[]) => kratactl([...args, '--agent', socket]);
  const file = (name: string, text: string) => {
    const p = join(dir, name);
    writeFileSync(p, text);
    return p;
  };
  const manifest = (image: string, labels: string) => `apiVersion: krata.dev/v1alpha1
kind: Guest
metadata:
  name: web
  labels: {${labels}}
spec:
  image: ${image}
`;
  const v1 = file('v1.yaml', manifest('app:1', 'app: web'));
  assert.equal((await k('apply', '-f', v1)).code, 0);
  service.setStatus('default', 'web', { phase: 'Running' });
  let r = await k('diff', '-f', v1);
  assert.deepEqual([r.code, r.stdout, r.stderr], [0, '', '']);

  r = await k('diff', '-f', file('v2.yaml', manifest('app:2', 'app: web, tier: front')));
  assert.equal(r.code, 1, r.stderr);
  const f = 'krata.dev.v1alpha1.Guest.default.web';
  assert.equal(r.stdout.split('\n').slice(0, 3).join('\n'), `diff -u -N LIVE/${f} MERGED/${f}\n--- LIVE/${f}\n+++ MERGED/${f}`);
  assert.match(r.stdout, /\n     app: web\n\+    tier: front\n spec:\n-  image: app:1\n\+  image: app:2\n/);
  assert.doesNotMatch(r.stdout, /status|uid|creationTimestamp/);
  assert.equal(service.get('default', 'web')?.spec.image, 'app:1', 'a diff changes nothing');

  r = await k('diff', '-f', file('new.yaml', manifest('app:1', 'app: x').replace('name: web', 'name: other')));
  assert.equal(r.code, 1);
  assert.match(
    r.stdout,
    /\n--- LIVE\/krata\.dev\.v1alpha1\.Guest\.default\.other\n\+\+\+ MERGED\/\S+\n@@ -0,0 \+1,\d+ @@\n\+apiVersion: krata\.dev\/v1alpha1\n/,
  );

  r = await k('diff', '-f', file('bad.yaml', manifest('app:1', 'app: web').replace('image:', 'imag:')));
  assert.equal(r.code, 2);
  r = await k('diff', '-f', join(dir, 'missing.yaml'));
  assert.equal(r.code, 2);

  r = await kratactl(['diff', '-f', join(dir, 'v2.yaml'), '--agent', socket], { env: { KRATA_EXTERNAL_DIFF: 'diff -u -N -r' } });
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stdout, /\n-  image: app:1\n\+  image: app:2\n/);
});

test('-f URL is refused with the way to do it, in apply, delete and diff', async (t) => {
  const { socket } = await startFakeAgentApi(t);
  for (const verb of ['apply', 'delete', 'diff']) {
    const r = await kratactl([verb, '-f', 'https://example.com/guest.yaml', '--agent', socket]);
    assert.notEqual(r.code, 0);
    const url = 'https://example.com/guest.yaml';
    const want =
      `${url}: error: kratactl does not fetch manifests from the network; ` +
      `fetch it and pass it on stdin: curl -fsSL '${url}' | kratactl apply -f -\n`;
    assert.ok(r.stderr.includes(want), r.stderr);
  }
});

test('wait: GuestSets by polling, usage errors', async (t) => {
  const { socket, service } = await startFakeAgentApi(t);
  await service.apply([set('api')], false);
  const p = startKratactl(['wait', 'gs/api', '--for=jsonpath={.status.readyReplicas}=1', '--timeout=30s', '--agent', socket]);
  await new Promise((r) => setTimeout(r, 100));
  service.guestSets.get('default/api')!.status = { readyReplicas: 1 } as never;
  assert.equal(await p.code, 0, p.stderr);
  assert.equal(p.stdout, 'guestset.krata.dev/api condition met\n');
  const k = (...args: string[]) => kratactl([...args, '--agent', socket]);
  let r = await k('wait', 'guests', '--for=condition=Ready');
  assert.match(r.stderr, /^error: resource\(s\) were provided, but no name was specified\n/);
  r = await k('wait', 'guest/x', '--for=bogus');
  assert.match(r.stderr, /^error: unrecognized condition: "bogus"\n/);
  r = await k('wait', 'guest/x', '--for=delete', '--timeout=5');
  assert.equal(r.code, 0);
  r = await k('wait', 'guest/x', '--for=delete', '--timeout=soon');
  assert.equal(r.code, 2);
});

test('get -w -l: only the guests the selector picks', async (t) => {
  const { socket, service, server } = await startFakeAgentApi(t);
  await service.apply([labelled('web', { app: 'web' }), testGuest('db')], false);
  const p = startKratactl(['get', '-w', '-l', 'app=web', '-o', 'name', '--agent', socket]);
  await p.until(() => p.stdout.includes('web'), 'the selected guest');
  await p.until(() => service.watcherCount === 1, 'watching');
  await service.apply([labelled('web-2', { app: 'web' }), testGuest('db-2')], false);
  await p.until(() => p.stdout.includes('web-2'), 'a new selected guest');
  await server.close();
  assert.equal(await p.code, 0, p.stderr);
  assert.equal(p.stdout, 'guest.krata.dev/web\nguest.krata.dev/web-2\n');
});
