// Splitting a manifest file into YAML documents and mapping JSON paths back to line and column, so
// that every error can name the exact place in the file.
import { isMap, isPair, isScalar, isSeq, LineCounter, parseAllDocuments, visit, type Document, type Node, type Pair } from 'yaml';
import { MAX_NESTING, pathBeyond, type Path } from '../crds/validate.js';
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
  const documents: ParsedDocument[] = [];
  const errors: SyntaxError[] = [];
  // Counted from the text: the line counter is empty when the parser never ran.
  const tooDeep = (offset: number): SyntaxError => {
    const before = source.text.slice(0, offset);
    const line = before.split('\n').length;
    return {
      file: source.name,
      line,
      column: offset - before.lastIndexOf('\n'),
      message: `nested deeper than ${MAX_DEPTH} levels; krata objects are far shallower`,
    };
  };
  const parse = () => {
    const docs = parseAllDocuments(source.text, { ...YAML_OPTIONS, lineCounter });
    return Array.isArray(docs) ? docs : [docs];
  };
  let list: ReturnType<typeof parse>;
  const deepFlow = flowNestingBeyond(source.text, MAX_DEPTH);
  if (deepFlow >= 0) return { documents, errors: [tooDeep(deepFlow)] };
  try {
    list = parse();
  } catch (err) {
    // The parser recurses per level: a hostile file can overflow the stack before any check runs.
    if (err instanceof RangeError) return { documents, errors: [tooDeep(0)] };
    throw err;
  }
  list.forEach((doc, index) => {
    if (doc.errors.length) {
      const overflow = doc.errors.find((e) => /Maximum call stack/.test(e.message));
      if (overflow) {
        // Where the stack ran out depends on the stack left, not on the file: the document is the place.
        errors.push(tooDeep(doc.range?.[0] ?? 0));
        return;
      }
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
      if (err instanceof RangeError) errors.push(tooDeep(doc.range[0]));
      else errors.push({ file: source.name, ...position(doc.range[0]), message: `YAML: ${firstLine((err as Error).message)}` });
      return;
    }
    if (value === null || value === undefined) return; // an empty document (`---` twice, or only comments), as kubectl skips it
    // Validation and output recurse: a value deeper than any krata object stops here, with its place.
    const deep = pathBeyond(value, MAX_DEPTH);
    if (deep) {
      errors.push(tooDeep(locateOffset(doc, deep, false)));
      return;
    }
    documents.push({ source, index, value, locate: (path, onKey) => position(locateOffset(doc, path, onKey ?? false)) });
  });
  return { documents, errors };
}

/** How deep a manifest may nest: the validator's bound (the agent's API has it too). */
export const MAX_DEPTH = MAX_NESTING;

/**
 * The offset of a `[` or `{` opening flow level `max + 1`, or -1: JSON and flow YAML are refused
 * before the parser, which recurses per level, sees them. Quoted scalars and comments are skipped;
 * block nesting (indentation) is caught by the parse and `pathBeyond`.
 */
export function flowNestingBeyond(s: string, max: number): number {
  let depth = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === '"') for (i++; i < s.length && s[i] !== '"'; i++) i += s[i] === '\\' ? 1 : 0;
    else if (c === "'") for (i++; i < s.length && s[i] !== "'"; i++);
    else if (c === '#' && (i === 0 || /\s/.test(s[i - 1]!))) while (i < s.length && s[i] !== '\n') i++;
    else if (c === '[' || c === '{') {
      if (++depth > max) return i;
    } else if ((c === ']' || c === '}') && depth > 0) depth--;
  }
  return -1;
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
