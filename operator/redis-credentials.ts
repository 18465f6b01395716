// Redis credentials for the default install, where `kubectl apply -k` cannot make random passwords:
// the operator (which has Kubernetes credentials) makes them. Three Secrets in its namespace:
//   krata-redis-operator  `password`   the operator's; read here through the API, mounted by nobody
//   krata-redis-agent     `password`   the agents'; mounted by the node-agent DaemonSet
//   krata-redis-acl       `users.acl`  the ACL file (password hashes only); mounted by Redis
// A missing password Secret is created with a random password (an administrator may create them first
// with passwords of their own); the ACL Secret is then made to match both. Replicas racing to create
// converge: whoever loses the create reads the winner's. Pods that mount a Secret wait until it exists.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { AGENT_USER, OPERATOR_USER, checkPassword, renderAclFile } from '../contracts/redis/acl.js';
import { isConflict, isNotFound, type KubeClient } from './kube/client.js';

export const OPERATOR_SECRET = 'krata-redis-operator';
export const AGENT_SECRET = 'krata-redis-agent';
export const ACL_SECRET = 'krata-redis-acl';
export const PASSWORD_KEY = 'password';
export const ACL_KEY = 'users.acl';

interface Secret {
  apiVersion?: string;
  kind?: string;
  metadata: { name: string; namespace?: string; resourceVersion?: string; labels?: Record<string, string> };
  type?: string;
  data?: Record<string, string>;
}

const path = (ns: string, name?: string) =>
  `/api/v1/namespaces/${encodeURIComponent(ns)}/secrets${name ? `/${encodeURIComponent(name)}` : ''}`;
const LABELS = { 'app.kubernetes.io/name': 'krata', 'app.kubernetes.io/part-of': 'krata' };

function secret(ns: string, name: string, data: Record<string, string>, resourceVersion?: string): Secret {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name, namespace: ns, labels: { ...LABELS }, ...(resourceVersion ? { resourceVersion } : {}) },
    type: 'Opaque',
    data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v, 'utf8').toString('base64')])),
  };
}

async function get(kube: KubeClient, ns: string, name: string): Promise<Secret | undefined> {
  try {
    return await kube.request<Secret>('GET', path(ns, name));
  } catch (e) {
    if (isNotFound(e)) return undefined;
    throw e;
  }
}

const value = (s: Secret, key: string): string | undefined =>
  s.data?.[key] === undefined ? undefined : Buffer.from(s.data[key], 'base64').toString('utf8');

/** The Secret's password, creating the Secret with a random one if it does not exist. */
async function password(kube: KubeClient, ns: string, name: string, log: (msg: string) => void): Promise<string> {
  let s = await get(kube, ns, name);
  if (!s) {
    try {
      s = await kube.request<Secret>('POST', path(ns), {
        body: secret(ns, name, { [PASSWORD_KEY]: randomBytes(32).toString('base64url') }),
      });
      log(`created Secret ${ns}/${name} with a new random Redis password`);
    } catch (e) {
      if (!isConflict(e)) throw e;
      s = await get(kube, ns, name);
      if (!s) throw new Error(`Secret ${ns}/${name} was created and deleted again while the operator read it`, { cause: e });
    }
  }
  const pw = value(s, PASSWORD_KEY);
  if (pw === undefined) throw new Error(`Secret ${ns}/${name} has no key "${PASSWORD_KEY}"`);
  return checkPassword(pw.replace(/\r?\n$/, ''), `Secret ${ns}/${name} key "${PASSWORD_KEY}"`);
}

/**
 * Makes sure the three Secrets exist and agree; returns the user and password the operator connects
 * with. The ACL Secret is rewritten when it does not match the passwords or krata's rules; Redis reads
 * it at start, so it must then be restarted (manifests/README.md says so).
 */
export async function ensureRedisCredentials(
  kube: KubeClient,
  ns: string,
  log: (msg: string) => void = () => undefined,
): Promise<{ username: string; password: string }> {
  const operator = await password(kube, ns, OPERATOR_SECRET, log);
  const agent = await password(kube, ns, AGENT_SECRET, log);
  const acl = renderAclFile({ operator, agent });
  for (;;) {
    const cur = await get(kube, ns, ACL_SECRET);
    if (cur && value(cur, ACL_KEY) === acl) break;
    try {
      if (!cur) await kube.request('POST', path(ns), { body: secret(ns, ACL_SECRET, { [ACL_KEY]: acl }) });
      else
        await kube.request('PUT', path(ns, ACL_SECRET), { body: secret(ns, ACL_SECRET, { [ACL_KEY]: acl }, cur.metadata.resourceVersion) });
      log(
        `${cur ? 'updated' : 'created'} Secret ${ns}/${ACL_SECRET} (Redis users ` +
          `${OPERATOR_USER} and ${AGENT_USER})${cur ? '; restart Redis to load it' : ''}`,
      );
      break;
    } catch (e) {
      // Another replica wrote it meanwhile: read again (it wrote the same thing, from the same passwords).
      if (!isConflict(e)) throw e;
    }
  }
  return { username: OPERATOR_USER, password: operator };
}

/** Who the operator is to Redis: the URL's user, a password file, or the Secrets it manages (redis-credentials.ts). */
export async function redisCredentials(
  kube: KubeClient,
  url: string,
  passwordFile: string | undefined,
  namespace: string | undefined,
  log: (msg: string) => void,
): Promise<{ redisUsername?: string; redisPassword?: string }> {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new Error(`--redis ${JSON.stringify(url)}: expected redis://[user@]host[:port][/db]`);
  }
  if (u.password && (passwordFile || namespace))
    throw new Error(
      '--redis has a password and --redis-password-file or --redis-credentials-namespace was given too: keep it out of the URL',
    );
  if (namespace) {
    if (passwordFile) throw new Error('--redis-password-file and --redis-credentials-namespace: give one, not both');
    const { username, password } = await ensureRedisCredentials(kube, namespace, log);
    if (u.username && decodeURIComponent(u.username) !== username)
      throw new Error(
        `--redis names user ${JSON.stringify(decodeURIComponent(u.username))}; ` +
          `with --redis-credentials-namespace the operator is ${username}`,
      );
    return { redisUsername: username, redisPassword: password };
  }
  if (passwordFile) {
    const password = readFileSync(passwordFile, 'utf8').replace(/\r?\n$/, '');
    if (!password) throw new Error(`--redis-password-file ${passwordFile}: the file is empty`);
    return { redisPassword: password };
  }
  return {};
}
