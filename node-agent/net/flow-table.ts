// One guest's TCP flows, found from a segment's addresses without building a key string per frame (a
// string to allocate, hash and compare, for every frame of every flow): keyed by the two ports, a small
// integer, with the rare flows that share both ports (one guest port to two remote addresses) side by
// side under it.
import type { TcpFlow } from './tcp.js';
import { ipv6Equal, type Packet } from './wire.js';

const portsKey = (remotePort: number, guestPort: number): number => remotePort * 65536 + guestPort;

function isAt(f: TcpFlow, remote4: number, remote6: Buffer | null, remote6Off: number): boolean {
  return remote6 === null ? f.remote6 === null && f.remote4 === remote4 : f.remote6 !== null && ipv6Equal(remote6, remote6Off, f.remote6);
}

export class TcpFlowTable {
  private readonly byPorts = new Map<number, TcpFlow | TcpFlow[]>();
  private count = 0;

  get size(): number {
    return this.count;
  }

  /** The flow a segment from the guest belongs to: its destination is the flow's remote end. */
  forSegment(p: Packet): TcpFlow | undefined {
    return p.ip === 4 ? this.find(p.dst4, null, 0, p.dstPort, p.srcPort) : this.find(0, p.buf, p.dst6, p.dstPort, p.srcPort);
  }

  /** The flow between `guestPort` and the remote end (IPv6 when remote6 is given: 16 bytes at remote6Off). */
  find(remote4: number, remote6: Buffer | null, remote6Off: number, remotePort: number, guestPort: number): TcpFlow | undefined {
    const e = this.byPorts.get(portsKey(remotePort, guestPort));
    if (e === undefined) return undefined;
    if (!Array.isArray(e)) return isAt(e, remote4, remote6, remote6Off) ? e : undefined;
    for (const f of e) if (isAt(f, remote4, remote6, remote6Off)) return f;
    return undefined;
  }

  /** Adds a flow no other flow has the addresses of. */
  add(flow: TcpFlow): void {
    const k = portsKey(flow.remotePort, flow.guestPort);
    const e = this.byPorts.get(k);
    if (e === undefined) this.byPorts.set(k, flow);
    else if (Array.isArray(e)) e.push(flow);
    else this.byPorts.set(k, [e, flow]);
    this.count++;
  }

  /** Removes `flow` (not another flow at its addresses); false if it is not here. */
  delete(flow: TcpFlow): boolean {
    const k = portsKey(flow.remotePort, flow.guestPort);
    const e = this.byPorts.get(k);
    const i = Array.isArray(e) ? e.indexOf(flow) : -1;
    if (e === flow) this.byPorts.delete(k);
    else if (i >= 0) {
      const side = e as TcpFlow[];
      side.splice(i, 1);
      if (side.length === 1) this.byPorts.set(k, side[0]!);
    } else return false;
    this.count--;
    return true;
  }

  values(): TcpFlow[] {
    const out: TcpFlow[] = [];
    for (const e of this.byPorts.values()) {
      if (Array.isArray(e)) out.push(...e);
      else out.push(e);
    }
    return out;
  }
}
