// What the parts of the mesh share (mesh.ts composes them, aedes-style): the gateway's context, the
// registry CRDT, the signer and clock, the sharing consents and aggregates, the counters, and the small
// decisions every part asks — who a device's operator is, what a gateway may keep, whether a CID was
// removed. The protocol handlers (handlers/), sync (sync.ts) and disclosure (disclosure.ts) take it.

import { Counter } from 'prom-client';
import { decode, encode as encodeCbor, type CborValue } from '../../firmware/core/cbor.js';
import type { GatewayContext } from '../context.js';
import { Aggregator } from '../privacy/aggregate.js';
import { audienceShare, ConsentBook, mayHave, selectionsFor, type BlockView } from '../privacy/consent.js';
import type { PrivacyPolicy } from '../privacy/policy.js';
import { DeviceRegistryCrdt } from './device-registry.js';
import { encodeMessage, signerFromSeed, type GridMessage, type MessageError, type Payload, type Signer } from './message.js';
import type { MeshNode } from './node.js';
import { protocols, type ProtocolName } from './pcid.js';
import { HybridClock, peerIdOf, type Aggregate } from './protocols.js';
import { SummaryLedger } from './summary.js';

export const PUBLIC_TOPIC = 'gridlet/mesh/1';
export const operatorTopic = (operator: string) => `gridlet/mesh/1/operator/${operator}`;
/** Registry stamps further ahead of this gateway's clock are refused (MESH.md). */
export const MAX_CLOCK_AHEAD_MS = 5 * 60_000;

/** What became of a message received from a peer. */
export type Received =
  | 'accepted' | 'duplicate' | 'opaque' | 'untrusted' | 'revoked' | 'future' | 'unauthorized' | 'cid' | 'conflict'
  /** A block about a device whose sharing consent does not let this gateway's operator keep it: not kept (not refused for good). */
  | 'private'
  /** A message a retention tombstone removed (retention-tombstone-v1 "Keeping"): never taken back. */
  | 'removed'
  | MessageError['fault'];

/** Where a message came from: the peer, and whether it was fetched as an ancestor of a held message. */
export interface From {
  peer?: string;
  ancestor?: boolean;
}

export interface MeshCoreOptions {
  ctx: GatewayContext;
  operator: string;
  syncIntervalMs?: number;
  /** Publishes an aggregate this gateway signed (disclosure.ts). */
  publishAggregate(a: Aggregate): Promise<GridMessage>;
}

export class MeshCore {
  readonly ctx: GatewayContext;
  readonly crdt = new DeviceRegistryCrdt();
  readonly signer: Signer;
  readonly clock: HybridClock;
  readonly operator: string;
  readonly peerId: string;
  readonly counts: { received: { [r: string]: number }; created: { [p: string]: number } } = { received: {}, created: {} };
  /** The latest sharing consent per device (sharing-consent-v1). */
  readonly consents = new ConsentBook();
  /** Signs this gateway's devices' 15-minute and daily aggregates (meter-aggregates-v1). */
  readonly aggregator: Aggregator;
  /** What summaries told the mesh, so that the next one names only what changed (summary.ts). */
  readonly ledger = new SummaryLedger();
  /** Guest module CIDs (hex) some held publication names: their bytes may be fetched and kept raw. */
  readonly guestCids = new Map<string, number>();
  node?: MeshNode;
  closed = false;
  readonly #received: Counter<'result'>;
  readonly #created: Counter<'protocol'>;

  constructor(o: MeshCoreOptions) {
    this.ctx = o.ctx;
    this.operator = o.operator;
    const { sign } = o.ctx.identity;
    this.signer = signerFromSeed(sign.secretKey.subarray(0, 32), sign.publicKey);
    this.peerId = peerIdOf(sign.publicKey);
    this.clock = new HybridClock(o.ctx.now);
    this.aggregator = new Aggregator({
      now: () => this.ctx.now(),
      selections: async (id) => ((await this.isLocal(id)) ? selectionsFor(await this.ctx.privacy.effectivePolicy(id)) : []),
      block: (cid) => this.ctx.store.blocks.get(cid),
      publish: (a) => o.publishAggregate(a),
    }, o.syncIntervalMs ?? 5000);
    const registers = [o.ctx.metrics.registry];
    this.#received = new Counter({
      name: 'gridlet_mesh_messages_received_total', registers, labelNames: ['result'],
      help: 'Grid messages received from peers, by what became of them (accepted, or why not).',
    });
    this.#created = new Counter({
      name: 'gridlet_mesh_messages_created_total', registers, labelNames: ['protocol'],
      help: 'Grid messages this gateway signed, by protocol.',
    });
  }

  get gatewayId(): string {
    return this.ctx.identity.id;
  }

  /** Signs a message of one of this gateway's protocols, counted. */
  sign(protocol: ProtocolName, payload: Payload): GridMessage {
    const m = encodeMessage(protocols()[protocol].pcid, payload, this.signer);
    this.#created.inc({ protocol });
    this.counts.created[protocol] = (this.counts.created[protocol] ?? 0) + 1;
    return m;
  }

  count(r: Received): Received {
    this.#received.inc({ result: r });
    this.counts.received[r] = (this.counts.received[r] ?? 0) + 1;
    return r;
  }

  /** Is the device paired on this gateway (its policy is the privacy service's, not a consent message's)? */
  async isLocal(deviceId: string): Promise<boolean> {
    return (await this.ctx.store.getDevice(deviceId))?.state === 'paired';
  }

  /** The policy that bounds what of a device goes where: this gateway's own for its devices, else the latest consent. */
  async policyFor(deviceId: string): Promise<PrivacyPolicy> {
    return (await this.isLocal(deviceId)) ? this.ctx.privacy.effectivePolicy(deviceId) : this.consents.policy(deviceId);
  }

  /** The device's operator: its current pairing's gateway's (else the signer's of a message about it, else this one's). */
  deviceOperator(deviceId: string, signer?: Uint8Array): string {
    const st = this.crdt.state(deviceId);
    return (st && this.crdt.identity(st.pairingKid)?.operator) ?? (signer && this.crdt.identity(signer)?.operator) ?? this.operator;
  }

  /** Other operators this gateway knows gateways of. */
  operators(): string[] {
    return [...new Set([...this.crdt.identities.values()].map((s) => s.entry.operator))].filter((o) => o !== this.operator);
  }

  async mayKeep(deviceId: string, signer: Uint8Array, view: BlockView): Promise<boolean> {
    const devOp = this.deviceOperator(deviceId, signer);
    if (devOp === this.operator) return true;
    return mayHave(audienceShare(await this.policyFor(deviceId), devOp, this.operator), view);
  }

  /**
   * Did a tombstone remove this CID (retention-tombstone-v1 "Keeping")? One counts when this gateway
   * signed it, when its gateway is the device's, or when it is the gateway of the message's own signer.
   */
  async removed(cid: Uint8Array, kid?: Uint8Array): Promise<boolean> {
    for (const r of await this.ctx.store.blocks.removedBy(cid)) {
      if (r.gateway === this.gatewayId || this.crdt.state(r.deviceId)?.gateway === r.gateway) return true;
      if (kid && this.crdt.bound(kid, r.gateway)) return true;
    }
    return false;
  }

  async announce(blocks: Uint8Array[], topic: string): Promise<void> {
    if (this.node && !this.closed) await this.node.publish(topic, encodeGossip({ blocks }));
  }
}

/**
 * Gossip on the mesh topics: `{"blocks": [message bytes…]}`, `{"have": [binary CID…]}`, and on the
 * public topic `{"caps": capability announcement}` (offload.ts); a receiver ignores keys it does not know.
 */
export function encodeGossip(g: { blocks?: Uint8Array[]; have?: Uint8Array[]; caps?: Uint8Array }): Uint8Array {
  const o: { [k: string]: CborValue } = {};
  if (g.blocks) o.blocks = g.blocks;
  if (g.have) o.have = g.have;
  if (g.caps) o.caps = g.caps;
  return encodeCbor(o);
}

export function decodeGossip(data: Uint8Array): { blocks?: Uint8Array[]; have?: Uint8Array[]; caps?: Uint8Array } {
  const v = decode(data, { maxDepth: 4 });
  if (v === null || typeof v !== 'object' || Array.isArray(v) || v instanceof Map || v instanceof Uint8Array) throw new Error('not a map');
  const o = v as { [k: string]: CborValue };
  const list = (x: CborValue | undefined) => {
    if (x === undefined) return undefined;
    if (!Array.isArray(x) || !x.every((b) => b instanceof Uint8Array)) throw new Error('not a list of byte strings');
    return x as Uint8Array[];
  };
  return { blocks: list(o.blocks), have: list(o.have), caps: o.caps instanceof Uint8Array ? o.caps : undefined };
}
