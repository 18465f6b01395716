// Version negotiation (PROTOCOL.md, Handshake and Versions).
import { encodeFrame, FrameType, PROTOCOL_VERSION } from '../../contracts/guest-channel/frames.js';

export interface VersionRange {
  min: number;
  max: number;
}

/** The highest version both ranges hold, or undefined. */
export function negotiate(host: VersionRange, guest: VersionRange): number | undefined {
  const v = Math.min(host.max, guest.max);
  return v >= Math.max(host.min, guest.min) ? v : undefined;
}

export function rangeText(r: VersionRange): string {
  return r.min === r.max ? `${r.min}` : `${r.min}..${r.max}`;
}

export function hostHello(software: string): Buffer {
  return encodeFrame(FrameType.HELLO, 0, { role: 'host', min: PROTOCOL_VERSION.min, max: PROTOCOL_VERSION.max, software });
}

export function helloAck(version: number, software: string): Buffer {
  return encodeFrame(FrameType.HELLO_ACK, 0, { version, software });
}

export function helloRefusal(error: string): Buffer {
  return encodeFrame(FrameType.HELLO_ACK, 0, { version: 0, error });
}
