// The device registry as a CRDT (docs/protocols/device-registry-v1.md): a grow-only set of signed
// pairing and revocation messages, and the gateway identities that say who may sign them. Any order
// of arrival gives the same state; nothing here talks to the network or the store.

import { toHex } from '../../firmware/core/bytes.js';
import { compareCid } from './cid.js';
import { compareHlc, type Hlc, type Identity, type Pairing, type Revocation } from './protocols.js';

export interface Signed<T> {
  cid: Uint8Array;
  kid: Uint8Array;
  entry: T;
}

export interface MeshDeviceState {
  id: string;
  state: 'paired' | 'revoked';
  /** The gateway of the current pairing. */
  gateway: string;
  model: string;
  firmware: string;
  /** The current pairing (binary CID) and its stamp. */
  pairing: Uint8Array;
  pairingKid: Uint8Array;
  pairedAt: number;
  revokedAt: number | null;
}

export class DeviceRegistryCrdt {
  /** kid hex → the identity that holds for it (latest t). */
  readonly identities = new Map<string, Signed<Identity>>();
  /** gateway id → kid hex of its first accepted binding. */
  readonly #gatewayKey = new Map<string, string>();
  readonly #pairings = new Map<string, Signed<Pairing>>();
  readonly #revocations = new Map<string, Signed<Revocation>>();
  readonly #byDevice = new Map<string, { pairings: string[]; revocations: string[] }>();

  /** Adds an identity; the reason it is refused (another key holds the gateway id) or undefined. */
  addIdentity(s: Signed<Identity>): string | undefined {
    const kid = toHex(s.kid);
    const holder = this.#gatewayKey.get(s.entry.gateway);
    if (holder !== undefined && holder !== kid) return `gateway ${s.entry.gateway} is already bound to another key`;
    this.#gatewayKey.set(s.entry.gateway, kid);
    const had = this.identities.get(kid);
    if (!had || had.entry.t < s.entry.t || (had.entry.t === s.entry.t && compareCid(had.cid, s.cid) < 0)) this.identities.set(kid, s);
    return undefined;
  }

  identity(kid: Uint8Array): Identity | undefined {
    return this.identities.get(toHex(kid))?.entry;
  }

  identityByPeer(peer: string): Identity | undefined {
    for (const s of this.identities.values()) if (s.entry.peer === peer) return s.entry;
    return undefined;
  }

  /** Is `kid` bound to gateway `gateway`? */
  bound(kid: Uint8Array, gateway: string): boolean {
    return this.identity(kid)?.gateway === gateway && this.#gatewayKey.get(gateway) === toHex(kid);
  }

  #device(id: string): { pairings: string[]; revocations: string[] } {
    let d = this.#byDevice.get(id);
    if (!d) this.#byDevice.set(id, (d = { pairings: [], revocations: [] }));
    return d;
  }

  addPairing(s: Signed<Pairing>): void {
    const k = toHex(s.cid);
    if (this.#pairings.has(k)) return;
    this.#pairings.set(k, s);
    this.#device(s.entry.device).pairings.push(k);
  }

  addRevocation(s: Signed<Revocation>): void {
    const k = toHex(s.cid);
    if (this.#revocations.has(k)) return;
    this.#revocations.set(k, s);
    this.#device(s.entry.device).revocations.push(k);
  }

  pairing(cid: Uint8Array): Signed<Pairing> | undefined {
    return this.#pairings.get(toHex(cid));
  }

  /** Does a revocation signed by `kid` count against pairing `p`? Same signer, or the same operator. */
  mayRevoke(kid: Uint8Array, p: Signed<Pairing>): boolean {
    if (toHex(kid) === toHex(p.kid)) return true;
    const a = this.identity(kid);
    const b = this.identity(p.kid);
    return a !== undefined && b !== undefined && a.operator === b.operator;
  }

  /** The revocation stamp that breaks pairing `p`, or undefined when it stands. */
  revokedAt(p: Signed<Pairing>): Hlc | undefined {
    const d = this.#byDevice.get(p.entry.device);
    let at: Hlc | undefined;
    for (const k of d?.revocations ?? []) {
      const r = this.#revocations.get(k)!;
      if (toHex(r.entry.pairing) !== toHex(p.cid)) continue;
      if (compareHlc(r.entry.hlc, p.entry.hlc) <= 0 || !this.mayRevoke(r.kid, p)) continue;
      if (!at || compareHlc(r.entry.hlc, at) < 0) at = r.entry.hlc;
    }
    return at;
  }

  /** The device's current pairing: counted pairings only, latest stamp, then greatest CID. */
  current(id: string): Signed<Pairing> | undefined {
    let best: Signed<Pairing> | undefined;
    for (const k of this.#byDevice.get(id)?.pairings ?? []) {
      const p = this.#pairings.get(k)!;
      if (!this.bound(p.kid, p.entry.gateway)) continue;
      if (!best) best = p;
      else {
        const c = compareHlc(p.entry.hlc, best.entry.hlc);
        if (c > 0 || (c === 0 && compareCid(p.cid, best.cid) > 0)) best = p;
      }
    }
    return best;
  }

  state(id: string): MeshDeviceState | undefined {
    const p = this.current(id);
    if (!p) return undefined;
    const revoked = this.revokedAt(p);
    return {
      id, state: revoked ? 'revoked' : 'paired', gateway: p.entry.gateway, model: p.entry.model, firmware: p.entry.firmware,
      pairing: p.cid, pairingKid: p.kid, pairedAt: p.entry.hlc[0], revokedAt: revoked ? revoked[0] : null,
    };
  }

  devices(): string[] {
    return [...this.#byDevice.keys()].sort();
  }

  /** Pairings of a device signed by `kid`, latest first. */
  pairingsBy(id: string, kid: Uint8Array): Signed<Pairing>[] {
    const hex = toHex(kid);
    return (this.#byDevice.get(id)?.pairings ?? []).map((k) => this.#pairings.get(k)!)
      .filter((p) => toHex(p.kid) === hex).sort((a, b) => compareHlc(b.entry.hlc, a.entry.hlc));
  }

  /** Every registry message CID (for summaries). */
  cids(): Uint8Array[] {
    return [...this.#pairings.values(), ...this.#revocations.values()].map((s) => s.cid);
  }
}
