// Where guests may go: dom0's own addresses and every network it is part of (attached subnets, routed
// networks) are out of reach, as are --deny-cidr ranges; --allow-cidr reopens destinations (optionally
// only some ports) but never another guest, loopback or link-local. No root needed: dom0's view of its
// networks is given (as the kernel prints it), except in the last test, which reads this machine's.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { validateConfig } from './config.js';
import { egressFlags } from './desired.js';
import { interfaceNetworks, parseRoutes4, parseRoutes6, type HostView } from './host-networks.js';
import { parseCidrRule, Policy, type PolicyOptions, type Verdict } from './policy.js';
import { PrefixTable } from './prefix-table.js';
import { parseIpv4, parseIpv6 } from './wire.js';

// A Kubernetes node as the kernel shows it: eth0 10.0.2.15/24 (default via 10.0.2.2), a CNI bridge
// for its pods, another node's pod block through a tunnel, a blackhole (Calico's own block).
const ROUTE4 = `Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t0202000A\t0003\t0\t0\t0\t00000000\t0\t0\t0
eth0\t0002000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
cni0\t0001F40A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
flannel.1\t0002F40A\t0002F40A\t0003\t0\t0\t0\t00FFFFFF\t0\t0\t0
lo\t0003F40A\t00000000\t0201\t0\t0\t0\t00FFFFFF\t0\t0\t0
`;
/* eslint-disable max-len -- /proc/net/ipv6_route lines, verbatim */
const ROUTE6 = `fd000000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0
fd440000000000000000000000000000 30 00000000000000000000000000000000 00 fd000000000000000000000000000009 00000400 00000001 00000000 00000003     eth0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 fd000000000000000000000000000001 00000400 00000002 00000000 00000003     eth0
2001067c000000000000000000000099 80 00000000000000000000000000000000 00 fd000000000000000000000000000001 00000000 00000001 00000000 01000003     eth0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo
`;
/* eslint-enable max-len */
const IFACES = {
  lo: [
    { address: '127.0.0.1', netmask: '255.0.0.0', family: 'IPv4' as const, mac: '00:00:00:00:00:00', internal: true, cidr: '127.0.0.1/8' },
  ],
  eth0: [
    {
      address: '10.0.2.15',
      netmask: '255.255.255.0',
      family: 'IPv4' as const,
      mac: '52:54:00:12:34:56',
      internal: false,
      cidr: '10.0.2.15/24',
    },
    {
      address: 'fd00::2',
      netmask: 'ffff:ffff:ffff:ffff::',
      family: 'IPv6' as const,
      mac: '52:54:00:12:34:56',
      internal: false,
      cidr: 'fd00::2/64',
      scopeid: 0,
    },
  ],
  // An interface whose routes are gone from the table still has its subnet denied.
  eth1: [
    {
      address: '172.20.5.1',
      netmask: '255.255.0.0',
      family: 'IPv4' as const,
      mac: '52:54:00:12:34:57',
      internal: false,
      cidr: '172.20.5.1/16',
    },
  ],
};

function view(): HostView {
  const v = interfaceNetworks(IFACES);
  v.nets.push(...parseRoutes4(ROUTE4, true), ...parseRoutes6(ROUTE6));
  return v;
}

const GW4 = parseIpv4('10.75.0.1');
const GW6 = parseIpv6('fdd4:1476:6c7e::1');

function policy(opts: Partial<PolicyOptions> = {}): {
  v4: (ip: string, port?: number) => Verdict;
  v6: (ip: string, port?: number) => Verdict;
} {
  const p = new Policy({ guestSubnets: ['10.75.0.0/16', 'fdd4:1476:6c7e::/48'], hostView: view, ...opts });
  return { v4: (ip, port = 443) => p.v4(parseIpv4(ip), port, GW4), v6: (ip, port = 443) => p.v6(parseIpv6(ip), 0, port, GW6) };
}

const denied = (v: Verdict, reason: RegExp, what: string) => assert.ok(!v.allow && reason.test(v.reason), `${what}: ${JSON.stringify(v)}`);
const allowed = (v: Verdict, what: string) => assert.ok(v.allow, `${what}: ${JSON.stringify(v)}`);

test('the kernel tables are read as they are printed: IPv4 words in host order, IPv6 defaults and cached routes skipped', () => {
  assert.deepEqual(
    parseRoutes4(ROUTE4, true).map((n) => n.cidr),
    ['10.0.2.0/24', '10.244.1.0/24', '10.244.2.0/24', '10.244.3.0/24'],
  );
  // The same table from a big-endian host.
  const be = ROUTE4.replace(/\t([0-9A-F]{8})/g, (_, h: string) => `\t${h.match(/../g)!.reverse().join('')}`);
  assert.deepEqual(
    parseRoutes4(be, false).map((n) => n.cidr),
    parseRoutes4(ROUTE4, true).map((n) => n.cidr),
  );
  assert.deepEqual(
    parseRoutes6(ROUTE6).map((n) => `${n.cidr} ${n.label}`),
    ['fd00::/64 on eth0 (route)', 'fd44::/48 on eth0 (route)'],
  );
  assert.deepEqual(parseRoutes4('garbage\nmore garbage', true), []);
});

test("dom0's own addresses, attached subnets and routed networks are denied, naming the network; the world is not", () => {
  const p = policy();
  denied(p.v4('10.0.2.15'), /^dom0's own address$/, 'own address');
  denied(p.v4('10.0.2.2'), /^node network 10\.0\.2\.0\/24 on eth0 \(attached\)$/, 'the default gateway, on the attached subnet');
  denied(p.v4('10.0.2.77'), /10\.0\.2\.0\/24/, 'a neighbour on the subnet (another node, Redis)');
  denied(p.v4('10.244.1.9'), /^node network 10\.244\.1\.0\/24 on cni0 \(route\)$/, 'a pod on this node');
  denied(p.v4('10.244.2.9'), /10\.244\.2\.0\/24 on flannel\.1/, "another node's pod through the tunnel");
  denied(p.v4('10.244.3.1'), /10\.244\.3\.0\/24 on lo/, 'a blackholed block');
  denied(p.v4('172.20.200.1'), /^node network 172\.20\.0\.0\/16 on eth1 \(attached\)$/, 'the subnet of an interface without routes');
  allowed(p.v4('93.184.216.34'), 'the world, through the default route');
  allowed(p.v4('10.0.3.1'), 'next to the subnet, but not in it');
  denied(p.v6('fd00::2'), /^dom0's own address$/, 'own IPv6 address');
  denied(p.v6('fd00::1'), /^node network fd00::\/64/, 'the IPv6 subnet');
  denied(p.v6('fd44:0:0:1::5'), /fd44::\/48 on eth0 \(route\)/, 'a routed IPv6 network');
  allowed(p.v6('2001:67c::99'), 'a cached IPv6 route is no network of dom0');
  allowed(p.v6('2606:4700:4700::1111'), 'the IPv6 world');
  // Guests, loopback and link-local as before.
  denied(p.v4('10.75.0.3'), /^guest-to-guest$/, 'another guest');
  denied(p.v4('169.254.169.254'), /link-local/, 'cloud metadata');
  denied(p.v4('10.75.0.1', 80), /host loopback not allowed/, 'the gateway without --host-loopback');
});

test('--host-access opens dom0 own addresses only, not its neighbours', () => {
  const p = policy({ hostAccess: true });
  allowed(p.v4('10.0.2.15'), 'own address');
  denied(p.v4('10.0.2.77'), /node network/, 'a neighbour');
  allowed(p.v6('fd00::2'), 'own IPv6 address');
});

test("deny rules close ranges dom0 routes by default (the cluster's Service range); allow rules reopen, by port", () => {
  const p = policy({
    denyCidrs: ['10.96.0.0/12', 'fd99::/64'],
    allowCidrs: [
      '10.96.0.10/32:53',
      '10.0.2.3/32:53,8000-8080',
      '10.0.2.0/24:9000',
      'fd00::53/128',
      '10.75.0.0/16',
      '169.254.0.0/16',
      '10.0.2.15/32',
      '0.0.0.0/0:6443',
    ],
  });
  denied(p.v4('10.96.0.1'), /^deny-cidr 10\.96\.0\.0\/12$/, 'a Service IP');
  denied(p.v6('fd99::1'), /^deny-cidr fd99::\/64$/, 'an IPv6 deny');
  allowed(p.v4('10.96.0.10', 53), 'cluster DNS on port 53');
  denied(p.v4('10.96.0.10', 80), /deny-cidr/, 'cluster DNS on another port');
  denied(p.v4('10.96.0.10', 0), /deny-cidr/, 'a ping to an address opened only for some ports');
  allowed(p.v4('10.0.2.3', 53), 'the subnet DNS server, port 53');
  allowed(p.v4('10.0.2.3', 8080), 'port range, upper end');
  allowed(p.v4('10.0.2.3', 8000), 'port range, lower end');
  denied(p.v4('10.0.2.3', 8081), /node network/, 'past the range');
  allowed(p.v4('10.0.2.200', 9000), 'a port opened on the whole subnet');
  allowed(p.v6('fd00::53', 22), 'an IPv6 allow without ports');
  denied(p.v6('fd00::54', 22), /node network/, 'its neighbour');
  // An allow never reaches another guest, link-local or dom0 itself (that is --host-access's).
  denied(p.v4('10.75.0.3'), /guest-to-guest/, 'another guest, though allowed');
  denied(p.v4('169.254.169.254'), /link-local/, 'metadata, though allowed');
  denied(p.v4('10.0.2.15', 6443), /own address/, 'dom0 itself, though allowed');
  allowed(p.v4('10.0.2.99', 6443), 'the catch-all allow for one port');
});

test('IPv6 addresses carrying an IPv4 one (NAT64, 6to4, Teredo, compatible/translated) get the IPv4 verdict too', () => {
  const p = policy({ denyCidrs: ['10.96.0.0/12'], allowCidrs: ['10.0.2.3/32:53'] });
  // Each IPv4 rule, reached through the NAT64 well-known prefix (dom0 routing 64:ff9b::/96 to a gateway).
  denied(p.v6('64:ff9b::10.0.2.15'), /^NAT64 10\.0\.2\.15: dom0's own address$/, "dom0's own address via NAT64");
  denied(p.v6('64:ff9b::10.0.2.77'), /^NAT64 10\.0\.2\.77: node network 10\.0\.2\.0\/24/, 'a neighbour (Redis) via NAT64');
  denied(p.v6('64:ff9b::10.96.0.1'), /^NAT64 10\.96\.0\.1: deny-cidr 10\.96\.0\.0\/12$/, 'a Service IP via NAT64');
  denied(p.v6('64:ff9b::10.75.0.3'), /^NAT64 10\.75\.0\.3: guest-to-guest$/, 'another guest via NAT64');
  denied(p.v6('64:ff9b::10.75.0.1', 80), /guest-to-guest/, "the guest's IPv4 gateway via NAT64");
  denied(p.v6('64:ff9b::127.0.0.1'), /^NAT64 127\.0\.0\.1: special address$/, 'loopback via NAT64');
  denied(p.v6('64:ff9b::169.254.169.254'), /link-local/, 'cloud metadata via NAT64');
  allowed(p.v6('64:ff9b::93.184.216.34'), 'the IPv4 world via NAT64');
  // The IPv4 allow rules apply with the guest's port; the IPv6 rules still apply after.
  allowed(p.v6('64:ff9b::10.0.2.3', 53), 'an IPv4 allow, on its port');
  denied(p.v6('64:ff9b::10.0.2.3', 80), /node network/, 'the same address on another port');
  denied(
    new Policy({ guestSubnets: ['10.75.0.0/16'], hostView: view, denyCidrs: ['64:ff9b::/96'] }).v6(
      parseIpv6('64:ff9b::93.184.216.34'),
      0,
      443,
      GW6,
    ),
    /^deny-cidr 64:ff9b::\/96$/,
    'an IPv6 deny of the NAT64 prefix',
  );
  // Local-use NAT64 prefix: /96 and the shorter RFC 6052 layouts (the u octet, byte 8, skipped).
  denied(p.v6('64:ff9b:1::10.0.2.15'), /^NAT64 \/96 10\.0\.2\.15: dom0's own address$/, 'local-use /96');
  denied(p.v6('64:ff9b:1:a00:2:f00::'), /^NAT64 \/48 10\.0\.2\.15: dom0's own address$/, 'local-use /48');
  denied(p.v6('64:ff9b:1:a:0:20f::'), /^NAT64 \/56 10\.0\.2\.15/, 'local-use /56');
  denied(p.v6('64:ff9b:1:0:a:2:f00::'), /^NAT64 \/64 10\.0\.2\.15/, 'local-use /64');
  denied(p.v6('64:ff9b:1:a00:2:f00:0:808'), /^NAT64 \/96 0\.0\.8\.8/, 'with a nonzero suffix only the /96 reading holds');
  allowed(p.v6('64:ff9b:1::93.184.216.34'), 'the IPv4 world, local-use /96');
  allowed(p.v6('64:ff9b:1:5db8:d8:2200::'), 'the IPv4 world, local-use /48');
  // 6to4, Teredo, IPv4-compatible and IPv4-translated forms.
  denied(p.v6('2002:a00:20f::1'), /^6to4 10\.0\.2\.15: dom0's own address$/, '6to4');
  denied(p.v6('2002:7f00:1::1'), /^6to4 127\.0\.0\.1/, '6to4 loopback');
  allowed(p.v6('2002:5db8:d822::1'), '6to4 to the world');
  denied(p.v6('2001:0:a00:24d:0:0:f5ff:fdb2'), /^Teredo server 10\.0\.2\.77/, 'Teredo server');
  denied(p.v6('2001:0:5db8:d822:0:0:f5ff:fdf0'), /^Teredo client 10\.0\.2\.15/, 'Teredo client (inverted)');
  denied(p.v6('::10.0.2.15'), /^IPv4-compatible 10\.0\.2\.15/, 'IPv4-compatible');
  denied(p.v6('::ffff:0:10.0.2.15'), /^IPv4-translated 10\.0\.2\.15/, 'IPv4-translated');
  denied(p.v6('::ffff:10.0.2.15'), /^IPv4-mapped address$/, 'IPv4-mapped, as before');
});

test('rules, configuration and flags: bad input is refused with the field or flag named', () => {
  assert.deepEqual(parseCidrRule('fd00::/8:53,80-90').ports, [
    [53, 53],
    [80, 90],
  ]);
  assert.equal(parseCidrRule('10.0.0.0/8').ports, null);
  assert.throws(() => parseCidrRule('10.0.0.0/8:0'), /ports "0"/);
  assert.throws(() => parseCidrRule('10.0.0.0/8:90-80'), /ports "90-80"/);
  assert.throws(() => parseCidrRule('10.0.0.0/8:53', false), /no ports here/);
  assert.throws(() => parseCidrRule('10.0.0.0'), /is not CIDR/);
  assert.throws(() => parseCidrRule('10.0.0.300/8'), /not an IPv4 address/);
  assert.throws(() => validateConfig({ guests: [], denyCidrs: ['10.0.0.0/33'] }), /config: denyCidrs\[0\]: .*too long/);
  assert.throws(() => validateConfig({ guests: [], denyCidrs: ['10.0.0.0/8:53'] }), /config: denyCidrs\[0\]: .*no ports/);
  assert.throws(() => validateConfig({ guests: [], allowCidrs: ['10.0.0.0/8', 7] }), /config: allowCidrs\[1\]: must be a string/);
  assert.throws(() => validateConfig({ guests: [], allowCidrs: '10.0.0.0/8' }), /config: allowCidrs: must be a list/);
  assert.throws(
    () => validateConfig({ guests: [], hostBudget: 1024 }),
    /config: hostBudget: must be a whole number of bytes, at least 1048576/,
  );
  assert.throws(() => validateConfig({ guests: [], hostBudget: 1.5e9 + 0.5 }), /hostBudget/);
  assert.throws(() => validateConfig({ guests: [], flowRate: 0 }), /config: flowRate: must be a whole number of flows a second, 1-1000000/);
  assert.throws(() => validateConfig({ guests: [], flowRate: '100' }), /flowRate/);
  assert.equal(validateConfig({ guests: [], flowRate: 50 }).flowRate, 50);
  const ok = validateConfig({ guests: [], denyCidrs: ['10.96.0.0/12'], allowCidrs: ['10.96.0.10/32:53'], hostBudget: 1 << 30 });
  assert.deepEqual([ok.denyCidrs, ok.allowCidrs, ok.hostBudget], [['10.96.0.0/12'], ['10.96.0.10/32:53'], 1 << 30]);
  assert.throws(() => egressFlags(['10.96.0.0/12', 'nope']), /^Error: --deny-cidr: "nope" is not CIDR$/);
  assert.throws(() => egressFlags([], ['10.0.0.0/8:http']), /^Error: --allow-cidr: .*ports "http"/);
  assert.throws(() => egressFlags([], [], '0'), /--network-budget: "0"/);
  assert.throws(() => egressFlags([], [], '1.5'), /--network-budget/);
  assert.deepEqual(egressFlags(['10.96.0.0/12'], ['10.0.0.1/32:53'], '512'), {
    denyCidrs: ['10.96.0.0/12'],
    allowCidrs: ['10.0.0.1/32:53'],
    hostBudget: 512 << 20,
  });
  // The guests' DNS servers are reachable on port 53, wherever they are.
  assert.deepEqual(egressFlags([], [], undefined, ['10.96.0.10', 'fd00::53']).allowCidrs, ['10.96.0.10/32:53', 'fd00::53/128:53']);
  assert.throws(() => egressFlags([], [], undefined, ['dns.example']), /^Error: --nameserver: /);
});

test('the prefix table answers with the longest prefix', () => {
  const t = new PrefixTable<string>();
  t.add('10.0.0.0/8', 'eight');
  t.add('10.1.0.0/16', 'sixteen');
  t.add('10.1.2.3/32', 'host');
  t.add('10.1.0.0/16', 'again'); // the first label stays
  t.add('2001:db8::/32', 'v6');
  t.add('2001:db8:ab::/47', 'v6-47');
  assert.equal(t.match4(parseIpv4('10.1.2.3')), 'host');
  assert.equal(t.match4(parseIpv4('10.1.9.9')), 'sixteen');
  assert.equal(t.match4(parseIpv4('10.200.0.1')), 'eight');
  assert.equal(t.match4(parseIpv4('11.0.0.1')), undefined);
  assert.equal(t.match6(parseIpv6('2001:db8:ab:1::1'), 0), 'v6-47');
  assert.equal(t.match6(parseIpv6('2001:db8:ac::1'), 0), 'v6');
  assert.equal(t.match6(parseIpv6('2001:db9::1'), 0), undefined);
  assert.equal(t.size, 5);
});

test("by default the policy reads this machine's networks: an address on one of its routes is denied", () => {
  const routes = parseRoutes4(readFileSync('/proc/net/route', 'utf8'));
  const net = routes.find(
    (r) =>
      !r.cidr.startsWith('127.') && !r.cidr.startsWith('169.254.') && !r.cidr.startsWith('10.75.') && Number(r.cidr.split('/')[1]) <= 30,
  );
  assert.ok(net, `this machine routes no network but its default: ${JSON.stringify(routes)}`);
  // The network's second address: e.g. 192.0.2.1 for 192.0.2.0/24, the usual gateway.
  const addr = (parseIpv4(net.cidr.split('/')[0]!) + 1) >>> 0;
  const v = new Policy({ guestSubnets: ['10.75.0.0/16'] }).v4(addr, 80, GW4);
  assert.ok(!v.allow && /^(node network|dom0's own address)/.test(v.reason), JSON.stringify(v));
});
