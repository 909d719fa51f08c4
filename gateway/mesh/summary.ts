// What a gateway's summaries have told the mesh (sync.ts announceSummary). A summary names CIDs a peer
// may fetch: in its public part, which every admitted peer gets, identities, registry and consent
// messages; in each operator's part, which only that operator's admitted gateways get, the chain heads
// that operator may have. Between full summaries — every anti-entropy interval (a newly admitted peer
// gets one of its own, outside this ledger) — a summary names only what the ones before it did not: new
// CIDs, and heads not yet judged for that operator (a device whose sharing changed has its heads judged
// again). A summary goes out in parts of at most SUMMARY_MAX_BYTES.

import { toHex } from '../../firmware/core/bytes.js';

/** A summary larger than this (encoded) goes out as several gossip messages. */
export const SUMMARY_MAX_BYTES = 256 * 1024;

/** A chain head as summaries judge it: the device it belongs to, its CID, and what it is (for sharing). */
export interface SummaryHead<V> {
  device: string;
  cid: Uint8Array;
  /** The CID in hex. */
  key: string;
  view: V;
}

export class SummaryLedger {
  /** Public part: the CIDs (hex) the last summary stood for. */
  #public = new Set<string>();
  /** Per operator: each device's heads (hex) judged for that operator's gateways since the device last changed. */
  readonly #judged = new Map<string, Map<string, string[]>>();
  /** Devices whose sharing changed since the last summary began ('all': every device). */
  #changed: Set<string> | 'all' = new Set();

  /** A device's sharing policy, consent or pairing changed: its heads are judged again for every operator. */
  changed(ids: string[] | 'all'): void {
    if (ids === 'all') this.#changed = 'all';
    else if (this.#changed !== 'all') for (const id of ids) this.#changed.add(id);
  }

  /** Starts a summary: the changes noted so far take effect (later ones wait for the next summary). */
  begin(): void {
    const changed = this.#changed;
    this.#changed = new Set();
    if (changed === 'all') this.#judged.clear();
    else if (changed.size) for (const m of this.#judged.values()) for (const id of changed) m.delete(id);
  }

  /** The public CIDs to name: every one (full), else those the last summary did not stand for. */
  publicHave(cids: Uint8Array[], full: boolean): Uint8Array[] {
    const now = new Set<string>();
    const out: Uint8Array[] = [];
    for (const c of cids) {
      const k = toHex(c);
      now.add(k);
      if (full || !this.#public.has(k)) out.push(c);
    }
    this.#public = now;
    return out;
  }

  /**
   * The heads to name to an operator's gateways: those `mayHave` allows, of all heads (full), else of the
   * heads not judged for this operator yet. Remembers the given heads as judged.
   */
  async heads<V>(operator: string, heads: SummaryHead<V>[], full: boolean, mayHave: (h: SummaryHead<V>) => Promise<boolean>): Promise<Uint8Array[]> {
    const before = full ? undefined : this.#judged.get(operator);
    const after = new Map<string, string[]>();
    const out: Uint8Array[] = [];
    for (const h of heads) {
      const judged = after.get(h.device);
      if (judged) judged.push(h.key);
      else after.set(h.device, [h.key]);
      if (before?.get(h.device)?.includes(h.key)) continue;
      if (await mayHave(h)) out.push(h.cid);
    }
    this.#judged.set(operator, after);
    return out;
  }
}

/** CBOR's size of a byte string of n bytes (header and bytes). */
function byteStringSize(n: number): number {
  return n + (n < 24 ? 1 : n < 256 ? 2 : n < 65536 ? 3 : 5);
}

/**
 * Splits `have` into parts so that each part, in a message of `base` bytes without it (an empty list),
 * stays within `max` bytes; a part holds at least one CID. No CIDs: one empty part.
 */
export function partition(have: Uint8Array[], base: number, max: number): Uint8Array[][] {
  // An array's header grows from 1 to at most 5 bytes with its length.
  const room = max - base - 4;
  const parts: Uint8Array[][] = [[]];
  let used = 0;
  for (const c of have) {
    const n = byteStringSize(c.length);
    let part = parts[parts.length - 1];
    if (part.length > 0 && used + n > room) {
      parts.push((part = []));
      used = 0;
    }
    part.push(c);
    used += n;
  }
  return parts;
}
