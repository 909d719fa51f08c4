// What the parts of the mesh share (mesh.ts composes them, aedes-style): the gateway's context, the
// identities it trusts, the registry CRDT, the signer and clock, the sharing consents and aggregates,
// the counters, and the small decisions every part asks — who a device's operator is, what a gateway
// may keep, whether a CID was removed. The protocol handlers (handlers/), sync (sync.ts) and disclosure
// (disclosure.ts) take it.

import { busy } from '../busy.js';
import { Counter, Gauge } from 'prom-client';
import { decode, encode as encodeCbor, type CborValue } from '../../firmware/core/cbor.js';
import type { GatewayContext } from '../context.js';
import { Aggregator } from '../privacy/aggregate.js';
import { audienceShare, ConsentBook, mayHave, selectionsFor, type BlockView } from '../privacy/consent.js';
import type { PrivacyPolicy, Share } from '../privacy/policy.js';
import { DeviceRegistryCrdt } from './device-registry.js';
import { IdentityBook } from './identities.js';
import { assembleMessage, encodeMessage, messageSignable, sigStructure, signerFromSeed, type GridMessage, type MessageError, type Payload, type Signer } from './message.js';
import { DEFAULT_SIGN_THREADS, SignPool } from './sign-pool.js';
import type { MeshNode } from './node.js';
import type { OperatorKey, TrustedOperator } from './operator.js';
import { protocols, type ProtocolName } from './pcid.js';
import { HybridClock, peerIdOf, type Aggregate } from './protocols.js';
import { SummaryLedger } from './summary.js';

/** Registry stamps further ahead of this gateway's clock are refused (MESH.md). */
export const MAX_CLOCK_AHEAD_MS = 5 * 60_000;

/** What became of a message received from a peer. */
export type Received =
  | 'accepted' | 'duplicate' | 'opaque' | 'untrusted' | 'revoked' | 'future' | 'unauthorized' | 'cid' | 'conflict'
  /** A block about a device whose sharing consent does not let this gateway's operator keep it: not kept (not refused for good). */
  | 'private'
  /** A message a retention tombstone removed (retention-tombstone-v1 "Keeping"): never taken back. */
  | 'removed'
  /** A device's history or consent from a gateway whose operator does not hold its pairing. */
  | 'foreign'
  /** New history signed by a gateway key its operator has since replaced. */
  | 'superseded'
  /** A gateway identity that does not hold: the operator's signature, the proof of its X25519 key, or an operator not trusted. */
  | 'enrollment' | 'squat' | 'operator'
  /** A gateway identity of version 1: it names an operator but proves nothing (MESH.md "Trust, version 2"). */
  | 'unenrolled'
  /** A version-1 message whose meaning version 2 replaced (sharing consent): read, not acted on. */
  | 'obsolete'
  /** About a device of which no pairing is known yet: kept aside until one is (bounded), then judged. */
  | 'pending'
  | MessageError['fault'];

/** Refusals counted in gridlet_mesh_refused_total (reason = the result, or a transport reason). */
const REFUSALS = new Set<string>(['foreign', 'superseded', 'enrollment', 'squat', 'operator', 'unenrolled', 'unauthorized', 'conflict']);

/** Where a message came from: the peer, and whether it was fetched as an ancestor of a held message. */
export interface From {
  peer?: string;
  ancestor?: boolean;
}

export interface MeshCoreOptions {
  ctx: GatewayContext;
  /** This gateway's operator (its key signs the enrollment; only the public half is needed with a certificate). */
  operator: Pick<OperatorKey, 'id' | 'name' | 'publicKey'>;
  /** Operators whose gateways this one admits, besides its own. */
  trusted: TrustedOperator[];
  syncIntervalMs?: number;
  /** Worker threads that sign readings messages under load (sign-pool.ts; 0: all on the event loop). */
  signThreads?: number;
  /** Publishes an aggregate this gateway signed (disclosure.ts). */
  publishAggregate(a: Aggregate): Promise<GridMessage>;
}

export class MeshCore {
  readonly ctx: GatewayContext;
  readonly ids: IdentityBook;
  readonly crdt: DeviceRegistryCrdt;
  readonly signer: Signer;
  /** Signs readings messages on worker threads when many are made at once (sign-pool.ts). */
  readonly signPool: SignPool;
  readonly clock: HybridClock;
  /** This gateway's operator id, and name. */
  readonly operator: string;
  readonly operatorName: string;
  readonly peerId: string;
  readonly counts: { received: { [r: string]: number }; created: { [p: string]: number }; refused: { [r: string]: number } } = { received: {}, created: {}, refused: {} };
  /** The latest sharing consent per device (sharing-consent-v2). */
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
  readonly #refused: Counter<'reason'>;

  constructor(o: MeshCoreOptions) {
    this.ctx = o.ctx;
    this.operator = o.operator.id;
    this.operatorName = o.operator.name;
    this.ids = new IdentityBook(o.operator, o.trusted);
    this.crdt = new DeviceRegistryCrdt(this.ids);
    const { sign } = o.ctx.identity;
    this.signer = signerFromSeed(sign.secretKey.subarray(0, 32), sign.publicKey);
    this.signPool = new SignPool(sign.secretKey.subarray(0, 32), this.signer, { threads: o.signThreads ?? DEFAULT_SIGN_THREADS });
    this.peerId = peerIdOf(sign.publicKey);
    this.clock = new HybridClock(o.ctx.now);
    this.aggregator = new Aggregator({
      now: () => this.ctx.now(),
      selections: async (id) => ((await this.isLocal(id)) ? selectionsFor(await this.localPolicy(id)) : []),
      block: (cid) => this.ctx.store.blocks.get(cid),
      publish: (a) => o.publishAggregate(a),
    }, o.syncIntervalMs ?? 5000);
    const registers = [o.ctx.metrics.registry];
    this.#received = new Counter({
      name: 'gridlet_mesh_messages_received_total', registers, labelNames: ['result'],
      help: 'Grid messages received from peers, by what became of them (accepted, or why not).',
    });
    // One per frame under load: counted in `counts` and handed to prom-client when read (metrics.ts Tally).
    const created = this.counts.created;
    new Counter({
      name: 'gridlet_mesh_messages_created_total', registers, labelNames: ['protocol'],
      help: 'Grid messages this gateway signed, by protocol.',
      collect() {
        this.reset();
        for (const protocol of Object.keys(created)) this.inc({ protocol }, created[protocol]);
      },
    });
    const pool = this.signPool.stats;
    new Counter({
      name: 'gridlet_mesh_signatures_total', registers, labelNames: ['where'],
      help: 'Signatures of readings messages: on a worker thread (thread), on the event loop in a quiet turn (loop), or on it because a thread failed (fallback).',
      collect() {
        this.reset();
        this.inc({ where: 'thread' }, pool.signed);
        this.inc({ where: 'loop' }, pool.inline);
        this.inc({ where: 'fallback' }, pool.fallback);
      },
    });
    new Gauge({
      name: 'gridlet_mesh_sign_threads', registers,
      help: 'Worker threads signing readings messages now (started under load, ended after 30 s without work).',
      collect() {
        this.set(pool.threads);
      },
    });
    this.#refused = new Counter({
      name: 'gridlet_mesh_refused_total', registers, labelNames: ['reason'],
      help: 'What the mesh refused a peer: connections and streams of peers no operator admitted, identities that do not hold, ' +
        'pairings that conflict, history and consents from operators that do not hold the device, jobs over a peer\'s quota.',
    });
  }

  get gatewayId(): string {
    return this.ctx.identity.id;
  }

  /** Signs a message of one of this gateway's protocols, counted. */
  sign(protocol: ProtocolName, payload: Payload): GridMessage {
    const t0 = performance.now();
    const m = encodeMessage(protocols()[protocol].pcid, payload, this.signer);
    busy('sign', t0);
    this.#countCreated(protocol);
    return m;
  }

  /**
   * sign() for the hot path (one readings message per frame): under load the signature is made on a
   * worker thread, the encoding and the CID here. The same bytes as sign().
   */
  async signAsync(protocol: ProtocolName, payload: Payload): Promise<GridMessage> {
    const t0 = performance.now();
    const { pcid } = protocols()[protocol];
    const signable = messageSignable(pcid, payload);
    const data = sigStructure(signable);
    busy('sign', t0);
    const signature = await this.signPool.sign(data);
    const t1 = performance.now();
    const m = assembleMessage(pcid, payload, signable, this.signer.publicKey, signature);
    busy('sign', t1);
    this.#countCreated(protocol);
    return m;
  }

  #countCreated(protocol: ProtocolName): void {
    this.counts.created[protocol] = (this.counts.created[protocol] ?? 0) + 1;
  }

  count(r: Received): Received {
    this.#received.inc({ result: r });
    this.counts.received[r] = (this.counts.received[r] ?? 0) + 1;
    if (REFUSALS.has(r)) this.refuse(r);
    return r;
  }

  /** Counts a refusal (gridlet_mesh_refused_total{reason}). */
  refuse(reason: string): void {
    this.#refused.inc({ reason });
    this.counts.refused[reason] = (this.counts.refused[reason] ?? 0) + 1;
  }

  /** Is the device paired on this gateway (its policy is the privacy service's, not a consent message's)? */
  async isLocal(deviceId: string): Promise<boolean> {
    return (await this.ctx.store.getDevice(deviceId))?.state === 'paired';
  }

  /**
   * The privacy service's policy for one of this gateway's devices, with every operator its `peers`
   * name made an operator id: an id stays, a local name (--trust-operator NAME=…, or the name in the
   * operator's file) becomes the ids of the trusted operators known by it, a name no trusted operator
   * has is left out (no gateway of it can be admitted).
   */
  async localPolicy(deviceId: string): Promise<PrivacyPolicy> {
    return this.resolvePolicy(await this.ctx.privacy.effectivePolicy(deviceId));
  }

  resolvePolicy(p: PrivacyPolicy): PrivacyPolicy {
    const peers: { [operator: string]: Share } = {};
    for (const [name, share] of Object.entries(p.peers)) for (const id of this.ids.resolve(name)) peers[id] ??= share;
    return { ...p, peers };
  }

  /** The policy that bounds what of a device goes where: this gateway's own for its devices, else the latest consent. */
  async policyFor(deviceId: string): Promise<PrivacyPolicy> {
    return (await this.isLocal(deviceId)) ? this.localPolicy(deviceId) : this.consents.policy(deviceId);
  }

  /** The device's operator (id): its current pairing's gateway's, else this gateway's. */
  deviceOperator(deviceId: string): string {
    return this.crdt.state(deviceId)?.operator ?? this.operator;
  }

  /** The operator (id) of an admitted peer, by its peer id. */
  peerOperator(peer: string): string | undefined {
    return this.ids.identityByPeer(peer)?.operatorId;
  }

  /** Trusted operators other than this gateway's own. */
  operators(): string[] {
    return this.ids.others();
  }

  async mayKeep(deviceId: string, view: BlockView): Promise<boolean> {
    const devOp = this.deviceOperator(deviceId);
    if (devOp === this.operator) return true;
    return mayHave(audienceShare(await this.policyFor(deviceId), devOp, this.operator), view);
  }

  /**
   * May `kid` write to `deviceId`'s history (readings, aggregates)? Its operator must hold the device's
   * current pairing; an ancestor of a held message (`ancestor`) may be from any operator that held it
   * before. 'superseded' for new history under a key its operator has since replaced; 'unknown' while
   * no pairing of the device is known.
   */
  writes(deviceId: string, kid: Uint8Array, ancestor: boolean): 'yes' | 'foreign' | 'superseded' | 'unknown' {
    const op = this.ids.operatorOf(kid);
    if (!op) return 'foreign';
    if (!ancestor && this.ids.supersededAt(kid) !== undefined) return 'superseded';
    const st = this.crdt.state(deviceId);
    // No pairing of the device known yet: judged again when the message comes back with a later summary.
    if (!st) return 'unknown';
    if (st.operator === op) return 'yes';
    return ancestor && this.crdt.holders(deviceId).has(op) ? 'yes' : 'foreign';
  }

  /**
   * Did a tombstone remove this CID (retention-tombstone-v1 "Keeping")? One counts when this gateway
   * signed it, when its gateway is the device's, or when it is the gateway of the message's own signer.
   */
  async removed(cid: Uint8Array, kid?: Uint8Array): Promise<boolean> {
    for (const r of await this.ctx.store.blocks.removedBy(cid)) {
      if (r.gateway === this.gatewayId || this.crdt.state(r.deviceId)?.gateway === r.gateway) return true;
      if (kid && this.ids.bound(kid, r.gateway)) return true;
    }
    return false;
  }

  /** Sends blocks to every admitted peer (all may have them: identities, registry, consents, tombstones, guests). */
  broadcast(blocks: Uint8Array[], except?: string): void {
    if (!this.node || this.closed) return;
    const data = encodeGossip({ blocks });
    for (const p of this.node.admittedPeers()) if (p !== except) this.node.send(p, data);
  }

  /** Sends gossip to one admitted peer. */
  send(peer: string, g: Gossip): void {
    if (this.node && !this.closed) this.node.send(peer, encodeGossip(g));
  }
}

/**
 * Gossip (mesh-admission-v2 `/gridlet/gossip/2`): `{"blocks": [message bytes…]}`, `{"have": [binary
 * CID…]}`, `{"caps": capability announcement}` (offload.ts); a receiver ignores keys it does not know.
 */
export interface Gossip {
  blocks?: Uint8Array[];
  have?: Uint8Array[];
  caps?: Uint8Array;
}

export function encodeGossip(g: Gossip): Uint8Array {
  const o: { [k: string]: CborValue } = {};
  if (g.blocks) o.blocks = g.blocks;
  if (g.have) o.have = g.have;
  if (g.caps) o.caps = g.caps;
  return encodeCbor(o);
}

export function decodeGossip(data: Uint8Array): Gossip {
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
