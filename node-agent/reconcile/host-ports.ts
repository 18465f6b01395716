// The node agent's own host-port rules, checked before a Guest's domain is built: defense in depth behind
// the operator's XenHost policy (whoever writes Redis could ask for any port) and the only rules in
// single-host mode. A port outside --host-ports refuses the Guest (HostPortNotAllowed, Stalled); a port
// another Guest holds makes it wait with a condition (HostPortConflict) instead of starting without it.
import type { Guest, PortRange } from '../../crds/generated/types.js';
import { disallowedPort, formatRanges, hostPortsOf, olderFirst, portSharer } from '../../crds/host-ports.js';
import type { GuestStore } from '../store/guest-store.js';

export type PortRefusal = { reason: 'HostPortNotAllowed' | 'HostPortConflict'; message: string };

export class HostPortGuard {
  /** Ports claimed by starts in progress (no domain yet): port key → guest key. */
  private readonly claims = new Map<string, string>();

  constructor(
    private readonly store: Pick<GuestStore, 'keys' | 'get'>,
    readonly allowed: readonly PortRange[],
  ) {}

  /**
   * Claims the Guest's host ports until release() (its domain then holds them), or says why not. A port
   * is held by another Guest that has a domain, by a start in progress, or by an older Guest that has
   * not ended (restarting, pulling: like a Pod bound to its node), so the same Guest wins every time.
   */
  claim(key: string, guest: Guest): { release(): void } | PortRefusal {
    const ports = hostPortsOf(guest);
    const bad = disallowedPort(ports, this.allowed);
    if (bad)
      return {
        reason: 'HostPortNotAllowed',
        message: `host port ${bad.key} (${bad.field}) is not allowed on this node (--host-ports ${formatRanges(this.allowed)})`,
      };
    if (ports.length === 0) return { release: () => undefined };
    const sharer = portSharer(guest);
    const shares = (k: string) => {
      const g = k === key ? undefined : this.store.get(k)?.guest;
      return sharer !== undefined && g !== undefined && portSharer(g) === sharer;
    };
    const active = (g: Guest) => !g.metadata.deletionTimestamp && g.status?.phase !== 'Succeeded' && g.status?.phase !== 'Failed';
    // A GuestSet's replicas share their ports, and hold them from when the set's eldest live replica did.
    let me = { key, guest };
    for (const other of this.store.keys()) {
      const g = this.store.get(other)?.guest;
      if (g && shares(other) && active(g) && olderFirst({ key: other, guest: g }, me) < 0) me = { key: other, guest: g };
    }
    for (const p of ports) {
      const claimant = this.claims.get(p.key);
      if (claimant !== undefined && claimant !== key && !shares(claimant)) return conflict(p.key, p.field, claimant, 'is starting');
    }
    for (const other of this.store.keys()) {
      if (other === key) continue;
      const g = this.store.get(other)?.guest;
      if (!g) continue;
      const s = g.status;
      const hasDomain = s?.domid !== undefined;
      if (!hasDomain && !(active(g) && olderFirst({ key: other, guest: g }, me) < 0)) continue;
      // Replicas of one GuestSet share the port (kratanet balances it over them).
      if (shares(other)) continue;
      const theirs = new Set(hostPortsOf(g).map((p) => p.key));
      const clash = ports.find((p) => theirs.has(p.key));
      if (clash)
        return conflict(clash.key, clash.field, other, hasDomain ? `runs with it (domain ${s!.domid})` : 'is older and has not ended');
    }
    for (const p of ports) this.claims.set(p.key, key);
    return {
      release: () => {
        for (const p of ports) if (this.claims.get(p.key) === key) this.claims.delete(p.key);
      },
    };
  }
}

function conflict(port: string, field: string, holder: string, why: string): PortRefusal {
  return {
    reason: 'HostPortConflict',
    message: `host port ${port} (${field}) is held by guest ${holder}, which ${why}; waiting for it to be free`,
  };
}
