// Splitting a manifest file into YAML documents and mapping JSON paths back to line and column, so
// that every error can name the exact place in the file.
import { isMap, isPair, isScalar, isSeq, LineCounter, parseAllDocuments, visit, type Document, type Node, type Pair } from 'yaml';
import type { Path } from '../crds/validate.js';
import type { Source } from './sources.js';

export interface Position {
  line: number;
  column: number;
}

export interface ParsedDocument {
  source: Source;
  /** 0-based index of the document in its file (counting empty ones). */
  index: number;
  /** The plain JSON value of the document. */
  value: unknown;
  /** Where a path into `value` is written in the file. */
  locate(path: Path, onKey?: boolean): Position;
}

export interface SyntaxError {
  file: string;
  line: number;
  column: number;
  message: string;
}

const YAML_OPTIONS = {
  // kubectl reads YAML 1.1 (yes/no/on/off are booleans, 0755 is octal); match it so a manifest means the
  // same thing to kratactl as to kubectl. Types kubectl does not produce are left out: timestamps stay
  // strings, and binary/set/omap/sexagesimal numbers are not decoded.
  version: '1.1' as const,
  customTags: (tags: unknown[]) =>
    (tags as { tag: string; format?: string }[]).filter(
      (t) => !/:(timestamp|binary|set|omap|pairs)$/.test(t.tag) && t.format !== 'TIME',
    ) as never,
  uniqueKeys: true,
  prettyErrors: false,
};

/** Bound on alias expansion: a few kilobytes of anchors must not expand into gigabytes. */
const MAX_ALIAS_COUNT = 1000;

export function parseSource(source: Source): { documents: ParsedDocument[]; errors: SyntaxError[] } {
  const lineCounter = new LineCounter();
  const position = (offset: number): Position => {
    const { line, col } = lineCounter.linePos(offset);
    return { line, column: col };
  };
  const docs = parseAllDocuments(source.text, { ...YAML_OPTIONS, lineCounter });
  const list = Array.isArray(docs) ? docs : [docs];
  const documents: ParsedDocument[] = [];
  const errors: SyntaxError[] = [];
  list.forEach((doc, index) => {
    if (doc.errors.length) {
      for (const e of doc.errors) {
        const at = e.code === 'MISSING_CHAR' ? (unterminatedQuoteStart(doc, e.pos[0]) ?? e.pos[0]) : e.pos[0];
        errors.push({ file: source.name, ...position(at), message: `YAML: ${firstLine(e.message)}` });
      }
      return;
    }
    let value: unknown;
    try {
      value = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
    } catch (err) {
      errors.push({ file: source.name, ...position(doc.range[0]), message: `YAML: ${firstLine((err as Error).message)}` });
      return;
    }
    if (value === null || value === undefined) return; // an empty document (`---` twice, or only comments), as kubectl skips it
    documents.push({ source, index, value, locate: (path, onKey) => position(locateOffset(doc, path, onKey ?? false)) });
  });
  return { documents, errors };
}

/** The parser notices a missing closing quote at the end of input; point at the quote that opened it. */
function unterminatedQuoteStart(doc: Document, errorOffset: number): number | undefined {
  let start: number | undefined;
  visit(doc, {
    Scalar(_, node) {
      const quoted = node.type === 'QUOTE_DOUBLE' || node.type === 'QUOTE_SINGLE';
      if (quoted && node.range && node.range[1] >= errorOffset) start ??= node.range[0];
    },
  });
  return start;
}

function firstLine(message: string): string {
  return message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
}

/**
 * Offset of the node a path names. When the path goes past what is written (a missing required field),
 * it is the key of the deepest mapping entry that exists: `spec:` for a missing spec.image.
 */
function locateOffset(doc: Document, path: Path, onKey: boolean): number {
  let node: unknown = doc.contents;
  let pair: Pair | undefined;
  let fallback = rangeStart(node) ?? 0;
  for (const seg of path) {
    if (isMap(node)) {
      const found = node.items.find((p) => isPair(p) && keyValue(p.key) === String(seg));
      if (!found) return fallback;
      pair = found;
      fallback = rangeStart(found.key) ?? fallback;
      node = found.value;
    } else if (isSeq(node) && typeof seg === 'number' && seg < node.items.length) {
      pair = undefined;
      node = node.items[seg];
      fallback = rangeStart(node) ?? fallback;
    } else return fallback;
  }
  if (onKey && pair) return rangeStart(pair.key) ?? fallback;
  return rangeStart(node) ?? fallback;
}

function keyValue(key: unknown): string | undefined {
  return isScalar(key) ? String(key.value) : undefined;
}

function rangeStart(node: unknown): number | undefined {
  return (node as Node | null)?.range?.[0];
}
