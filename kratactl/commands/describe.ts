// kratactl describe guest NAME: one Guest for people, as kubectl describe prints a Pod: its spec in
// short, its status, its usage while it runs, its conditions and the recent events about it.
import type { Guest, GuestSet, GuestSpec, Probe, ProbeStatus } from '../../crds/generated/types.js';
import { quantityValue } from '../../crds/quantity.js';
import { AgentError, type AgentClient, type GuestEvent, type GuestUsage } from '../agent-client.js';
import { EXIT_OK, UsageError, type IO } from '../io.js';
import {
  AGENT_HELP,
  AGENT_OPTIONS,
  age,
  agentClient,
  agentFailure,
  checkGuestName,
  checkKindWord,
  formatTable,
  guestRow,
  isGuestKind,
  isGuestSetKind,
  namespaceOf,
} from './common.js';
import { usageFields } from '../../contracts/agent-api/usage-figures.js';
import { parseFlags, type FlagSpecs } from '../../lib/cli-flags.js';
import { guestWord, resolveGuests } from '../guest-ref.js';

export const DESCRIBE_HELP = `Show a Guest in detail: spec, status, usage (while it runs), conditions and recent events.

Usage: kratactl describe guest NAME... [options]
       kratactl describe guestset|gs NAME... [options]

${AGENT_HELP}
`;

/** The flags of `kratactl describe` (completion reads them too). */
export const DESCRIBE_OPTIONS = { ...AGENT_OPTIONS } as const satisfies FlagSpecs;

export async function describe(argv: string[], io: IO): Promise<number> {
  const { values, positionals } = parseFlags(argv, DESCRIBE_OPTIONS);
  const [kind, ...names] = positionals;
  if (kind === undefined) throw new UsageError('describe needs a kind and a name: kratactl describe guest NAME');
  if (isGuestSetKind(kind)) {
    if (names.length === 0) throw new UsageError('describe guestset needs a NAME');
    names.forEach(checkGuestName);
    const namespace = namespaceOf(values);
    const client = agentClient(values, io);
    try {
      const out: string[] = [];
      for (const name of names) {
        const set = await client.getGuestSet(namespace, name);
        const guests = (await client.list(namespace)).filter((g) =>
          g.metadata.ownerReferences?.some((r) => r.controller && r.kind === 'GuestSet' && r.uid === set.metadata.uid),
        );
        out.push(describeGuestSet(set, guests, Date.now()));
      }
      io.stdout.write(out.join('\n\n'));
      return EXIT_OK;
    } catch (err) {
      return agentFailure(io, err);
    }
  }
  if (!isGuestKind(kind)) {
    checkKindWord(kind, 'describe');
    throw new UsageError(`describe needs a kind first: kratactl describe guest ${kind}`);
  }
  if (names.length === 0) throw new UsageError('describe guest needs a NAME');
  const words = names.map(guestWord);
  const ns = namespaceOf(values);
  const client = agentClient(values, io);
  try {
    const out: string[] = [];
    for (const { namespace, name } of await resolveGuests(
      client,
      words.map((name) => ({ namespace: ns, name })),
    )) {
      const guest = await client.get(namespace, name);
      out.push(describeGuest(guest, await client.events(namespace, name), Date.now(), await usageOf(client, guest)));
    }
    io.stdout.write(out.join('\n\n'));
    return EXIT_OK;
  } catch (err) {
    return agentFailure(io, err);
  }
}

/**
 * A running Guest's usage; undefined when it has none (its domain just went) or the agent serves none
 * (an older one): describe shows the rest either way.
 */
async function usageOf(client: AgentClient, g: Guest): Promise<GuestUsage | undefined> {
  if (g.status?.domid === undefined) return undefined;
  try {
    return await client.guestUsage(g.metadata.namespace ?? 'default', g.metadata.name);
  } catch (err) {
    if (err instanceof AgentError && (err.status === 404 || err.status === 409)) return undefined;
    throw err;
  }
}

/** "Key:   value" lines with the values aligned, nested sections indented by two spaces. */
function fields(entries: [string, string | undefined][], indent = ''): string {
  const shown = entries.filter((e): e is [string, string] => e[1] !== undefined);
  const width = Math.max(...shown.map(([k]) => k.length)) + 2;
  return shown.map(([k, v]) => `${indent}${(k + ':').padEnd(width)}${v}`.trimEnd() + '\n').join('');
}

function map(m: Record<string, string> | undefined): string {
  const entries = Object.entries(m ?? {});
  return entries.length ? entries.map(([k, v]) => `${k}=${v}`).join(',') : '<none>';
}

function list(l: string[] | undefined): string | undefined {
  return l?.length ? l.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : JSON.stringify(a))).join(' ') : undefined;
}

function when(t: string | undefined, now: number): string | undefined {
  return t ? `${t} (${age(t, now)} ago)` : undefined;
}

/**
 * The running domain's resources (status.resources): the targets applied, what Xen sees the guest hold,
 * and what the spec asks when that differs (not applied yet, or applied to a domain being replaced).
 */
export function appliedResources(g: Guest): string | undefined {
  const r = g.status?.resources;
  if (!r || r.cpus === undefined) return undefined;
  const req = g.spec.resources;
  let out = `${r.cpus} vCPU${r.cpus === 1 ? '' : 's'}${r.vcpusOnline !== undefined ? ` (${r.vcpusOnline} online)` : ''}`;
  if (r.memory !== undefined) out += `, memory ${r.memory}${r.memoryActual !== undefined ? ` (guest holds ${r.memoryActual})` : ''}`;
  const sameMemory = r.memory !== undefined && quantityValue(r.memory) === quantityValue(req.memory ?? '512Mi');
  if (r.cpus !== req.cpus || !sameMemory) out += `; requested ${req.cpus} vCPU${req.cpus === 1 ? '' : 's'}, memory ${req.memory}`;
  return out;
}

export function describeGuest(g: Guest, events: GuestEvent[], now = Date.now(), usage?: GuestUsage): string {
  const spec = g.spec;
  const s = g.status ?? {};
  const r = spec.resources;
  const resources =
    `${r.cpus} vCPU${r.cpus === 1 ? '' : 's'}${r.maxCpus !== undefined && r.maxCpus !== r.cpus ? ` (max ${r.maxCpus})` : ''}, ` +
    `memory ${r.memory}${r.maxMemory !== undefined && String(r.maxMemory) !== String(r.memory) ? ` (max ${r.maxMemory})` : ''}`;
  const ports = spec.network.ports
    ?.map(
      (p) => `${p.containerPort}/${p.protocol}${p.hostPort !== undefined && p.hostPort !== p.containerPort ? ` (host ${p.hostPort})` : ''}`,
    )
    .join(', ');
  const ended = s.exitCode !== undefined ? `exit code ${s.exitCode}` : s.signal !== undefined ? `killed by signal ${s.signal}` : undefined;
  let out = fields([
    ['Name', g.metadata.name],
    ['Namespace', g.metadata.namespace ?? 'default'],
    ['Labels', map(g.metadata.labels)],
    ['Annotations', map(g.metadata.annotations)],
    ['Created', when(g.metadata.creationTimestamp, now)],
    ['Deleting since', when(g.metadata.deletionTimestamp, now)],
    ['Image', spec.image],
    ['Image digest', s.imageDigest],
    ['Command', list(spec.command)],
    ['Args', list(spec.args)],
    ['Working dir', spec.workingDir],
    ['User', spec.user],
    ['TTY', spec.tty ? 'true' : undefined],
    ['Resources', resources],
    ['Restart policy', spec.restartPolicy],
    ['Grace period', `${spec.terminationGracePeriodSeconds}s`],
    ['Network', spec.network.enabled ? `enabled${ports ? `, ports ${ports}` : ''}` : 'disabled'],
    ['Node', s.node ?? spec.nodeName ?? '<none>'],
  ]);
  out += probeLines(spec);
  const env = spec.env ?? [];
  if (env.length) out += 'Environment:\n' + env.map((e) => `  ${e.name}=${e.value ?? ''}\n`).join('');
  out += 'Status:\n';
  out += fields(
    [
      ['Phase', s.phase ?? 'Pending'],
      ['Reason', s.reason],
      ['Message', s.message],
      ['Domain ID', s.domid === undefined ? undefined : String(s.domid)],
      ['Resources', appliedResources(g)],
      ['Resources pending', s.resources?.message],
      ['IPv4', s.addresses?.ipv4],
      ['IPv6', s.addresses?.ipv6],
      ['MAC', s.addresses?.mac],
      ['Started', when(s.startTime, now)],
      ['Finished', when(s.finishTime, now)],
      ['Last exit', ended],
      ['Restart count', String(s.restartCount ?? 0)],
    ],
    '  ',
  );
  out += probeResults(s.probes, now);
  if (usage) out += 'Usage:\n' + fields(usageFields(usage), '  ');
  out += 'Conditions:\n';
  const conditions = s.conditions ?? [];
  out += conditions.length
    ? indent(
        formatTable([
          ['TYPE', 'STATUS', 'REASON', 'MESSAGE', 'AGE'],
          ...conditions.map((c) => [c.type, c.status, c.reason, c.message, age(c.lastTransitionTime, now)]),
        ]),
      )
    : '  <none>\n';
  out += 'Events:';
  if (events.length === 0) return out + ' <none>\n';
  const sorted = [...events].sort((a, b) => Date.parse(a.lastTime) - Date.parse(b.lastTime));
  const rows = sorted.map((e) => {
    const seen = e.count > 1 ? `${age(e.lastTime, now)} (x${e.count} over ${age(e.firstTime, now)})` : age(e.lastTime, now);
    return [e.type, e.reason, seen, e.message];
  });
  return out + '\n' + indent(formatTable([['TYPE', 'REASON', 'AGE', 'MESSAGE'], ['----', '------', '---', '-------'], ...rows]));
}

function indent(text: string): string {
  return text.replace(/^/gm, '  ').replace(/ +$/, '');
}

const PROBES = [
  ['Liveness', 'livenessProbe'],
  ['Readiness', 'readinessProbe'],
  ['Startup', 'startupProbe'],
] as const;

/** kubectl's probe line: "http-get http://:8080/healthz delay=0s timeout=1s period=10s #success=1 #failure=3". */
export function probeLine(p: Probe): string {
  const how = p.exec
    ? `exec [${p.exec.command.join(' ')}]`
    : p.tcpSocket
      ? `tcp-socket :${p.tcpSocket.port}`
      : p.httpGet
        ? `http-get ${p.httpGet.scheme.toLowerCase()}://:${p.httpGet.port}${p.httpGet.path}`
        : 'unknown';
  return (
    `${how} delay=${p.initialDelaySeconds}s timeout=${p.timeoutSeconds}s period=${p.periodSeconds}s ` +
    `#success=${p.successThreshold} #failure=${p.failureThreshold}`
  );
}

function probeLines(spec: GuestSpec): string {
  return fields(PROBES.map(([label, field]) => [label, spec[field] ? probeLine(spec[field]) : undefined]));
}

function probeResults(probes: NonNullable<Guest['status']>['probes'], now: number): string {
  if (!probes) return '';
  const row = (label: string, p: ProbeStatus | undefined): [string, string | undefined] => {
    if (!p) return [label, undefined];
    const streak = p.result === 'Failure' ? ` (${p.consecutiveFailures ?? 0} failures in a row)` : '';
    const last = p.lastProbeTime ? `, last probed ${age(p.lastProbeTime, now)} ago` : '';
    return [label, `${p.result}${streak}${last}${p.message ? `: ${p.message}` : ''}`];
  };
  const k = probes.lastKill;
  const rows: [string, string | undefined][] = [
    row('Startup', probes.startup),
    row('Readiness', probes.readiness),
    row('Liveness', probes.liveness),
    [
      'Last probe kill',
      k ? `${k.probe} probe stopped domain ${k.domid ?? '?'} ${age(k.time, now)} ago${k.message ? `: ${k.message}` : ''}` : undefined,
    ],
  ];
  return rows.some(([, v]) => v !== undefined) ? 'Probes:\n' + fields(rows, '  ') : '';
}

/** A GuestSet as kubectl describes a Deployment, with its Guests as rows of `kratactl get`. */
export function describeGuestSet(set: GuestSet, guests: Guest[], now: number): string {
  const st = set.status ?? {};
  const { strategy } = set.spec;
  const unavailable = Math.max(0, (st.replicas ?? 0) - (st.availableReplicas ?? 0));
  const ru = strategy.rollingUpdate;
  let out = fields([
    ['Name', set.metadata.name],
    ['Namespace', set.metadata.namespace ?? 'default'],
    ['CreationTimestamp', set.metadata.creationTimestamp],
    ['Labels', map(set.metadata.labels)],
    ['Selector', st.selector ?? '<none>'],
    [
      'Replicas',
      `${set.spec.replicas} desired | ${st.updatedReplicas ?? 0} updated | ${st.replicas ?? 0} total | ` +
        `${st.availableReplicas ?? 0} available | ${unavailable} unavailable`,
    ],
    ['StrategyType', strategy.type],
    ['MinReadySeconds', String(set.spec.minReadySeconds)],
    [
      'RollingUpdateStrategy',
      strategy.type === 'RollingUpdate' ? `${ru?.maxUnavailable ?? '25%'} max unavailable, ${ru?.maxSurge ?? '25%'} max surge` : undefined,
    ],
    ['UpdateRevision', st.updateRevision],
  ]);
  out += 'Template:\n';
  out += fields(
    [
      ['Labels', map(set.spec.template.metadata?.labels)],
      ['Image', set.spec.template.spec.image],
      ['Resources', `cpus ${set.spec.template.spec.resources.cpus}, memory ${set.spec.template.spec.resources.memory}`],
    ],
    '  ',
  );
  const conditions = st.conditions ?? [];
  out += 'Conditions:\n';
  out += conditions.length
    ? formatTable([['  Type', 'Status', 'Reason', 'Message'], ...conditions.map((c) => [`  ${c.type}`, c.status, c.reason, c.message])])
    : '  <none>\n';
  out += 'Guests:\n';
  out += guests.length
    ? formatTable([
        ['  NAME', 'PHASE', 'READY', 'RESTARTS', 'IP', 'AGE'],
        ...guests.map((g) => {
          const row = guestRow(g, false, false, now);
          return [`  ${row[0]}`, ...row.slice(1)];
        }),
      ])
    : '  <none>\n';
  return out;
}
