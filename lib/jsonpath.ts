// kubectl's JSONPath templates (`-o jsonpath=`, custom-columns, --sort-by, `wait --for=jsonpath`), with
// the semantics of k8s.io/client-go/util/jsonpath: text outside braces printed as it is; inside them
// fields, `[n]`, `[a:b:step]`, `[*]`, `..`, unions `[a,b]`, `['key']`, filters `[?(@.x=="y")]`,
// `{range ...}...{end}` and quoted literals. Values print as kubectl prints them: strings raw, objects
// and arrays as Go's compact JSON (keys sorted), several results of one action joined by a space.
import { goJson, goText } from './go-format.js';

interface Param {
  value: number;
  known: boolean;
  derived?: boolean;
}

type ListNode = { t: 'list'; nodes: Node[] };
type Node =
  | ListNode
  | { t: 'text'; text: string }
  | { t: 'field'; name: string }
  | { t: 'array'; params: [Param, Param, Param] }
  | { t: 'filter'; left: ListNode; right: ListNode; op: string }
  | { t: 'int'; value: number }
  | { t: 'float'; value: number }
  | { t: 'bool'; value: boolean }
  | { t: 'wildcard' }
  | { t: 'recursive' }
  | { t: 'union'; nodes: ListNode[] }
  | { t: 'ident'; name: string };

/** A template that does not parse, or a value it cannot walk; the message is client-go's. */
export class JsonPathError extends Error {}

/** "Nothing here": Go's invalid reflect.Value (a range with no items walks its body on it). */
const INVALID = Symbol('invalid');
type Value = unknown;

const TERMINATORS = new Set([' ', '\t', '\r', '\n', '.', ',', '[', ']', '$', '@', '{', '}']);
const isTerminator = (c: string | undefined) => c === undefined || TERMINATORS.has(c);
const isAlphaNumeric = (c: string | undefined) => c !== undefined && /^[\p{L}\p{Nd}_]$/u.test(c);
const isDigit = (c: string | undefined) => c !== undefined && /^\p{Nd}$/u.test(c);
const SLICE = /^(-?\d*)(:-?\d*)?(:-?\d*)?$/;
const DICT_KEY = /^'([^']*)'$/;
// kubectl 1.32's client-go: no `=~` (a later addition); `=~"x"` fails on the `~`, as there.
const FILTER = /^([^!<>=]+)([!<>=]+)(.+?)$/s;
/** Bounds for hostile or mistaken templates: they come from the command line, but can be long files. */
const MAX_TEMPLATE = 64 * 1024;
const MAX_DEPTH = 100;

class Parser {
  private pos = 0;
  private start = 0;
  readonly root: ListNode = { t: 'list', nodes: [] };
  private readonly chars: string[];

  constructor(
    input: string,
    private readonly depth = 0,
  ) {
    if (input.length > MAX_TEMPLATE) throw new JsonPathError(`template longer than ${MAX_TEMPLATE} characters`);
    if (depth > MAX_DEPTH) throw new JsonPathError('template nested too deeply');
    this.chars = [...input];
    this.parseText();
  }

  private consume(): string {
    const v = this.chars.slice(this.start, this.pos).join('');
    this.start = this.pos;
    return v;
  }
  private next(): string | undefined {
    return this.pos < this.chars.length ? this.chars[this.pos++] : (this.pos++, undefined);
  }
  private backup(): void {
    this.pos--;
  }
  private peek(): string | undefined {
    return this.chars[this.pos];
  }
  private startsWith(prefix: string): boolean {
    return this.chars.slice(this.pos, this.pos + prefix.length).join('') === prefix;
  }
  private sub(text: string): ListNode {
    // client-go's parseAction: the text parsed as one action, its list returned.
    const p = new Parser(`{${text}}`, this.depth + 1);
    return p.root.nodes[0] as ListNode;
  }

  private parseText(): void {
    // Iterative where client-go recurses: text, then an action, then text again.
    for (;;) {
      while (this.pos < this.chars.length && this.chars[this.pos] !== '{') this.pos++;
      if (this.pos > this.start) this.root.nodes.push({ t: 'text', text: this.consume() });
      if (this.pos >= this.chars.length) return;
      this.pos++;
      this.consume();
      const list: ListNode = { t: 'list', nodes: [] };
      this.root.nodes.push(list);
      this.parseInsideAction(list);
    }
  }

  /** One action's nodes, up to and including its closing brace. */
  private parseInsideAction(cur: ListNode): void {
    for (;;) {
      if (this.startsWith('}')) {
        this.pos++;
        this.consume();
        return;
      }
      if (this.startsWith('[?(')) {
        this.parseFilter(cur);
        continue;
      }
      if (this.startsWith('..')) {
        if (cur.nodes.at(-1)?.t === 'recursive') throw new JsonPathError('invalid multiple recursive descent');
        this.pos += 2;
        this.consume();
        cur.nodes.push({ t: 'recursive' });
        if (isAlphaNumeric(this.peek())) this.parseField(cur);
        continue;
      }
      const r = this.next();
      if (r === undefined || r === '\r' || r === '\n') throw new JsonPathError('unclosed action');
      if (r === ' ' || r === '@' || r === '$') this.consume();
      else if (r === '[') this.parseArray(cur);
      else if (r === '"' || r === "'") this.parseQuote(cur, r);
      else if (r === '.') this.parseField(cur);
      else if (r === '+' || r === '-' || isDigit(r)) {
        this.backup();
        this.parseNumber(cur);
      } else if (isAlphaNumeric(r)) {
        this.backup();
        this.parseIdentifier(cur);
      } else throw new JsonPathError(`unrecognized character in action: ${goRune(r)}`);
    }
  }

  private parseIdentifier(cur: ListNode): void {
    while (!isTerminator(this.next()));
    this.backup();
    const value = this.consume();
    if (value === 'true' || value === 'false') cur.nodes.push({ t: 'bool', value: value === 'true' });
    else cur.nodes.push({ t: 'ident', name: value });
  }

  private parseNumber(cur: ListNode): void {
    const r = this.peek();
    if (r === '+' || r === '-') this.next();
    for (;;) {
      const c = this.next();
      if (c !== '.' && !isDigit(c)) {
        this.backup();
        break;
      }
    }
    const value = this.consume();
    if (/^[+-]?\d+$/.test(value)) cur.nodes.push({ t: 'int', value: Number(value) });
    else if (/^[+-]?(\d+\.?\d*|\.\d+)$/.test(value)) cur.nodes.push({ t: 'float', value: Number(value) });
    else throw new JsonPathError(`cannot parse number ${value}`);
  }

  private parseArray(cur: ListNode): void {
    for (;;) {
      const c = this.next();
      if (c === undefined || c === '\n') throw new JsonPathError('unterminated array');
      if (c === ']') break;
    }
    let text = this.consume().slice(1, -1);
    if (text === '*') text = ':';
    const parts = text.split(',');
    if (parts.length > 1) {
      cur.nodes.push({ t: 'union', nodes: parts.map((s) => this.sub(`[${s.trim()}]`)) });
      return;
    }
    const key = DICT_KEY.exec(text);
    if (key) {
      cur.nodes.push(...this.sub(`.${key[1]}`).nodes);
      return;
    }
    const m = SLICE.exec(text);
    if (!m) throw new JsonPathError(`invalid array index ${text}`);
    const params: [Param, Param, Param] = [
      { value: 0, known: false },
      { value: 0, known: false },
      { value: 0, known: false },
    ];
    for (let i = 0; i < 3; i++) {
      let v = m[i + 1] ?? '';
      if (v !== '') {
        if (i > 0) v = v.slice(1);
        if (i > 0 && v === '') params[i] = { value: 0, known: false };
        else {
          if (!/^[+-]?\d+$/.test(v)) throw new JsonPathError(`array index ${v} is not a number`);
          params[i] = { value: Number(v), known: true };
        }
      } else if (i === 1) params[1] = { value: params[0].value + 1, known: true, derived: true };
    }
    cur.nodes.push({ t: 'array', params });
  }

  private parseFilter(cur: ListNode): void {
    this.pos += 3;
    this.consume();
    let begin = false;
    let end = false;
    let pair = '';
    for (;;) {
      const r = this.next();
      if (r === undefined || r === '\n') throw new JsonPathError('unterminated filter');
      if (r === '"' || r === "'") {
        if (!begin) {
          begin = true;
          pair = r;
          continue;
        }
        if (this.chars[this.pos - 2] !== '\\' && r === pair) end = true;
      } else if (r === ')' && begin === end) break;
    }
    if (this.next() !== ']') throw new JsonPathError('unclosed array expect ]');
    const text = this.consume().slice(0, -2);
    const m = FILTER.exec(text);
    if (!m) cur.nodes.push({ t: 'filter', left: this.sub(text), right: { t: 'list', nodes: [] }, op: 'exists' });
    else cur.nodes.push({ t: 'filter', left: this.sub(m[1]!), right: this.sub(m[3]!), op: m[2]! });
  }

  private parseQuote(cur: ListNode, end: string): void {
    for (;;) {
      const c = this.next();
      if (c === undefined || c === '\n') throw new JsonPathError('unterminated quoted string');
      if (c === end && this.chars[this.pos - 2] !== '\\') break;
    }
    const value = this.consume();
    cur.nodes.push({ t: 'text', text: unquote(value) });
  }

  private parseField(cur: ListNode): void {
    this.consume();
    for (;;) {
      const c = this.next();
      if (c === '\\') this.next();
      else if (isTerminator(c)) {
        this.backup();
        break;
      }
    }
    const value = this.consume();
    if (value === '*') cur.nodes.push({ t: 'wildcard' });
    else cur.nodes.push({ t: 'field', name: value.replaceAll('\\', '') });
  }
}

/** Go's %#U of a rune, as client-go names an unexpected character. */
function goRune(c: string): string {
  return `U+${c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')} '${c}'`;
}

const ESCAPES: Record<string, string> = { a: '\x07', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v', '\\': '\\', "'": "'", '"': '"' };

/** strconv.Unquote, for single quotes too (client-go's UnquoteExtend). */
function unquote(s: string): string {
  const quote = s[0]!;
  const body = s.slice(1, -1);
  let out = '';
  for (let i = 0; i < body.length; i++) {
    const c = body[i]!;
    if (c === quote) throw new JsonPathError(`unquote string ${s} error invalid syntax`);
    if (c !== '\\') {
      out += c;
      continue;
    }
    const e = body[++i];
    if (e !== undefined && e in ESCAPES) out += ESCAPES[e];
    else if (e === 'x' || e === 'u' || e === 'U') {
      const n = e === 'x' ? 2 : e === 'u' ? 4 : 8;
      const hex = body.slice(i + 1, i + 1 + n);
      if (!new RegExp(`^[0-9a-fA-F]{${n}}$`).test(hex)) throw new JsonPathError(`unquote string ${s} error invalid syntax`);
      out += String.fromCodePoint(parseInt(hex, 16));
      i += n;
    } else if (e !== undefined && /[0-7]/.test(e)) {
      const oct = body.slice(i, i + 3);
      if (!/^[0-7]{3}$/.test(oct)) throw new JsonPathError(`unquote string ${s} error invalid syntax`);
      out += String.fromCharCode(parseInt(oct, 8));
      i += 2;
    } else throw new JsonPathError(`unquote string ${s} error invalid syntax`);
  }
  return out;
}

/** A parsed template; `execute` may run many times. */
export class JsonPath {
  private readonly root: ListNode;
  private beginRange = 0;
  private inRange = 0;
  private endRange = 0;
  private lastEndNode: Node | undefined;

  /** Parses `template`; a JsonPathError carries client-go's message. */
  constructor(
    template: string,
    private readonly allowMissingKeys = true,
  ) {
    this.root = new Parser(template).root;
  }

  /** The values of each action, in order, as client-go's FindResults gives them. */
  findResults(data: unknown): Value[][] {
    this.beginRange = this.inRange = this.endRange = 0;
    this.lastEndNode = undefined;
    return this.find(this.root.nodes, data);
  }

  /** The template's text for `data`, as kubectl prints it. */
  execute(data: unknown): string {
    return this.findResults(data)
      .map((values) =>
        values.map((v) => (v instanceof GoFloat ? goText(v.value) : v !== null && typeof v === 'object' ? goJson(v) : goText(v))).join(' '),
      )
      .join('');
  }

  private find(nodes: Node[], data: unknown): Value[][] {
    const full: Value[][] = [];
    for (let i = 0; i < nodes.length; i++) {
      const node = nodes[i]!;
      const results = this.walk([data], node);
      if (this.endRange > 0 && this.endRange <= this.inRange) {
        this.endRange--;
        this.lastEndNode = node;
        break;
      }
      if (this.beginRange > 0) {
        this.beginRange--;
        this.inRange++;
        const body = nodes.slice(i + 1);
        if (results.length > 0) for (const v of results) full.push(...this.find(body, v));
        else this.find(body, INVALID);
        this.inRange--;
        for (let k = i + 1; k < nodes.length; k++)
          if (nodes[k] === this.lastEndNode) {
            i = k;
            break;
          }
        continue;
      }
      full.push(results);
    }
    return full;
  }

  private walk(input: Value[], node: Node): Value[] {
    switch (node.t) {
      case 'list': {
        let cur = input;
        for (const n of node.nodes) cur = this.walk(cur, n);
        return cur;
      }
      case 'text':
        return [node.text];
      case 'field':
        return this.evalField(input, node.name);
      case 'array':
        return evalArray(input, node.params);
      case 'filter':
        return this.evalFilter(input, node);
      case 'int':
      case 'bool':
        return input.map(() => node.value);
      case 'float':
        return input.map(() => new GoFloat(node.value));
      case 'wildcard':
        return input.flatMap(children);
      case 'recursive':
        return input.flatMap(recursive);
      case 'union':
        return node.nodes.flatMap((l) => this.walk(input, l));
      case 'ident':
        if (node.name === 'range') {
          this.beginRange++;
          return input;
        }
        if (node.name === 'end') {
          if (this.inRange > 0) this.endRange++;
          else throw new JsonPathError('not in range, nothing to end');
          return [];
        }
        throw new JsonPathError(`unrecognized identifier ${node.name}`);
    }
  }

  private evalField(input: Value[], name: string): Value[] {
    if (input.length === 0) return [];
    const out: Value[] = [];
    for (const v of input)
      if (isObject(v) && Object.hasOwn(v, name)) out.push((v as Record<string, unknown>)[name] === undefined ? null : v[name]);
    if (out.length === 0 && !this.allowMissingKeys) throw new JsonPathError(`${name} is not found`);
    return out;
  }

  private evalFilter(input: Value[], node: Extract<Node, { t: 'filter' }>): Value[] {
    const out: Value[] = [];
    for (const value of input) {
      if (!Array.isArray(value)) throw new JsonPathError(`${goText(value)} is not array or slice and cannot be filtered`);
      for (const item of value) {
        let lefts: Value[];
        try {
          lefts = this.walk([item], node.left);
        } catch (e) {
          if (node.op === 'exists') continue;
          throw e;
        }
        if (node.op === 'exists') {
          if (lefts.length > 0) out.push(item);
          continue;
        }
        if (lefts.length === 0) continue;
        if (lefts.length > 1) throw new JsonPathError('can only compare one element at a time');
        const rights = this.walk([item], node.right);
        if (rights.length === 0) continue;
        if (rights.length > 1) throw new JsonPathError('can only compare one element at a time');
        if (compare(lefts[0], rights[0], node.op)) out.push(item);
      }
    }
    return out;
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** A Go type name, for client-go's "... is not array or slice". */
function goType(v: unknown): string {
  if (Array.isArray(v)) return '[]interface {}';
  if (isObject(v)) return 'map[string]interface {}';
  if (typeof v === 'number') return Number.isInteger(v) ? 'int64' : 'float64';
  return typeof v === 'string' ? 'string' : typeof v === 'boolean' ? 'bool' : 'interface {}';
}

function evalArray(input: Value[], params: [Param, Param, Param]): Value[] {
  const out: Value[] = [];
  for (const value of input) {
    if (value === null || value === INVALID) continue;
    if (!Array.isArray(value)) throw new JsonPathError(`${goType(value)} is not array or slice`);
    const len = value.length;
    let from = params[0].known ? params[0].value : 0;
    if (from < 0) from += len;
    let to = params[1].known ? params[1].value : len;
    if (to < 0 || (to === 0 && params[1].derived)) to += len;
    if (to === from) return out;
    if (from >= len || from < 0) throw new JsonPathError(`array index out of bounds: index ${from}, length ${len}`);
    if (to > len || to < 0) throw new JsonPathError(`array index out of bounds: index ${to - 1}, length ${len}`);
    if (from > to) throw new JsonPathError(`starting index ${from} is greater than ending index ${to}`);
    let step = 1;
    if (params[2].known) {
      if (params[2].value <= 0) throw new JsonPathError('step must be > 0');
      step = params[2].value;
    }
    for (let i = from; i < to; i += step) out.push(value[i]);
  }
  return out;
}

/** Every element of an array or value of an object (a string's bytes, as Go indexes them). */
function children(v: Value): Value[] {
  if (Array.isArray(v)) return v;
  if (isObject(v)) return Object.values(v);
  if (typeof v === 'string') return [...Buffer.from(v)];
  return [];
}

/** `..`: every container below and including `v` that has children, depth first. */
function recursive(v: Value): Value[] {
  const kids = children(v);
  return kids.length ? [v, ...kids.flatMap(recursive)] : [];
}

/**
 * A float literal of a template (`1.5`, `2.0`): Go compares it with float64 values only, and decoded
 * JSON holds whole numbers as int64, so a literal's kind is kept apart from the number.
 */
class GoFloat {
  constructor(readonly value: number) {}
  toString(): string {
    return goText(this.value);
  }
}

/** Go's basic kind of a value, as text/template compares them. */
function goKind(v: Value): string {
  if (v instanceof GoFloat) return 'float';
  if (typeof v === 'number') return Number.isInteger(v) ? 'int' : 'float';
  if (typeof v === 'string' || typeof v === 'boolean') return typeof v;
  return 'other';
}

/** Go template's comparisons (eq, ne, lt, ...): values of one basic kind only. */
function compare(left: Value, right: Value, op: string): boolean {
  const kl = goKind(left);
  const kr = goKind(right);
  if (kl === 'other' || kr === 'other') throw new JsonPathError('invalid type for comparison');
  if (kl !== kr) throw new JsonPathError('incompatible types for comparison');
  const plain = (v: Value) => (v instanceof GoFloat ? v.value : v) as number | string | boolean;
  const l = plain(left);
  const r = plain(right);
  switch (op) {
    case '==':
      return l === r;
    case '!=':
      return l !== r;
    case '<':
    case '>':
    case '<=':
    case '>=':
      if (kl === 'bool') throw new JsonPathError('invalid type for comparison');
      return op === '<' ? l < r : op === '>' ? l > r : op === '<=' ? l <= r : l >= r;
    default:
      throw new JsonPathError(`unrecognized filter operator ${op}`);
  }
}

/**
 * kubectl's relaxed form for custom-columns and --sort-by: `.a.b`, `a.b`, `{.a.b}` all mean `{.a.b}`
 * (k8s.io/kubectl's RelaxedJSONPathExpression).
 */
export function relaxedJsonPath(expr: string): string {
  if (expr.length === 0) return expr;
  const m = /^\{?(\.?[^{}]*)\}?$/.exec(expr);
  if (!m)
    throw new JsonPathError("unexpected path string, expected a 'name1.name2' or '.name1.name2' or '{name1.name2}' or '{.name1.name2}'");
  return `{${m[1]!.startsWith('.') ? m[1] : `.${m[1]}`}}`;
}
