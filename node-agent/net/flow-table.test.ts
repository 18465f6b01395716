// The TCP flow table: flows found by ports and then remote address, including flows that share both ports.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TcpFlowTable } from './flow-table.js';
import type { TcpFlow } from './tcp.js';
import { Packet } from './wire.js';

const flow = (remote4: number, remote6: Buffer | null, remotePort: number, guestPort: number) =>
  ({ remote4, remote6, remotePort, guestPort }) as TcpFlow;

/** A parsed segment from the guest to `dst` (an IPv4 number, or 16 bytes of IPv6) and port. */
function segment(dst: number | Buffer, dstPort: number, srcPort: number): Packet {
  const p = new Packet();
  p.srcPort = srcPort;
  p.dstPort = dstPort;
  if (typeof dst === 'number') {
    p.ip = 4;
    p.dst4 = dst;
  } else {
    p.ip = 6;
    p.buf = Buffer.concat([Buffer.alloc(30), dst]);
    p.dst6 = 30;
  }
  return p;
}

test('flows sharing both ports are told apart by remote address, IPv4 and IPv6 alike', () => {
  const t = new TcpFlowTable();
  const v6a = Buffer.from('20010db8000000000000000000000001', 'hex');
  const v6b = Buffer.from('20010db8000000000000000000000002', 'hex');
  const a = flow(0x0a000001, null, 443, 40000);
  const b = flow(0x0a000002, null, 443, 40000); // same guest port, same remote port, another address
  const c = flow(0, v6a, 443, 40000);
  const d = flow(0x0a000001, null, 80, 40000);
  for (const f of [a, b, c, d]) t.add(f);
  assert.equal(t.size, 4);
  assert.equal(t.forSegment(segment(0x0a000001, 443, 40000)), a);
  assert.equal(t.forSegment(segment(0x0a000002, 443, 40000)), b);
  assert.equal(t.forSegment(segment(v6a, 443, 40000)), c);
  assert.equal(t.forSegment(segment(v6b, 443, 40000)), undefined);
  assert.equal(t.forSegment(segment(0x0a000003, 443, 40000)), undefined);
  assert.equal(t.forSegment(segment(0x0a000001, 443, 40001)), undefined);
  assert.equal(t.forSegment(segment(0x0a000001, 80, 40000)), d);
  // An IPv4 flow is not found for an IPv6 segment, whatever remote4 holds.
  assert.equal(t.find(0, v6b, 0, 443, 40000), undefined);

  assert.equal(t.delete(a), true);
  assert.equal(t.delete(a), false);
  assert.equal(t.forSegment(segment(0x0a000001, 443, 40000)), undefined);
  assert.equal(t.forSegment(segment(0x0a000002, 443, 40000)), b);
  assert.equal(t.delete(c), true);
  assert.equal(t.forSegment(segment(0x0a000002, 443, 40000)), b, 'the last one left under the ports');
  assert.equal(t.delete(flow(0x0a000002, null, 443, 40000)), false, 'only the flow itself is removed');
  assert.deepEqual(new Set(t.values()), new Set([b, d]));
  assert.equal(t.size, 2);
});
