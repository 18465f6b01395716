// Connection options for the Redis that the operator and the node agents meet in: both programs parse
// `--redis URL` (and the ACL password from a file) the same way, so it lives with the contract.
import { readFileSync } from 'node:fs';
import type { RedisOptions } from 'ioredis';

/** ioredis options from `redis[s]://[user[:password]@]host[:port][/db]`; the password may come from a file instead. */
export function redisOptions(url: string, passwordFile?: string): RedisOptions {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new Error(`--redis ${JSON.stringify(url)}: expected redis://host[:port][/db]`);
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:')
    throw new Error(`--redis ${JSON.stringify(redactedUrl(url))}: expected redis:// or rediss://`);
  if (!u.hostname) throw new Error(`--redis ${JSON.stringify(redactedUrl(url))}: no host`);
  const db = u.pathname.replace(/^\//, '');
  if (db !== '' && !/^\d{1,2}$/.test(db))
    throw new Error(`--redis ${JSON.stringify(redactedUrl(url))}: the path must be a database number`);
  if (u.password && passwordFile)
    throw new Error('--redis has a password and --redis-password-file was given too: keep it in the file only');
  const password = passwordFile ? readPasswordFile(passwordFile) : decodeURIComponent(u.password);
  return {
    host: u.hostname.replace(/^\[|\]$/g, ''),
    port: u.port ? Number(u.port) : 6379,
    db: db ? Number(db) : 0,
    ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
    ...(password ? { password } : {}),
    ...(u.protocol === 'rediss:' ? { tls: {} } : {}),
  };
}

function readPasswordFile(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`--redis-password-file ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { cause: e });
  }
  const password = text.replace(/\r?\n$/, '');
  if (!password) throw new Error(`--redis-password-file ${file}: the file is empty`);
  return password;
}

/** The URL without its password, for logs and messages. */
export function redactedUrl(url: string): string {
  try {
    const u = new URL(url);
    u.password = '';
    return u.toString().replace(/\/$/, '');
  } catch {
    return '(unparsable URL)';
  }
}
