// kubectl's output formats for scripts: `-o jsonpath=T|jsonpath-file=F`, `-o custom-columns=H:P,...|
// custom-columns-file=F`, `--sort-by=PATH`, `--show-labels`, and the tab writer kubectl prints tables
// with (columns at least 6 wide, 3 spaces of padding, the last column unpadded).
import { readFileSync } from 'node:fs';
import { JsonPath, JsonPathError, relaxedJsonPath } from '../lib/jsonpath.js';
import { goText } from '../lib/go-format.js';
import { UsageError } from './io.js';

export type Printer =
  | { kind: 'table'; wide: boolean }
  | { kind: 'yaml' | 'json' | 'name' }
  | { kind: 'jsonpath'; template: string; path: JsonPath }
  | { kind: 'custom-columns'; columns: { header: string; path: JsonPath }[] };

const FORMATS = ['wide', 'yaml', 'json', 'name', 'jsonpath=...', 'jsonpath-file=...', 'custom-columns=...', 'custom-columns-file=...'];

/** Reads `-o`; file formats read their file now, so a bad one fails before anything is asked of the agent. */
export function parseOutput(output: string | undefined): Printer {
  if (output === undefined || output === '' || output === 'wide') return { kind: 'table', wide: output === 'wide' };
  if (output === 'yaml' || output === 'json' || output === 'name') return { kind: output };
  const eq = output.indexOf('=');
  const format = eq < 0 ? output : output.slice(0, eq);
  const arg = eq < 0 ? '' : output.slice(eq + 1);
  switch (format) {
    case 'jsonpath':
    case 'jsonpath-file': {
      const template = format === 'jsonpath' ? arg : readTemplate(arg, 'jsonpath-file');
      if (template === '') throw new UsageError('template format specified but no template given');
      try {
        return { kind: 'jsonpath', template, path: new JsonPath(template) };
      } catch (e) {
        if (e instanceof JsonPathError) throw new UsageError(`error parsing jsonpath ${template}, ${e.message}`);
        throw e;
      }
    }
    case 'custom-columns':
      if (arg === '') throw new UsageError('custom-columns format specified but no custom columns given');
      return { kind: 'custom-columns', columns: customColumns(arg) };
    case 'custom-columns-file':
      return { kind: 'custom-columns', columns: customColumnsFile(readTemplate(arg, 'custom-columns-file')) };
    default:
      throw new UsageError(
        `unable to match a printer suitable for the output format "${output}", allowed formats are: ${FORMATS.join(',')}`,
      );
  }
}

function readTemplate(file: string, format: string): string {
  if (file === '') throw new UsageError(`${format} format specified but no file given`);
  try {
    const st = readFileSync(file);
    if (st.length > 1024 * 1024) throw new UsageError(`${file}: a ${format} larger than 1 MiB`);
    return st.toString('utf8');
  } catch (e) {
    if (e instanceof UsageError) throw e;
    throw new UsageError(`error reading template ${file}, ${(e as Error).message}`);
  }
}

function column(header: string, expr: string): { header: string; path: JsonPath } {
  try {
    return { header, path: new JsonPath(relaxedJsonPath(expr)) };
  } catch (e) {
    if (e instanceof JsonPathError)
      throw new UsageError(`unexpected path string, expected a 'name1.name2' or '.name1.name2': ${e.message}`);
    throw e;
  }
}

/** HEADER:PATH,HEADER:PATH (a path may hold ':'). */
function customColumns(spec: string): { header: string; path: JsonPath }[] {
  return spec.split(',').map((part) => {
    const colon = part.indexOf(':');
    if (colon < 0) throw new UsageError(`unexpected custom-columns spec: ${part}, expected <header>:<json-path-expr>`);
    return column(part.slice(0, colon), part.slice(colon + 1));
  });
}

/** A file of two lines: the headers, then the paths, each separated by white space. */
function customColumnsFile(text: string): { header: string; path: JsonPath }[] {
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  if (lines.length !== 2) throw new UsageError(`expected two lines in the custom-columns file, found ${lines.length}`);
  const headers = lines[0]!.trim().split(/\s+/);
  const paths = lines[1]!.trim().split(/\s+/);
  if (headers.length !== paths.length)
    throw new UsageError(`number of headers (${headers.length}) and field specifications (${paths.length}) don't match`);
  return headers.map((h, i) => column(h, paths[i]!));
}

/** Control characters of a value are not sent to the terminal as they are (kubectl's EscapeTerminal): ^X. */
function escapeTerminal(s: string): string {
  let out = '';
  for (const c of s) {
    const code = c.charCodeAt(0);
    const control = (code < 0x20 && c !== '\t' && c !== '\n') || (code >= 0x7f && code <= 0x9f);
    out += control ? `^${String.fromCharCode(code ^ 0x40)}` : c;
  }
  return out;
}

/** kubectl's custom-columns rows: `<none>` when a path finds nothing, several values joined by commas. */
export function customColumnRows(objects: unknown[], columns: { header: string; path: JsonPath }[], noHeaders: boolean): string {
  const rows = noHeaders ? [] : [columns.map((c) => c.header)];
  for (const o of objects)
    rows.push(
      columns.map(({ path }) => {
        const values = path.findResults(o);
        const texts = values.length === 0 || values[0]!.length === 0 ? ['<none>'] : [];
        for (const vs of values) for (const v of vs) texts.push(escapeTerminal(goText(v)));
        return texts.join(',');
      }),
    );
  return tabwrite(rows);
}

/** Go's text/tabwriter as kubectl configures it: minimum width 6, padding 3, the last cell of a line as it is. */
export function tabwrite(rows: string[][]): string {
  const width = (s: string) => [...s].length;
  const widths: number[] = [];
  for (const r of rows) r.slice(0, -1).forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 6, width(c) + 3)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c + ' '.repeat(widths[i]! - width(c)))).join('') + '\n').join('');
}

/** The template's output for `data`, or a usage-like error in kubectl's words. */
export function executeJsonPath(printer: { template: string; path: JsonPath }, data: unknown): string {
  try {
    return printer.path.execute(data);
  } catch (e) {
    // kubectl's words, but for its dump of the object (Go syntax, and as long as the object).
    if (e instanceof JsonPathError)
      throw new JsonPathError(
        `error executing jsonpath ${JSON.stringify(printer.template)}: Error executing template: ${e.message}. ` +
          `Printing more information for debugging the template:\n\ttemplate was:\n\t\t${printer.template}`,
      );
    throw e;
  }
}

/**
 * kubectl's --sort-by: the first value of PATH in each object, missing values first. kubectl sorts with
 * Go's sort.Sort, which is an insertion sort up to 12 items (so equal keys move as kubectl moves them);
 * longer lists are sorted stably.
 */
export function sortObjects<T>(objects: T[], sortBy: string): T[] {
  let path: JsonPath;
  try {
    path = new JsonPath(relaxedJsonPath(sortBy));
  } catch (e) {
    if (e instanceof JsonPathError) throw new UsageError(`--sort-by ${sortBy}: ${e.message}`);
    throw e;
  }
  const keyed = objects.map((o) => {
    const r = path.findResults(o);
    return { o, key: r.length && r[0]!.length ? r[0]![0] : undefined, found: r.length > 0 && r[0]!.length > 0 };
  });
  if (objects.length > 0 && !keyed.some((k) => k.found))
    throw new JsonPathError(`couldn't find any field with path "${relaxedJsonPath(sortBy)}" in the list of objects`);
  // kubectl's Less: a missing i is less (even than another missing one); then a missing j is not.
  const less = (i: (typeof keyed)[number], j: (typeof keyed)[number]) => !i.found || (j.found && compareValues(i.key, j.key) < 0);
  if (keyed.length <= 12) {
    for (let i = 1; i < keyed.length; i++)
      for (let j = i; j > 0 && less(keyed[j]!, keyed[j - 1]!); j--) [keyed[j - 1], keyed[j]] = [keyed[j]!, keyed[j - 1]!];
    return keyed.map((k) => k.o);
  }
  return keyed.sort((a, b) => (less(a, b) ? -1 : less(b, a) ? 1 : 0)).map((k) => k.o);
}

/** kubectl's isLess for decoded JSON (interface values): numbers by value, strings byte by byte. */
function compareValues(a: unknown, b: unknown): number {
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  if (typeof a === 'string' && typeof b === 'string') return Buffer.compare(Buffer.from(a), Buffer.from(b));
  if (typeof a === 'boolean' && typeof b === 'boolean') return Number(a) - Number(b);
  throw new JsonPathError(`unsortable type: ${typeof a}`);
}

/** The LABELS column of --show-labels: k=v sorted by key, or <none>. */
export function labelsColumn(labels: Record<string, string> | undefined): string {
  const keys = Object.keys(labels ?? {}).sort();
  return keys.length ? keys.map((k) => `${k}=${labels![k]}`).join(',') : '<none>';
}
