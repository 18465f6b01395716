// `-l/--selector` and `--field-selector` as kubectl and the apiserver read them: label selectors
// equality-based (`a=b`, `a==b`, `a!=b`) and set-based (`a in (x,y)`, `a notin (x)`, `a`, `!a`, `a>1`,
// `a<1`), comma meaning AND; field selectors `f=v`, `f==v`, `f!=v` over the fields the agent's objects
// have (metadata.name, metadata.namespace, status.phase, spec.nodeName, status.node).
import type { Guest, GuestSet } from '../crds/generated/types.js';
import { UsageError } from './io.js';

type Op = 'in' | 'notin' | 'exists' | '!' | '=' | '!=' | 'gt' | 'lt';

export interface Requirement {
  key: string;
  op: Op;
  values: string[];
}

const QUALIFIED = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

/** Parses a label selector; bad input is a usage error naming the requirement. */
export function parseLabelSelector(text: string): Requirement[] {
  const out: Requirement[] = [];
  for (const raw of splitTopLevel(text)) {
    const part = raw.trim();
    if (part === '') {
      if (text.trim() === '') return [];
      throw new UsageError(`unable to parse requirement: found ',', expected: identifier in selector "${text}"`);
    }
    let m: RegExpExecArray | null;
    let req: Requirement;
    if ((m = /^!\s*([^\s=!<>(),]+)$/.exec(part))) req = { key: m[1]!, op: '!', values: [] };
    else if ((m = /^([^\s=!<>(),]+)\s+(in|notin)\s*\(([^()]*)\)$/.exec(part)))
      req = {
        key: m[1]!,
        op: m[2] as 'in' | 'notin',
        values: m[3]!.split(',').map((v) => v.trim()),
      };
    else if ((m = /^([^\s=!<>(),]+)\s*(==|=|!=|>|<)\s*([^\s=!<>(),]*)$/.exec(part)))
      req = { key: m[1]!, op: m[2] === '>' ? 'gt' : m[2] === '<' ? 'lt' : m[2] === '!=' ? '!=' : '=', values: [m[3]!] };
    else if ((m = /^([^\s=!<>(),]+)$/.exec(part))) req = { key: m[1]!, op: 'exists', values: [] };
    else throw new UsageError(`unable to parse requirement: "${part}" in selector "${text}"`);
    if (!QUALIFIED.test(req.key) || req.key.length > 317)
      throw new UsageError(`unable to parse requirement: invalid label key "${req.key}": a qualified name (e.g. app or example.com/app)`);
    for (const v of req.values) {
      if (req.op === 'gt' || req.op === 'lt') {
        if (!/^-?\d+$/.test(v)) throw new UsageError(`unable to parse requirement: for 'Gt', 'Lt' operators, the value must be an integer`);
      } else if (v.length > 63 || !LABEL_VALUE.test(v))
        throw new UsageError(`unable to parse requirement: invalid label value: "${v}": a valid label must be 63 characters or less`);
    }
    out.push(req);
  }
  return out;
}

/** Commas outside parentheses separate requirements. */
function splitTopLevel(text: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    if (text[i] === '(') depth++;
    else if (text[i] === ')') depth--;
    else if (text[i] === ',' && depth === 0) {
      parts.push(text.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(text.slice(start));
  return parts;
}

export function matchesLabels(reqs: Requirement[], labels: Record<string, string> = {}): boolean {
  return reqs.every((r) => {
    const has = Object.hasOwn(labels, r.key);
    const v = labels[r.key];
    switch (r.op) {
      case 'exists':
        return has;
      case '!':
        return !has;
      case '=':
      case 'in':
        return has && r.values.includes(v!);
      case '!=':
      case 'notin':
        return !has || !r.values.includes(v!);
      case 'gt':
      case 'lt':
        if (!has || !/^-?\d+$/.test(v!)) return false;
        return r.op === 'gt' ? Number(v) > Number(r.values[0]) : Number(v) < Number(r.values[0]);
    }
  });
}

export interface FieldRequirement {
  field: string;
  negate: boolean;
  value: string;
}

/** Fields the agent can select Guests and GuestSets on, with how to read each. */
const FIELDS: Record<string, (o: Guest | GuestSet) => string> = {
  'metadata.name': (o) => o.metadata.name,
  'metadata.namespace': (o) => o.metadata.namespace ?? 'default',
  'status.phase': (o) => (o.kind === 'Guest' ? ((o as Guest).status?.phase ?? '') : ''),
  'spec.nodeName': (o) => (o.kind === 'Guest' ? ((o as Guest).spec.nodeName ?? '') : ''),
  'status.node': (o) => (o.kind === 'Guest' ? ((o as Guest).status?.node ?? '') : ''),
};

/** A field selector the objects do not support: kubectl prints the apiserver's answer. */
export class FieldSelectorError extends Error {}

/** fields.ParseSelector: terms split on unescaped commas, `!=`, `==` or `=` in each. */
export function parseFieldSelector(text: string): FieldRequirement[] {
  const out: FieldRequirement[] = [];
  for (const term of splitEscaped(text)) {
    if (term === '') continue;
    const m = /^(.*?)(!=|==|=)(.*)$/s.exec(term);
    if (!m) throw new UsageError(`invalid selector: '${text}'; can't understand '${term}'`);
    out.push({ field: m[1]!, negate: m[2] === '!=', value: unescape(m[3]!) });
  }
  return out;
}

function splitEscaped(text: string): string[] {
  const parts: string[] = [];
  let cur = '';
  for (let i = 0; i < text.length; i++) {
    if (text[i] === '\\' && i + 1 < text.length) cur += text[i]! + text[++i]!;
    else if (text[i] === ',') {
      parts.push(cur);
      cur = '';
    } else cur += text[i];
  }
  parts.push(cur);
  return parts;
}

function unescape(v: string): string {
  return v.replace(/\\(.)/g, '$1');
}

/** Checks every field is one the agent's objects have; the message is the apiserver's for a CRD. */
export function checkFields(reqs: FieldRequirement[], resource: string, labelSelector: string, fieldSelector: string): void {
  for (const r of reqs)
    if (!Object.hasOwn(FIELDS, r.field))
      throw new FieldSelectorError(
        `Unable to find "krata.dev/v1alpha1, Resource=${resource}" that match label selector "${labelSelector}", ` +
          `field selector "${fieldSelector}": field label not supported: ${r.field}`,
      );
}

export function matchesFields(reqs: FieldRequirement[], o: Guest | GuestSet): boolean {
  return reqs.every((r) => (FIELDS[r.field]!(o) === r.value) !== r.negate);
}
