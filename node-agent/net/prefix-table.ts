// A set of IPv4 and IPv6 prefixes, each with a label, answering "which prefix holds this address" with
// one hash lookup per prefix length present (a host's routing table can be large; a verdict is per
// flow). The longest matching prefix wins.
import { formatIpv4, formatIpv6, parseCidr, parseIpv4, parseIpv6 } from './wire.js';

function mask4(prefix: number): number {
  return prefix === 0 ? 0 : prefix === 32 ? 0xffffffff : ~(0xffffffff >>> prefix) >>> 0; // (>>> 32 shifts by 0)
}

/** CIDR with its host bits cleared: 10.0.2.15/24 → 10.0.2.0/24. */
export function networkOf(cidr: string): string {
  const c = parseCidr(cidr);
  if (!c.v6) return `${formatIpv4((parseIpv4(c.address) & mask4(c.prefix)) >>> 0)}/${c.prefix}`;
  return `${formatIpv6(Buffer.from(masked6(parseIpv6(c.address), 0, c.prefix, Buffer.alloc(16)), 'latin1'))}/${c.prefix}`;
}

export class PrefixTable<T> {
  /** Prefix length → network (masked) → label; lengths longest first. */
  private readonly v4 = new Map<number, Map<number, T>>();
  private readonly v6 = new Map<number, Map<string, T>>();
  private lengths4: number[] = [];
  private lengths6: number[] = [];
  private readonly scratch = Buffer.alloc(16);
  size = 0;

  /** Adds CIDR `cidr` (host bits ignored); a prefix added twice keeps its first label. */
  add(cidr: string, label: T): void {
    const c = parseCidr(cidr);
    if (c.v6) {
      const key = masked6(parseIpv6(c.address), 0, c.prefix, Buffer.alloc(16));
      let m = this.v6.get(c.prefix);
      if (!m) {
        this.v6.set(c.prefix, (m = new Map<string, T>()));
        this.lengths6 = [...this.v6.keys()].sort((a, b) => b - a);
      }
      if (!m.has(key)) {
        m.set(key, label);
        this.size++;
      }
    } else {
      const net = (parseIpv4(c.address) & mask4(c.prefix)) >>> 0;
      let m = this.v4.get(c.prefix);
      if (!m) {
        this.v4.set(c.prefix, (m = new Map<number, T>()));
        this.lengths4 = [...this.v4.keys()].sort((a, b) => b - a);
      }
      if (!m.has(net)) {
        m.set(net, label);
        this.size++;
      }
    }
  }

  /** The label of the longest prefix holding IPv4 address `ip`. */
  match4(ip: number): T | undefined {
    for (const len of this.lengths4) {
      const hit = this.v4.get(len)!.get((ip & mask4(len)) >>> 0);
      if (hit !== undefined) return hit;
    }
    return undefined;
  }

  /** The label of the longest prefix holding the IPv6 address at buf[off..off+16). */
  match6(buf: Buffer, off: number): T | undefined {
    for (const len of this.lengths6) {
      const hit = this.v6.get(len)!.get(masked6(buf, off, len, this.scratch));
      if (hit !== undefined) return hit;
    }
    return undefined;
  }
}

/** The first `prefix` bits of buf[off..off+16), the rest zero, as a map key. */
function masked6(buf: Buffer, off: number, prefix: number, out: Buffer): string {
  for (let i = 0; i < 16; i++) {
    const bits = prefix - i * 8;
    out[i] = bits >= 8 ? buf[off + i]! : bits <= 0 ? 0 : buf[off + i]! & (0xff << (8 - bits));
  }
  return out.toString('latin1');
}
