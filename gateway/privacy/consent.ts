// Sharing consent on the mesh (docs/protocols/sharing-consent-v1.md): a device's policy as a signed
// message every gateway learns, the latest one per device, and what a policy lets an audience have of
// the mesh's blocks (readings messages, aggregates). Used by the mesh to decide what it announces,
// serves and keeps, on the device's own gateway and on every gateway that cached its blocks.

import { toHex } from '../../firmware/core/bytes.js';
import { compareCid } from '../mesh/cid.js';
import { compareHlc, type Consent, type ConsentShare, type Hlc } from '../mesh/protocols.js';
import { allows, DEFAULT_POLICY, parsePolicy, shareFor, type PrivacyPolicy, type Share } from './policy.js';

/** What a block is, as far as sharing goes. */
export type BlockView =
  | { kind: 'readings' }
  | { kind: 'aggregate'; resolution: 900 | 86400; channels: number[] | null };

/** A selection an aggregate chain is built for. */
export interface Selection {
  resolution: 900 | 86400;
  channels: number[] | null;
}

export const selectionKey = (s: Selection) => `${s.resolution}:${s.channels ? s.channels.join(',') : '*'}`;

/** May an audience with `share` have this block (sharing-consent-v1.md "Audiences")? */
export function mayHave(share: Share, b: BlockView): boolean {
  if (share.level === 'none') return false;
  if (b.kind === 'readings') return share.level === 'full' && !share.channels;
  if (!allows(share, b.resolution === 900 ? '15min' : 'daily')) return false;
  if (b.channels === null) return !share.channels;
  return !share.channels || b.channels.every((c) => share.channels!.includes(c));
}

/** The aggregate chains a device's gateway builds so every audience of other operators gets what its share allows. */
export function selectionsFor(policy: PrivacyPolicy): Selection[] {
  const out = new Map<string, Selection>();
  for (const s of [policy.mesh, ...Object.values(policy.peers)]) {
    let sel: Selection | undefined;
    if (s.level === 'daily') sel = { resolution: 86400, channels: s.channels ?? null };
    else if (s.level === '15min') sel = { resolution: 900, channels: s.channels ?? null };
    else if (s.level === 'full' && s.channels) sel = { resolution: 900, channels: s.channels };
    if (sel) out.set(selectionKey(sel), sel);
  }
  return [...out.values()];
}

/** The share a gateway of `audience` gets of a device whose operator is `deviceOperator`. */
export function audienceShare(policy: PrivacyPolicy, deviceOperator: string, audience: string): Share {
  return shareFor(policy, deviceOperator, audience);
}

function toConsentShare(s: Share): ConsentShare {
  const c: ConsentShare = { level: s.level, purposes: [...s.purposes].sort() };
  if (s.channels) c.channels = [...s.channels];
  return c;
}

/** A policy as a consent payload's `policy` and `retention`. */
export function consentOf(policy: PrivacyPolicy): Pick<Consent, 'policy' | 'retention'> {
  const peers: { [k: string]: ConsentShare } = {};
  for (const k of Object.keys(policy.peers).sort()) peers[k] = toConsentShare(policy.peers[k]);
  return {
    policy: { operator: toConsentShare(policy.operator), peers, mesh: toConsentShare(policy.mesh) },
    retention: policy.retentionDays === null ? null : Math.round(policy.retentionDays * 86400),
  };
}

/** A consent message's policy as a PrivacyPolicy (validated again by parsePolicy). */
export function policyOf(c: Pick<Consent, 'policy' | 'retention'>): PrivacyPolicy {
  return parsePolicy({
    operator: c.policy.operator, peers: c.policy.peers, mesh: c.policy.mesh,
    retentionDays: c.retention === null ? null : Math.max(c.retention, 1) / 86400,
  });
}

/** Do two policies say the same on the mesh (what a consent message carries)? */
export function samePolicy(a: PrivacyPolicy, b: PrivacyPolicy): boolean {
  return JSON.stringify(consentOf(a)) === JSON.stringify(consentOf(b));
}

export interface HeldConsent {
  cid: Uint8Array;
  hlc: Hlc;
  gateway: string;
  policy: PrivacyPolicy;
}

/** The latest consent that counts, per device (latest stamp, then the bytewise greatest CID). */
export class ConsentBook {
  readonly #latest = new Map<string, HeldConsent>();

  /** Adds a consent that counts; true when it is now the device's latest. */
  add(device: string, c: HeldConsent): boolean {
    const had = this.#latest.get(device);
    if (had) {
      const o = compareHlc(c.hlc, had.hlc);
      if (o < 0 || (o === 0 && compareCid(c.cid, had.cid) <= 0)) return false;
    }
    this.#latest.set(device, c);
    return true;
  }

  get(device: string): HeldConsent | undefined {
    return this.#latest.get(device);
  }

  /** The policy the mesh knows for a device: its latest consent's, else the least sharing. */
  policy(device: string): PrivacyPolicy {
    return this.#latest.get(device)?.policy ?? DEFAULT_POLICY;
  }

  cids(): Uint8Array[] {
    return [...this.#latest.values()].map((c) => c.cid);
  }

  has(cid: Uint8Array): boolean {
    const hex = toHex(cid);
    for (const c of this.#latest.values()) if (toHex(c.cid) === hex) return true;
    return false;
  }
}
