// Rules the CRD schema cannot state on a Kubernetes 1.20 API server (no CEL): relations between
// fields, label syntax, quantity bounds. Runs on schema-valid, defaulted objects only.
import type { GuestNetwork, GuestResources, GuestSet, GuestSpec, LabelSelectorRequirement, Probe, XenHost } from './generated/types.js';
import { matchesSelector } from './label-selector.js';
import type { ObjectMeta } from './meta.js';
import { DNS1123_SUBDOMAIN } from './meta.js';
import { formatBytes, quantityValue } from './quantity.js';
import type { FieldError, KratObject, Path } from './field-error.js';

const MiB = 1n << 20n;
export const MIN_GUEST_MEMORY = 32n * MiB;
export const MAX_GUEST_MEMORY = 1n << 40n; // 1Ti: far above any single PV guest we can build

const QUALIFIED_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const ANNOTATIONS_MAX_BYTES = 256 * 1024;

/** Whether the schema found the part of the object at this path (and everything above it) sound. */
export type Sound = (...path: Path) => boolean;

export function semanticErrors(obj: KratObject, sound: Sound): FieldError[] {
  const errors = metadataErrors(obj.metadata, sound);
  if (obj.kind === 'Guest') errors.push(...guestErrors(obj.spec, sound, ['spec']));
  else if (obj.kind === 'GuestSet') errors.push(...guestSetErrors(obj, sound));
  else {
    if (sound('spec', 'reserved', 'memory')) errors.push(...xenHostErrors(obj));
    (obj.spec.guestPolicy?.hostPorts ?? []).forEach((r, i) => {
      if (sound('spec', 'guestPolicy', 'hostPorts', i) && r.to < r.from)
        errors.push({ path: ['spec', 'guestPolicy', 'hostPorts', i, 'to'], message: `must be at least from (${r.from}), got ${r.to}` });
    });
  }
  return errors;
}

/** A label or annotation key: [prefix/]name, prefix a DNS subdomain of at most 253 characters. */
export function qualifiedNameError(key: string): string | undefined {
  const slash = key.lastIndexOf('/');
  const prefix = slash >= 0 ? key.slice(0, slash) : undefined;
  const name = slash >= 0 ? key.slice(slash + 1) : key;
  if (prefix !== undefined && (prefix.length > 253 || !new RegExp(DNS1123_SUBDOMAIN).test(prefix))) {
    return `key "${key}": prefix must be a DNS subdomain (lowercase letters, digits, "-" and ".")`;
  }
  if (name.length === 0 || name.length > 63 || !QUALIFIED_NAME.test(name)) {
    return `key "${key}": name must be 1-63 letters, digits, "-", "_" or ".", starting and ending with a letter or digit`;
  }
  return undefined;
}

export function labelValueError(value: string): string | undefined {
  if (value.length > 63 || !LABEL_VALUE.test(value)) {
    return `value "${value}" must be at most 63 letters, digits, "-", "_" or ".", starting and ending with a letter or digit`;
  }
  return undefined;
}

function labelMapErrors(map: Record<string, string> | undefined, path: Path, checkValues: boolean): FieldError[] {
  const errors: FieldError[] = [];
  for (const [key, value] of Object.entries(map ?? {})) {
    const keyError = qualifiedNameError(key);
    if (keyError) errors.push({ path: [...path, key], message: keyError, onKey: true });
    const valueError = checkValues ? labelValueError(value) : undefined;
    if (valueError) errors.push({ path: [...path, key], message: valueError });
  }
  return errors;
}

function metadataErrors(meta: ObjectMeta, sound: Sound): FieldError[] {
  const errors = [
    ...(sound('metadata', 'labels') ? labelMapErrors(meta.labels, ['metadata', 'labels'], true) : []),
    ...(sound('metadata', 'annotations') ? labelMapErrors(meta.annotations, ['metadata', 'annotations'], false) : []),
  ];
  if (!sound('metadata', 'annotations')) return errors;
  const size = Object.entries(meta.annotations ?? {}).reduce((n, [k, v]) => n + Buffer.byteLength(k) + Buffer.byteLength(v), 0);
  if (size > ANNOTATIONS_MAX_BYTES) {
    errors.push({ path: ['metadata', 'annotations'], message: `must total at most 256KiB (got ${size} bytes)` });
  }
  return errors;
}

/** A Guest spec's rules, at `base` (spec of a Guest, spec.template.spec of a GuestSet). */
function guestErrors(spec: GuestSpec, sound: Sound, base: Path): FieldError[] {
  if (spec === null || typeof spec !== 'object') return [];
  const errors: FieldError[] = [];
  const at = (...path: Path): Path => [...base, ...path];
  if (sound(...at('resources'))) errors.push(...resourceErrors(spec.resources, base));
  for (const field of ['kernel', 'initrd'] as const) {
    const source = spec[field];
    if (sound(...at(field)) && source?.image !== undefined && source.path !== undefined) {
      errors.push({ path: at(field, 'path'), message: `set either ${field}.image or ${field}.path, not both` });
    }
  }
  if (spec.network !== null && typeof spec.network === 'object') errors.push(...portErrors(spec.network, sound, base));
  if (sound(...at('nodeSelector'))) errors.push(...labelMapErrors(spec.nodeSelector, at('nodeSelector'), true));
  for (const field of PROBE_FIELDS) if (sound(...at(field)) && spec[field]) errors.push(...probeErrors(spec, field, spec[field], base));
  return errors;
}

const PROBE_FIELDS = ['startupProbe', 'readinessProbe', 'livenessProbe'] as const;
const PROBE_HANDLERS = ['exec', 'tcpSocket', 'httpGet'] as const;

/** Pod's Probe rules: exactly one handler, a port that exists, successThreshold 1 where only 1 makes sense. */
function probeErrors(spec: GuestSpec, field: (typeof PROBE_FIELDS)[number], probe: Probe, base: Path): FieldError[] {
  const errors: FieldError[] = [];
  const at = (...path: Path): Path => [...base, field, ...path];
  const handlers = PROBE_HANDLERS.filter((h) => probe[h] !== undefined);
  if (handlers.length === 0) errors.push({ path: at(), message: 'must set exactly one of exec, tcpSocket or httpGet' });
  for (const h of handlers.slice(1))
    errors.push({ path: at(h), message: `must set exactly one of exec, tcpSocket or httpGet (${handlers[0]} is set)` });
  for (const h of ['tcpSocket', 'httpGet'] as const) {
    const port = probe[h]?.port;
    if (port === undefined) continue;
    const message =
      spec.network?.enabled === false
        ? `${h} probes reach the guest over its network: set network.enabled to true`
        : probePortError(spec, port);
    if (message) errors.push({ path: at(h, 'port'), message });
  }
  if (field !== 'readinessProbe' && probe.successThreshold !== 1) {
    errors.push({ path: at('successThreshold'), message: `must be 1 for ${field} (got ${probe.successThreshold})` });
  }
  return errors;
}

function probePortError(spec: GuestSpec, port: number | string): string | undefined {
  if (typeof port === 'number') return Number.isInteger(port) && port >= 1 && port <= 65535 ? undefined : `must be 1-65535 (got ${port})`;
  if (/^[0-9]+$/.test(port)) return `must be a number or a port name, not the string "${port}"`;
  const named = Array.isArray(spec.network?.ports) ? spec.network.ports.filter((p) => p.name === port) : [];
  if (named.length === 0) return `names no port: no spec.network.ports entry is named "${port}"`;
  if (!named.some((p) => p.protocol === 'TCP')) return `port "${port}" is not a TCP port`;
  return undefined;
}

function resourceErrors(res: GuestResources, base: Path): FieldError[] {
  const errors: FieldError[] = [];
  const at = (...path: Path): Path => [...base, 'resources', ...path];

  const memory = quantityValue(res.memory);
  const maxMemory = res.maxMemory === undefined ? memory : quantityValue(res.maxMemory);
  if (memory === undefined) errors.push({ path: at('memory'), message: `must match quantity (such as 512Mi or 2Gi)` });
  else if (memory < MIN_GUEST_MEMORY) {
    errors.push({ path: at('memory'), message: `must be at least ${formatBytes(MIN_GUEST_MEMORY)} (got ${res.memory})` });
  } else if (memory > MAX_GUEST_MEMORY) {
    errors.push({ path: at('memory'), message: `must be at most ${formatBytes(MAX_GUEST_MEMORY)} (got ${res.memory})` });
  }
  if (res.maxMemory !== undefined && maxMemory !== undefined && memory !== undefined) {
    if (maxMemory < memory) {
      errors.push({ path: at('maxMemory'), message: `must be at least memory (${res.memory}), got ${res.maxMemory}` });
    } else if (maxMemory > MAX_GUEST_MEMORY) {
      errors.push({ path: at('maxMemory'), message: `must be at most ${formatBytes(MAX_GUEST_MEMORY)} (got ${res.maxMemory})` });
    }
  }
  if (res.maxCpus !== undefined && res.maxCpus < res.cpus) {
    errors.push({ path: at('maxCpus'), message: `must be at least cpus (${res.cpus}), got ${res.maxCpus}` });
  }
  return errors;
}

function portErrors(network: GuestNetwork, sound: Sound, base: Path): FieldError[] {
  const errors: FieldError[] = [];
  const at = (...path: Path): Path => [...base, 'network', ...path];
  const hostPorts = new Map<string, number>();
  const ports = Array.isArray(network.ports) ? network.ports : [];
  ports.forEach((port, i) => {
    if (!sound(...at('ports', i))) return;
    const key = `${port.protocol}/${port.hostPort ?? port.containerPort}`;
    const first = hostPorts.get(key);
    if (first === undefined) hostPorts.set(key, i);
    else {
      errors.push({
        path: at('ports', i, port.hostPort === undefined ? 'containerPort' : 'hostPort'),
        message: `host port ${key} is already published by ${base.join('.')}.network.ports[${first}]`,
      });
    }
  });
  if (network.enabled === false && ports.length) {
    errors.push({ path: at('ports'), message: 'ports need the network: remove them or set network.enabled to true' });
  }
  return errors;
}

/**
 * A GuestSet: its template is a Guest (labels, annotations, spec), its selector must select the
 * template's labels (else the set would never see the Guests it makes), and the strategy's numbers
 * must allow progress.
 */
function guestSetErrors(set: GuestSet, sound: Sound): FieldError[] {
  const { spec } = set;
  const errors: FieldError[] = [];
  const tpl = ['spec', 'template'];
  const meta = spec.template.metadata;
  if (sound(...tpl, 'metadata', 'labels')) errors.push(...labelMapErrors(meta?.labels, [...tpl, 'metadata', 'labels'], true));
  if (sound(...tpl, 'metadata', 'annotations'))
    errors.push(...labelMapErrors(meta?.annotations, [...tpl, 'metadata', 'annotations'], false));
  if (sound(...tpl, 'spec')) errors.push(...guestErrors(spec.template.spec, sound, [...tpl, 'spec']));
  if (sound('spec', 'selector')) {
    const sel = spec.selector;
    const selErrors = [
      ...labelMapErrors(sel.matchLabels, ['spec', 'selector', 'matchLabels'], true),
      ...selectorExpressionErrors(sel.matchExpressions ?? []),
    ];
    errors.push(...selErrors);
    if (!sel.matchLabels && !sel.matchExpressions?.length)
      errors.push({ path: ['spec', 'selector'], message: 'must not be empty: an empty selector would select every Guest' });
    else if (!selErrors.length && sound(...tpl, 'metadata') && !matchesSelector(sel, meta?.labels ?? {}))
      errors.push({
        path: ['spec', 'selector'],
        message: "does not match the template's labels (spec.template.metadata.labels): the set would never see its Guests",
      });
  }
  const strategy = spec.strategy;
  if (sound('spec', 'strategy') && strategy.rollingUpdate) {
    const ru = strategy.rollingUpdate;
    const at = ['spec', 'strategy', 'rollingUpdate'];
    if (strategy.type === 'Recreate') errors.push({ path: at, message: 'may only be set when type is RollingUpdate' });
    else {
      const isZero = (v: number | string) => v === 0 || v === '0%';
      if (isZero(ru.maxSurge) && isZero(ru.maxUnavailable))
        errors.push({ path: [...at, 'maxUnavailable'], message: 'may not be 0 when maxSurge is 0: the update could not start' });
      if (typeof ru.maxUnavailable === 'string' && Number.parseInt(ru.maxUnavailable, 10) > 100)
        errors.push({ path: [...at, 'maxUnavailable'], message: `must not be above 100% (got ${ru.maxUnavailable})` });
    }
  }
  return errors;
}

function selectorExpressionErrors(exprs: LabelSelectorRequirement[]): FieldError[] {
  const errors: FieldError[] = [];
  exprs.forEach((e, i) => {
    const at: Path = ['spec', 'selector', 'matchExpressions', i];
    const keyError = qualifiedNameError(e.key);
    if (keyError) errors.push({ path: [...at, 'key'], message: keyError });
    const needsValues = e.operator === 'In' || e.operator === 'NotIn';
    if (needsValues && !e.values?.length) errors.push({ path: [...at, 'values'], message: `must not be empty for operator ${e.operator}` });
    if (!needsValues && e.values?.length) errors.push({ path: [...at, 'values'], message: `must be empty for operator ${e.operator}` });
    (e.values ?? []).forEach((v, j) => {
      const valueError = labelValueError(v);
      if (valueError) errors.push({ path: [...at, 'values', j], message: valueError });
    });
  });
  return errors;
}

function xenHostErrors(host: XenHost): FieldError[] {
  const reserved = quantityValue(host.spec.reserved.memory);
  if (reserved === undefined || reserved < 0n) {
    return [{ path: ['spec', 'reserved', 'memory'], message: `must be a non-negative quantity (got ${host.spec.reserved.memory})` }];
  }
  return [];
}
