// Pino's JSON records as one readable line each, for people reading a daemon's log in a terminal:
//   2026-12-06T05:00:00.123Z INFO  guest started guest=default/web domid=7 err="Error: boom\n    at ..."
// Nested objects become dotted keys, an error its stack. A record stays one line whatever its strings
// hold (a guest's name or output may be in them): values with spaces, quotes, `=` or any control,
// format or line-separator character are quoted with those escaped, and so is a message holding `=` or
// such a character, so no string can start a line of its own or pass for another field.

const LEVELS: Readonly<Record<number, string>> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };

/** Characters that never appear raw: controls, format characters (bidi overrides), surrogates, line separators. */
const UNSAFE = /[\p{C}\p{Zl}\p{Zp}]/u;
const BARE_VALUE = /^[^\s"=\\\p{C}\p{Z}]+$/u;
const BARE_KEY = /^[A-Za-z0-9_.:/@-]+$/;
/** Deeper objects are written as JSON. */
const MAX_DEPTH = 4;

/** `s` as a JSON string: in double quotes, with backslash, quote and every unsafe character escaped. */
export function quote(s: string): string {
  let out = '"';
  for (const ch of s) {
    if (ch === '"' || ch === '\\') out += `\\${ch}`;
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (UNSAFE.test(ch)) for (let i = 0; i < ch.length; i++) out += `\\u${ch.charCodeAt(i).toString(16).padStart(4, '0')}`;
    else out += ch;
  }
  return `${out}"`;
}

const value = (s: string) => (BARE_VALUE.test(s) ? s : quote(s));
const key = (k: string) => (BARE_KEY.test(k) ? k : quote(k));

function message(m: unknown): string {
  if (m === undefined) return '';
  const s = typeof m === 'string' ? m : JSON.stringify(m);
  return s === '' || UNSAFE.test(s) || s.includes('=') || s.trim() !== s ? quote(s) : s;
}

const isError = (v: Record<string, unknown>) =>
  typeof v.stack === 'string' || (typeof v.type === 'string' && typeof v.message === 'string');

/** `name=value` pairs of one field: objects flattened to dotted keys, an error (pino's `err`) as its stack. */
function fields(name: string, v: unknown, depth: number, out: string[]): void {
  if (v === undefined) return;
  if (v === null || typeof v !== 'object') {
    out.push(`${key(name)}=${typeof v === 'string' ? value(v) : value(String(v))}`);
    return;
  }
  if (Array.isArray(v) || depth >= MAX_DEPTH) {
    out.push(`${key(name)}=${value(JSON.stringify(v))}`);
    return;
  }
  const o = v as Record<string, unknown>;
  if (isError(o)) {
    out.push(`${key(name)}=${quote(String(o.stack ?? `${String(o.type)}: ${String(o.message)}`))}`);
    for (const [k, x] of Object.entries(o)) if (k !== 'stack' && k !== 'message' && k !== 'type') fields(`${name}.${k}`, x, depth + 1, out);
    return;
  }
  const entries = Object.entries(o);
  if (entries.length === 0) out.push(`${key(name)}={}`);
  for (const [k, x] of entries) fields(`${name}.${k}`, x, depth + 1, out);
}

/** One record as a line (with its newline); `omit` names fields every record carries (pino's base). */
export function formatRecord(rec: Record<string, unknown>, omit: ReadonlySet<string> = new Set()): string {
  const t = rec.time;
  const time = typeof t === 'number' && Number.isFinite(t) ? new Date(t).toISOString() : '-';
  const lvl = typeof rec.level === 'number' ? (LEVELS[rec.level] ?? `L${rec.level}`) : typeof rec.level === 'string' ? rec.level : '-';
  const out: string[] = [];
  for (const [k, v] of Object.entries(rec)) if (k !== 'time' && k !== 'level' && k !== 'msg' && !omit.has(k)) fields(k, v, 0, out);
  const msg = message(rec.msg);
  return `${time} ${value(lvl).padEnd(5)} ${[msg, ...out].filter(Boolean).join(' ')}\n`;
}

/** A line pino wrote (JSON) as a text line; anything else is kept, quoted, as the message of a record of no level. */
export function formatLine(line: string, omit?: ReadonlySet<string>): string {
  let rec: unknown;
  try {
    rec = JSON.parse(line);
  } catch {
    rec = undefined;
  }
  if (rec === null || typeof rec !== 'object' || Array.isArray(rec)) return `- -     ${quote(line.replace(/\n$/, ''))}\n`;
  return formatRecord(rec as Record<string, unknown>, omit);
}

/** A pino destination writing each record to `out` as a text line (JSON lines hold no raw newline). */
export function textDestination(out: { write(s: string): unknown }, omit?: ReadonlySet<string>): { write(s: string): void } {
  return {
    write: (s) => {
      const lines = s.split('\n').filter((l) => l !== '');
      if (lines.length) out.write(lines.map((l) => formatLine(l, omit)).join(''));
    },
  };
}
