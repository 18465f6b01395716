// Recording and replaying xenstore byte streams: record a client session against a real xenstored (in
// the QEMU Xen host), commit it, and replay it in unit tests anywhere. Replay checks that the client
// sends exactly the recorded bytes and feeds it exactly the daemon's recorded replies.
import type { XsTransport } from '../../node-agent/xen/xenstore/transport.js';
import { XsDecoder } from '../../node-agent/xen/xenstore/wire.js';

export interface Frame {
  dir: 'out' | 'in';
  hex: string;
}

/** Wraps a real transport and logs every message both ways, one frame per message. */
export function recordingTransport(inner: XsTransport, log: Frame[]): XsTransport {
  const decoder = new XsDecoder();
  return {
    send: (frame) => {
      log.push({ dir: 'out', hex: frame.toString('hex') });
      inner.send(frame);
    },
    onData: (handler) =>
      inner.onData((chunk) => {
        for (const m of decoder.push(chunk)) {
          const header = Buffer.alloc(16);
          header.writeUInt32LE(m.type, 0);
          header.writeUInt32LE(m.reqId, 4);
          header.writeUInt32LE(m.txId, 8);
          header.writeUInt32LE(m.payload.length, 12);
          log.push({ dir: 'in', hex: Buffer.concat([header, m.payload]).toString('hex') });
        }
        handler(chunk);
      }),
    onClose: (h) => inner.onClose(h),
    close: () => inner.close(),
  };
}

/**
 * Plays a recorded session: each frame the client sends must be the next recorded `out` frame; the
 * `in` frames that follow it are delivered, split at odd places to exercise reassembly.
 */
export function replayTransport(frames: Frame[]): XsTransport & { mismatches: string[]; remaining(): number } {
  let position = 0;
  let dataHandler: (c: Buffer) => void = () => {};
  const mismatches: string[] = [];
  const deliverReplies = () => {
    const replies: Buffer[] = [];
    while (position < frames.length && frames[position]!.dir === 'in') replies.push(Buffer.from(frames[position++]!.hex, 'hex'));
    if (replies.length === 0) return;
    const all = Buffer.concat(replies);
    const cut = Math.min(all.length, 7); // split inside the header on purpose
    setImmediate(() => {
      dataHandler(all.subarray(0, cut));
      if (cut < all.length) setImmediate(() => dataHandler(all.subarray(cut)));
    });
  };
  return {
    mismatches,
    remaining: () => frames.length - position,
    send: (frame) => {
      const expected = frames[position];
      if (!expected || expected.dir !== 'out' || expected.hex !== frame.toString('hex')) {
        mismatches.push(
          `frame ${position}: sent ${frame.toString('hex')}, recorded ${expected ? `${expected.dir} ${expected.hex}` : 'nothing'}`,
        );
        return;
      }
      position++;
      deliverReplies();
    },
    onData: (h) => {
      dataHandler = h;
      deliverReplies(); // replies recorded before the first request (none today, but harmless)
    },
    onClose: () => {},
    close: () => {},
  };
}
