// Kubernetes resource quantities ("512Mi", "1.5Gi", "2e9", 1024), parsed exactly.

const QUANTITY = /^([+-]?)(\d+(?:\.\d*)?|\.\d+)(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?\d+)?$/;

const BINARY: Record<string, bigint> = { Ki: 1n, Mi: 2n, Gi: 3n, Ti: 4n, Pi: 5n, Ei: 6n };
const DECIMAL: Record<string, number> = { n: -9, u: -6, m: -3, k: 3, M: 6, G: 9, T: 12, P: 15, E: 18 };

/**
 * The quantity's value rounded up to a whole number (as the API server's Value() does), or undefined
 * when it is not a quantity. Exact: bigint arithmetic, so "16Ei" and "0.1" come out right.
 */
export function quantityValue(q: number | string): bigint | undefined {
  if (typeof q === 'number') {
    if (!Number.isFinite(q)) return undefined;
    q = String(q);
    if (/e/i.test(q)) q = q.replace('e+', 'e');
  }
  const m = QUANTITY.exec(q.trim() === q ? q : '');
  if (!m) return undefined;
  const [, sign, digits, suffix = ''] = m;
  const [whole, frac = ''] = digits!.split('.');
  let num = BigInt((whole || '0') + frac);
  let den = 10n ** BigInt(frac.length);
  if (suffix in BINARY) num *= 1024n ** BINARY[suffix]!;
  else {
    const exp = suffix in DECIMAL ? DECIMAL[suffix]! : suffix ? Number(suffix.slice(1)) : 0;
    if (Math.abs(exp) > 100) return undefined;
    if (exp >= 0) num *= 10n ** BigInt(exp);
    else den *= 10n ** BigInt(-exp);
  }
  const ceil = (num + den - 1n) / den;
  return sign === '-' ? -(num / den) : ceil;
}

const UNITS: [string, bigint][] = [
  ['Ei', 1n << 60n],
  ['Pi', 1n << 50n],
  ['Ti', 1n << 40n],
  ['Gi', 1n << 30n],
  ['Mi', 1n << 20n],
  ['Ki', 1n << 10n],
];

/** A byte count in the largest binary unit that divides it exactly (536870912 → "512Mi"). */
export function formatBytes(bytes: bigint): string {
  for (const [unit, size] of UNITS) if (bytes !== 0n && bytes % size === 0n) return `${bytes / size}${unit}`;
  return String(bytes);
}
