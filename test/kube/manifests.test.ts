// The cluster install (manifests/): it builds with kubectl's kustomize, the objects say what the design
// says (least privilege, no credentials for node agents, hostNetwork DNS, ...), it applies to a real
// kube-apiserver, the examples are stored with the same defaults kratactl computes, and the RBAC grants
// what it should and nothing more, checked by the apiserver's own authorizer (`kubectl auth can-i`).
// kubectl is $KRATA_KUBECTL or the one on PATH; everything used here exists in kubectl 1.20 too.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, parseAllDocuments } from 'yaml';
import { CRD_SOURCES, installedCRD } from '../../crds/codegen/paths.js';
import { repoRoot } from '../../lib/package-root.js';
import { validateObject } from '../../crds/validate.js';
import { startEnvtest, type Envtest } from './envtest.js';
import { egressFlags } from '../../node-agent/net/desired.js';

const root = repoRoot();
const KUBECTL = process.env.KRATA_KUBECTL ?? 'kubectl';
const VERSION = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version;
const OPERATOR_SA = 'system:serviceaccount:krata-system:krata-operator';
const AGENT_SA = 'system:serviceaccount:krata-system:krata-node-agent';
/** krata-api's Guests, for `kubectl auth can-i get guests.subresources.krata.dev --subresource=exec`. */
const SUB = 'guests.subresources.krata.dev';

type Obj = Record<string, any>;
interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], input?: string, timeoutMs = 60_000): Promise<Run> {
  return new Promise((resolve, reject) => {
    const c = spawn(cmd, args, { cwd: root, stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    c.stdin?.end(input);
    let stdout = '';
    let stderr = '';
    c.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    c.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => c.kill('SIGKILL'), timeoutMs);
    c.on('error', reject);
    c.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

let env: Envtest | undefined;
/** kubectl against the envtest apiserver, with a bounded request time. */
const kubeIn = (input: string | undefined, ...args: string[]) =>
  run(KUBECTL, ['--kubeconfig', env!.kubeconfig, '--request-timeout=30s', ...args], input);
const kube = (...args: string[]) => kubeIn(undefined, ...args);
async function kubeOk(...args: string[]): Promise<string> {
  const r = await kube(...args);
  assert.equal(r.code, 0, `kubectl ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

async function kustomize(dir: string): Promise<Obj[]> {
  const r = await run(KUBECTL, ['kustomize', dir]);
  assert.equal(r.code, 0, `kubectl kustomize ${dir}: ${r.stderr}`);
  return parseAllDocuments(r.stdout).map((d) => d.toJS() as Obj);
}

const CLUSTER_SCOPED = new Set([
  'Namespace',
  'CustomResourceDefinition',
  'ClusterRole',
  'ClusterRoleBinding',
  'APIService',
  'PriorityClass',
]);
const byName = (objs: Obj[]) => new Map(objs.map((o) => [`${o.kind}/${o.metadata.name}`, o]));
const find = (objs: Obj[], kind: string, name: string): Obj => {
  const o = objs.find((x) => x.kind === kind && x.metadata.name === name);
  assert.ok(o, `${kind}/${name} is in the build`);
  return o;
};
const matches = (selector: Record<string, string>, labels: Record<string, string> = {}) =>
  Object.entries(selector).every(([k, v]) => labels[k] === v);
const args = (c: Obj) => (c.args as string[]).join(' ');
/** The value after `flag` in a container's args. */
const flag = (c: Obj, name: string) => {
  const a = c.args as string[];
  const i = a.indexOf(name);
  return i < 0 ? undefined : a[i + 1];
};

test('manifests/crds/ holds byte-for-byte copies of crds/*.yaml (refresh: cp crds/guest.yaml crds/xenhost.yaml manifests/crds/)', () => {
  for (const src of CRD_SOURCES) {
    if (src === 'crds/guestset.yaml') continue; // generated with the Guest schema filled in (crds/codegen/generate.test.ts)
    const copy = join('manifests/crds', src.replace(/^crds\//, ''));
    assert.ok(readFileSync(join(root, copy)).equals(readFileSync(join(root, src))), `${copy} differs from ${src}`);
  }
  const yamls = readdirSync(join(root, 'manifests/crds'))
    .filter((f) => f.endsWith('.yaml'))
    .sort();
  assert.deepEqual(yamls, ['guest.yaml', 'guestset.yaml', 'kustomization.yaml', 'xenhost.yaml']);
});

test("every command the install runs is on the image's PATH (Containerfile), built from a program in package.json's bin", async () => {
  const containerfile = readFileSync(join(root, 'Containerfile'), 'utf8');
  const onPath = new Map(
    [...containerfile.matchAll(/ln -s \/opt\/krata\/(dist\/\S+) \/usr\/local\/bin\/(\S+)/g)].map((m) => [m[2]!, m[1]!]),
  );
  const bin = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { bin: Record<string, string> }).bin;
  const commands = new Set(
    (await kustomize('manifests/'))
      .filter((o) => o.kind === 'Deployment' || o.kind === 'DaemonSet')
      .flatMap((o) => (o.spec.template.spec.containers as Obj[]).map((c) => (c.command as string[] | undefined)?.[0]))
      .filter((c): c is string => !!c && c.startsWith('krata')),
  );
  assert.ok(commands.size >= 3, [...commands].join(' '));
  for (const c of commands) {
    assert.ok(onPath.has(c), `${c} is linked into /usr/local/bin in the Containerfile`);
    assert.equal(onPath.get(c), bin[c], `${c} links to what package.json's bin names`);
    const folder = bin[c]!.split('/')[1]!;
    assert.match(containerfile, new RegExp(`^COPY ${folder} ${folder}$`, 'm'), `the Containerfile copies ${folder}/`);
  }
});

test('kubectl kustomize manifests/ builds the install the design describes', async () => {
  const objs = await kustomize('manifests/');
  const kinds = objs.map((o) => `${o.kind}/${o.metadata.name}`).sort();
  assert.deepEqual(kinds, [
    'APIService/v1alpha1.subresources.krata.dev',
    'ClusterRole/krata-api',
    'ClusterRole/krata-api-authentication-reader',
    'ClusterRole/krata-guest-editor',
    'ClusterRole/krata-guest-viewer',
    'ClusterRole/krata-operator',
    'ClusterRole/krata-pull-secret-reader',
    'ClusterRoleBinding/krata-api',
    'ClusterRoleBinding/krata-api-auth-delegator',
    'ClusterRoleBinding/krata-api-authentication-reader',
    'ClusterRoleBinding/krata-operator',
    'CustomResourceDefinition/guests.krata.dev',
    'CustomResourceDefinition/guestsets.krata.dev',
    'CustomResourceDefinition/xenhosts.krata.dev',
    'DaemonSet/krata-node-agent',
    'Deployment/krata-api',
    'Deployment/krata-operator',
    'Deployment/krata-redis',
    'Namespace/krata-system',
    'NetworkPolicy/krata-redis',
    'PodDisruptionBudget/krata-operator',
    'PriorityClass/krata-cluster-critical',
    'Role/krata-operator-leader-election',
    'Role/krata-operator-pki',
    'Role/krata-operator-redis-credentials',
    'RoleBinding/krata-operator-leader-election',
    'RoleBinding/krata-operator-pki',
    'RoleBinding/krata-operator-redis-credentials',
    'Service/krata-api',
    'Service/krata-api-metrics',
    'Service/krata-node-agent-metrics',
    'Service/krata-operator-metrics',
    'Service/krata-redis',
    'ServiceAccount/krata-api',
    'ServiceAccount/krata-node-agent',
    'ServiceAccount/krata-operator',
  ]);
  // The aggregated API: the krata-api Service, with its CA bundle the operator's to set.
  const apiService = find(objs, 'APIService', 'v1alpha1.subresources.krata.dev');
  assert.deepEqual(apiService.spec.service, { name: 'krata-api', namespace: 'krata-system', port: 443 });
  assert.equal(apiService.spec.insecureSkipTLSVerify, undefined, 'the serving certificate is verified');
  for (const o of objs) {
    if (CLUSTER_SCOPED.has(o.kind)) assert.equal(o.metadata.namespace, undefined, `${o.kind}/${o.metadata.name}`);
    else assert.equal(o.metadata.namespace, 'krata-system', `${o.kind}/${o.metadata.name}`);
  }
  assert.equal(find(objs, 'PodDisruptionBudget', 'krata-operator').apiVersion, 'policy/v1');
  assert.equal(find(objs, 'Namespace', 'krata-system').metadata.labels['pod-security.kubernetes.io/enforce'], 'privileged');

  // The CRDs are the source files, as kustomize re-serializes them (anchors expanded).
  for (const src of CRD_SOURCES) {
    const crd = parse(readFileSync(join(root, installedCRD(src)), 'utf8')) as Obj;
    assert.deepEqual(find(objs, 'CustomResourceDefinition', crd.metadata.name), crd);
  }

  // Pods: pinned images (krata's tag is the package version), requests everywhere, no service links.
  const workloads = objs.filter((o) => o.kind === 'Deployment' || o.kind === 'DaemonSet');
  for (const w of workloads) {
    const pod = w.spec.template;
    assert.ok(matches(w.spec.selector.matchLabels, pod.metadata.labels), `${w.metadata.name}: selector matches its pods`);
    assert.equal(pod.spec.enableServiceLinks, false);
    for (const c of pod.spec.containers) {
      assert.match(c.image, /:[\w.-]+$/, `${c.image} has a tag`);
      assert.doesNotMatch(c.image, /:latest$/);
      if (c.image.startsWith('ghcr.io/krata-dev/krata')) assert.equal(c.image, `ghcr.io/krata-dev/krata:${VERSION}`);
      assert.ok(c.resources?.requests?.cpu && c.resources?.requests?.memory, `${w.metadata.name}/${c.name} requests`);
    }
  }
  // No other workload selector picks up another's pods.
  for (const w of workloads) {
    for (const other of workloads) if (other !== w) assert.ok(!matches(w.spec.selector.matchLabels, other.spec.template.metadata.labels));
  }

  const operator = find(objs, 'Deployment', 'krata-operator');
  const op = operator.spec.template.spec;
  const oc = op.containers[0];
  assert.equal(operator.spec.replicas, 2);
  assert.equal(op.serviceAccountName, 'krata-operator');
  assert.deepEqual(oc.command, ['krata-operator']);
  // Redis: as user krata-operator, with the password from the Secret it makes (test/cluster/redis-acl.test.ts runs the rest).
  assert.equal(flag(oc, '--redis'), 'redis://krata-operator@krata-redis:6379');
  assert.equal(flag(oc, '--redis-credentials-namespace'), '$(POD_NAMESPACE)');
  // The krata CA and krata-api's certificates in its own namespace (operator/pki/, Role krata-operator-pki).
  assert.equal(flag(oc, '--pki-namespace'), '$(POD_NAMESPACE)');
  assert.ok(oc.args.includes('--leader-elect'));
  assert.equal(flag(oc, '--lease-namespace'), '$(POD_NAMESPACE)');
  assert.equal(flag(oc, '--health-addr'), ':8081');
  assert.equal(flag(oc, '--metrics-addr'), ':8080');
  const fieldRef = (c: Obj, name: string) => c.env.find((e: Obj) => e.name === name)?.valueFrom?.fieldRef?.fieldPath;
  assert.equal(fieldRef(oc, 'POD_NAMESPACE'), 'metadata.namespace');
  assert.equal(fieldRef(oc, 'POD_NAME'), 'metadata.name');
  assert.deepEqual(oc.readinessProbe.httpGet, { path: '/readyz', port: 'health' });
  assert.deepEqual(oc.livenessProbe.httpGet, { path: '/healthz', port: 'health' });
  assert.deepEqual(
    oc.ports.map((p: Obj) => [p.name, p.containerPort]),
    [
      ['metrics', 8080],
      ['health', 8081],
    ],
  );
  assert.ok(oc.resources.limits.memory, 'operator memory limit');
  // The operator and Redis meet Pod Security's "restricted" profile.
  for (const d of workloads.filter((w) => w.kind === 'Deployment')) {
    const spec = d.spec.template.spec;
    assert.equal(spec.securityContext.runAsNonRoot, true, d.metadata.name);
    assert.equal(spec.securityContext.seccompProfile.type, 'RuntimeDefault', d.metadata.name);
    for (const c of spec.containers)
      assert.deepEqual(
        c.securityContext,
        { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } },
        d.metadata.name,
      );
  }
  assert.ok(op.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution.length);
  const pdb = find(objs, 'PodDisruptionBudget', 'krata-operator');
  assert.equal(pdb.spec.minAvailable, 1);
  assert.ok(matches(pdb.spec.selector.matchLabels, operator.spec.template.metadata.labels));

  // Node agents: no Kubernetes credentials at all, cluster DNS from the host network, Xen's devices.
  const agent = find(objs, 'DaemonSet', 'krata-node-agent');
  const ap = agent.spec.template.spec;
  const ac = ap.containers[0];
  assert.equal(find(objs, 'ServiceAccount', 'krata-node-agent').automountServiceAccountToken, false);
  assert.equal(ap.serviceAccountName, 'krata-node-agent');
  assert.equal(ap.automountServiceAccountToken, false);
  assert.equal(ap.hostNetwork, true);
  assert.equal(ap.dnsPolicy, 'ClusterFirstWithHostNet');
  assert.ok(!ap.hostPID && !ap.hostIPC);
  assert.equal(ap.terminationGracePeriodSeconds, 40);
  assert.deepEqual(ap.nodeSelector, { 'kubernetes.io/os': 'linux', 'krata.dev/xen': 'true' });
  assert.ok(ap.tolerations.some((t: Obj) => t.operator === 'Exists' && t.effect === 'NoSchedule'));
  assert.ok(ap.tolerations.some((t: Obj) => t.operator === 'Exists' && t.effect === 'NoExecute' && !t.key));
  // Above ordinary Pods: the agents, the operator and Redis (krata's control path); krata-api is not.
  const priority = find(objs, 'PriorityClass', 'krata-cluster-critical');
  assert.ok(!priority.globalDefault, 'not the default for every Pod');
  assert.ok(priority.value >= 1_000_000 && priority.value <= 1_000_000_000, 'a user class, below the system classes');
  assert.deepEqual(
    workloads
      .filter((w) => w.spec.template.spec.priorityClassName === priority.metadata.name)
      .map((w) => w.metadata.name)
      .sort(),
    ['krata-node-agent', 'krata-operator', 'krata-redis'],
  );
  assert.deepEqual(agent.spec.updateStrategy, { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 1 } });
  assert.deepEqual(ac.command, ['krata-node-agent']);
  assert.equal(flag(ac, '--redis'), 'redis://krata-agent@krata-redis.krata-system.svc:6379');
  assert.equal(flag(ac, '--redis-password-file'), '/etc/krata/redis/password');
  assert.deepEqual(ap.volumes.find((v: Obj) => v.name === 'redis-password').secret, {
    secretName: 'krata-redis-agent',
    defaultMode: 0o400,
  });
  assert.equal(flag(ac, '--host'), '$(NODE_NAME)');
  // The guest kernel and initrd: in the image, copied to the host by an init container, read there.
  const [install] = ap.initContainers as Obj[];
  assert.equal(ap.initContainers.length, 1);
  assert.equal(install!.image, ac.image);
  assert.ok(install!.volumeMounts.some((m: Obj) => m.name === 'state' && m.mountPath === '/var/lib/krata'));
  const script = (install!.args as string[]).join('\n');
  for (const f of ['kernel', 'initrd']) {
    assert.equal(flag(ac, `--${f}`), `/var/lib/krata/default/${f}`);
    const containerfile = readFileSync(join(root, 'Containerfile'), 'utf8');
    assert.match(containerfile, new RegExp(`^COPY --from=\\S+ \\S+ /opt/krata/guest/${f}$`, 'm'), `the image holds /opt/krata/guest/${f}`);
  }
  assert.match(script, /for f in kernel initrd/);
  assert.match(script, /dest=\/var\/lib\/krata\/default\n/);
  assert.match(script, /mv -f "\$dest\/\.\$f\.new" "\$dest\/\$f"/, 'replaced by a rename');
  // Metrics on the node's address, for Prometheus; the liveness probe reaches the same listener.
  assert.equal(flag(ac, '--metrics'), '$(NODE_IP):9477');
  assert.deepEqual(
    ac.ports.map((p: Obj) => [p.name, p.containerPort]),
    [['metrics', 9477]],
  );
  assert.deepEqual(ac.livenessProbe.httpGet, { path: '/metrics', port: 'metrics' });
  // Guests leave with the node's address: every private range (pod and Service ranges among them) is
  // denied, in a form the agent's own flag parser takes.
  const deny = (ac.args as string[]).flatMap((a, i, all) => (a === '--deny-cidr' ? [all[i + 1]!] : []));
  assert.deepEqual(deny, ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '100.64.0.0/10', 'fc00::/7']);
  assert.deepEqual(egressFlags(deny).denyCidrs, deny);
  assert.equal(fieldRef(ac, 'NODE_NAME'), 'spec.nodeName');
  // krata-api reaches each agent at the node's address over mutual TLS (the agent's own listener).
  assert.equal(flag(ac, '--tls-listen'), '0.0.0.0:9444');
  assert.equal(flag(ac, '--tls-advertise'), '$(NODE_IP):9444');
  assert.equal(fieldRef(ac, 'NODE_IP'), 'status.hostIP');
  assert.equal(ac.securityContext.privileged, true);
  const hostPaths = Object.fromEntries(
    ap.volumes
      .filter((v: Obj) => v.hostPath)
      .map((v: Obj) => [v.hostPath.path, ac.volumeMounts.find((m: Obj) => m.name === v.name)?.mountPath]),
  );
  assert.deepEqual(hostPaths, {
    '/dev': '/dev',
    '/run/xenstored': '/run/xenstored',
    '/var/lib/krata': '/var/lib/krata',
    '/run/krata': '/run/krata',
  });

  // Redis: no persistence, reachable through its Service, only from the operator and the agents.
  const redis = find(objs, 'Deployment', 'krata-redis');
  const rc = redis.spec.template.spec.containers[0];
  assert.equal(redis.spec.replicas, 1);
  assert.match(rc.image, /(^|\/)redis:7\.0$/);
  assert.match(args(rc), /--save {2}--appendonly no/);
  assert.equal(flag(rc, '--save'), '');
  assert.equal(flag(rc, '--protected-mode'), undefined);
  assert.equal(flag(rc, '--aclfile'), '/etc/krata/redis-acl/users.acl');
  assert.deepEqual(redis.spec.template.spec.volumes.find((v: Obj) => v.name === 'acl').secret, {
    secretName: 'krata-redis-acl',
    defaultMode: 0o440,
  });
  assert.equal(redis.spec.template.spec.securityContext.fsGroup, 999);
  assert.equal(redis.spec.template.spec.automountServiceAccountToken, false);
  const svc = find(objs, 'Service', 'krata-redis');
  assert.deepEqual(
    svc.spec.ports.map((p: Obj) => p.port),
    [6379],
  );
  for (const w of workloads)
    assert.equal(matches(svc.spec.selector, w.spec.template.metadata.labels), w === redis, `Service selects ${w.metadata.name}?`);
  const np = find(objs, 'NetworkPolicy', 'krata-redis');
  assert.ok(matches(np.spec.podSelector.matchLabels, redis.spec.template.metadata.labels));
  assert.deepEqual(np.spec.policyTypes, ['Ingress']);
  const allowed = workloads.filter((w) =>
    np.spec.ingress[0].from.some((f: Obj) => matches(f.podSelector.matchLabels, w.spec.template.metadata.labels)),
  );
  assert.deepEqual(allowed.map((w) => w.metadata.name).sort(), ['krata-node-agent', 'krata-operator']);
  assert.equal(np.spec.ingress.length, 1);
});

test("every flag the manifests pass is in the program's --help", async () => {
  const objs = await kustomize('manifests/');
  const compiled = fileURLToPath(new URL('../../', import.meta.url)); // dist/ (or wherever tsc wrote this file)
  for (const [kind, name, program] of [
    ['Deployment', 'krata-operator', 'operator/main.js'],
    ['DaemonSet', 'krata-node-agent', 'node-agent/main.js'],
  ] as const) {
    const help = await run(process.execPath, [join(compiled, program), '--help']);
    assert.equal(help.code, 0, help.stderr);
    for (const a of find(objs, kind, name).spec.template.spec.containers[0].args as string[]) {
      if (a.startsWith('--')) assert.ok(help.stdout.includes(`${a} `), `${program} --help lists ${a}`);
    }
  }
});

test('manifests/kube-1.20/ builds the same install, with the PodDisruptionBudget as policy/v1beta1', async () => {
  const main = byName(await kustomize('manifests/'));
  const old = byName(await kustomize('manifests/kube-1.20/'));
  assert.deepEqual([...old.keys()].sort(), [...main.keys()].sort());
  for (const [key, o] of old) {
    if (o.kind === 'PodDisruptionBudget') assert.deepEqual({ ...o, apiVersion: 'policy/v1' }, main.get(key));
    else assert.deepEqual(o, main.get(key), key);
  }
  assert.equal(old.get('PodDisruptionBudget/krata-operator')!.apiVersion, 'policy/v1beta1');
});

test("the node agent's init container installs the image's kernel and initrd, once, and replaces them when they change", async () => {
  const agent = find(await kustomize('manifests/'), 'DaemonSet', 'krata-node-agent');
  const install = (agent.spec.template.spec.initContainers as Obj[])[0]!;
  assert.deepEqual(install.command, ['/bin/sh', '-ec']);
  const dir = mkdtempSync(join(tmpdir(), 'krata-boot-files-'));
  try {
    // The script as the DaemonSet runs it, with the image's and the host's directories moved under `dir`.
    const script = (install.args as string[])[0]!.replaceAll('/var/lib/krata', `${dir}/host`).replaceAll('/opt/krata', `${dir}/image`);
    mkdirSync(join(dir, 'image/guest'), { recursive: true });
    writeFileSync(join(dir, 'image/guest/kernel'), 'kernel 1');
    writeFileSync(join(dir, 'image/guest/initrd'), 'initrd 1');
    const runIt = () => run('/bin/sh', ['-ec', script]);
    let r = await runIt();
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `installed ${dir}/host/default/kernel\ninstalled ${dir}/host/default/initrd\n`);
    assert.equal(readFileSync(join(dir, 'host/default/kernel'), 'utf8'), 'kernel 1');
    r = await runIt();
    assert.equal(r.stdout, '', 'nothing to do when the host has the same files');
    writeFileSync(join(dir, 'image/guest/initrd'), 'initrd 2');
    r = await runIt();
    assert.equal(r.stdout, `installed ${dir}/host/default/initrd\n`);
    assert.equal(readFileSync(join(dir, 'host/default/initrd'), 'utf8'), 'initrd 2');
    assert.deepEqual(readdirSync(join(dir, 'host/default')).sort(), ['initrd', 'kernel'], 'no temporary file is left');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

const RECOMMENDED = ['name', 'instance', 'version', 'component', 'part-of', 'managed-by'].map((k) => `app.kubernetes.io/${k}`);

test("every object of the install and its pods carry Kubernetes' recommended labels (spelt out: no commonLabels)", async () => {
  const objs = [...(await kustomize('manifests/')), ...(await kustomize('manifests/monitoring/'))];
  const check = (labels: Record<string, string> | undefined, what: string) => {
    for (const k of RECOMMENDED) assert.ok(labels?.[k], `${what} has ${k}`);
    assert.equal(labels!['app.kubernetes.io/name'], 'krata', what);
    assert.equal(labels!['app.kubernetes.io/instance'], 'krata', what);
    assert.equal(labels!['app.kubernetes.io/part-of'], 'krata', what);
    assert.equal(labels!['app.kubernetes.io/version'], VERSION, `${what}: the version label is package.json's`);
    assert.equal(labels!['app.kubernetes.io/managed-by'], 'kustomize', what);
  };
  for (const o of objs) {
    check(o.metadata.labels, `${o.kind}/${o.metadata.name}`);
    if (o.spec?.template?.metadata) {
      check(o.spec.template.metadata.labels, `${o.kind}/${o.metadata.name}'s pods`);
      // Selectors stay what they were (immutable): name and component only, never the version.
      assert.deepEqual(Object.keys(o.spec.selector.matchLabels).sort(), ['app.kubernetes.io/component', 'app.kubernetes.io/name']);
    }
  }
});

test('the Containerfile: Node 22 base, OCI labels with the package version, the guest kernel and initrd built in', () => {
  const containerfile = readFileSync(join(root, 'Containerfile'), 'utf8');
  assert.match(containerfile, /^ARG NODE_IMAGE=docker\.io\/library\/node:22-bookworm-slim$/m);
  const labels = Object.fromEntries(
    [...containerfile.matchAll(/(org\.opencontainers\.image\.[\w.]+)="([^"]*)"/g)].map((m) => [m[1]!, m[2]!]),
  );
  assert.equal(labels['org.opencontainers.image.version'], VERSION);
  assert.equal(labels['org.opencontainers.image.licenses'], 'Apache-2.0');
  for (const k of ['title', 'description', 'base.name']) assert.ok(labels[`org.opencontainers.image.${k}`], k);
  // guest-init from guest-init/, the kernel from kernel/build.sh, the initrd from the agent's own writer.
  assert.match(containerfile, /^COPY guest-init \.\/$/m);
  assert.match(containerfile, /cargo build --offline --release/);
  assert.match(containerfile, /\/src\/kernel\/build\.sh \/out/);
  assert.match(containerfile, /buildInitrd\(guestInitrdEntries\(readFileSync\('\/guest-init'\), \[\]\)\)/);
  assert.match(containerfile, /^COPY --from=kernel \/out\/bzImage \/opt\/krata\/guest\/kernel$/m);
  assert.match(containerfile, /^COPY --from=build \/src\/initrd \/opt\/krata\/guest\/initrd$/m);
});

test('manifests/monitoring/: one ServiceMonitor scraping the operator, krata-api and every agent', async () => {
  const install = await kustomize('manifests/');
  const [sm, ...more] = await kustomize('manifests/monitoring/');
  assert.equal(more.length, 0);
  assert.equal(sm!.kind, 'ServiceMonitor');
  assert.equal(sm!.metadata.namespace, 'krata-system');
  const port = sm!.spec.endpoints[0].port as string;
  const scraped = install.filter(
    (o) =>
      o.kind === 'Service' && matches(sm!.spec.selector.matchLabels, o.metadata.labels) && o.spec.ports.some((p: Obj) => p.name === port),
  );
  assert.deepEqual(scraped.map((o) => o.metadata.name).sort(), ['krata-api-metrics', 'krata-node-agent-metrics', 'krata-operator-metrics']);
  const workloads = install.filter((o) => o.kind === 'Deployment' || o.kind === 'DaemonSet');
  for (const svc of scraped) {
    const target = svc.spec.ports.find((p: Obj) => p.name === port).targetPort as string;
    const pods = workloads.filter((w) => matches(svc.spec.selector, w.spec.template.metadata.labels));
    assert.equal(pods.length, 1, `${svc.metadata.name} selects one workload`);
    const c = pods[0]!.spec.template.spec.containers[0];
    assert.ok(
      c.ports?.some((p: Obj) => p.name === target),
      `${svc.metadata.name}: ${pods[0]!.metadata.name} has a port named ${target}`,
    );
  }
  // The agents' Service is headless: one endpoint per agent (its node's address), not a load balancer.
  assert.equal(find(install, 'Service', 'krata-node-agent-metrics').spec.clusterIP, 'None');
});

// Against a real kube-apiserver from here on. The tests below run in order: the install first.
describe('on a real kube-apiserver', () => {
  let variant = 'manifests/';
  before(async () => {
    env = await startEnvtest();
    const version = JSON.parse(await kubeOk('version', '-o', 'json')) as { serverVersion: { minor: string } };
    if (parseInt(version.serverVersion.minor, 10) < 21) variant = 'manifests/kube-1.20/';
  });
  after(() => env?.stop());

  test('kubectl apply -k installs krata on a real apiserver, and applying again changes nothing', async () => {
    const first = await kubeOk('apply', '-k', variant);
    assert.match(first, /customresourcedefinition\.apiextensions\.k8s\.io\/guests\.krata\.dev created/);
    assert.match(first, /daemonset\.apps\/krata-node-agent created/);
    await kubeOk('wait', '--for=condition=Established', '--timeout=30s', 'crd/guests.krata.dev', 'crd/xenhosts.krata.dev');
    // Stored, not just accepted (no controllers run here, so no pods ever start: that is expected).
    const names = (
      await kubeOk(
        'get',
        '-n',
        'krata-system',
        'deployment,daemonset,service,serviceaccount,role,rolebinding,networkpolicy,poddisruptionbudget',
        '-o',
        'name',
      )
    )
      .split('\n')
      .filter(Boolean);
    for (const n of [
      'deployment.apps/krata-operator',
      'deployment.apps/krata-redis',
      'daemonset.apps/krata-node-agent',
      'service/krata-redis',
      'serviceaccount/krata-operator',
      'serviceaccount/krata-node-agent',
      'role.rbac.authorization.k8s.io/krata-operator-leader-election',
      'rolebinding.rbac.authorization.k8s.io/krata-operator-leader-election',
      'networkpolicy.networking.k8s.io/krata-redis',
      'poddisruptionbudget.policy/krata-operator',
    ]) {
      assert.ok(names.includes(n), `${n} exists (have ${names.join(', ')})`);
    }
    await kubeOk(
      'get',
      'clusterrole/krata-operator',
      'clusterrole/krata-pull-secret-reader',
      'clusterrole/krata-guest-editor',
      'clusterrole/krata-guest-viewer',
      'clusterrolebinding/krata-operator',
    );
    const again = await kubeOk('apply', '-k', variant);
    for (const line of again.trim().split('\n')) assert.match(line, / unchanged$/);
  });

  // Empty strings included (pinned.yaml's args): scripts/build-kube-apiserver patches the 1.20 validator
  // that took "" for null under Go 1.19.
  test('the examples apply and are stored with the defaults kratactl computes', async () => {
    const r = await kube('apply', '-f', 'manifests/examples/');
    // No krata-api runs here, so discovery of its aggregated group fails and kubectl says so (as on any
    // cluster while krata-api starts); anything else is an error.
    const errors = r.stderr
      .split('\n')
      .filter((l) => l.trim() && !l.startsWith('Warning:') && !/couldn't get resource list for subresources\.krata\.dev\/v1alpha1/.test(l));
    assert.deepEqual(errors, [], r.stderr);
    const stored = new Map<string, Obj>();
    for (const kind of ['guests.krata.dev', 'xenhosts.krata.dev', 'guestsets.krata.dev']) {
      for (const o of (JSON.parse(await kubeOk('get', kind, '--all-namespaces', '-o', 'json')) as { items: Obj[] }).items) {
        stored.set(`${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`, o);
      }
    }
    let count = 0;
    for (const file of readdirSync(join(root, 'manifests/examples')).filter((f) => f.endsWith('.yaml'))) {
      for (const doc of parseAllDocuments(readFileSync(join(root, 'manifests/examples', file), 'utf8'), { version: '1.1' })) {
        const v = validateObject(doc.toJS());
        assert.deepEqual(v.errors, [], file);
        const o = v.object as Obj;
        const ns = o.kind !== 'XenHost' ? (o.metadata.namespace ?? 'default') : '';
        const got = stored.get(`${o.kind}/${ns}/${o.metadata.name}`);
        assert.ok(got, `${file}: ${o.kind} ${o.metadata.name} is stored`);
        assert.deepEqual(got.spec, o.spec, `${file}: ${o.metadata.name}: the apiserver's defaults are kratactl's`);
        count++;
      }
    }
    assert.equal(stored.size, count);
    assert.ok(count >= 6);
  });

  /** `kubectl auth can-i` as `user`: true for yes. */
  /**
   * A SubjectAccessReview asked directly: `kubectl auth can-i` cannot name a resource of a group whose
   * discovery fails (no krata-api runs here), and would ask about a group-less resource instead.
   */
  async function canSub(user: string, verb: string, sub: string, ns?: string): Promise<boolean> {
    const resourceAttributes = {
      group: 'subresources.krata.dev',
      resource: 'guests',
      subresource: sub,
      verb,
      ...(ns ? { namespace: ns } : {}),
    };
    const review = { apiVersion: 'authorization.k8s.io/v1', kind: 'SubjectAccessReview', spec: { user, resourceAttributes } };
    const r = await kubeIn(JSON.stringify(review), 'create', '-f', '-', '-o', 'json');
    assert.equal(r.code, 0, r.stderr);
    return (JSON.parse(r.stdout) as Obj).status?.allowed === true;
  }

  async function can(user: string, verb: string, resource: string, opts: { ns?: string; sub?: string } = {}): Promise<boolean> {
    if (resource === SUB) return canSub(user, verb, opts.sub!, opts.ns);
    const scope = opts.ns ? ['-n', opts.ns] : ['--all-namespaces'];
    const r = await kube('auth', 'can-i', verb, resource, ...scope, ...(opts.sub ? [`--subresource=${opts.sub}`] : []), `--as=${user}`);
    const answer = r.stdout.trim().split(/\s/)[0];
    assert.ok(answer === 'yes' || answer === 'no', `can-i ${verb} ${resource}: ${r.stdout}${r.stderr}`);
    return answer === 'yes';
  }

  async function expectCan(user: string, cases: [boolean, string, string, { ns?: string; sub?: string }?][]) {
    const answers = await Promise.all(cases.map(([, verb, resource, opts]) => can(user, verb, resource, opts)));
    const wrong = cases
      .filter(([want], i) => answers[i] !== want)
      .map(
        ([want, verb, res, opts]) =>
          `${want ? 'cannot' : 'CAN'} ${verb} ${res}${opts?.sub ? '/' + opts.sub : ''}${opts?.ns ? ' -n ' + opts.ns : ' (all namespaces)'}`,
      );
    assert.deepEqual(wrong, [], `${user}: ${wrong.join('; ')}`);
  }

  test("the operator's ServiceAccount may do what the operator does, and no more", async () => {
    const G = 'guests.krata.dev';
    const GS = 'guestsets.krata.dev';
    const H = 'xenhosts.krata.dev';
    const L = 'leases.coordination.k8s.io';
    await expectCan(OPERATOR_SA, [
      [true, 'list', G],
      [true, 'watch', G],
      [true, 'patch', G, { ns: 'default' }], // finalizers
      [true, 'patch', G, { ns: 'default', sub: 'status' }],
      [true, 'update', G, { ns: 'default', sub: 'finalizers' }],
      // GuestSets: reads them, writes their status, makes and removes their Guests.
      [true, 'watch', GS],
      [true, 'patch', GS, { ns: 'default', sub: 'status' }],
      [true, 'update', GS, { ns: 'default', sub: 'finalizers' }],
      [true, 'create', G, { ns: 'default' }],
      [true, 'delete', G, { ns: 'default' }],
      [false, 'update', GS, { ns: 'default' }],
      [false, 'patch', GS, { ns: 'default' }],
      [false, 'patch', GS, { ns: 'default', sub: 'scale' }],
      [true, 'create', H],
      [true, 'watch', H],
      [true, 'patch', H, { sub: 'status' }],
      [true, 'create', 'events', { ns: 'default' }],
      [true, 'patch', 'events', { ns: 'team-a' }],
      [true, 'get', `${L}/krata-operator`, { ns: 'krata-system' }],
      [true, 'update', `${L}/krata-operator`, { ns: 'krata-system' }],
      [true, 'create', L, { ns: 'krata-system' }],
      // Redis credentials: makes them, then reads and fixes only its three Secrets.
      [true, 'create', 'secrets', { ns: 'krata-system' }],
      [true, 'get', 'secrets/krata-redis-operator', { ns: 'krata-system' }],
      [true, 'get', 'secrets/krata-redis-agent', { ns: 'krata-system' }],
      [true, 'update', 'secrets/krata-redis-acl', { ns: 'krata-system' }],
      [false, 'get', 'secrets/krata-operator-token', { ns: 'krata-system' }],
      [false, 'list', 'secrets', { ns: 'krata-system' }],
      [false, 'watch', 'secrets', { ns: 'krata-system' }],
      [false, 'delete', 'secrets/krata-redis-acl', { ns: 'krata-system' }],
      [false, 'patch', 'secrets/krata-redis-acl', { ns: 'krata-system' }],
      [false, 'create', 'secrets', { ns: 'default' }],
      // The PKI (operator/pki/): the krata CA and krata-api's two Secrets, by name; the APIService's caBundle.
      [true, 'get', 'secrets/krata-ca', { ns: 'krata-system' }],
      [true, 'update', 'secrets/krata-ca', { ns: 'krata-system' }],
      [true, 'get', 'secrets/krata-api-serving', { ns: 'krata-system' }],
      [true, 'update', 'secrets/krata-api-client', { ns: 'krata-system' }],
      [false, 'get', 'secrets/krata-ca', { ns: 'default' }],
      [false, 'delete', 'secrets/krata-ca', { ns: 'krata-system' }],
      [true, 'get', 'apiservices.apiregistration.k8s.io/v1alpha1.subresources.krata.dev'],
      [true, 'patch', 'apiservices.apiregistration.k8s.io/v1alpha1.subresources.krata.dev'],
      [false, 'patch', 'apiservices.apiregistration.k8s.io/v1.apps'],
      [false, 'create', 'apiservices.apiregistration.k8s.io'],
      [false, 'delete', 'apiservices.apiregistration.k8s.io/v1alpha1.subresources.krata.dev'],
      // Nodes: one by name, to see the krata.dev/xen label of a heartbeating host.
      [true, 'get', 'nodes/xen-1'],
      [false, 'list', 'nodes'],
      [false, 'watch', 'nodes'],
      [false, 'patch', 'nodes/xen-1'],
      [false, 'update', 'nodes/xen-1'],
      // Services naming a GuestSet: read; their EndpointSlices: kept (service-endpoints.ts).
      [true, 'list', 'services'],
      [true, 'watch', 'services'],
      [false, 'update', 'services', { ns: 'default' }],
      [false, 'delete', 'services', { ns: 'default' }],
      [true, 'list', 'endpointslices.discovery.k8s.io'],
      [true, 'patch', 'endpointslices.discovery.k8s.io', { ns: 'team-a' }],
      [true, 'delete', 'endpointslices.discovery.k8s.io', { ns: 'team-a' }],
      [false, 'update', 'endpoints', { ns: 'default' }],
      // Never writes a Guest's spec wholesale, deletes Guests wholesale, or touches XenHost spec.
      [false, 'update', G, { ns: 'default' }],
      [false, 'deletecollection', G, { ns: 'default' }],
      [false, 'patch', H],
      [false, 'update', H],
      [false, 'delete', H],
      // Leases: only its own, only in its namespace.
      [false, 'update', `${L}/kube-controller-manager`, { ns: 'kube-system' }],
      [false, 'update', `${L}/someone-else`, { ns: 'krata-system' }],
      [false, 'create', L, { ns: 'kube-system' }],
      [false, 'delete', `${L}/krata-operator`, { ns: 'krata-system' }],
      // Secrets only where a namespace opted in (next test), and nothing else of the cluster's.
      [false, 'get', 'secrets', { ns: 'kube-system' }],
      [false, 'get', 'secrets', { ns: 'default' }],
      [false, 'list', 'secrets'],
      [false, 'get', 'pods', { ns: 'default' }],
      [false, 'create', 'pods', { ns: 'default' }],
      [false, 'get', 'configmaps', { ns: 'krata-system' }],
      [false, 'create', 'rolebindings.rbac.authorization.k8s.io', { ns: 'default' }],
    ]);
  });

  test('pull secrets: a namespace opts in with one RoleBinding, and the operator can then get (not list) its Secrets', async () => {
    await kubeOk('create', 'namespace', 'pull-opt-in');
    await kubeOk(
      'create',
      'rolebinding',
      'krata-pull-secrets',
      '-n',
      'pull-opt-in',
      '--clusterrole=krata-pull-secret-reader',
      '--serviceaccount=krata-system:krata-operator',
    );
    await expectCan(OPERATOR_SA, [
      [true, 'get', 'secrets', { ns: 'pull-opt-in' }],
      [false, 'list', 'secrets', { ns: 'pull-opt-in' }],
      [false, 'watch', 'secrets', { ns: 'pull-opt-in' }],
      [false, 'get', 'secrets', { ns: 'kube-system' }],
    ]);
  });

  test("the node agent's ServiceAccount may do nothing at all", async () => {
    await expectCan(AGENT_SA, [
      [false, 'get', 'guests.krata.dev', { ns: 'default' }],
      [false, 'list', 'guests.krata.dev'],
      [false, 'patch', 'guests.krata.dev', { ns: 'default', sub: 'status' }],
      [false, 'get', 'xenhosts.krata.dev'],
      [false, 'create', 'events', { ns: 'default' }],
      [false, 'get', 'secrets', { ns: 'krata-system' }],
      [false, 'get', 'leases.coordination.k8s.io', { ns: 'krata-system' }],
    ]);
    // Only what every authenticated identity gets (self-reviews, discovery URLs).
    const list = await kubeOk('auth', 'can-i', '--list', '-n', 'krata-system', `--as=${AGENT_SA}`);
    const resources = list
      .split('\n')
      .slice(1)
      .map((l) => l.trim().split(/\s+/)[0]!)
      .filter((r) => r && !r.startsWith('['));
    assert.ok(resources.length > 0, list);
    for (const r of resources) assert.match(r, /^selfsubject\w+\.(authorization|authentication)\.k8s\.io$/, list);
  });

  test('krata-guest-editor and -viewer: Guests for people, never their status; aggregated into edit and view', async () => {
    const objs = await kustomize('manifests/');
    const label = (name: string, l: string) => find(objs, 'ClusterRole', name).metadata.labels[`rbac.authorization.k8s.io/${l}`];
    assert.equal(label('krata-guest-editor', 'aggregate-to-edit'), 'true');
    assert.equal(label('krata-guest-editor', 'aggregate-to-admin'), 'true');
    assert.equal(label('krata-guest-editor', 'aggregate-to-view'), undefined);
    assert.equal(label('krata-guest-viewer', 'aggregate-to-view'), 'true');
    // No controller manager runs here to aggregate, so bind the roles directly.
    await kubeOk('create', 'namespace', 'team-a');
    await kubeOk('create', 'rolebinding', 'alice-guests', '-n', 'team-a', '--clusterrole=krata-guest-editor', '--user=alice');
    await kubeOk('create', 'rolebinding', 'bob-guests', '-n', 'team-a', '--clusterrole=krata-guest-viewer', '--user=bob');
    await expectCan('alice', [
      [true, 'create', 'guests.krata.dev', { ns: 'team-a' }],
      [true, 'create', 'guestsets.krata.dev', { ns: 'team-a' }],
      [true, 'patch', 'guestsets.krata.dev', { ns: 'team-a', sub: 'scale' }],
      [false, 'patch', 'guestsets.krata.dev', { ns: 'team-a', sub: 'status' }],
      [true, 'update', 'guests.krata.dev', { ns: 'team-a' }],
      [true, 'delete', 'guests.krata.dev', { ns: 'team-a' }],
      [true, 'get', 'guests.krata.dev', { ns: 'team-a', sub: 'status' }],
      [false, 'patch', 'guests.krata.dev', { ns: 'team-a', sub: 'status' }],
      [false, 'update', 'guests.krata.dev', { ns: 'team-a', sub: 'status' }],
      [false, 'create', 'guests.krata.dev', { ns: 'default' }],
      [false, 'get', 'secrets', { ns: 'team-a' }],
      // krata-api's subresources: a way into running guests, for whoever may edit them.
      ...(['log', 'attach', 'exec', 'portforward', 'top'].map((sub) => [true, 'get', SUB, { ns: 'team-a', sub }]) as [
        true,
        string,
        string,
        { ns: string; sub: string },
      ][]),
      [false, 'get', SUB, { ns: 'default', sub: 'exec' }],
    ]);
    await expectCan('bob', [
      [true, 'list', 'guests.krata.dev', { ns: 'team-a' }],
      [true, 'list', 'guestsets.krata.dev', { ns: 'team-a' }],
      [false, 'patch', 'guestsets.krata.dev', { ns: 'team-a', sub: 'scale' }],
      [true, 'watch', 'guests.krata.dev', { ns: 'team-a' }],
      [false, 'create', 'guests.krata.dev', { ns: 'team-a' }],
      [false, 'delete', 'guests.krata.dev', { ns: 'team-a' }],
      [false, 'list', 'guests.krata.dev', { ns: 'default' }],
      [true, 'get', SUB, { ns: 'team-a', sub: 'log' }],
      [true, 'get', SUB, { ns: 'team-a', sub: 'top' }],
      [false, 'get', SUB, { ns: 'team-a', sub: 'exec' }],
      [false, 'get', SUB, { ns: 'team-a', sub: 'attach' }],
      [false, 'get', SUB, { ns: 'team-a', sub: 'portforward' }],
    ]);
  });

  test("krata-api's ServiceAccount reads Guests and XenHosts, asks the apiserver who may do what, and no more", async () => {
    const KA = 'system:serviceaccount:krata-system:krata-api';
    await expectCan(KA, [
      [true, 'get', 'guests.krata.dev', { ns: 'default' }],
      [true, 'watch', 'guests.krata.dev'],
      [true, 'get', 'xenhosts.krata.dev'],
      [true, 'create', 'subjectaccessreviews.authorization.k8s.io'],
      [true, 'get', 'configmaps/extension-apiserver-authentication', { ns: 'kube-system' }],
      [false, 'get', 'configmaps/kubeadm-config', { ns: 'kube-system' }],
      [false, 'list', 'configmaps', { ns: 'kube-system' }],
      [false, 'patch', 'guests.krata.dev', { ns: 'default' }],
      [false, 'patch', 'guests.krata.dev', { ns: 'default', sub: 'status' }],
      [false, 'get', 'secrets', { ns: 'krata-system' }],
      [false, 'create', 'events', { ns: 'default' }],
      [false, 'get', SUB, { ns: 'default', sub: 'exec' }],
    ]);
  });
});
