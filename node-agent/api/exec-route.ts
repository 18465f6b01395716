// GET /v1/namespaces/NS/guests/NAME/exec with `Upgrade: krata-exec.v1` (contracts/agent-api/exec.ts): the
// query is checked (a 400 names the parameter), the service opens the session (404 no Guest, 409 its
// channel is not up), then 101 and frames both ways (exec-bridge.ts).
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { EXEC_PROTOCOL } from '../../contracts/agent-api/exec.js';
import type { ExecRequest } from '../channel/index.js';
import { bool, label, type RouteContext, type Upgrade } from './common.js';
import { ExecBridge } from './exec-bridge.js';
import { HttpError } from './http.js';

const PARAMETERS = ['command', 'env', 'workingDir', 'user', 'stdin', 'tty', 'rows', 'cols'];

const quote = (v: string) => JSON.stringify(v.slice(0, 100));

/** A value execve could not take (a NUL byte ends a C string) is refused, not cut short in the guest. */
function noNul(v: string, key: string): string {
  if (v.includes('\0')) throw new HttpError(400, `query parameter ${key}: ${quote(v)} contains a NUL byte`);
  return v;
}

function single(query: URLSearchParams, key: string): string | undefined {
  const all = query.getAll(key);
  if (all.length > 1) throw new HttpError(400, `query parameter ${key} appears ${all.length} times; it takes one value`);
  return all[0];
}

function dimension(query: URLSearchParams, key: string): number | undefined {
  const v = single(query, key);
  if (v === undefined) return undefined;
  if (!/^\d{1,5}$/.test(v) || Number(v) < 1 || Number(v) > 65535)
    throw new HttpError(400, `query parameter ${key} must be a whole number from 1 to 65535, not ${quote(v)}`);
  return Number(v);
}

/** The exec request of a query; anything unknown or malformed is a 400 that names the parameter. */
export function parseExecQuery(query: URLSearchParams): ExecRequest {
  for (const key of query.keys())
    if (!PARAMETERS.includes(key))
      throw new HttpError(400, `unknown query parameter ${quote(key)}; an exec takes ${PARAMETERS.join(', ')}`);
  const argv = query.getAll('command').map((c) => noNul(c, 'command'));
  if (argv.length === 0) throw new HttpError(400, 'query parameter command is required: the program, then one command= per argument');
  if (argv[0] === '') throw new HttpError(400, 'query parameter command: the first one (the program) is empty');
  const env = query.getAll('env').map((e) => {
    if (e.indexOf('=') <= 0) throw new HttpError(400, `query parameter env: ${quote(e)} is not NAME=VALUE`);
    return noNul(e, 'env');
  });
  const cwd = single(query, 'workingDir');
  if (cwd !== undefined && !cwd.startsWith('/'))
    throw new HttpError(400, `query parameter workingDir must be an absolute path, not ${quote(cwd)}`);
  const user = single(query, 'user');
  if (user !== undefined && !/^[^:\s]{1,256}(:[^:\s]{1,256})?$/.test(user))
    throw new HttpError(400, `query parameter user must be NAME, UID, NAME:GROUP or UID:GID, not ${quote(user)}`);
  if (query.getAll('stdin').length > 1 || query.getAll('tty').length > 1)
    throw new HttpError(400, `query parameter ${query.getAll('stdin').length > 1 ? 'stdin' : 'tty'} appears more than once`);
  const rows = dimension(query, 'rows');
  const cols = dimension(query, 'cols');
  if ((rows === undefined) !== (cols === undefined))
    throw new HttpError(400, `query parameter ${rows === undefined ? 'rows' : 'cols'} is missing: rows and cols go together`);
  return {
    argv,
    ...(env.length ? { env } : {}),
    ...(cwd !== undefined ? { cwd: noNul(cwd, 'workingDir') } : {}),
    ...(user !== undefined ? { user } : {}),
    tty: bool(query, 'tty'),
    stdin: bool(query, 'stdin'),
    ...(rows !== undefined && cols !== undefined ? { rows, cols } : {}),
  };
}

async function openExec(ctx: RouteContext, params: Record<string, string>, req: IncomingMessage, socket: Duplex, head: Buffer) {
  const namespace = label(params.namespace!, 'namespace');
  const name = label(params.name!, 'guest name');
  const request = parseExecQuery(new URL(req.url ?? '/', 'http://agent').searchParams);
  const bridge = new ExecBridge(socket, request);
  // Waits for the guest's channel (a few seconds at most); a refusal is answered by the server as HTTP.
  const session = await ctx.service.exec(namespace, name, request, bridge.sink);
  bridge.start(session, head, (stop) => ctx.track(stop));
}

export const EXEC_UPGRADE: Upgrade = { what: 'exec', protocol: EXEC_PROTOCOL, open: openExec };
