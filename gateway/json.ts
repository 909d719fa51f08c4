// Small conversions for the JSON the operator interface speaks.

import { Tagged, type CborValue } from '../firmware/core/cbor.js';

export function base64(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64');
}

/** Unix ms → ISO 8601, or null. */
export function isoTime(ms: number | null | undefined): string | null {
  return ms === null || ms === undefined ? null : new Date(ms).toISOString();
}

/** A stored CBOR value as JSON: bytes as base64, big integers as strings, tags as {tag, value}. */
export function cborToJson(v: CborValue): unknown {
  if (v instanceof Uint8Array) return base64(v);
  if (typeof v === 'bigint') return v.toString();
  if (v === undefined) return null;
  if (v instanceof Tagged) return { tag: v.tag, value: cborToJson(v.value) };
  if (Array.isArray(v)) return v.map(cborToJson);
  if (v instanceof Map) {
    const o: { [k: string]: unknown } = {};
    for (const [k, x] of v) o[String(k)] = cborToJson(x);
    return o;
  }
  if (v !== null && typeof v === 'object') {
    const o: { [k: string]: unknown } = {};
    for (const k of Object.keys(v)) o[k] = cborToJson(v[k]);
    return o;
  }
  return v;
}
