// The device registry as a CRDT (docs/protocols/device-registry-v2.md): a grow-only set of signed
// pairing and revocation messages, judged by the enrolled identities that say which operator each
// signer belongs to (identities.ts). Any order of arrival gives the same state; nothing here talks to
// the network or the store.
//
// Version 2's merge: a pairing counts when its signer is enrolled for the gateway it names (and was that
// gateway's key at its stamp). Taken in stamp order, a pairing becomes the device's current one when
// there is none, when the current one is of the same operator (the operator moved the meter), or when
// the current one was revoked before it; otherwise it is a conflict — kept, shown to both operators, and
// it displaces nothing. A revocation counts when its signer signed the pairing it names or is a gateway
// of the same operator.

import { equal, toHex } from '../../firmware/core/bytes.js';
import { compareCid } from './cid.js';
import { kidHex, type IdentityBook, type Signed } from './identities.js';
import { compareHlc, type Hlc, type Pairing, type Revocation } from './protocols.js';
import { keep } from '../slab.js';

export type { Signed } from './identities.js';

export interface PairingConflict {
  /** The pairing that displaced nothing (binary CID), its gateway, operator and stamp (unix ms). */
  pairing: Uint8Array;
  gateway: string;
  operator: string;
  pairedAt: number;
  /** The pairing that stood when it was made. */
  against: Uint8Array;
}

export interface MeshDeviceState {
  id: string;
  state: 'paired' | 'revoked';
  /** The gateway of the current pairing, and its operator (id). */
  gateway: string;
  operator: string;
  model: string;
  firmware: string;
  /** The current pairing (binary CID) and its stamp. */
  pairing: Uint8Array;
  pairingKid: Uint8Array;
  pairedAt: number;
  revokedAt: number | null;
  /** Pairings by gateways of other operators made while the current one stood. */
  conflicts: PairingConflict[];
}

interface Resolved {
  current: Signed<Pairing> | undefined;
  conflicts: { p: Signed<Pairing>; against: Signed<Pairing> }[];
  /** Operators whose pairing was current at some time (their gateways wrote the device's history). */
  holders: Set<string>;
}

/**
 * A pairing as the registry holds it for as long as the gateway runs (one per meter): its CID and the
 * device's key in a shared slab (slab.ts), the strings every pairing of a gateway repeats (gateway, model,
 * firmware) and the signer's key id shared with the pairings before it.
 */
function compact(s: Signed<Pairing>, shared: Map<string, string>, kids: Map<string, Uint8Array>): Signed<Pairing> {
  const one = (x: string) => shared.get(x) ?? (shared.set(x, x), x);
  const e = s.entry;
  const [cid, key] = keep(s.cid, e.key);
  const k = kidHex(s.kid);
  const kid = kids.get(k) ?? (kids.set(k, s.kid.slice()), kids.get(k)!);
  return {
    cid,
    kid,
    entry: {
      op: 'pair', device: e.device, key, gateway: one(e.gateway), model: one(e.model),
      firmware: one(e.firmware), hlc: e.hlc,
    },
  };
}

export class DeviceRegistryCrdt {
  readonly #pairings = new Map<string, Signed<Pairing>>();
  readonly #shared = new Map<string, string>();
  readonly #kids = new Map<string, Uint8Array>();
  readonly #revocations = new Map<string, Signed<Revocation>>();
  readonly #byDevice = new Map<string, { pairings: string[]; revocations: string[] }>();

  constructor(readonly ids: IdentityBook) {}

  #device(id: string): { pairings: string[]; revocations: string[] } {
    let d = this.#byDevice.get(id);
    if (!d) this.#byDevice.set(id, (d = { pairings: [], revocations: [] }));
    return d;
  }

  addPairing(s: Signed<Pairing>): void {
    const k = toHex(s.cid);
    if (this.#pairings.has(k)) return;
    this.#pairings.set(k, compact(s, this.#shared, this.#kids));
    // Made at their exact length (a push leaves room for ~17).
    const d = this.#device(s.entry.device);
    d.pairings = d.pairings.concat([k]);
  }

  addRevocation(s: Signed<Revocation>): void {
    const k = toHex(s.cid);
    if (this.#revocations.has(k)) return;
    this.#revocations.set(k, s);
    const d = this.#device(s.entry.device);
    d.revocations = d.revocations.concat([k]);
  }

  pairing(cid: Uint8Array): Signed<Pairing> | undefined {
    return this.#pairings.get(toHex(cid));
  }

  /** Does a message of `kid` naming `gateway`, stamped `hlc`, count: enrolled for it, and its current key at the stamp? */
  counts(kid: Uint8Array, gateway: string, hlc: Hlc): boolean {
    if (!this.ids.bound(kid, gateway)) return false;
    const until = this.ids.supersededAt(kid);
    return until === undefined || hlc[0] < until;
  }

  /** Does a revocation signed by `kid` count against pairing `p`? Same signer, or the same operator (key). */
  mayRevoke(kid: Uint8Array, p: Signed<Pairing>): boolean {
    if (equal(kid, p.kid)) return true;
    const a = this.ids.operatorOf(kid);
    return a !== undefined && a === this.ids.operatorOf(p.kid);
  }

  /** The revocation stamp that breaks pairing `p`, or undefined when it stands. */
  revokedAt(p: Signed<Pairing>): Hlc | undefined {
    const d = this.#byDevice.get(p.entry.device);
    let at: Hlc | undefined;
    for (const k of d?.revocations ?? []) {
      const r = this.#revocations.get(k)!;
      if (!equal(r.entry.pairing, p.cid)) continue;
      if (compareHlc(r.entry.hlc, p.entry.hlc) <= 0 || !this.mayRevoke(r.kid, p) || !this.counts(r.kid, r.entry.gateway, r.entry.hlc)) continue;
      if (!at || compareHlc(r.entry.hlc, at) < 0) at = r.entry.hlc;
    }
    return at;
  }

  /** The device's pairings that count, in stamp order, walked as the merge says. */
  #resolve(id: string): Resolved {
    const list = (this.#byDevice.get(id)?.pairings ?? []).map((k) => this.#pairings.get(k)!)
      .filter((p) => this.counts(p.kid, p.entry.gateway, p.entry.hlc))
      .sort((a, b) => compareHlc(a.entry.hlc, b.entry.hlc) || compareCid(a.cid, b.cid));
    const out: Resolved = { current: undefined, conflicts: [], holders: new Set() };
    for (const p of list) {
      const cur = out.current;
      const op = this.ids.operatorOf(p.kid)!;
      if (!cur || this.ids.operatorOf(cur.kid) === op) out.current = p;
      else {
        const revoked = this.revokedAt(cur);
        if (revoked && compareHlc(revoked, p.entry.hlc) < 0) out.current = p;
        else {
          out.conflicts.push({ p, against: cur });
          continue;
        }
      }
      out.holders.add(op);
    }
    return out;
  }

  /** The device's current pairing. */
  current(id: string): Signed<Pairing> | undefined {
    return this.#resolve(id).current;
  }

  /** Operators whose gateways held the device's pairing at some time: the only ones that write its history. */
  holders(id: string): Set<string> {
    return this.#resolve(id).holders;
  }

  state(id: string): MeshDeviceState | undefined {
    const r = this.#resolve(id);
    const p = r.current;
    if (!p) return undefined;
    const revoked = this.revokedAt(p);
    return {
      id, state: revoked ? 'revoked' : 'paired', gateway: p.entry.gateway, operator: this.ids.operatorOf(p.kid)!, model: p.entry.model,
      firmware: p.entry.firmware, pairing: p.cid, pairingKid: p.kid, pairedAt: p.entry.hlc[0], revokedAt: revoked ? revoked[0] : null,
      conflicts: r.conflicts.map((c) => ({
        pairing: c.p.cid, gateway: c.p.entry.gateway, operator: this.ids.operatorOf(c.p.kid)!, pairedAt: c.p.entry.hlc[0], against: c.against.cid,
      })),
    };
  }

  /** Is this pairing a conflict (made while another operator's pairing stood)? */
  isConflict(cid: Uint8Array): boolean {
    const p = this.pairing(cid);
    return !!p && this.#resolve(p.entry.device).conflicts.some((c) => equal(c.p.cid, cid));
  }

  devices(): string[] {
    return [...this.#byDevice.keys()].sort();
  }

  /** Pairings of a device signed by `kid`, latest first. */
  pairingsBy(id: string, kid: Uint8Array): Signed<Pairing>[] {
    return (this.#byDevice.get(id)?.pairings ?? []).map((k) => this.#pairings.get(k)!)
      .filter((p) => equal(p.kid, kid)).sort((a, b) => compareHlc(b.entry.hlc, a.entry.hlc));
  }

  /** The registry message CIDs of one device (`gridlet verify` recomputes its state from them). */
  deviceCids(id: string): Uint8Array[] {
    const d = this.#byDevice.get(id);
    if (!d) return [];
    return [...d.pairings.map((k) => this.#pairings.get(k)!.cid), ...d.revocations.map((k) => this.#revocations.get(k)!.cid)];
  }

  /** Every registry message CID (for summaries). */
  cids(): Uint8Array[] {
    return [...this.#pairings.values(), ...this.#revocations.values()].map((s) => s.cid);
  }
}
