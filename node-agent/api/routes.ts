// The local API's routes (contracts/README.md, "The node agent's local API"): each translates one HTTP request
// into one AgentService call. Path parameters and query values are checked here, before any use.
import { CONSOLE_PROTOCOL } from '../../contracts/agent-api/endpoints.js';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Guest } from '../../crds/generated/types.js';
import type { KratObject } from '../../crds/validate.js';
import { InvalidRequest, type AgentService } from '../service/service.js';
import { MAX_REPLICAS, type PullEvent, type ScaleRequest, type StoredImage, type WatchEvent } from '../../contracts/agent-api/types.js';
import { parseReference } from '../../lib/oci/reference.js';
import { isPullSecretName } from '../../contracts/agent-api/pull-secret.js';
import { HttpError, parseJsonBody, readBody, sendJson, startStream, writeChunk, writeLine } from './http.js';
import { bool, count, label, optionalLabel, type RouteContext, type Upgrade } from './common.js';
import { EXEC_UPGRADE } from './exec-route.js';
import { agentVersion } from './version.js';
import { PORTFORWARD_UPGRADE } from './portforward-route.js';

export type { RouteContext } from './common.js';

export interface Request {
  req: IncomingMessage;
  res: ServerResponse;
  params: Record<string, string>;
  query: URLSearchParams;
  ctx: RouteContext;
}

type Handler = (r: Request) => Promise<void>;

interface Route {
  /** The path pattern, as the route table and TLS_AGENT_ROUTES write it. */
  path: string;
  segments: string[];
  methods: Record<string, Handler>;
  /** The route's upgrade (server.ts dispatches it); a plain GET of it is answered 426. */
  upgrade?: Upgrade;
}

function guestOf(r: Request): { namespace: string; name: string; guest: Guest } {
  const namespace = label(r.params.namespace!, 'namespace');
  const name = label(r.params.name!, 'guest name');
  const guest = r.ctx.service.get(namespace, name);
  if (!guest) throw new HttpError(404, `guest "${name}" not found in namespace "${namespace}"`);
  return { namespace, name, guest };
}

/**
 * Calls `onGone` (once, a moment later so trailing console output still goes out) when the Guest's
 * current domain is gone: the Guest deleted, its domain replaced, or its process finished.
 */
export function watchDomainEnd(
  service: AgentService,
  namespace: string,
  name: string,
  domid: number | undefined,
  onGone: () => void,
): () => void {
  let timer: NodeJS.Timeout | undefined;
  let done = false;
  const unsubscribe = service.watch(0, (e) => {
    const m = e.object.metadata;
    if (done || m.name !== name || (m.namespace ?? 'default') !== namespace) return;
    const phase = e.object.status?.phase;
    if (e.type === 'DELETED' || e.object.status?.domid !== domid || phase === 'Succeeded' || phase === 'Failed') {
      done = true;
      timer = setTimeout(onGone, 100);
    }
  });
  return () => {
    done = true;
    clearTimeout(timer);
    unsubscribe();
  };
}

/** Last `n` lines of `buf` (a final newline ends the last line, it does not start another). */
export function tailLines(buf: Buffer, n: number): Buffer {
  if (n === 0) return Buffer.alloc(0);
  let end = buf.length;
  if (end > 0 && buf[end - 1] === 0x0a) end--;
  let seen = 0;
  for (let i = end - 1; i >= 0; i--) {
    if (buf[i] === 0x0a && ++seen === n) return buf.subarray(i + 1);
  }
  return buf;
}

/** Ends a stream answer when the client goes away or the server closes: unsubscribes `stop`. */
function holdStream(r: Request, stop: () => void): () => void {
  let stopped = false;
  const finish = () => {
    if (stopped) return;
    stopped = true;
    untrack();
    stop();
    if (!r.res.writableEnded) r.res.end();
  };
  const untrack = r.ctx.track(finish);
  r.res.on('close', finish);
  if (r.res.destroyed) finish(); // the client left while the answer was being prepared
  return finish;
}

async function apply(r: Request): Promise<void> {
  const body = parseJsonBody(await readBody(r.req, r.ctx.maxBodyBytes)) as { objects?: unknown; dryRun?: unknown };
  if (body === null || typeof body !== 'object' || Array.isArray(body) || !Array.isArray(body.objects)) {
    throw new HttpError(400, 'the request body must be {"objects": [...], "dryRun": false}');
  }
  if (body.dryRun !== undefined && typeof body.dryRun !== 'boolean') throw new HttpError(400, 'dryRun must be true or false');
  const results = await r.ctx.service.apply(body.objects as KratObject[], body.dryRun === true);
  sendJson(r.res, 200, { results });
}

async function listGuests(r: Request): Promise<void> {
  sendJson(r.res, 200, { items: r.ctx.service.list(optionalLabel(r.query, 'namespace')) });
}

async function getGuest(r: Request): Promise<void> {
  sendJson(r.res, 200, guestOf(r).guest);
}

async function deleteGuest(r: Request): Promise<void> {
  const namespace = label(r.params.namespace!, 'namespace');
  const name = label(r.params.name!, 'guest name');
  const wait = bool(r.query, 'wait');
  const gracePeriodSeconds = count(r.query, 'gracePeriodSeconds', 86_400);
  await r.ctx.service.delete(namespace, name, { wait, ...(gracePeriodSeconds !== undefined ? { gracePeriodSeconds } : {}) });
  sendJson(r.res, 200, { kind: 'Guest', metadata: { namespace, name }, status: wait ? 'deleted' : 'deleting' });
}

async function listGuestSets(r: Request): Promise<void> {
  sendJson(r.res, 200, { items: r.ctx.service.listGuestSets(optionalLabel(r.query, 'namespace')) });
}

function guestSetName(r: Request): { namespace: string; name: string } {
  return { namespace: label(r.params.namespace!, 'namespace'), name: label(r.params.name!, 'guestset name') };
}

async function getGuestSet(r: Request): Promise<void> {
  const { namespace, name } = guestSetName(r);
  const set = r.ctx.service.getGuestSet(namespace, name);
  if (!set) throw new HttpError(404, `guestset "${name}" not found in namespace "${namespace}"`);
  sendJson(r.res, 200, set);
}

async function deleteGuestSet(r: Request): Promise<void> {
  const { namespace, name } = guestSetName(r);
  r.ctx.service.deleteGuestSet(namespace, name);
  sendJson(r.res, 200, { kind: 'GuestSet', metadata: { namespace, name }, status: 'deleted' });
}

/** PUT {"replicas": N}: the scale subresource. */
async function scaleGuestSet(r: Request): Promise<void> {
  const { namespace, name } = guestSetName(r);
  const body = parseJsonBody(await readBody(r.req, r.ctx.maxBodyBytes)) as Partial<ScaleRequest> | null;
  const replicas = body !== null && typeof body === 'object' && !Array.isArray(body) ? body.replicas : undefined;
  if (typeof replicas !== 'number' || !Number.isInteger(replicas) || replicas < 0 || replicas > MAX_REPLICAS)
    throw new HttpError(400, `the request body must be {"replicas": N}, N a whole number from 0 to ${MAX_REPLICAS}`);
  sendJson(r.res, 200, r.ctx.service.scaleGuestSet(namespace, name, replicas));
}

async function deleteSecret(r: Request): Promise<void> {
  const namespace = label(r.params.namespace!, 'namespace');
  const name: string = r.params.name!;
  if (!isPullSecretName(name))
    throw new HttpError(400, `invalid secret name ${JSON.stringify(String(name).slice(0, 100))}: must be a DNS subdomain`);
  r.ctx.service.deleteSecret(namespace, name);
  sendJson(r.res, 200, { kind: 'Secret', metadata: { namespace, name }, status: 'deleted' });
}

async function listSecrets(r: Request): Promise<void> {
  sendJson(r.res, 200, { items: r.ctx.service.listSecrets(optionalLabel(r.query, 'namespace')) });
}

function applySetName(r: Request): { namespace: string; name: string } {
  const namespace = label(r.params.namespace!, 'namespace');
  const name: string = r.params.name!;
  if (!isPullSecretName(name))
    throw new HttpError(400, `invalid applyset name ${JSON.stringify(String(name).slice(0, 100))}: must be a DNS subdomain`);
  return { namespace, name };
}

async function listApplySets(r: Request): Promise<void> {
  sendJson(r.res, 200, { items: r.ctx.service.listApplySets(optionalLabel(r.query, 'namespace')) });
}

async function getApplySet(r: Request): Promise<void> {
  const { namespace, name } = applySetName(r);
  const parent = r.ctx.service.getApplySet(namespace, name);
  if (!parent) throw new HttpError(404, `applyset "${name}" not found in namespace "${namespace}"`);
  sendJson(r.res, 200, parent);
}

/** PUT the parent (contracts/agent-api/applyset.ts): 200 with it and what was done. */
async function putApplySet(r: Request): Promise<void> {
  const { namespace, name } = applySetName(r);
  const body = parseJsonBody(await readBody(r.req, r.ctx.maxBodyBytes));
  const { parent, action } = r.ctx.service.putApplySet(namespace, name, body);
  sendJson(r.res, 200, { ...parent, action });
}

async function deleteApplySet(r: Request): Promise<void> {
  const { namespace, name } = applySetName(r);
  r.ctx.service.deleteApplySet(namespace, name);
  sendJson(r.res, 200, { kind: 'Secret', metadata: { namespace, name }, status: 'deleted' });
}

async function watch(r: Request): Promise<void> {
  const since = count(r.query, 'since', Number.MAX_SAFE_INTEGER) ?? 0;
  const namespace = optionalLabel(r.query, 'namespace');
  // The service may deliver the current state synchronously, before the answer starts: those events
  // wait in `early`, so that a service that throws still gets a proper error answer.
  let early: WatchEvent[] | undefined = [];
  const unsubscribe = r.ctx.service.watch(since, (e) => {
    if (namespace !== undefined && (e.object.metadata.namespace ?? 'default') !== namespace) return;
    if (early) early.push(e);
    else writeLine(r.res, e);
  });
  startStream(r.res, 'application/x-ndjson');
  for (const e of early) writeLine(r.res, e);
  early = undefined;
  holdStream(r, unsubscribe);
}

async function logs(r: Request): Promise<void> {
  const { namespace, name, guest } = guestOf(r);
  const follow = bool(r.query, 'follow');
  const tail = count(r.query, 'tail');
  const console = r.ctx.service.console(namespace, name);
  if (!console)
    throw new HttpError(409, `guest "${name}" has no running domain (phase ${guest.status?.phase ?? 'Pending'}), so there is no console`);
  startStream(r.res, 'application/octet-stream');
  const history = console.history();
  writeChunk(r.res, tail === undefined ? history : tailLines(history, tail));
  if (!follow) {
    r.res.end();
    return;
  }
  let finish = () => {};
  const offData = console.onData((d) => writeChunk(r.res, d));
  let offEnd: () => void;
  try {
    offEnd = watchDomainEnd(r.ctx.service, namespace, name, guest.status?.domid, () => finish());
  } catch (e) {
    offData();
    throw e;
  }
  finish = holdStream(r, () => {
    offData();
    offEnd();
  });
}

/** The answer to a plain GET of a route that upgrades: 426 with the headers it needs. */
function needsUpgrade(u: Upgrade): Handler {
  return async () => {
    throw new HttpError(426, `${u.what} needs "Connection: Upgrade" and "Upgrade: ${u.protocol}"`, undefined, {
      upgrade: u.protocol,
      connection: 'Upgrade',
    });
  };
}

/** The 101 answer to an upgrade on the console route, then raw bytes both ways until either side ends. */
export function attachConsole(ctx: RouteContext, params: Record<string, string>, req: IncomingMessage, socket: Duplex, head: Buffer): void {
  const namespace = label(params.namespace!, 'namespace');
  const name = label(params.name!, 'guest name');
  const guest = ctx.service.get(namespace, name);
  if (!guest) throw new HttpError(404, `guest "${name}" not found in namespace "${namespace}"`);
  const console = ctx.service.console(namespace, name);
  if (!console)
    throw new HttpError(409, `guest "${name}" has no running domain (phase ${guest.status?.phase ?? 'Pending'}), so there is no console`);

  socket.write(`HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\nupgrade: ${CONSOLE_PROTOCOL}\r\n\r\n`);
  // ?logs=true: what the guest printed before the attach comes first (kratactl run starts a guest
  // and attaches after it is Running: its first output would be lost otherwise).
  if (new URL(req.url ?? '/', 'http://agent').searchParams.get('logs') === 'true') socket.write(console.history());
  // Input is bounded by backpressure, not drops: while the guest's queue is full the client's socket
  // is paused (the kernel buffers fill and the client's writes block), and resumed on drain.
  let stopped = false;
  let offDrain: (() => void) | undefined;
  const send = (d: Buffer) => {
    if (console.write(d) || offDrain) return;
    socket.pause();
    offDrain = console.onDrain(() => {
      offDrain?.();
      offDrain = undefined;
      if (!stopped) socket.resume();
    });
  };
  if (head.length) send(head);
  socket.on('data', send);
  const offData = console.onData((d) => {
    if (socket.destroyed || socket.writableEnded) return;
    socket.write(d);
    if (socket.writableLength > 8 * 1024 * 1024) socket.destroy(); // a client that stopped reading
  });
  let untrack = () => {};
  const stop = () => {
    if (stopped) return;
    stopped = true;
    untrack();
    offData();
    offDrain?.();
    offEnd();
    if (!socket.destroyed) socket.end();
    // A client that never closes its side must not hold the socket forever.
    setTimeout(() => socket.destroy(), 2000).unref();
  };
  const offEnd = watchDomainEnd(ctx.service, namespace, name, guest.status?.domid, stop);
  untrack = ctx.track(stop);
  // A unix socket cannot tell a half-close from a close: the client's end ends the session.
  socket.on('end', stop);
  socket.on('close', stop);
  socket.on('error', stop);
  if (socket.destroyed) stop();
}

/** PUT {"rows": N, "cols": N}: the console's window size (attach), set through the Guest's channel. */
async function consoleSize(r: Request): Promise<void> {
  const { namespace, name, guest } = guestOf(r);
  const body = parseJsonBody(await readBody(r.req, r.ctx.maxBodyBytes)) as { rows?: unknown; cols?: unknown };
  if (body === null || typeof body !== 'object' || Array.isArray(body))
    throw new HttpError(400, 'the request body must be {"rows": N, "cols": N}');
  const dimension = (v: unknown, key: string) => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 65535)
      throw new HttpError(400, `${key} must be a whole number from 1 to 65535, not ${JSON.stringify(v ?? null).slice(0, 100)}`);
    return v;
  };
  const rows = dimension(body.rows, 'rows');
  const cols = dimension(body.cols, 'cols');
  if (guest.status?.domid === undefined)
    throw new HttpError(409, `guest "${name}" has no running domain (phase ${guest.status?.phase ?? 'Pending'}), so there is no console`);
  if (!r.ctx.service.resizeConsole(namespace, name, rows, cols))
    throw new HttpError(409, `the control channel of guest "${name}" is not up, so the console's size cannot be set`);
  r.res.writeHead(204);
  r.res.end();
}

async function events(r: Request): Promise<void> {
  sendJson(r.res, 200, { items: r.ctx.service.events(optionalLabel(r.query, 'namespace'), optionalLabel(r.query, 'name', 'guest name')) });
}

function imageRef(value: unknown, what: string): string {
  if (typeof value !== 'string' || value === '') throw new HttpError(400, `${what} must be a non-empty string`);
  // References are short and printable; anything else is refused before it reaches a registry.
  if (value.length > 1024 || !/^[\x21-\x7e]+$/.test(value))
    throw new HttpError(400, `${what} ${JSON.stringify(value.slice(0, 100))} is not an image reference`);
  return value;
}

async function pullImage(r: Request): Promise<void> {
  const body = parseJsonBody(await readBody(r.req, r.ctx.maxBodyBytes)) as { image?: unknown; namespace?: unknown; pullSecrets?: unknown };
  if (body === null || typeof body !== 'object' || Array.isArray(body))
    throw new HttpError(400, 'the request body must be {"image": "REFERENCE"}');
  const image = imageRef(body.image, 'image');
  const namespace = body.namespace === undefined ? undefined : label(String(body.namespace), 'namespace');
  if (body.pullSecrets !== undefined && (!Array.isArray(body.pullSecrets) || body.pullSecrets.length > 64))
    throw new HttpError(400, 'pullSecrets must be a list of at most 64 Secret names');
  const pullSecrets = ((body.pullSecrets as unknown[] | undefined) ?? []).map((n) => {
    if (!isPullSecretName(n))
      throw new HttpError(400, `pullSecrets: ${JSON.stringify(String(n).slice(0, 100))} is not a Secret name (a DNS subdomain)`);
    return n;
  });
  await imageJob(r, (onEvent) => r.ctx.service.pullImage(image, onEvent, { namespace, pullSecrets }));
}

/**
 * Answers a pull or import: NDJSON progress events, then {image} or {error}. The stream starts with the
 * first event: a refusal before any (a Secret not found, no image cache) is a plain error answer.
 */
async function imageJob(r: Request, job: (onEvent: (e: PullEvent) => void) => Promise<StoredImage>): Promise<void> {
  let started = false;
  const start = () => {
    if (!started) startStream(r.res, 'application/x-ndjson');
    started = true;
  };
  try {
    const stored = await job((e) => {
      start();
      writeLine(r.res, e);
    });
    start();
    writeLine(r.res, { image: stored });
  } catch (e) {
    if (!started && e instanceof InvalidRequest) throw e;
    start();
    writeLine(r.res, { error: (e as Error)?.message ?? String(e) });
  }
  r.res.end();
}

/** Routes whose body is an upload: a client that sends `Expect: 100-continue` waits until uploadBody reads it. */
export const isUploadPath = (pathname: string): boolean => pathname === '/v1/images/import';

/** The request's body, asking a client that waits for it (Expect: 100-continue) to send it once it is read. */
async function* uploadBody(r: Request): AsyncIterable<Buffer> {
  if (/100-continue/i.test(r.req.headers.expect ?? '')) r.res.writeContinue();
  for await (const chunk of r.req) yield chunk as Buffer;
}

/** POST /v1/images/import?name=REF&source=FILE, the body a tar stream (IMPORT_CONTENT_TYPE). */
async function importImage(r: Request): Promise<void> {
  const rawName = r.query.get('name');
  const name = rawName === null ? undefined : imageRef(rawName, 'name');
  if (name !== undefined) {
    try {
      parseReference(name);
    } catch (e) {
      throw new HttpError(400, `name: ${(e as Error).message}`);
    }
  }
  // Only a label (messages, the name of an image whose archive has none): printable and short.
  const source = r.query.get('source') || 'archive';
  // eslint-disable-next-line no-control-regex -- refusing control characters is the point
  if (source.length > 4096 || !/^[^\x00-\x1f\x7f]+$/.test(source))
    throw new HttpError(400, 'source must be a file name of at most 4096 printable characters');
  await imageJob(r, (onEvent) => r.ctx.service.importImage(uploadBody(r), { source, ...(name !== undefined ? { name } : {}) }, onEvent));
}

/** POST /v1/images/prune {"budgetBytes": N}: N absent or 0 removes every image no Guest uses. */
async function pruneImages(r: Request): Promise<void> {
  const body = parseJsonBody(await readBody(r.req, r.ctx.maxBodyBytes)) as { budgetBytes?: unknown };
  if (body === null || typeof body !== 'object' || Array.isArray(body))
    throw new HttpError(400, 'the request body must be {"budgetBytes": N}');
  const budget = body.budgetBytes ?? 0;
  if (typeof budget !== 'number' || !Number.isSafeInteger(budget) || budget < 0)
    throw new HttpError(400, 'budgetBytes must be a whole number, 0 or more');
  sendJson(r.res, 200, r.ctx.service.pruneImages(budget));
}

async function listImages(r: Request): Promise<void> {
  sendJson(r.res, 200, { items: r.ctx.service.images() });
}

async function removeImage(r: Request): Promise<void> {
  sendJson(r.res, 200, { image: r.ctx.service.removeImage(imageRef(r.params.ref, 'image')) });
}

/** GET /v1/usage[?namespace=NS]: the running Guests' usage. */
async function listUsage(r: Request): Promise<void> {
  sendJson(r.res, 200, { items: await r.ctx.service.usage(optionalLabel(r.query, 'namespace')) });
}

/** One Guest's usage; 409 (with its phase) when it has no running domain. */
async function guestUsage(r: Request): Promise<void> {
  const { namespace, name, guest } = guestOf(r);
  const [usage] = guest.status?.domid === undefined ? [] : await r.ctx.service.usage(namespace, name);
  if (!usage)
    throw new HttpError(409, `guest "${name}" has no running domain (phase ${guest.status?.phase ?? 'Pending'}), so there is no usage`);
  sendJson(r.res, 200, usage);
}

/** GET /v1/version: what `kratactl version` prints for the server side; answers without touching Xen or the store. */
async function version(r: Request): Promise<void> {
  sendJson(r.res, 200, agentVersion());
}

async function host(r: Request): Promise<void> {
  const tls = r.ctx.tlsStatus?.();
  sendJson(r.res, 200, { ...(await r.ctx.service.host()), ...(tls ? { tls } : {}) });
}

const GUEST = '/v1/namespaces/:namespace/guests/:name';
const GUESTSET = '/v1/namespaces/:namespace/guestsets/:name';

/** Literal routes before parameterized ones: /v1/images/pull is the pull, never an image named "pull" (so are import, prune). */
export const ROUTES: Route[] = (
  [
    ['/v1/apply', { POST: apply }],
    ['/v1/guests', { GET: listGuests }],
    [GUEST, { GET: getGuest, DELETE: deleteGuest }],
    [`${GUEST}/logs`, { GET: logs }],
    [`${GUEST}/console`, {}, { what: 'the console', protocol: CONSOLE_PROTOCOL, open: attachConsole }],
    [`${GUEST}/console/size`, { PUT: consoleSize }],
    [`${GUEST}/exec`, {}, EXEC_UPGRADE],
    [`${GUEST}/portforward`, {}, PORTFORWARD_UPGRADE],
    ['/v1/guestsets', { GET: listGuestSets }],
    [GUESTSET, { GET: getGuestSet, DELETE: deleteGuestSet }],
    [`${GUESTSET}/scale`, { PUT: scaleGuestSet }],
    ['/v1/namespaces/:namespace/secrets/:name', { DELETE: deleteSecret }],
    ['/v1/secrets', { GET: listSecrets }],
    ['/v1/applysets', { GET: listApplySets }],
    ['/v1/namespaces/:namespace/applysets/:name', { GET: getApplySet, PUT: putApplySet, DELETE: deleteApplySet }],
    ['/v1/watch', { GET: watch }],
    ['/v1/events', { GET: events }],
    ['/v1/images/pull', { POST: pullImage }],
    ['/v1/images/import', { POST: importImage }],
    ['/v1/images/prune', { POST: pruneImages }],
    ['/v1/images', { GET: listImages }],
    ['/v1/images/:ref', { DELETE: removeImage }],
    ['/v1/host', { GET: host }],
    ['/v1/version', { GET: version }],
    ['/v1/usage', { GET: listUsage }],
    [`${GUEST}/usage`, { GET: guestUsage }],
  ] as [string, Record<string, Handler>, Upgrade?][]
).map(([path, methods, upgrade]) => ({
  path,
  segments: path.split('/'),
  methods: upgrade ? { GET: needsUpgrade(upgrade), ...methods } : methods,
  ...(upgrade ? { upgrade } : {}),
}));

/**
 * Which (method, route) pairs a listener serves: all of them, or only those `routes` lists as
 * "METHOD /path/pattern" (contracts/krata-api/agent-tls.ts TLS_AGENT_ROUTES). An upgrade is its GET.
 */
export function routeFilter(routes?: readonly string[]): (route: Route, method: string) => boolean {
  if (!routes) return () => true;
  const served = new Set(routes);
  return (route, method) => served.has(`${method} ${route.path}`);
}

/** The route for a path and its decoded parameters; undefined for an unknown path. */
export function matchRoute(pathname: string): { route: Route; params: Record<string, string> } | undefined {
  const parts = pathname.split('/');
  for (const route of ROUTES) {
    if (route.segments.length !== parts.length) continue;
    const params: Record<string, string> = {};
    const ok = route.segments.every((seg, i) => {
      if (!seg.startsWith(':')) return seg === parts[i];
      if (!parts[i]) return false;
      try {
        params[seg.slice(1)] = decodeURIComponent(parts[i]!);
      } catch {
        throw new HttpError(400, `path segment ${JSON.stringify(parts[i]!.slice(0, 100))} is not valid percent-encoding`);
      }
      return true;
    });
    if (ok) return { route, params };
  }
  return undefined;
}
