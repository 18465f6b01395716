// Who may do what in krata's Redis: the ACL file the install gives redis-server (`--aclfile`), rendered
// from the two passwords the operator generates (operator/redis-credentials.ts). The file holds only
// SHA-256 hashes of the passwords, never the passwords.
//  - `default` is off and has no password: a client that has not authenticated can run nothing
//    (NOAUTH), and protected mode, which only guards a password-less default user, stays irrelevant.
//  - krata-operator: every krata key, the commands the operator and BullMQ's Queue use.
//  - krata-agent: reads the desired hashes and krata:epoch, never writes them; writes status hashes,
//    the status stream (write only: it cannot read other hosts' reports back from it), heartbeats,
//    certificate requests (write only), reads issued certificates (never writes them), and
//    runs BullMQ workers on the host queues. No admin command for either (FLUSH*, CONFIG, ACL, KEYS,
//    DEBUG, MODULE, SHUTDOWN, INFO, CLIENT KILL/LIST, ...): nothing is granted that is not listed here.
// Redis applies a user's ACL to the commands its Lua scripts call as well, so EVAL grants nothing more.
// All agents share one user: an agent can report under another host's name, but no agent can change
// what any host runs (test/cluster/redis-acl.test.ts checks both against the real redis-server).
import { createHash } from 'node:crypto';
import { EPOCH_KEY, QUEUE_PREFIX, STATUS_STREAM } from './contract.js';

export const OPERATOR_USER = 'krata-operator';
export const AGENT_USER = 'krata-agent';

/** What BullMQ 6.7's Lua scripts call (node_modules/bullmq/dist/esm/commands/*.lua; a test keeps this in step). */
export const BULLMQ_SCRIPT_COMMANDS = [
  'del',
  'exists',
  'get',
  'hdel',
  'hexists',
  'hget',
  'hgetall',
  'hincrby',
  'hlen',
  'hmget',
  'hmset',
  'hset',
  'incr',
  'incrby',
  'lindex',
  'llen',
  'lpop',
  'lpos',
  'lpush',
  'lrange',
  'lrem',
  'lset',
  'ltrim',
  'persist',
  'pexpire',
  'pexpireat',
  'pttl',
  'rename',
  'rpop',
  'rpoplpush',
  'rpush',
  'sadd',
  'scard',
  'set',
  'sismember',
  'smembers',
  'srem',
  'time',
  'type',
  'unlink',
  'xadd',
  'xdel',
  'xlen',
  'xrange',
  'xread',
  'xtrim',
  'zadd',
  'zcard',
  'zcount',
  'zlexcount',
  'zpopmin',
  'zrange',
  'zrangebylex',
  'zrangebyscore',
  'zrem',
  'zremrangebyrank',
  'zremrangebyscore',
  'zrevrange',
  'zrevrangebyscore',
  'zscore',
];

/**
 * Every client: liveness, its connection name, transactions, and BullMQ's scripts (ioredis runs EVALSHA, then EVAL when Redis
 * lacks the script).
 */
const COMMON = ['ping', 'client|setname', 'multi', 'exec', 'discard', 'evalsha', 'eval'];

/** What the operator calls itself: desired hashes, the epoch, heartbeats (SCAN + MGET), status hashes and stream. */
const OPERATOR_COMMANDS = [...COMMON, ...BULLMQ_SCRIPT_COMMANDS, 'scan', 'mget', 'xrevrange', 'hkeys'];

/** What the agent calls itself (node-agent/follower/), plus the BullMQ worker: the blocking wait for a job. */
const AGENT_COMMANDS = [...COMMON, ...BULLMQ_SCRIPT_COMMANDS, 'hkeys', 'bzpopmin'];

/** Host queues are `krata:bull:krata-host-{host}:*` (contract.ts queueName). */
const HOST_QUEUES = `${QUEUE_PREFIX}:krata-host-*`;

/** The agent's keys: read-only (%R~), read-write (~) and write-only (%W~). */
export const AGENT_KEYS = [
  `%R~${EPOCH_KEY}`,
  '%R~krata:host:*:desired',
  '~krata:host:*:status',
  '~krata:host:*:heartbeat',
  // The TLS listener's certificate: the agent writes its request and reads the operator's answer.
  '%W~krata:host:*:cert-request',
  '%R~krata:host:*:cert',
  `%W~${STATUS_STREAM}`,
  `~${HOST_QUEUES}`,
];

export const sha256 = (password: string) => createHash('sha256').update(password, 'utf8').digest('hex');

/** A password the ACL file can hold: printable, no spaces (one ACL token), long enough to be a secret. */
export function checkPassword(password: string, what: string): string {
  if (!/^[\x21-\x7e]{16,256}$/.test(password))
    throw new Error(`${what}: a Redis password must be 16 to 256 printable ASCII characters without spaces`);
  return password;
}

/** The ACL file for redis-server's --aclfile. */
export function renderAclFile(passwords: { operator: string; agent: string }): string {
  const user = (name: string, password: string, keys: string[], commands: string[]) =>
    `user ${name} on #${sha256(checkPassword(password, name))} resetchannels ` +
    `${keys.join(' ')} -@all ${commands.map((c) => `+${c}`).join(' ')}`;
  return [
    'user default off resetpass resetkeys resetchannels -@all',
    user(OPERATOR_USER, passwords.operator, ['~krata:*'], OPERATOR_COMMANDS),
    user(AGENT_USER, passwords.agent, AGENT_KEYS, AGENT_COMMANDS),
    '',
  ].join('\n');
}
