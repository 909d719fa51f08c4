// Small byte strings the gateway keeps for as long as a meter is known (its public key and session
// key, its pairing's CID and device key), copied into shared slabs. A Uint8Array of its own costs an
// ArrayBuffer and a backing store allocated apart, about 230 bytes beside its 32 bytes of content; in a
// slab it costs only its view. A slab is freed once no view into it is left, so the bytes of a meter
// that is forgotten or paired again stay until the other keys of its slab go too: at most one slab's
// worth per slab in use. Texts many meters hold alike are kept once (same()).

/** Bytes per slab (64 meters' keys): small, so that a few long-lived views pin little. */
const SLAB_BYTES = 4096;
/** Longer strings get an allocation of their own. */
const MAX_PART = 256;

let slab = new Uint8Array(0);
let used = 0;

/**
 * Copies `parts` side by side into a slab and returns a view of each, in order. Each view is its own
 * (nothing else is written to its bytes); views are not to be reached past through `.buffer`.
 */
export function keep(...parts: Uint8Array[]): Uint8Array[] {
  let n = 0;
  for (const p of parts) n += p.byteLength;
  let into: Uint8Array;
  let at: number;
  if (n > MAX_PART) {
    into = new Uint8Array(n);
    at = 0;
  } else {
    if (used + n > slab.length) {
      slab = new Uint8Array(SLAB_BYTES);
      used = 0;
    }
    into = slab;
    at = used;
    used += n;
  }
  const out: Uint8Array[] = [];
  for (const p of parts) {
    into.set(p, at);
    out.push(into.subarray(at, at + p.byteLength));
    at += p.byteLength;
  }
  return out;
}

/**
 * One copy of a text that many of the gateway's long-lived records hold alike (a device's state, model,
 * firmware version and gateway id, the privacy summary each device was told): a fleet otherwise keeps
 * 10,000 equal strings of each. At most 4,096 distinct texts are remembered (then they start afresh).
 */
export function same(text: string): string {
  const v = sameTexts.get(text);
  if (v !== undefined) return v;
  if (sameTexts.size >= 4096) sameTexts.clear();
  sameTexts.set(text, text);
  return text;
}
const sameTexts = new Map<string, string>();
