// kratactl explain guest.spec.resources: the API documentation, read from the CRD schema itself.
import type { JSONSchemaProps } from '../../crds/crd-types.js';
import { OBJECT_META_DOC } from '../../crds/object-meta-doc.js';
import { KINDS, resolveKind } from '../../crds/kinds.js';
import { EXIT_OK, UsageError, type IO } from '../io.js';
import { parseFlags, type FlagSpecs } from '../../lib/cli-flags.js';
import { closest } from '../../lib/closest.js';

export const EXPLAIN_HELP = `Describe a kind or one of its fields, from the API schema.

Usage: kratactl explain KIND[.FIELD...] [--recursive]

  kratactl explain guest
  kratactl explain guest.spec.resources.memory
  kratactl explain xenhost.status --recursive
`;

/** The flags of `kratactl explain` (completion reads them too). */
export const EXPLAIN_OPTIONS = { recursive: { type: 'boolean' } } as const satisfies FlagSpecs;

export async function explain(argv: string[], io: IO): Promise<number> {
  const { values, positionals } = parseFlags(argv, EXPLAIN_OPTIONS);
  if (positionals.length !== 1) throw new UsageError(`explain takes one KIND[.FIELD...] (kinds: ${[...KINDS.keys()].join(', ')})`);
  const [kindName, ...fields] = positionals[0]!.split('.');
  const info = resolveKind(kindName!);
  if (!info) {
    const names = [...KINDS.values()].flatMap((k) => [
      k.crd.spec.names.singular ?? '',
      k.crd.spec.names.plural,
      ...(k.crd.spec.names.shortNames ?? []),
    ]);
    const near = closest(kindName!, names.filter(Boolean));
    throw new UsageError(`unknown kind "${kindName}"${near ? `: did you mean "${near}"?` : ''} (kinds: ${[...KINDS.keys()].join(', ')})`);
  }
  let schema = withObjectMeta(info.schema);
  const walked: string[] = [];
  for (const field of fields) {
    const next = childSchema(schema, field);
    if (!next) {
      const known = Object.keys(fieldsOf(schema) ?? {});
      const near = closest(field, known);
      const suggestion = near ? `: did you mean "${[kindName, ...walked, near].join('.')}"?` : '';
      throw new UsageError(
        `${[info.kind, ...walked].join('.')} has no field "${field}"${suggestion}` + (known.length ? ` (fields: ${known.join(', ')})` : ''),
      );
    }
    walked.push(field);
    schema = next;
  }
  const out: string[] = [`KIND:     ${info.kind}`, `VERSION:  ${info.apiVersion}`, ''];
  if (walked.length) out.push(`FIELD:    ${walked.at(-1)} <${typeName(schema)}>`, '');
  out.push('DESCRIPTION:', indent(describeSchema(schema), '    '), '');
  const children = fieldsOf(schema);
  if (children) {
    out.push('FIELDS:');
    const required = new Set(itemsOrSelf(schema).required ?? []);
    out.push(...listFields(children, required, values.recursive ?? false, '   '));
  }
  io.stdout.write(out.join('\n') + '\n');
  return EXIT_OK;
}

/** The kind's schema with metadata documented as the ObjectMeta it is (the CRD may only say `type: object`). */
function withObjectMeta(root: JSONSchemaProps): JSONSchemaProps {
  return { ...root, properties: { ...root.properties, metadata: OBJECT_META_DOC } };
}

function itemsOrSelf(schema: JSONSchemaProps): JSONSchemaProps {
  return schema.type === 'array' && schema.items ? schema.items : schema;
}

function fieldsOf(schema: JSONSchemaProps): Record<string, JSONSchemaProps> | undefined {
  return itemsOrSelf(schema).properties;
}

function childSchema(schema: JSONSchemaProps, field: string): JSONSchemaProps | undefined {
  return fieldsOf(schema)?.[field];
}

function typeName(s: JSONSchemaProps): string {
  if (s === OBJECT_META_DOC) return 'ObjectMeta';
  if (s['x-kubernetes-int-or-string']) return 'quantity';
  if (s.type === 'array') return `[]${s.items?.properties ? 'Object' : typeName(s.items ?? {})}`;
  if (s.type === 'object') return s.properties ? 'Object' : 'map[string]string';
  return s.type ?? 'any';
}

function describeSchema(s: JSONSchemaProps): string {
  const parts = [s.description ?? '(no description)'];
  if (s.enum) parts.push(`One of: ${s.enum.map(String).join(', ')}.`);
  if (s.default !== undefined && typeof s.default !== 'object') parts.push(`Default: ${String(s.default)}.`);
  if (s.minimum !== undefined || s.maximum !== undefined) parts.push(`Range: ${s.minimum ?? '-'} to ${s.maximum ?? '-'}.`);
  return parts.join(' ');
}

function listFields(fields: Record<string, JSONSchemaProps>, required: Set<string>, recursive: boolean, pad: string): string[] {
  const out: string[] = [];
  for (const [name, s] of Object.entries(fields)) {
    out.push(`${pad}${name}\t<${typeName(s)}>${required.has(name) ? ' -required-' : ''}`);
    if (recursive) {
      const children = fieldsOf(s);
      if (children) out.push(...listFields(children, new Set(itemsOrSelf(s).required ?? []), true, pad + '   '));
    } else out.push(indent(describeSchema(s), pad + '  '), '');
  }
  return out;
}

function indent(text: string, pad: string): string {
  const words = text.split(/\s+/);
  const lines: string[] = [];
  let line = '';
  for (const w of words) {
    if (line && line.length + w.length > 90) {
      lines.push(pad + line);
      line = w;
    } else line = line ? `${line} ${w}` : w;
  }
  if (line) lines.push(pad + line);
  return lines.join('\n');
}
