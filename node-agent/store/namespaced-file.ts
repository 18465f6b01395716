// The layout the single host's Secrets and ApplySet parents share: <dir>/<namespace>/<name>.json, mode
// 0600 in 0700 directories, written atomically.
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { writeFileAtomic } from '../../lib/atomic-file.js';
import { isNamespaceName, isPullSecretName } from '../../contracts/agent-api/pull-secret.js';

/** The file of `namespace`/`name`; both are checked (DNS label, DNS subdomain): neither can hold "/" or be "..". */
export function namespacedFile(dir: string, namespace: string, name: string, what: string): string {
  if (!isNamespaceName(namespace) || !isPullSecretName(name))
    throw new Error(`invalid ${what} name ${JSON.stringify(`${namespace}/${name}`.slice(0, 300))}`);
  return join(dir, namespace, `${name}.json`);
}

/** Writes one such file atomically, making its namespace's directory if need be. */
export function writeNamespacedFile(file: string, json: string): void {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  writeFileAtomic(file, json, 0o600);
}
