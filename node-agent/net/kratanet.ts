// kratanet: the guest backends of one host, reconciled to a configuration. A guest whose settings
// change is restarted (its flows reset); others keep their flows.
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { DEFAULT_FLOW_RATE, GuestBackend, type GuestNetConfig, type LinkOpener } from './backend.js';
import { DEFAULT_GATEWAY_MAC, DEFAULT_GUEST_SUBNETS, DEFAULT_HOST_BUDGET, type KratanetConfig } from './config.js';
import { DialService } from './dial-service.js';
import type { HostView } from './host-networks.js';
import { openPacketLink, openTapLink } from './link.js';
import { Policy } from './policy.js';
import { PortGroup } from './port-group.js';
import { Budget } from './tcp.js';
import { parseMac } from './wire.js';

export interface GuestResult {
  id: string;
  ok: boolean;
  error?: string;
  portErrors: string[];
}

export const defaultLinkOpener: LinkOpener = (cfg) => {
  if (!cfg.tap) quietInterface(cfg.interface);
  return cfg.tap ? openTapLink(cfg.interface) : openPacketLink(cfg.interface);
};

/**
 * dom0's own stack stays off the guest's link: kratanet is the only thing that answers there. IPv6 off
 * (no link-local address, router solicitations, MLD); IPv4: no forwarding of what arrives there, strict
 * reverse-path filtering (the interface has no addresses or routes, so every source fails it), no ARP
 * answers; and, where tc's modules exist, every frame dropped at ingress (packet sockets see frames
 * before tc does, so kratanet still gets them).
 */
function quietInterface(ifname: string): void {
  const set = (path: string, value: string) => {
    try {
      writeFileSync(path, value);
    } catch {
      // no IPv6 in dom0, or the interface is gone (then the link open fails with a clear error)
    }
  };
  set(`/proc/sys/net/ipv6/conf/${ifname}/disable_ipv6`, '1');
  set(`/proc/sys/net/ipv4/conf/${ifname}/forwarding`, '0');
  set(`/proc/sys/net/ipv4/conf/${ifname}/rp_filter`, '1');
  set(`/proc/sys/net/ipv4/conf/${ifname}/arp_ignore`, '8');
  try {
    execFileSync('tc', ['qdisc', 'replace', 'dev', ifname, 'clsact'], { stdio: 'ignore' });
    execFileSync('tc', ['filter', 'replace', 'dev', ifname, 'ingress', 'pref', '1', 'protocol', 'all', 'matchall', 'action', 'drop'], {
      stdio: 'ignore',
    });
  } catch {
    // no tc or no cls_matchall/act_gact: the sysctls above are the guard
  }
}

export class Kratanet {
  private readonly backends = new Map<string, { json: string; backend: GuestBackend }>();
  private policy: Policy | null = null;
  private policyJson = '';
  /** What all guests' flows together may buffer in dom0; each guest's budget is a child of it. */
  hostBudget = new Budget(DEFAULT_HOST_BUDGET);
  /** New flows each guest may open a second. */
  private flowRate = DEFAULT_FLOW_RATE;
  private dial: { path: string; service: DialService } | null = null;
  /** Shared host ports, by their binding (protocol, port, address). */
  private readonly groups = new Map<string, PortGroup>();

  constructor(
    private readonly log: (msg: string) => void = () => {},
    private readonly openLink: LinkOpener = defaultLinkOpener,
    /** dom0's addresses and networks, for tests (default: the kernel's). */
    private readonly hostView?: () => HostView,
  ) {}

  async apply(cfg: KratanetConfig): Promise<GuestResult[]> {
    const gatewayMac = parseMac(cfg.gatewayMac ?? DEFAULT_GATEWAY_MAC);
    const policyOpts = {
      hostLoopback: cfg.hostLoopback ?? false,
      hostAccess: cfg.hostAccess ?? false,
      guestSubnets: cfg.guestSubnets ?? DEFAULT_GUEST_SUBNETS,
      denyCidrs: cfg.denyCidrs ?? [],
      allowCidrs: cfg.allowCidrs ?? [],
    };
    const hostBudget = cfg.hostBudget ?? DEFAULT_HOST_BUDGET;
    const flowRate = cfg.flowRate ?? DEFAULT_FLOW_RATE;
    const pj = JSON.stringify({ ...policyOpts, gatewayMac: cfg.gatewayMac ?? DEFAULT_GATEWAY_MAC, hostBudget, flowRate });
    if (pj !== this.policyJson) {
      // A new policy (or budget, or flow rate) applies to new backends: restart them all.
      for (const id of [...this.backends.keys()]) this.stop(id);
      this.policy = new Policy(this.hostView ? { ...policyOpts, hostView: this.hostView } : policyOpts);
      this.hostBudget = new Budget(hostBudget);
      this.flowRate = flowRate;
      this.policyJson = pj;
    }
    const want = new Map(cfg.guests.map((g) => [g.id, g]));
    for (const [id, b] of [...this.backends]) {
      const g = want.get(id);
      if (!g || JSON.stringify(g) !== b.json) this.stop(id);
    }
    const bindings = new Map((cfg.portGroups ?? []).map((pg) => [JSON.stringify([pg.protocol, pg.hostPort, pg.hostAddress]), pg]));
    // Groups that go are closed before guests bind ports (one of them may take the port over).
    for (const [key, group] of [...this.groups]) {
      if (bindings.has(key)) continue;
      group.close();
      this.groups.delete(key);
    }
    const results: GuestResult[] = [];
    for (const g of cfg.guests) {
      const have = this.backends.get(g.id);
      if (have) {
        results.push({ id: g.id, ok: true, portErrors: have.backend.portErrors });
        continue;
      }
      results.push(await this.start(g, gatewayMac));
    }
    for (const [key, pg] of bindings) {
      const have = this.groups.get(key);
      if (have) {
        have.setMembers(pg.members);
        continue;
      }
      const group = new PortGroup(pg, (id) => this.backend(id), this.log);
      group.setMembers(pg.members);
      try {
        await group.bind();
        this.groups.set(key, group);
      } catch (e) {
        // Reported with each member; retried at the next apply.
        const msg = `${pg.protocol} ${pg.hostPort}: ${(e as Error).message}`;
        this.log(`cannot publish shared port ${msg}`);
        for (const r of results) if (pg.members.some((m) => m.guest === r.id)) r.portErrors = [...r.portErrors, msg];
      }
    }
    await this.serveDials(cfg.dialSocket);
    return results;
  }

  /** The dial socket follows the configuration; one that cannot be opened is retried at the next apply. */
  private async serveDials(path: string | undefined): Promise<void> {
    if (this.dial?.path === path) return;
    this.dial?.service.close();
    this.dial = null;
    if (path === undefined) return;
    const service = new DialService({ lookup: (key) => this.backend(key), log: this.log });
    try {
      await service.listen(path);
      this.dial = { path, service };
    } catch (e) {
      this.log(`dial socket ${path}: ${(e as Error).message}`);
    }
  }

  private async start(g: GuestNetConfig, gatewayMac: Buffer): Promise<GuestResult> {
    let backend: GuestBackend;
    try {
      backend = new GuestBackend(g, gatewayMac, this.policy!, this.openLink, this.log, this.hostBudget, this.flowRate);
    } catch (e) {
      const error = `${g.interface}: ${(e as Error).message}`;
      this.log(`guest ${g.id}: ${error}`);
      return { id: g.id, ok: false, error, portErrors: [] };
    }
    this.backends.set(g.id, { json: JSON.stringify(g), backend });
    await backend.publish();
    this.log(`guest ${g.id} on ${g.interface}: ${g.ipv4} ${g.ipv6}`);
    return { id: g.id, ok: true, portErrors: backend.portErrors };
  }

  private stop(id: string): void {
    const b = this.backends.get(id);
    if (!b) return;
    this.backends.delete(id);
    b.backend.close();
    this.log(`guest ${id}: stopped`);
  }

  /** Each guest's counters, one line each. */
  report(): string[] {
    return [...this.backends.values()].map((b) => b.backend.report());
  }

  backend(id: string): GuestBackend | undefined {
    return this.backends.get(id)?.backend;
  }

  close(): void {
    for (const g of this.groups.values()) g.close();
    this.groups.clear();
    this.dial?.service.close();
    this.dial = null;
    for (const id of [...this.backends.keys()]) this.stop(id);
  }
}
