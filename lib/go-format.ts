// Values printed the way kubectl (Go) prints JSON data, so that jsonpath and custom-columns output
// matches kubectl's byte for byte: encoding/json's compact form and fmt.Sprint's %v.

/** Go's json.Marshal of decoded JSON: object keys sorted, `<`, `>`, `&`, U+2028 and U+2029 escaped. */
export function goJson(v: unknown): string {
  return JSON.stringify(sortKeys(v)).replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v === null || typeof v !== 'object') return v;
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(v).sort(byteOrder)) out[k] = sortKeys((v as Record<string, unknown>)[k]);
  return out;
}

/** Go sorts map keys by their bytes; JavaScript's default sort is by UTF-16 units (the same for BMP text). */
function byteOrder(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/** fmt.Sprint of a decoded JSON value: `map[k:v]` with sorted keys, `[a b]`, `<nil>`, numbers as %v. */
export function goText(v: unknown): string {
  if (v === null || v === undefined) return '<nil>';
  if (typeof v === 'string') return v;
  if (typeof v === 'number') return goNumber(v);
  if (typeof v === 'boolean') return String(v);
  if (Array.isArray(v)) return `[${v.map(goText).join(' ')}]`;
  if (typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return `map[${Object.keys(o)
      .sort(byteOrder)
      .map((k) => `${k}:${goText(o[k])}`)
      .join(' ')}]`;
  }
  return String(v as bigint);
}

/** %v of an int64 or a float64 (%g, shortest: exponent below 1e-4 and from 1e21, two exponent digits at least). */
function goNumber(n: number): string {
  if (Number.isInteger(n) && Math.abs(n) < 1e21) return String(n);
  const abs = Math.abs(n);
  if (abs !== 0 && (abs < 1e-4 || abs >= 1e21)) {
    const [mant, exp] = n.toExponential().split('e') as [string, string];
    const sign = exp.startsWith('-') ? '-' : '+';
    const digits = exp.replace(/^[+-]/, '');
    return `${mant}e${sign}${digits.padStart(2, '0')}`;
  }
  return String(n);
}
