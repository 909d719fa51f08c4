// The gateways this gateway trusts (gateway-identity-v2, MESH.md "Trust, version 2"): for every signing
// key, the enrolled identity that binds it to a gateway id and an operator key; for every gateway id, its
// current key (the binding enrolled last). Only identities of trusted operators — this gateway's own and
// those --trust-operator names — are kept; a key no kept identity binds signs nothing this gateway takes.
// Nothing here talks to the network or the store.

import { compareCid } from './cid.js';
import { equal, toHex } from '../../firmware/core/bytes.js';
import { checkEnrollment, checkPossession, type TrustedOperator } from './operator.js';
import type { IdentityV2 } from './protocols.js';

export interface Signed<T> {
  cid: Uint8Array;
  kid: Uint8Array;
  entry: T;
}

/** Why an identity message is refused (gridlet_mesh_refused_total's reasons). */
export type IdentityRefusal = 'enrollment' | 'squat' | 'operator';

/** Hex of a key id, kept per array (a device's state is resolved several times per pairing). */
const hexes = new WeakMap<Uint8Array, { bytes: Uint8Array; hex: string }>();

/** `toHex(kid)`, remembered for the same array while its bytes are the same. */
export function kidHex(kid: Uint8Array): string {
  const had = hexes.get(kid);
  if (had && equal(had.bytes, kid)) return had.hex;
  const hex = toHex(kid);
  hexes.set(kid, { bytes: kid.slice(), hex });
  return hex;
}

export class IdentityBook {
  /** This gateway's operator id. */
  readonly own: string;
  /** Trusted operator id → its local name, if it has one. */
  readonly #trusted = new Map<string, string | undefined>();
  /** kid hex → the identity that holds for it (latest enrolled, then t, then CID). */
  readonly identities = new Map<string, Signed<IdentityV2>>();
  /** gateway id → its bindings (kid hex), any order. */
  readonly #byGateway = new Map<string, string[]>();

  /** Every operator is trusted (a verifier that judges what a gateway serves, not whom to admit). */
  readonly #any: boolean;

  constructor(own: { id: string; name: string }, trusted: TrustedOperator[] | 'any') {
    this.own = own.id;
    this.#trusted.set(own.id, own.name);
    this.#any = trusted === 'any';
    if (trusted !== 'any') for (const t of trusted) if (t.id !== own.id) this.#trusted.set(t.id, t.name ?? this.#trusted.get(t.id));
  }

  /** May gateways of this operator be admitted, and their messages taken? */
  trusts(operator: string): boolean {
    return this.#any || this.#trusted.has(operator);
  }

  /** Trusted operators other than this gateway's own. */
  others(): string[] {
    return [...this.#trusted.keys()].filter((o) => o !== this.own);
  }

  /** The operators a local name (a policy's `peers` key) stands for: itself when it is an id, else those trusted under that name. */
  resolve(name: string): string[] {
    if (this.#trusted.has(name) || /^op[a-z2-7]{52}$/.test(name)) return [name];
    return [...this.#trusted.entries()].filter(([, n]) => n === name).map(([id]) => id);
  }

  /** The name this gateway knows an operator by: its local one, else what its gateways' enrollments call it. */
  nameOf(operator: string): string | undefined {
    const local = this.#trusted.get(operator);
    if (local) return local;
    for (const s of this.identities.values()) if (s.entry.operatorId === operator) return s.entry.name;
    return undefined;
  }

  /**
   * Adds an identity whose payload parsed: refused when the operator's signature does not hold
   * ('enrollment'), when the gateway does not prove it holds the X25519 key its id is the hash of
   * ('squat': anyone can claim another gateway's id, only its holder can prove it), or when the operator
   * is not trusted ('operator').
   */
  add(s: Signed<IdentityV2>): IdentityRefusal | undefined {
    const i = s.entry;
    if (checkEnrollment({ ...i, signature: i.enrollment })) return 'enrollment';
    if (!checkPossession(i, i.possession)) return 'squat';
    if (!this.trusts(i.operatorId)) return 'operator';
    const kid = kidHex(s.kid);
    const had = this.identities.get(kid);
    if (!had || later(s, had)) this.identities.set(kid, s);
    const list = this.#byGateway.get(i.gateway) ?? [];
    if (!list.includes(kid)) list.push(kid);
    this.#byGateway.set(i.gateway, list);
    return undefined;
  }

  identity(kid: Uint8Array): IdentityV2 | undefined {
    return this.identities.get(kidHex(kid))?.entry;
  }

  signed(kid: Uint8Array): Signed<IdentityV2> | undefined {
    return this.identities.get(kidHex(kid));
  }

  identityByPeer(peer: string): IdentityV2 | undefined {
    for (const s of this.identities.values()) if (s.entry.peer === peer) return s.entry;
    return undefined;
  }

  /** The operator id of the gateway that `kid` signs for. */
  operatorOf(kid: Uint8Array): string | undefined {
    return this.identity(kid)?.operatorId;
  }

  /** Is `kid` enrolled for gateway `gateway` (now or before a later enrollment took its place)? */
  bound(kid: Uint8Array, gateway: string): boolean {
    return this.identity(kid)?.gateway === gateway;
  }

  /** The key enrolled last for a gateway. */
  currentKey(gateway: string): string | undefined {
    let best: Signed<IdentityV2> | undefined;
    for (const k of this.#byGateway.get(gateway) ?? []) {
      const s = this.identities.get(k)!;
      if (s.entry.gateway !== gateway) continue;
      if (!best || s.entry.enrolled > best.entry.enrolled || (s.entry.enrolled === best.entry.enrolled && compareCid(s.kid, best.kid) > 0)) best = s;
    }
    return best && kidHex(best.kid);
  }

  /**
   * When `kid` stopped being its gateway's key: the enrollment time of the key that took its place
   * (an operator rotating a gateway's key), or undefined while it is the current one.
   */
  supersededAt(kid: Uint8Array): number | undefined {
    const i = this.identity(kid);
    if (!i) return undefined;
    const cur = this.currentKey(i.gateway);
    if (cur === undefined || cur === kidHex(kid)) return undefined;
    return this.identities.get(cur)!.entry.enrolled;
  }

  /** Every kept identity message's CID. */
  cids(): Uint8Array[] {
    return [...this.identities.values()].map((s) => s.cid);
  }
}

function later(a: Signed<IdentityV2>, b: Signed<IdentityV2>): boolean {
  if (a.entry.enrolled !== b.entry.enrolled) return a.entry.enrolled > b.entry.enrolled;
  if (a.entry.t !== b.entry.t) return a.entry.t > b.entry.t;
  return compareCid(a.cid, b.cid) > 0;
}
