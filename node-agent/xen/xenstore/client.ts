// A xenstore client: the whole request set, transactions retried on EAGAIN, watches dispatched by
// token, per-request timeouts. One connection serves any number of concurrent callers: replies are
// matched to requests by req_id, and watch events come between them.
import { EventEmitter } from 'node:events';
import { existsSync } from 'node:fs';
import { constants } from 'node:os';
import { formatPermission, parsePermission, type Permission } from './permissions.js';
import { deviceTransport, socketTransport, type XsTransport } from './transport.js';
import { encodeMessage, joinStrings, splitStrings, XsDecoder, XsType, type XsMessage } from './wire.js';

export class XenstoreError extends Error {
  /** The errno name xenstored sent (ENOENT, EAGAIN, ...), or ETIMEDOUT/ECONNRESET from the client. */
  readonly code: string;
  readonly errno: number;

  constructor(code: string, op: string, path?: string) {
    super(`xenstore ${op}${path !== undefined ? ' ' + path : ''}: ${code}`);
    this.code = code;
    this.errno = (constants.errno as Record<string, number>)[code] ?? -1;
  }
}

export interface ClientOptions {
  /** How long one request may wait for its reply. */
  timeoutMs?: number;
}

export const DEFAULT_SOCKET_PATHS = ['/run/xenstored/socket', '/var/run/xenstored/socket'];

type WatchHandler = (path: string, token: string) => void;

export interface Watch {
  readonly path: string;
  readonly token: string;
  unwatch(): Promise<void>;
}

interface Pending {
  resolve: (m: XsMessage) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

/** Operations that can run inside or outside a transaction. */
abstract class XsOperations {
  protected abstract call(type: XsType, payload: Buffer, path?: string): Promise<Buffer>;

  async read(path: string): Promise<string> {
    return (await this.call(XsType.Read, joinStrings([path]), path)).toString('utf8');
  }

  async readBytes(path: string): Promise<Buffer> {
    return this.call(XsType.Read, joinStrings([path]), path);
  }

  /** The value, or undefined when the node does not exist. */
  async tryRead(path: string): Promise<string | undefined> {
    return this.read(path).catch(ifMissing(undefined));
  }

  async write(path: string, value: string | Buffer): Promise<void> {
    const bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
    await this.call(XsType.Write, Buffer.concat([Buffer.from(path + '\0', 'utf8'), bytes]), path);
  }

  async mkdir(path: string): Promise<void> {
    await this.call(XsType.Mkdir, joinStrings([path]), path);
  }

  /** Remove a node and everything below it; a missing node is not an error. */
  async rm(path: string): Promise<void> {
    await this.call(XsType.Rm, joinStrings([path]), path).catch(ifMissing(undefined));
  }

  /** Child names of a node (not full paths). Large directories are read in parts. */
  async list(path: string): Promise<string[]> {
    try {
      return splitStrings(await this.call(XsType.Directory, joinStrings([path]), path));
    } catch (e) {
      if ((e as XenstoreError).code !== 'E2BIG') throw e;
      return this.listInParts(path);
    }
  }

  /** Child names, or [] when the node does not exist. */
  async tryList(path: string): Promise<string[]> {
    return this.list(path).catch(ifMissing([]));
  }

  async getPerms(path: string): Promise<Permission[]> {
    return splitStrings(await this.call(XsType.GetPerms, joinStrings([path]), path)).map(parsePermission);
  }

  async setPerms(path: string, perms: Permission[]): Promise<void> {
    if (perms.length === 0) throw new RangeError('setPerms needs at least the owner entry');
    await this.call(XsType.SetPerms, joinStrings([path, ...perms.map(formatPermission)]), path);
  }

  /** XS_DIRECTORY_PART: children from an offset, restarted if the node changes between parts. */
  private async listInParts(path: string): Promise<string[]> {
    for (let attempt = 0; attempt < 8; attempt++) {
      const names: string[] = [];
      let generation: string | undefined;
      let offset = 0;
      for (;;) {
        const reply = await this.call(XsType.DirectoryPart, joinStrings([path, String(offset)]), path);
        const [gen, ...rest] = reply.toString('utf8').split('\0');
        if (generation !== undefined && gen !== generation) break;
        generation = gen;
        // A part ends with an empty name when it is the last one.
        const done = rest.length >= 2 && rest.at(-1) === '' && rest.at(-2) === '';
        const chunk = rest.filter((n) => n !== '');
        names.push(...chunk);
        offset += chunk.reduce((n, name) => n + Buffer.byteLength(name) + 1, 0);
        if (done || chunk.length === 0) return names;
      }
    }
    throw new XenstoreError('EAGAIN', 'directory', path);
  }
}

function ifMissing<T>(value: T): (e: unknown) => T {
  return (e) => {
    if ((e as XenstoreError).code === 'ENOENT') return value;
    throw e;
  };
}

export class Transaction extends XsOperations {
  constructor(
    private readonly client: XenstoreClient,
    readonly id: number,
  ) {
    super();
  }

  protected call(type: XsType, payload: Buffer, path?: string): Promise<Buffer> {
    return this.client.request(type, payload, this.id, path);
  }
}

export class XenstoreClient extends XsOperations {
  private readonly decoder = new XsDecoder();
  private readonly pending = new Map<number, Pending>();
  private readonly watches = new Map<string, WatchHandler>();
  private readonly events = new EventEmitter();
  private nextReqId = 1;
  private nextToken = 1;
  private closed: Error | undefined;
  private readonly timeoutMs: number;

  constructor(
    private readonly transport: XsTransport,
    options: ClientOptions = {},
  ) {
    super();
    this.timeoutMs = options.timeoutMs ?? 10_000;
    transport.onData((chunk) => this.receive(chunk));
    transport.onClose((e) => this.fail(new XenstoreError('ECONNRESET', 'connection', e?.message)));
  }

  /**
   * Connect the way the Xen tools do: $XENSTORED_PATH, then xenstored's unix socket, then the
   * xenbus device. Not on Xen is one clear error.
   */
  static async connect(options: ClientOptions & { path?: string } = {}): Promise<XenstoreClient> {
    const explicit = options.path ?? process.env.XENSTORED_PATH;
    const candidates = explicit ? [explicit] : [...DEFAULT_SOCKET_PATHS, '/dev/xen/xenbus'];
    const errors: string[] = [];
    for (const path of candidates) {
      if (!existsSync(path)) {
        errors.push(`${path}: absent`);
        continue;
      }
      try {
        const transport = path.startsWith('/dev/') ? await deviceTransport(path) : await socketTransport(path);
        return new XenstoreClient(transport, options);
      } catch (e) {
        errors.push(`${path}: ${(e as Error).message}`);
      }
    }
    throw new Error(`cannot reach xenstore (is this a Xen dom0 with xenstored running?): ${errors.join('; ')}`);
  }

  /** Send one request and wait for its reply; XS_ERROR replies reject with a XenstoreError. */
  request(type: XsType, payload: Buffer, txId = 0, path?: string): Promise<Buffer> {
    if (this.closed) return Promise.reject(this.closed);
    const reqId = this.nextReqId;
    this.nextReqId = this.nextReqId >= 0xffffffff ? 1 : this.nextReqId + 1;
    const op = XsType[type]!.toLowerCase();
    return new Promise<XsMessage>((resolve, reject) => {
      const timer = setTimeout(() => {
        // After the event loop was blocked (a build's synchronous work under load), the timer runs before
        // the poll phase that would read a reply already waiting: give that phase its turn first.
        setImmediate(() => {
          if (this.pending.get(reqId)?.timer !== timer) return;
          // A late reply to this req_id is dropped in receive(): the id is no longer pending.
          this.pending.delete(reqId);
          reject(new XenstoreError('ETIMEDOUT', op, path));
        });
      }, this.timeoutMs);
      this.pending.set(reqId, { resolve, reject, timer });
      this.transport.send(encodeMessage({ type, reqId, txId, payload }));
    }).then((reply) => {
      if (reply.type === XsType.Error) throw new XenstoreError(splitStrings(reply.payload)[0] ?? 'EIO', op, path);
      if (reply.type !== type) throw new XenstoreError('EIO', `${op} (reply of type ${reply.type})`, path);
      return reply.payload;
    });
  }

  protected call(type: XsType, payload: Buffer, path?: string): Promise<Buffer> {
    return this.request(type, payload, 0, path);
  }

  /**
   * Run `body` in a transaction and commit; when xenstored answers EAGAIN (a conflicting change), the
   * whole body runs again, up to `attempts` times. An exception in the body aborts the transaction.
   */
  async transaction<T>(body: (tx: Transaction) => Promise<T>, attempts = 16): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const id = Number((await this.request(XsType.TransactionStart, Buffer.from([0]))).toString('utf8').replace(/\0.*$/s, ''));
      if (!Number.isInteger(id) || id <= 0) throw new XenstoreError('EIO', 'transaction_start (bad id)');
      const tx = new Transaction(this, id);
      let result: T;
      try {
        result = await body(tx);
      } catch (e) {
        await this.request(XsType.TransactionEnd, joinStrings(['F']), id).catch(() => undefined);
        if ((e as XenstoreError).code === 'EAGAIN' && attempt < attempts) continue;
        throw e;
      }
      try {
        await this.request(XsType.TransactionEnd, joinStrings(['T']), id);
        return result;
      } catch (e) {
        if ((e as XenstoreError).code !== 'EAGAIN' || attempt >= attempts) throw e;
        await new Promise((r) => setTimeout(r, Math.min(100, 2 ** attempt)));
      }
    }
  }

  /**
   * Watch a path (and everything below it). xenstored fires once right away, then on every change;
   * the handler gets the path that changed.
   */
  async watch(path: string, handler: WatchHandler): Promise<Watch> {
    const token = `krata-${this.nextToken++}`;
    this.watches.set(token, handler);
    try {
      await this.request(XsType.Watch, joinStrings([path, token]), 0, path);
    } catch (e) {
      this.watches.delete(token);
      throw e;
    }
    return {
      path,
      token,
      unwatch: async () => {
        this.watches.delete(token);
        if (!this.closed) await this.request(XsType.Unwatch, joinStrings([path, token]), 0, path).catch(ifMissing(undefined));
      },
    };
  }

  async getDomainPath(domid: number): Promise<string> {
    return (await this.request(XsType.GetDomainPath, joinStrings([String(domid)]))).toString('utf8').replace(/\0.*$/s, '');
  }

  /** Tell xenstored about a new domain's ring (its frame number and event channel port). */
  async introduceDomain(domid: number, mfn: bigint, port: number): Promise<void> {
    await this.request(XsType.Introduce, joinStrings([String(domid), mfn.toString(), String(port)]));
  }

  async releaseDomain(domid: number): Promise<void> {
    await this.request(XsType.Release, joinStrings([String(domid)]));
  }

  async isDomainIntroduced(domid: number): Promise<boolean> {
    return splitStrings(await this.request(XsType.IsDomainIntroduced, joinStrings([String(domid)])))[0] === 'T';
  }

  async resetWatches(): Promise<void> {
    await this.request(XsType.ResetWatches, Buffer.alloc(0));
  }

  onClose(handler: (e: Error) => void): void {
    this.events.on('close', handler);
  }

  close(): void {
    this.transport.close();
    this.fail(new XenstoreError('ECONNRESET', 'connection', 'closed by client'));
  }

  private receive(chunk: Buffer): void {
    let messages: XsMessage[];
    try {
      messages = this.decoder.push(chunk);
    } catch (e) {
      this.transport.close();
      this.fail(new XenstoreError('EPROTO', `connection: ${(e as Error).message}`));
      return;
    }
    for (const msg of messages) {
      if (msg.type === XsType.WatchEvent) {
        const [path, token] = splitStrings(msg.payload);
        const handler = token !== undefined ? this.watches.get(token) : undefined;
        if (handler && path !== undefined) {
          try {
            handler(path, token!);
          } catch (e) {
            this.events.emit('handlerError', e);
          }
        }
        continue;
      }
      const pending = this.pending.get(msg.reqId);
      if (!pending) continue; // timed out earlier
      this.pending.delete(msg.reqId);
      clearTimeout(pending.timer);
      pending.resolve(msg);
    }
  }

  private fail(error: XenstoreError): void {
    if (this.closed) return;
    this.closed = error;
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(error);
    }
    this.pending.clear();
    this.watches.clear();
    this.events.emit('close', error);
  }
}
