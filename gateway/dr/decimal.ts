// Exact decimal scaling for money and power: "0.23456" EUR/kWh is 23456 in 1/100000 units, 10.5 kW is
// 10500 W, and nothing passes through a binary float on the way. A JSON number is taken at its
// shortest round-trip decimal form (what the sender wrote, up to 15–17 significant digits); a decimal
// string is taken as written.

const DECIMAL = /^([+-]?)(?:(\d+)(?:\.(\d*))?|\.(\d+))(?:[eE]([+-]?\d{1,4}))?$/;

/**
 * `value` × 10^`places` as a safe integer, or the reason it cannot be one exactly (more decimal
 * places than `places`, not a decimal number, out of range).
 */
export function scaleDecimal(value: unknown, places: number): number | string {
  let text: string;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) return 'must be a finite number';
    text = String(value);
  } else if (typeof value === 'string') {
    text = value.trim();
  } else {
    return 'must be a decimal number or a decimal text such as "0.23"';
  }
  const m = DECIMAL.exec(text);
  if (!m) return 'is not a decimal number';
  const intPart = m[2] ?? '';
  const frac = m[3] ?? m[4] ?? '';
  const exp = Number(m[5] ?? 0) - frac.length + places;
  let digits = intPart + frac;
  if (exp >= 0) {
    if (exp > 30) return 'is out of range';
    digits += '0'.repeat(exp);
  } else {
    const cut = digits.length + exp;
    const dropped = cut > 0 ? digits.slice(cut) : digits;
    if (/[^0]/.test(dropped)) return `has more than ${places} decimal place${places === 1 ? '' : 's'}`;
    digits = cut > 0 ? digits.slice(0, cut) : '0';
  }
  const n = BigInt(digits || '0') * (m[1] === '-' ? -1n : 1n);
  if (n > BigInt(Number.MAX_SAFE_INTEGER) || n < -BigInt(Number.MAX_SAFE_INTEGER)) return 'is out of range';
  return n === 0n ? 0 : Number(n);
}
