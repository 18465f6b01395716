// Each subresource's query, checked before anything else is asked (SUBRESOURCE_QUERY): an unknown or
// malformed parameter is a 400 that names it. The answer is the agent's query for the mapped route.
import { execQueryString } from '../contracts/agent-api/exec.js';
import { SUBRESOURCE_QUERY, type GuestSubresource } from '../contracts/krata-api/subresources.js';
import { StatusError } from './status.js';

const bad = (param: string, why: string) => new StatusError(400, `query parameter "${param}": ${why}`);

function single(q: URLSearchParams, key: string): string | undefined {
  const all = q.getAll(key);
  if (all.length > 1) throw bad(key, 'given more than once');
  return all[0];
}

function bool(q: URLSearchParams, key: string): boolean | undefined {
  const v = single(q, key);
  if (v === undefined) return undefined;
  if (v === 'true' || v === '1') return true;
  if (v === 'false' || v === '0') return false;
  throw bad(key, `must be true or false, not ${JSON.stringify(v.slice(0, 50))}`);
}

function int(q: URLSearchParams, key: string, min: number, max: number): number | undefined {
  const v = single(q, key);
  if (v === undefined) return undefined;
  if (!/^\d{1,10}$/.test(v) || Number(v) < min || Number(v) > max)
    throw bad(key, `must be a whole number from ${min} to ${max}, not ${JSON.stringify(v.slice(0, 50))}`);
  return Number(v);
}

function text(q: URLSearchParams, key: string, max = 4096): string | undefined {
  const v = single(q, key);
  if (v !== undefined && v.length > max) throw bad(key, `longer than ${max} characters`);
  return v;
}

/** The agent route's query (without '?') for `sub` asked with `query`; a 400 StatusError naming a bad parameter. */
export function agentQuery(sub: GuestSubresource, query: URLSearchParams): string {
  for (const key of new Set(query.keys())) if (!SUBRESOURCE_QUERY[sub].includes(key)) throw bad(key, `not a parameter of guests/${sub}`);
  const out = new URLSearchParams();
  switch (sub) {
    case 'log': {
      if (bool(query, 'follow')) out.set('follow', 'true');
      const tail = int(query, 'tailLines', 0, 1_000_000);
      if (tail !== undefined) out.set('tail', String(tail));
      return out.toString();
    }
    case 'attach': {
      // The size is set through console/size once the stream is open (handlers.ts); checked here.
      int(query, 'rows', 1, 65535);
      int(query, 'cols', 1, 65535);
      return '';
    }
    case 'portforward': {
      const port = int(query, 'port', 1, 65535);
      if (port === undefined) throw bad('port', 'required (1 to 65535)');
      return `port=${port}`;
    }
    case 'exec': {
      const command = query.getAll('command');
      if (command.length === 0) throw bad('command', 'required (repeat it for each argument)');
      if (command.length > 1024 || command.some((c) => c.length > 65536)) throw bad('command', 'too long');
      const env = query.getAll('env');
      if (env.length > 1024 || env.some((e) => e.length > 65536 || !/^[^=]+=/.test(e))) throw bad('env', 'each must be NAME=VALUE');
      const workingDir = text(query, 'workingDir');
      const user = text(query, 'user', 256);
      const stdin = bool(query, 'stdin');
      const tty = bool(query, 'tty');
      const rows = int(query, 'rows', 1, 65535);
      const cols = int(query, 'cols', 1, 65535);
      return execQueryString({
        command,
        env,
        ...(workingDir !== undefined ? { workingDir } : {}),
        ...(user !== undefined ? { user } : {}),
        ...(stdin !== undefined ? { stdin } : {}),
        ...(tty !== undefined ? { tty } : {}),
        ...(rows !== undefined ? { rows } : {}),
        ...(cols !== undefined ? { cols } : {}),
      });
    }
    case 'top':
      return '';
  }
}

/** attach's size on open, when both are given. */
export function attachSize(query: URLSearchParams): { rows: number; cols: number } | undefined {
  const rows = int(query, 'rows', 1, 65535);
  const cols = int(query, 'cols', 1, 65535);
  return rows !== undefined && cols !== undefined ? { rows, cols } : undefined;
}
