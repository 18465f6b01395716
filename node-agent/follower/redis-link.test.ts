import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startRedis } from '../../test/redis.js';
import { RedisLink } from './redis-link.js';

test('a lost connection is an outage (warn), a refused command is a problem (error); each said once', async () => {
  const redis = await startRedis();
  const lines: { level: string; msg: string; source?: string }[] = [];
  const at = (level: string) => (obj: object, msg: string) => lines.push({ level, msg, ...(obj as { source?: string }) });
  const link = new RedisLink({ port: redis.port, host: '127.0.0.1' }, redis.url, {
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
  });
  try {
    await new Promise<void>((resolve) => (link.up ? resolve() : link.onReady(resolve)));
    link.problem('jobs', new Error('read ECONNRESET'));
    link.problem('jobs', new Error('read ECONNRESET'));
    link.problem('status', new Error("NOPERM User krata-agent has no permissions to run the 'keys' command"));
    const said = lines.filter((l) => l.level === 'warn' || l.level === 'error');
    assert.deepEqual(
      said.map((l) => [l.level, l.source, l.msg.split(';')[0]]),
      [
        ['warn', 'jobs', 'Redis is unreachable from one connection'],
        ['error', 'status', 'Redis operation failed'],
      ],
    );
  } finally {
    await link.close();
    await redis.stop();
  }
});
