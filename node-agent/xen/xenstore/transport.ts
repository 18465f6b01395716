// Byte transports to xenstored: its unix socket in dom0, or the /dev/xen/xenbus device (inside guests,
// or when xenstored runs in a stub domain). The device wants each message in exactly one write().
import { createConnection, type Socket } from 'node:net';
import { open, type FileHandle } from 'node:fs/promises';
import { encodeMessage, joinStrings, XsType } from './wire.js';

export interface XsTransport {
  /** Send one whole message. */
  send(frame: Buffer): void;
  onData(handler: (chunk: Buffer) => void): void;
  onClose(handler: (error?: Error) => void): void;
  close(): void;
}

export function socketTransport(path: string): Promise<XsTransport> {
  return new Promise((resolve, reject) => {
    const socket: Socket = createConnection({ path });
    socket.once('error', reject);
    socket.once('connect', () => {
      socket.off('error', reject);
      let closeHandler: ((e?: Error) => void) | undefined;
      let lastError: Error | undefined;
      socket.on('error', (e) => (lastError = e));
      socket.on('close', () => closeHandler?.(lastError));
      resolve({
        send: (frame) => void socket.write(frame),
        onData: (h) => void socket.on('data', h),
        onClose: (h) => void (closeHandler = h),
        close: () => socket.destroy(),
      });
    });
  });
}

export async function deviceTransport(path = '/dev/xen/xenbus'): Promise<XsTransport> {
  const handle: FileHandle = await open(path, 'r+');
  let dataHandler: (c: Buffer) => void = () => {};
  let closeHandler: (e?: Error) => void = () => {};
  let closed = false;
  // Writes go one at a time so that messages are never interleaved or reordered by the thread pool.
  let writes = Promise.resolve();
  const readLoop = async () => {
    const buf = Buffer.alloc(4096 + 16);
    try {
      while (!closed) {
        const { bytesRead } = await handle.read(buf, 0, buf.length, null);
        if (bytesRead === 0) break;
        dataHandler(Buffer.from(buf.subarray(0, bytesRead)));
      }
      closeHandler();
    } catch (e) {
      closeHandler(closed ? undefined : (e as Error));
    }
  };
  const reading = readLoop();
  return {
    send: (frame) => {
      writes = writes.then(async () => {
        const { bytesWritten } = await handle.write(frame, 0, frame.length, null);
        if (bytesWritten !== frame.length) throw new Error(`short write to ${path}: ${bytesWritten} of ${frame.length}`);
      });
      writes.catch((e: Error) => closeHandler(e));
    },
    onData: (h) => void (dataHandler = h),
    onClose: (h) => void (closeHandler = h),
    close: () => {
      if (closed) return;
      closed = true;
      // The read loop sits in a blocking read() on a thread-pool thread, which neither close() nor
      // process exit interrupts: ask xenstore something (here, for the domain's own path) so that a
      // reply wakes it, then close once it has returned.
      // req_id 0xffffffff is never pending in the client, so the reply is dropped there.
      const wake = encodeMessage({ type: XsType.GetDomainPath, reqId: 0xffffffff, txId: 0, payload: joinStrings(['0']) });
      writes = writes.then(() => handle.write(wake, 0, wake.length, null).then(() => undefined)).catch(() => undefined);
      void reading.finally(() => handle.close().catch(() => undefined));
    },
  };
}
