// The gateway's part in the mesh (MESH.md): it signs a readings message for every accepted frame that
// added records (hash-chained per device through `prev`), pairing and revocation messages for its
// registry, and its own identity message; it keeps them in the block store, announces them, serves
// them by CID, and verifies every message a peer sends before it keeps or acts on it. What of a meter
// goes to another operator's gateways — announced, served, kept — follows the device's sharing policy
// (gateway/privacy): readings messages, signed aggregates or nothing, and a signed consent message tells
// every gateway when the policy changes.

import { Counter, Gauge } from 'prom-client';
import { decode, encode as encodeCbor, type CborValue } from '../../firmware/core/cbor.js';
import { equal, toHex } from '../../firmware/core/bytes.js';
import type { GatewayContext } from '../context.js';
import type { RecordJson, RecordsEvent } from '../records.js';
import type { StoredRecord } from '../store/store.js';
import { cidOf, cidText, compareCid, parseCidText } from './cid.js';
import { DeviceRegistryCrdt, type MeshDeviceState } from './device-registry.js';
import { decodeMessage, encodeMessage, MessageError, openMessage, signerFromSeed, type GridMessage, type Payload, type Signer } from './message.js';
import type { MeshNode } from './node.js';
import { openCapabilities, PeerBackend, signCapabilities, type ServeOffload } from './offload.js';
import type { OffloadBackend } from '../offload/backend.js';
import { applyTombstone } from '../privacy/retention.js';
import { Aggregator, RESIGN_HORIZON_S } from '../privacy/aggregate.js';
import { audienceShare, ConsentBook, consentOf, mayHave, policyOf, samePolicy, selectionsFor, type BlockView } from '../privacy/consent.js';
import { DEFAULT_POLICY, type PrivacyPolicy } from '../privacy/policy.js';
import type { BlockStore, Disclosure } from '../store/store.js';
import { protocolOf, protocols, type ProtocolName } from './pcid.js';
import { partition, SUMMARY_MAX_BYTES, SummaryLedger, type SummaryHead } from './summary.js';
import {
  aggregatePayload, consentPayload, guestPayload, HybridClock, identityPayload, parseAggregate, parseConsent, parseGuest, parseIdentity, parseReadings, parseRegistry, parseTombstone, peerIdOf, readingsPayload, recordLast,
  registryPayload, type Aggregate, type MeshRecord, type RegistryEntry,
} from './protocols.js';

export const PUBLIC_TOPIC = 'gridlet/mesh/1';
export const operatorTopic = (operator: string) => `gridlet/mesh/1/operator/${operator}`;
/** Registry stamps further ahead of this gateway's clock are refused (MESH.md). */
export const MAX_CLOCK_AHEAD_MS = 5 * 60_000;
const MAX_PENDING = 1000;
const RECOVERY_BATCH = 500;
/** At startup, at most this many readings messages per device are read back for windows left unsigned. */
const RECOVERY_WALK = 5000;
/**
 * CIDs summaries name are fetched this many at a time: a peer serves at most 32 block streams per
 * connection at once (libp2p's default), and one a summary names is asked for once per announcement.
 */
const FETCH_CONCURRENCY = 8;
/** At most this many named CIDs wait to be fetched; the next full summary names those left out again. */
const MAX_WANTED = 200_000;
/** Peers subscribing within this long of the first share one full summary (and full ones are a sync interval apart). */
const SUBSCRIBED_DEBOUNCE_MS = 200;

export interface MeshOptions {
  ctx: GatewayContext;
  operator: string;
  /** libp2p listen multiaddr, e.g. /ip4/127.0.0.1/tcp/0. */
  listen?: string;
  /** Peers' multiaddrs (with /p2p/<peer id>), dialled and redialled. */
  peers?: string[];
  /** How often heads and registry summaries are announced (default 5 s): each names only what changed since the last. */
  syncIntervalMs?: number;
  /**
   * How often a full summary goes out besides the one for a newly subscribed peer (default 12 sync
   * intervals, 60 s): it repairs a lost gossip message and heals what a partition left apart.
   */
  antiEntropyMs?: number;
  /** A summary larger than this many bytes (encoded) goes out as several gossip messages (default 256 KiB). */
  summaryMaxBytes?: number;
  /** The job kinds this gateway runs for others (offload.capabilities()), announced with each summary. */
  capabilities?: () => string[];
  /** Runs a peer's job on this gateway's backend (/gridlet/offload/1). */
  serveOffload?: ServeOffload;
}

/** What one summary published (announceSummary). */
export interface SummarySent {
  messages: number;
  bytes: number;
  /** CIDs named, on all topics. */
  cids: number;
}

/** The 'mesh-summary' event: one gossip message of a summary. */
export interface SummaryEvent {
  topic: string;
  kind: 'full' | 'delta';
  /** Its index among the parts of the summary on this topic, and how many parts there are. */
  part: number;
  parts: number;
  have: Uint8Array[];
  bytes: number;
}

/** What became of a message received from a peer. */
export type Received =
  | 'accepted' | 'duplicate' | 'opaque' | 'untrusted' | 'revoked' | 'future' | 'unauthorized' | 'cid' | 'conflict'
  /** A block about a device whose sharing consent does not let this gateway's operator keep it: not kept (not refused for good). */
  | 'private'
  /** A message a retention tombstone removed (retention-tombstone-v1 "Keeping"): never taken back. */
  | 'removed'
  | MessageError['fault'];

export class Mesh {
  readonly crdt = new DeviceRegistryCrdt();
  readonly signer: Signer;
  readonly clock: HybridClock;
  readonly operator: string;
  readonly peerId: string;
  node?: MeshNode;
  identityCid!: Uint8Array;
  /** Revokes the device on this gateway (store, unpair) when the registry says it is revoked. */
  onRevoke: (deviceId: string) => Promise<void> = async () => {};
  readonly counts: { received: { [r: string]: number }; created: { [p: string]: number } } = { received: {}, created: {} };
  /** The latest sharing consent per device (sharing-consent-v1). */
  readonly consents = new ConsentBook();
  /** Signs this gateway's devices' 15-minute and daily aggregates (meter-aggregates-v1). */
  readonly aggregator: Aggregator;

  readonly #ctx: GatewayContext;
  readonly #o: MeshOptions;
  readonly #queues = new Map<string, Promise<void>>();
  /** Messages whose signer no identity binds yet, by kid, then CID (bounded). */
  readonly #pending = new Map<string, Map<string, { bytes: Uint8Array; peer?: string }>>();
  #pendingCount = 0;
  /** CIDs refused once (a revoked device's new history, bad payloads): not fetched again (bounded). */
  readonly #refused = new Set<string>();
  /** Guest module CIDs (hex) some held publication names: their bytes may be fetched and kept raw. */
  readonly #guestCids = new Map<string, number>();
  readonly #fetching = new Map<string, Promise<Uint8Array | undefined>>();
  /** CIDs summaries named that this gateway lacks, in the order named, with the peer that named them. */
  readonly #wanted = new Map<string, { cid: Uint8Array; peer: string }>();
  #fetchers = 0;
  readonly #received: Counter<'result'>;
  readonly #created: Counter<'protocol'>;
  readonly #summaryBytes: Counter<'kind'>;
  readonly #summaryMessages: Counter<'kind'>;
  readonly #summaryCids: Counter<'kind'>;
  /** What summaries told the mesh, so that the next one names only what changed (summary.ts). */
  readonly #ledger = new SummaryLedger();
  /** Summaries go out one at a time. */
  #summaries: Promise<unknown> = Promise.resolve();
  /** performance.now() of the last full summary. */
  #lastFull = -Infinity;
  /** A full summary for peers that just subscribed, waiting out the debounce. */
  #fullSoon?: NodeJS.Timeout;
  #timer?: NodeJS.Timeout;
  #offPrivacy?: () => void;
  #closed = false;
  /** What each peer (by peer id) announced it runs for others, from its latest trusted announcement. */
  readonly #peerCaps = new Map<string, { capabilities: string[]; t: number; gateway: string; operator: string }>();
  readonly #peerBackends = new Map<string, PeerBackend>();
  readonly #listeners: [string, (...a: any[]) => void][] = [];

  private constructor(o: MeshOptions) {
    this.#o = o;
    this.#ctx = o.ctx;
    this.operator = o.operator;
    const { sign } = o.ctx.identity;
    this.signer = signerFromSeed(sign.secretKey.subarray(0, 32), sign.publicKey);
    this.peerId = peerIdOf(sign.publicKey);
    this.clock = new HybridClock(o.ctx.now);
    this.aggregator = new Aggregator({
      now: () => this.#ctx.now(),
      selections: async (id) => ((await this.#isLocal(id)) ? selectionsFor(await this.#ctx.privacy.effectivePolicy(id)) : []),
      block: (cid) => this.#ctx.store.blocks.get(cid),
      publish: (a) => this.#publishAggregate(a),
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
    const summaryHelp = 'full (a peer subscribed, or anti-entropy) or delta (what changed since the last)';
    this.#summaryMessages = new Counter({
      name: 'gridlet_mesh_summary_messages_total', registers, labelNames: ['kind'], help: `Summary gossip messages published, ${summaryHelp}.`,
    });
    this.#summaryBytes = new Counter({
      name: 'gridlet_mesh_summary_bytes_total', registers, labelNames: ['kind'], help: `Bytes of summary gossip published, ${summaryHelp}.`,
    });
    this.#summaryCids = new Counter({
      name: 'gridlet_mesh_summary_cids_total', registers, labelNames: ['kind'], help: `CIDs named in summary gossip, ${summaryHelp}.`,
    });
    const self = this;
    new Gauge({
      name: 'gridlet_mesh_peers', help: 'Mesh peers connected.', registers,
      collect() {
        this.set(self.node ? self.node.connectedPeers().length : 0);
      },
    });
  }

  static async start(o: MeshOptions): Promise<Mesh> {
    const mesh = new Mesh(o);
    protocols(); // fails early and clearly when docs/protocols/ is missing
    await mesh.#load();
    await mesh.#publishIdentity();
    mesh.#listen();
    if (o.listen !== undefined || (o.peers?.length ?? 0) > 0) {
      const { MeshNode } = await import('./node.js');
      mesh.node = await MeshNode.start({
        seed: o.ctx.identity.sign.secretKey.subarray(0, 32),
        listen: o.listen,
        peers: o.peers ?? [],
        topics: [PUBLIC_TOPIC, operatorTopic(o.operator)],
        log: o.ctx.log,
        onGossip: (topic, data, from) => void mesh.#onGossip(topic, data, from),
        onPeerSubscribed: () => mesh.#peerSubscribed(),
        serveBlock: (cid, peer) => mesh.#serve(cid, peer),
        serveOffload: o.serveOffload,
      });
      mesh.#timer = setInterval(() => void mesh.#tick(), mesh.#syncMs);
      mesh.#timer.unref();
    }
    await mesh.#recover();
    await mesh.#startPrivacy();
    return mesh;
  }

  /** The block store this mesh keeps its messages in (tools, tests). */
  get blocks(): BlockStore {
    return this.#ctx.store.blocks;
  }

  get gatewayId(): string {
    return this.#ctx.identity.id;
  }

  /** The listen address with /p2p/<peer id> (the ready line's mesh=). */
  get multiaddr(): string | undefined {
    return this.node?.multiaddrs[0];
  }

  // ---------------------------------------------------------------- startup

  async #load(): Promise<void> {
    const blocks = this.#ctx.store.blocks;
    // Identities first: registry messages are judged by who signed them.
    for (const b of await blocks.list('identity')) await this.#apply(decodeMessage(b.bytes), 'identity', {});
    for (const b of await blocks.list('registry')) await this.#apply(decodeMessage(b.bytes), 'registry', {});
    for (const b of await blocks.list('consent')) this.#addConsent(decodeMessage(b.bytes));
    for (const b of await blocks.list('aggregate')) {
      const m = decodeMessage(b.bytes);
      const a = parseAggregate(m.payload);
      if (typeof a !== 'string') this.aggregator.chains.add(m.cid, a, equal(m.kid, this.signer.publicKey));
    }
    for (const b of await blocks.list('guest')) await this.#apply(decodeMessage(b.bytes), 'guest', {});
    // Tombstones kept by an older gridlet, before their CIDs were noted as removed: noted now, newest
    // first down to one already noted (since then each tombstone's CIDs are noted before it is kept).
    const tombstones = await blocks.list('tombstone');
    for (let i = tombstones.length - 1; i >= 0; i--) {
      const t = parseTombstone(decodeMessage(tombstones[i].bytes).payload);
      if (typeof t === 'string' || t.removed.length === 0) continue;
      if ((await blocks.removedBy(t.removed[0])).some((r) => r.gateway === t.gateway)) break;
      await blocks.noteRemoved(t.device, t.gateway, t.removed);
    }
  }

  async #publishIdentity(): Promise<void> {
    const { identity } = this.#ctx;
    const had = this.crdt.identities.get(toHex(this.signer.publicKey));
    if (had && had.entry.operator === this.operator && had.entry.gateway === identity.id) this.identityCid = had.cid;
    else await this.#newIdentity();
    // Devices paired before this gateway had a mesh get their pairing message now.
    for (const d of await this.#ctx.store.listDevices()) {
      if (this.crdt.pairingsBy(d.id, this.signer.publicKey).length === 0) {
        await this.#pairingMessage(d.id);
        if (d.state === 'revoked') await this.#revoke(d.id);
      }
    }
  }

  async #newIdentity(): Promise<void> {
    const { identity } = this.#ctx;
    const m = this.#sign('identity', identityPayload({
      gateway: identity.id, x25519: identity.box.publicKey, ed25519: identity.sign.publicKey, operator: this.operator,
      peer: this.peerId, t: this.#ctx.now(),
    }));
    await this.#apply(m, 'identity', {});
    this.identityCid = m.cid;
  }

  /** Records stored before a crash between commit and message: carried now, oldest first. */
  async #recover(): Promise<void> {
    for (const d of await this.#ctx.store.listDevices()) {
      for (let first = -1; ;) {
        const rows = await this.#ctx.store.blocks.uncovered(d.id, RECOVERY_BATCH);
        if (rows.length === 0 || rows[0].seq === first) break;
        first = rows[0].seq;
        await this.#append(d.id, [rows.map(toMeshRecord)]);
      }
    }
  }

  #listen(): void {
    const on = (event: string, f: (e: any) => Promise<void>) => {
      const h = (e: any) => void f(e).catch((err: Error) => this.#ctx.log.error({ err: err.message, stack: err.stack }, `mesh: ${event} failed`));
      this.#ctx.events.on(event, h);
      this.#listeners.push([event, h]);
    };
    on('records', (e: RecordsEvent) => this.#serial(e.deviceId, () => this.#onRecords(e.deviceId, e.frames)));
  }

  /** A device was paired here: its pairing message is signed, kept and announced before this resolves. */
  paired(deviceId: string): Promise<void> {
    return this.#serial(deviceId, async () => {
      await this.#pairingMessage(deviceId);
      // A group policy may already share more than the default: the mesh learns it with the pairing.
      await this.#checkConsent(deviceId);
    });
  }

  /** Runs per-device work one at a time, in arrival order. */
  #serial(deviceId: string, f: () => Promise<void>): Promise<void> {
    const prev = this.#queues.get(deviceId) ?? Promise.resolve();
    const next = prev.then(f, f);
    const tail = next.catch(() => {});
    this.#queues.set(deviceId, tail);
    void tail.then(() => {
      if (this.#queues.get(deviceId) === tail) this.#queues.delete(deviceId);
    });
    return next;
  }

  /** Resolves when every queued local message is signed and kept (tests, shutdown). */
  async settled(): Promise<void> {
    while (this.#queues.size) await Promise.all([...this.#queues.values()]);
  }

  // ---------------------------------------------------------------- local messages

  #sign(protocol: ProtocolName, payload: Payload): GridMessage {
    const m = encodeMessage(protocols()[protocol].pcid, payload, this.signer);
    this.#created.inc({ protocol });
    this.counts.created[protocol] = (this.counts.created[protocol] ?? 0) + 1;
    return m;
  }

  /** One readings message per frame (MESH.md), the frames that waited together kept in one transaction. */
  async #onRecords(deviceId: string, frames: RecordJson[][]): Promise<void> {
    const out: MeshRecord[][] = [];
    for (const json of frames) {
      const records: MeshRecord[] = [];
      for (const r of json) {
        if (r[2] === 'event') {
          // The API shape turned event data into JSON; the message carries the CBOR as stored.
          const row = (await this.#ctx.store.readRecords(deviceId, r[0], 1)).find((x) => x.seq === r[0]);
          records.push(row && row.kind === 2 ? toMeshRecord(row) : [r[0], r[1], 'event', r[3], {}]);
        } else records.push(r as MeshRecord);
      }
      if (records.length) out.push(records);
    }
    if (out.length) await this.#append(deviceId, out);
  }

  /**
   * Signs one readings message per entry of `messages`, each naming the one before it (the first names
   * the device's heads), and keeps them in one transaction; then announces them in one gossip message.
   */
  async #append(deviceId: string, messages: MeshRecord[][]): Promise<void> {
    const blocks = this.#ctx.store.blocks;
    const covers = messages.map((records) => records.map((r): [number, number] => [r[0], recordLast(r)]));
    for (let attempt = 0; attempt < 10; attempt++) {
      const heads = await blocks.heads(deviceId);
      const signed: GridMessage[] = [];
      for (const records of messages) {
        const prev = signed.length ? [signed[signed.length - 1].cid] : heads;
        signed.push(this.#sign('readings', readingsPayload({ device: deviceId, gateway: this.gatewayId, records, prev })));
      }
      const now = this.#ctx.now();
      const ok = await blocks.appendChain({
        deviceId, prev: heads, expectHeads: heads, covers: covers[0],
        block: { cid: signed[0].cid, bytes: signed[0].bytes, kind: 'readings', deviceId, receivedAt: now },
        next: signed.slice(1).map((m, i) => ({ block: { cid: m.cid, bytes: m.bytes, kind: 'readings', deviceId, receivedAt: now }, covers: covers[i + 1] })),
      });
      if (!ok) continue;
      for (const m of signed) this.#ctx.events.emit('mesh-message', { protocol: 'readings', deviceId, cid: cidText(m.cid) });
      const policy = await this.#ctx.privacy.effectivePolicy(deviceId);
      const resolutions = [...new Set(selectionsFor(policy).map((s) => s.resolution))];
      if (resolutions.length) signed.forEach((m, i) => this.aggregator.noteReadings(deviceId, m.cid, messages[i], resolutions));
      const seqs = covers.map((c): [number, number] => [c[0][0], Math.max(...c.map((x) => x[1]))]);
      await this.#disclose(deviceId, signed, { kind: 'readings' }, seqs, policy);
      return;
    }
    throw new Error(`device ${deviceId}: its chain head kept moving; readings message not written (recovered at restart)`);
  }


  async #pairingMessage(deviceId: string): Promise<void> {
    const d = await this.#ctx.store.getDevice(deviceId);
    if (!d) return;
    const m = this.#sign('registry', registryPayload({
      op: 'pair', device: d.id, key: d.publicKey, gateway: this.gatewayId, model: d.model, firmware: d.firmware, hlc: this.clock.now(),
    }));
    await this.#apply(m, 'registry', {});
    await this.#announce([m.bytes], PUBLIC_TOPIC);
  }

  /**
   * An operator revokes a device here: the current pairing when this gateway may revoke it (its own,
   * or its operator's), else this gateway's own pairing. 'forbidden' when neither; undefined if unknown.
   */
  revokeDevice(deviceId: string): Promise<'revoked' | 'forbidden' | undefined> {
    let out: 'revoked' | 'forbidden' | undefined;
    return this.#serial(deviceId, async () => {
      out = await this.#revoke(deviceId);
    }).then(() => out);
  }

  async #revoke(deviceId: string): Promise<'revoked' | 'forbidden' | undefined> {
    const st = this.crdt.state(deviceId);
    const mine = this.crdt.pairingsBy(deviceId, this.signer.publicKey)[0];
    let target: Uint8Array | undefined;
    if (st) {
      const cur = this.crdt.pairing(st.pairing)!;
      if (st.state === 'paired' && this.crdt.mayRevoke(this.signer.publicKey, cur)) target = st.pairing;
      else if (st.state === 'revoked' && (!mine || equal(mine.cid, st.pairing) || this.crdt.revokedAt(mine))) return 'revoked';
    }
    if (!target && mine && !this.crdt.revokedAt(mine)) target = mine.cid;
    if (!target) return st ? 'forbidden' : undefined;
    const m = this.#sign('registry', registryPayload({ op: 'revoke', device: deviceId, pairing: target, gateway: this.gatewayId, hlc: this.clock.now() }));
    await this.#apply(m, 'registry', {});
    await this.#announce([m.bytes], PUBLIC_TOPIC);
    return 'revoked';
  }

  // ---------------------------------------------------------------- receiving

  #count(r: Received): Received {
    this.#received.inc({ result: r });
    this.counts.received[r] = (this.counts.received[r] ?? 0) + 1;
    return r;
  }

  /**
   * Verifies a message from a peer and keeps or acts on it only if it holds: envelope, determinism,
   * CID (when fetched by CID), signature, a signer bound by an identity message, the payload's shape.
   */
  async receive(bytes: Uint8Array, from: { peer?: string; expect?: Uint8Array; ancestor?: boolean } = {}): Promise<Received> {
    if (from.expect && !equal(cidOf(bytes), from.expect)) return this.#count('cid');
    const r = await this.#receive(bytes, from);
    if (!['accepted', 'duplicate', 'opaque', 'untrusted', 'private'].includes(r)) {
      if (this.#refused.size >= 10_000) this.#refused.clear();
      this.#refused.add(toHex(cidOf(bytes)));
    }
    return this.#count(r);
  }

  async #receive(bytes: Uint8Array, from: { peer?: string; ancestor?: boolean }): Promise<Received> {
    let m: GridMessage;
    try {
      m = openMessage(bytes);
    } catch (e) {
      if (e instanceof MessageError) {
        this.#ctx.log.debug({ peer: from.peer, fault: e.fault, why: e.message }, 'mesh message refused');
        return e.fault;
      }
      throw e;
    }
    if (await this.#ctx.store.blocks.has(m.cid)) return 'duplicate';
    if (await this.#removed(m.cid, m.kid)) return 'removed';
    const protocol = protocolOf(m.pcid);
    if (protocol !== 'identity' && !this.crdt.identity(m.kid)) {
      // Not trusted before an identity message binds its key; kept aside until one does.
      const k = toHex(m.kid);
      const waiting = this.#pending.get(k) ?? new Map();
      if (this.#pendingCount < MAX_PENDING && !waiting.has(toHex(m.cid))) {
        waiting.set(toHex(m.cid), { bytes, peer: from.peer });
        this.#pendingCount++;
      }
      this.#pending.set(k, waiting);
      return 'untrusted';
    }
    const r = await this.#apply(m, protocol, from);
    if (r === 'accepted' && protocol === 'identity') {
      const waiting = this.#pending.get(toHex(m.kid));
      this.#pending.delete(toHex(m.kid));
      this.#pendingCount -= waiting?.size ?? 0;
      for (const w of waiting?.values() ?? []) await this.receive(w.bytes, { peer: w.peer });
    }
    return r;
  }

  async #apply(m: GridMessage, protocol: ProtocolName | undefined, from: { peer?: string; ancestor?: boolean }): Promise<Received> {
    const blocks = this.#ctx.store.blocks;
    const now = this.#ctx.now();
    const block = (kind: 'readings' | 'registry' | 'identity' | 'guest' | 'opaque' | 'aggregate' | 'consent', deviceId: string | null = null) =>
      ({ cid: m.cid, bytes: m.bytes, kind, deviceId, receivedAt: now });
    switch (protocol) {
      case undefined:
        // A protocol this gateway does not know: kept as opaque bytes, served, never interpreted.
        await blocks.put(block('opaque'));
        return 'opaque';
      case 'identity': {
        const i = parseIdentity(m.payload, m.kid);
        if (typeof i === 'string') return 'payload';
        if (i.t > now + MAX_CLOCK_AHEAD_MS) return 'future';
        if (this.crdt.addIdentity({ cid: m.cid, kid: m.kid, entry: i })) return 'conflict';
        await blocks.put(block('identity'));
        return 'accepted';
      }
      case 'readings': {
        const r = parseReadings(m.payload);
        if (typeof r === 'string') return 'payload';
        if (!this.crdt.bound(m.kid, r.gateway)) return 'untrusted';
        if (this.crdt.state(r.device)?.state === 'revoked' && !from.ancestor) return 'revoked';
        if (!(await this.#mayKeep(r.device, m.kid, { kind: 'readings' }))) return 'private';
        await blocks.appendChain({ deviceId: r.device, prev: r.prev, block: block('readings', r.device) });
        this.#ctx.events.emit('mesh-message', { protocol: 'readings', deviceId: r.device, cid: cidText(m.cid), from: from.peer });
        // Walk back to the parents this gateway does not hold yet.
        for (const p of r.prev) {
          if (!(await blocks.has(p))) void this.fetchBlock(p, from.peer, true);
        }
        return 'accepted';
      }
      case 'registry': {
        const e = parseRegistry(m.payload);
        if (typeof e === 'string') return 'payload';
        if (e.hlc[0] > now + MAX_CLOCK_AHEAD_MS) return 'future';
        if (!this.crdt.bound(m.kid, e.gateway)) return 'untrusted';
        this.clock.observe(e.hlc);
        await blocks.put(block('registry', e.device));
        this.#addRegistry(m, e);
        await this.#afterRegistryChange(e.device);
        return 'accepted';
      }
      case 'tombstone':
        // Retention (privacy/retention.ts): kept, and the removed messages its signer wrote are dropped here too.
        return applyTombstone(this.#ctx.store, m, (kid, gateway) => this.crdt.bound(kid, gateway), now);
      case 'aggregates': {
        const a = parseAggregate(m.payload);
        if (typeof a === 'string') return 'payload';
        if (!this.crdt.bound(m.kid, a.gateway)) return 'untrusted';
        if (this.crdt.state(a.device)?.state === 'revoked' && !from.ancestor) return 'revoked';
        if (!(await this.#mayKeep(a.device, m.kid, { kind: 'aggregate', resolution: a.resolution, channels: a.channels }))) return 'private';
        await blocks.put(block('aggregate', a.device));
        this.aggregator.chains.add(m.cid, a, equal(m.kid, this.signer.publicKey));
        this.#ctx.events.emit('mesh-message', { protocol: 'aggregates', deviceId: a.device, cid: cidText(m.cid), from: from.peer });
        if (a.prev && !(await blocks.has(a.prev))) void this.fetchBlock(a.prev, from.peer, true);
        return 'accepted';
      }
      case 'consent': {
        const c = parseConsent(m.payload);
        if (typeof c === 'string') return 'payload';
        if (c.hlc[0] > now + MAX_CLOCK_AHEAD_MS) return 'future';
        if (!this.crdt.bound(m.kid, c.gateway)) return 'untrusted';
        // Judged by the device's current pairing: not known yet, the message comes again with a later summary.
        const st = this.crdt.state(c.device);
        if (!st) return 'untrusted';
        if (c.gateway !== st.gateway && this.crdt.identity(m.kid)?.operator !== this.#deviceOperator(c.device)) return 'unauthorized';
        let policy: PrivacyPolicy;
        try {
          policy = policyOf(c);
        } catch {
          return 'payload';
        }
        this.clock.observe(c.hlc);
        await blocks.put(block('consent', c.device));
        if (this.consents.add(c.device, { cid: m.cid, hlc: c.hlc, gateway: c.gateway, policy })) {
          this.#ledger.changed([c.device]);
          this.#ctx.events.emit('consent', { deviceId: c.device, cid: cidText(m.cid), from: from.peer });
          await this.#afterConsent(c.device);
        }
        return 'accepted';
      }
      case 'guest': {
        const g = parseGuest(m.payload);
        if (typeof g === 'string') return 'payload';
        if (!this.crdt.bound(m.kid, g.gateway)) return 'untrusted';
        this.#guestCids.set(toHex(g.guest), g.size);
        await blocks.put(block('guest'));
        return 'accepted';
      }
    }
  }

  #addRegistry(m: GridMessage, e: RegistryEntry): void {
    // The device's operator (whose gateways may have all of it) may change with its pairing.
    this.#ledger.changed([e.device]);
    if (e.op === 'pair') this.crdt.addPairing({ cid: m.cid, kid: m.kid, entry: e });
    else this.crdt.addRevocation({ cid: m.cid, kid: m.kid, entry: e });
  }

  /** A device whose current pairing is revoked, or no longer this gateway's, is refused here from now on. */
  async #afterRegistryChange(deviceId: string): Promise<void> {
    const st = this.crdt.state(deviceId);
    if (!st) return;
    const local = await this.#ctx.store.getDevice(deviceId);
    if (local?.state !== 'paired') return;
    if (st.state === 'paired' && equal(st.pairingKid, this.signer.publicKey)) return;
    await this.onRevoke(deviceId);
  }

  // ---------------------------------------------------------------- the network

  async #announce(blocks: Uint8Array[], topic: string): Promise<void> {
    if (this.node && !this.#closed) await this.node.publish(topic, encodeGossip({ blocks }));
  }

  /** Signs a publication for every guest module in the store that has none yet (GUESTS.md, guest publication v1). */
  async publishGuests(): Promise<void> {
    const store = this.#ctx.store;
    if (!store.guests) return;
    for (const g of await store.guests.list()) {
      const cid = parseCidText(g.cid);
      if (!cid || this.#guestCids.has(toHex(cid))) continue;
      let m: GridMessage;
      try {
        m = this.#sign('guest', guestPayload({ guest: cid, name: g.name, size: g.size, manifest: g.manifest as { [k: string]: CborValue }, gateway: this.gatewayId }));
      } catch (e) {
        this.#ctx.log.warn({ guest: g.cid, err: (e as Error).message }, 'mesh: guest manifest cannot travel as CBOR; not published');
        this.#guestCids.set(toHex(cid), g.size);
        continue;
      }
      await this.#apply(m, 'guest', {});
      await this.#announce([m.bytes], PUBLIC_TOPIC);
    }
  }

  /**
   * Announces what this gateway holds: identities, registry and consents publicly (with our identity
   * message and capabilities), chain heads on each operator's topic that operator may have. A full
   * summary names everything; a delta only what the summaries before it did not (summary.ts).
   */
  announceSummary(kind: 'full' | 'delta' = 'full'): Promise<SummarySent> {
    const next = this.#summaries.then(() => this.#summarise(kind));
    this.#summaries = next.catch(() => {});
    return next;
  }

  async #summarise(kind: 'full' | 'delta'): Promise<SummarySent> {
    await this.publishGuests().catch((e: Error) => this.#ctx.log.warn({ err: e.message }, 'mesh: guest publication failed'));
    const sent: SummarySent = { messages: 0, bytes: 0, cids: 0 };
    if (!this.node || this.#closed) return sent;
    const full = kind === 'full';
    if (full) this.#lastFull = performance.now();
    this.#ledger.begin();
    const ids = [...this.crdt.identities.values()].map((s) => s.cid);
    // Our own identity travels whole in every summary: peers judge everything else we sign by it.
    const own = await this.#ctx.store.blocks.get(this.identityCid);
    const caps = signCapabilities({ capabilities: this.#o.capabilities?.() ?? [], gateway: this.gatewayId, peer: this.peerId, t: this.#ctx.now() }, this.signer);
    const have = this.#ledger.publicHave([...ids, ...this.crdt.cids(), ...this.consents.cids()], full);
    await this.#publishSummary(PUBLIC_TOPIC, kind, { blocks: own ? [own] : [], caps }, have, sent);
    // Chain heads go to each operator's topic, those of devices whose policy lets that operator have them only.
    const heads: SummaryHead<BlockView>[] = [
      ...(await this.#ctx.store.blocks.allHeads()).map((h) => ({ device: h.deviceId, cid: h.cid, key: toHex(h.cid), view: { kind: 'readings' } as BlockView })),
      ...this.aggregator.chains.heads().map((h) => ({ device: h.device, cid: fromHex(h.cid), key: h.cid, view: { kind: 'aggregate', ...h.selection } as BlockView })),
    ];
    const policies = new Map<string, { policy: PrivacyPolicy; operator: string }>();
    for (const op of [this.operator, ...this.#operators()]) {
      const have = await this.#ledger.heads(op, heads, full, async (h) => {
        let p = policies.get(h.device);
        if (!p) policies.set(h.device, (p = { policy: await this.#policyFor(h.device), operator: this.#deviceOperator(h.device) }));
        return op === p.operator || mayHave(audienceShare(p.policy, p.operator, op), h.view);
      });
      if (have.length || (full && op === this.operator)) await this.#publishSummary(operatorTopic(op), kind, {}, have, sent);
    }
    return sent;
  }

  /** Publishes one topic's part of a summary, in as many gossip messages as its size asks. */
  async #publishSummary(topic: string, kind: 'full' | 'delta', rest: { blocks?: Uint8Array[]; caps?: Uint8Array }, have: Uint8Array[], sent: SummarySent): Promise<void> {
    const parts = partition(have, encodeGossip({ ...rest, have: [] }).length, this.#o.summaryMaxBytes ?? SUMMARY_MAX_BYTES);
    for (const [part, cids] of parts.entries()) {
      const data = encodeGossip({ ...rest, have: cids });
      await this.node!.publish(topic, data);
      sent.messages++;
      sent.bytes += data.length;
      sent.cids += cids.length;
      this.#summaryMessages.inc({ kind });
      this.#summaryBytes.inc({ kind }, data.length);
      this.#summaryCids.inc({ kind }, cids.length);
      this.#ctx.events.emit('mesh-summary', { topic, kind, part, parts: parts.length, have: cids, bytes: data.length } satisfies SummaryEvent);
    }
  }

  get #syncMs(): number {
    return this.#o.syncIntervalMs ?? 5000;
  }

  /**
   * A peer subscribed to one of our topics: a full summary, so that it learns everything we hold. Peers
   * subscribing meanwhile share it, and full summaries for subscriptions are at least a sync interval apart.
   */
  #peerSubscribed(): void {
    if (this.#fullSoon || this.#closed) return;
    const wait = Math.max(SUBSCRIBED_DEBOUNCE_MS, this.#lastFull + this.#syncMs - performance.now());
    this.#fullSoon = setTimeout(() => {
      this.#fullSoon = undefined;
      void this.announceSummary('full').catch((e: Error) => this.#ctx.log.error({ err: e.message, stack: e.stack }, 'mesh: summary not announced'));
    }, wait);
    this.#fullSoon.unref();
  }

  async #onGossip(topic: string, data: Uint8Array, from: string): Promise<void> {
    let g: { blocks?: Uint8Array[]; have?: Uint8Array[]; caps?: Uint8Array };
    try {
      g = decodeGossip(data);
    } catch {
      return void this.#count('malformed');
    }
    for (const b of g.blocks ?? []) await this.receive(b, { peer: from });
    if (g.caps) this.#onCapabilities(g.caps);
    for (const cid of g.have ?? []) {
      if (!(await this.#ctx.store.blocks.has(cid))) this.#want(cid, from);
    }
    void topic;
  }

  /** A CID a summary named and this gateway lacks: fetched in turn, FETCH_CONCURRENCY at a time. */
  #want(cid: Uint8Array, peer: string): void {
    const key = toHex(cid);
    if (this.#wanted.has(key) || this.#fetching.has(key) || this.#wanted.size >= MAX_WANTED) return;
    this.#wanted.set(key, { cid, peer });
    while (this.#fetchers < FETCH_CONCURRENCY && this.#wanted.size) void this.#fetchWanted();
  }

  async #fetchWanted(): Promise<void> {
    this.#fetchers++;
    try {
      for (let next = this.#wanted.entries().next(); !next.done && !this.#closed; next = this.#wanted.entries().next()) {
        const [key, { cid, peer }] = next.value;
        this.#wanted.delete(key);
        // A head is new history: refused for a revoked device (only ancestors of held messages are not).
        await this.fetchBlock(cid, peer, false).catch((e: Error) => this.#ctx.log.debug({ cid: cidText(cid), err: e.message }, 'mesh fetch failed'));
      }
    } finally {
      this.#fetchers--;
    }
  }

  /** A capability announcement (offload.ts): kept only when an identity binds its key, gateway and peer. */
  #onCapabilities(bytes: Uint8Array): void {
    const r = openCapabilities(bytes);
    if (typeof r === 'string') return void this.#ctx.log.debug({ why: r }, 'mesh capability announcement refused');
    const { kid, caps } = r;
    const id = this.crdt.identity(kid);
    if (!id || id.gateway !== caps.gateway || id.peer !== caps.peer || !this.crdt.bound(kid, caps.gateway)) return;
    if (caps.peer === this.peerId || caps.t > this.#ctx.now() + MAX_CLOCK_AHEAD_MS) return;
    const had = this.#peerCaps.get(caps.peer);
    if (had && had.t > caps.t) return;
    this.#peerCaps.set(caps.peer, { capabilities: caps.capabilities, t: caps.t, gateway: caps.gateway, operator: id.operator });
  }

  /** What connected peers announced they run for others (peer id → kinds). */
  peerCapabilities(): { [peer: string]: string[] } {
    const connected = new Set(this.node?.connectedPeers() ?? []);
    const out: { [peer: string]: string[] } = {};
    for (const [p, c] of this.#peerCaps) if (connected.has(p)) out[p] = [...c.capabilities];
    return out;
  }

  /**
   * The offload router (Offload.setPeerRouter): a connected peer that announced `kind`, one of this
   * operator's gateways first. Undefined when none is connected.
   */
  offloadPeer(kind: string): OffloadBackend | undefined {
    if (!this.node || this.#closed) return undefined;
    const connected = new Set(this.node.connectedPeers());
    let best: { peer: string; gateway: string } | undefined;
    for (const [peer, c] of this.#peerCaps) {
      // Same operator only: a job carries the meter's recent readings as context, and what may reach
      // another operator's gateways is bounded by each device's sharing policy (MESH.md): jobs stay with the operator.
      if (!connected.has(peer) || !c.capabilities.includes(kind) || c.operator !== this.operator) continue;
      best ??= { peer, gateway: c.gateway };
    }
    if (!best) return undefined;
    let b = this.#peerBackends.get(best.peer);
    if (!b) {
      const node = this.node;
      b = new PeerBackend(best.peer, best.gateway, (p, proto, signal) => node.dialProtocol(p, proto, signal));
      this.#peerBackends.set(best.peer, b);
    }
    return b;
  }

  /**
   * Did a tombstone remove this CID (retention-tombstone-v1 "Keeping")? One counts when this gateway
   * signed it, when its gateway is the device's, or when it is the gateway of the message's own signer.
   */
  async #removed(cid: Uint8Array, kid?: Uint8Array): Promise<boolean> {
    for (const r of await this.#ctx.store.blocks.removedBy(cid)) {
      if (r.gateway === this.gatewayId || this.crdt.state(r.deviceId)?.gateway === r.gateway) return true;
      if (kid && this.crdt.bound(kid, r.gateway)) return true;
    }
    return false;
  }

  /** A block by CID: from the store, else from peers (the hinted one first); what is fetched is verified and kept. */
  async fetchBlock(cid: Uint8Array, hint?: string, ancestor = false): Promise<Uint8Array | undefined> {
    const local = (await this.#ctx.store.blocks.get(cid)) ?? (await this.#ctx.store.guests?.wasm(cidText(cid)));
    if (local || !this.node) return local;
    const key = toHex(cid);
    if (this.#refused.has(key)) return undefined;
    if (await this.#removed(cid)) {
      // Not asked for again (a head peers keep announcing, a prev walk, an HTTP fetch): counted once.
      if (this.#refused.size >= 10_000) this.#refused.clear();
      this.#refused.add(key);
      this.#count('removed');
      return undefined;
    }
    let f = this.#fetching.get(key);
    if (!f) {
      f = (async () => {
        const peers = this.node!.connectedPeers();
        const order = hint && peers.includes(hint) ? [hint, ...peers.filter((p) => p !== hint)] : peers;
        for (const p of order) {
          const bytes = await this.node!.fetch(p, cid);
          if (!bytes) continue;
          const wasmSize = this.#guestCids.get(key);
          if (wasmSize !== undefined) {
            // A published guest's bytes: kept raw when they hash to the CID and have the published size.
            if (!equal(cidOf(bytes), cid) || bytes.length !== wasmSize) {
              this.#count('cid');
              continue;
            }
            await this.#ctx.store.blocks.put({ cid, bytes, kind: 'guest-wasm', deviceId: null, receivedAt: this.#ctx.now() });
            return bytes;
          }
          const r = await this.receive(bytes, { peer: p, expect: cid, ancestor });
          if (r === 'accepted' || r === 'duplicate' || r === 'opaque') return bytes;
        }
        return undefined;
      })().finally(() => this.#fetching.delete(key));
      this.#fetching.set(key, f);
    }
    return f;
  }

  async #serve(cid: Uint8Array, peer: string): Promise<Uint8Array | undefined | 'refused'> {
    const bytes = (await this.#ctx.store.blocks.get(cid)) ?? (await this.#ctx.store.guests?.wasm(cidText(cid)));
    if (!bytes) return undefined;
    // A meter's data goes only to gateways its sharing policy lets have it (MESH.md "Operators and privacy").
    let m: GridMessage;
    try {
      m = decodeMessage(bytes);
    } catch {
      return bytes;
    }
    const about = viewOf(m);
    if (!about) return bytes;
    const who = this.crdt.identityByPeer(peer);
    if (!who) return 'refused';
    const devOp = this.#deviceOperator(about.device, m.kid);
    if (who.operator === devOp) return bytes;
    const share = audienceShare(await this.#policyFor(about.device), devOp, who.operator);
    if (!mayHave(share, about.view)) return 'refused';
    await this.#ctx.privacy.recordDisclosure({
      audience: peer, operator: who.operator, deviceId: about.device, cid: cidText(m.cid), kind: about.view.kind,
      seq: about.seq, level: levelOf(about.view), purposes: share.purposes, via: 'serve',
    });
    return bytes;
  }

  // ---------------------------------------------------------------- privacy (gateway/privacy, sharing-consent-v1)

  /** Consents for this gateway's devices, aggregates of windows left unsigned by a restart, and policy changes from now on. */
  async #startPrivacy(): Promise<void> {
    const privacy = this.#ctx.privacy;
    this.#offPrivacy = privacy.onChange((ids) => void this.#policyChanged(ids).catch((e: Error) =>
      this.#ctx.log.error({ err: e.message }, 'mesh: sharing consent not signed')));
    await this.#policyChanged('all');
    const blocks = this.#ctx.store.blocks;
    for (const d of await this.#ctx.store.listDevices()) {
      const resolutions = d.state === 'paired' ? [...new Set(selectionsFor(await privacy.effectivePolicy(d.id)).map((s) => s.resolution))] : [];
      if (resolutions.length === 0) continue;
      // Walk back from the chain's heads through the messages no aggregate names yet, down to the newest
      // signed window (bounded: older unsigned windows stay raw).
      const named = new Set<string>();
      for (const b of await blocks.list('aggregate', d.id)) {
        const a = parseAggregate(decodeMessage(b.bytes).payload);
        if (typeof a !== 'string' && b.receivedAt >= this.#ctx.now() - 2 * RESIGN_HORIZON_S * 1000) for (const c of a.sources) named.add(toHex(c));
      }
      const cutoff = this.aggregator.newestSigned(d.id) ?? -1;
      const queue = await blocks.heads(d.id);
      const seen = new Set<string>();
      while (queue.length && seen.size < RECOVERY_WALK) {
        const cid = queue.shift()!;
        if (seen.has(toHex(cid)) || named.has(toHex(cid))) continue;
        seen.add(toHex(cid));
        const bytes = await blocks.get(cid);
        if (!bytes) continue;
        const m = decodeMessage(bytes);
        const r = parseReadings(m.payload);
        if (typeof r === 'string') continue;
        if (equal(m.kid, this.signer.publicKey)) this.aggregator.noteReadings(d.id, m.cid, r.records, resolutions);
        if (r.records.every((x) => x[1] < cutoff)) continue;
        queue.push(...r.prev);
      }
    }
  }

  async #tick(): Promise<void> {
    const full = performance.now() - this.#lastFull >= (this.#o.antiEntropyMs ?? 12 * this.#syncMs);
    await this.announceSummary(full ? 'full' : 'delta').catch((e: Error) => this.#ctx.log.error({ err: e.message, stack: e.stack }, 'mesh: summary not announced'));
    await this.aggregator.tick().catch((e: Error) => this.#ctx.log.error({ err: e.message, stack: e.stack }, 'mesh: aggregates not signed'));
  }

  /** A device's policy changed here: a new consent message, signed and announced to everyone. */
  async #policyChanged(ids: string[] | 'all'): Promise<void> {
    this.#ledger.changed(ids);
    const list = ids === 'all' ? (await this.#ctx.store.listDevices()).filter((d) => d.state === 'paired').map((d) => d.id) : ids;
    await Promise.all(list.map((id) => this.#serial(id, () => this.#checkConsent(id))));
  }

  async #checkConsent(deviceId: string): Promise<void> {
    if (!(await this.#isLocal(deviceId))) return;
    const st = this.crdt.state(deviceId);
    if (st && !equal(st.pairingKid, this.signer.publicKey)) return;
    const policy = await this.#ctx.privacy.effectivePolicy(deviceId);
    const held = this.consents.get(deviceId);
    if (held ? samePolicy(held.policy, policy) : samePolicy(policy, DEFAULT_POLICY)) return;
    const m = this.#sign('consent', consentPayload({ device: deviceId, gateway: this.gatewayId, ...consentOf(policy), hlc: this.clock.now() }));
    const r = await this.#apply(m, 'consent', {});
    if (r !== 'accepted') return void this.#ctx.log.warn({ device: deviceId, result: r }, 'mesh: own sharing consent not kept');
    await this.#announce([m.bytes], PUBLIC_TOPIC);
  }

  /** Loads a kept consent message (it was checked when it was kept). */
  #addConsent(m: GridMessage): void {
    const c = parseConsent(m.payload);
    if (typeof c === 'string') return;
    try {
      this.consents.add(c.device, { cid: m.cid, hlc: c.hlc, gateway: c.gateway, policy: policyOf(c) });
      this.clock.observe(c.hlc);
    } catch {
      // a policy this version cannot read: ignored
    }
  }

  /** A consent changed what this gateway may keep of another operator's device: what it may not keep goes. */
  async #afterConsent(deviceId: string): Promise<void> {
    const devOp = this.#deviceOperator(deviceId);
    if (devOp === this.operator) return;
    const share = audienceShare(this.consents.policy(deviceId), devOp, this.operator);
    const blocks = this.#ctx.store.blocks;
    const drop: Uint8Array[] = [];
    if (!mayHave(share, { kind: 'readings' })) for (const b of await blocks.list('readings', deviceId)) drop.push(b.cid);
    for (const b of await blocks.list('aggregate', deviceId)) {
      const a = parseAggregate(decodeMessage(b.bytes).payload);
      if (typeof a === 'string' || mayHave(share, { kind: 'aggregate', resolution: a.resolution, channels: a.channels })) continue;
      drop.push(b.cid);
      this.aggregator.chains.forget(deviceId, a);
    }
    if (drop.length === 0) return;
    const n = await blocks.delete(drop);
    this.#ctx.log.info({ device: deviceId, deleted: n, level: share.level }, 'mesh: sharing consent withdrawn; blocks this gateway may no longer keep deleted');
    this.#ctx.events.emit('consent-deleted', { deviceId, deleted: n });
  }

  /** Is the device paired on this gateway (its policy is the privacy service's, not a consent message's)? */
  async #isLocal(deviceId: string): Promise<boolean> {
    return (await this.#ctx.store.getDevice(deviceId))?.state === 'paired';
  }

  /** The policy that bounds what of a device goes where: this gateway's own for its devices, else the latest consent. */
  async #policyFor(deviceId: string): Promise<PrivacyPolicy> {
    return (await this.#isLocal(deviceId)) ? this.#ctx.privacy.effectivePolicy(deviceId) : this.consents.policy(deviceId);
  }

  /** The device's operator: its current pairing's gateway's (else the signer's of a message about it, else this one's). */
  #deviceOperator(deviceId: string, signer?: Uint8Array): string {
    const st = this.crdt.state(deviceId);
    return (st && this.crdt.identity(st.pairingKid)?.operator) ?? (signer && this.crdt.identity(signer)?.operator) ?? this.operator;
  }

  /** Other operators this gateway knows gateways of. */
  #operators(): string[] {
    return [...new Set([...this.crdt.identities.values()].map((s) => s.entry.operator))].filter((o) => o !== this.operator);
  }

  async #mayKeep(deviceId: string, signer: Uint8Array, view: BlockView): Promise<boolean> {
    const devOp = this.#deviceOperator(deviceId, signer);
    if (devOp === this.operator) return true;
    return mayHave(audienceShare(await this.#policyFor(deviceId), devOp, this.operator), view);
  }

  /** Announces one of this gateway's messages about its device to its operator and to every operator the policy lets have it. */
  /** Announces messages to this operator and to every other operator the device's policy lets have them. */
  async #disclose(deviceId: string, ms: GridMessage[], view: BlockView, seqs?: [number, number][], known?: PrivacyPolicy): Promise<void> {
    const bytes = ms.map((m) => m.bytes);
    await this.#announce(bytes, operatorTopic(this.operator));
    const others = this.#operators();
    if (others.length === 0) return;
    const policy = known ?? (await this.#ctx.privacy.effectivePolicy(deviceId));
    const out: Disclosure[] = [];
    for (const op of others) {
      const share = audienceShare(policy, this.operator, op);
      if (!mayHave(share, view)) continue;
      await this.#announce(bytes, operatorTopic(op));
      for (const [i, m] of ms.entries()) {
        out.push({
          audience: operatorTopic(op), operator: op, deviceId, cid: cidText(m.cid), kind: view.kind, seq: seqs?.[i], level: levelOf(view),
          purposes: share.purposes, via: 'announce',
        });
      }
    }
    if (out.length) await this.#ctx.privacy.recordDisclosure(out);
  }


  async #publishAggregate(a: Aggregate): Promise<GridMessage> {
    const m = this.#sign('aggregates', aggregatePayload({ ...a, gateway: this.gatewayId }));
    await this.#ctx.store.blocks.put({ cid: m.cid, bytes: m.bytes, kind: 'aggregate', deviceId: a.device, receivedAt: this.#ctx.now() });
    this.#ctx.events.emit('mesh-message', { protocol: 'aggregates', deviceId: a.device, cid: cidText(m.cid) });
    await this.#disclose(a.device, [m], { kind: 'aggregate', resolution: a.resolution, channels: a.channels });
    return m;
  }

  /** The device's policy as the mesh knows it (its latest consent), and that consent's CID. */
  consentOf(deviceId: string): { policy: PrivacyPolicy; cid?: string } {
    const c = this.consents.get(deviceId);
    return { policy: this.consents.policy(deviceId), cid: c && cidText(c.cid) };
  }

  // ---------------------------------------------------------------- views

  deviceState(id: string): MeshDeviceState | undefined {
    return this.crdt.state(id);
  }

  devices(): MeshDeviceState[] {
    return this.crdt.devices().map((id) => this.crdt.state(id)).filter((s): s is MeshDeviceState => s !== undefined);
  }

  /** The device's heads; `cid` is the one covering the highest seq (then the greatest CID). */
  async heads(deviceId: string): Promise<{ cid: Uint8Array; heads: Uint8Array[] } | undefined> {
    const heads = await this.#ctx.store.blocks.heads(deviceId);
    if (heads.length === 0) return undefined;
    let best = heads[0];
    let bestLast = -1;
    for (const h of heads) {
      const bytes = await this.#ctx.store.blocks.get(h);
      const r = bytes ? parseReadings(decodeMessage(bytes).payload) : 'missing';
      const last = typeof r === 'string' ? -1 : r.last;
      if (last > bestLast || (last === bestLast && compareCid(h, best) > 0)) {
        best = h;
        bestLast = last;
      }
    }
    return { cid: best, heads };
  }

  /** The heads of the device's aggregate chains this gateway holds (text CIDs), one per (resolution, channels). */
  aggregateHeads(deviceId: string): string[] {
    return this.aggregator.chains.heads().filter((h) => h.device === deviceId).map((h) => cidText(fromHex(h.cid))).sort();
  }

  /** Every device's heads as text CIDs. */
  async allHeads(): Promise<{ [deviceId: string]: string[] }> {
    const out: { [deviceId: string]: string[] } = {};
    for (const h of await this.#ctx.store.blocks.allHeads()) (out[h.deviceId] ??= []).push(cidText(h.cid));
    return out;
  }

  async isolate(): Promise<void> {
    await this.node?.isolate();
  }

  rejoin(): void {
    this.node?.rejoin();
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#timer);
    clearTimeout(this.#fullSoon);
    this.#wanted.clear();
    for (const [e, h] of this.#listeners) this.#ctx.events.off(e, h);
    this.#offPrivacy?.();
    await this.settled().catch(() => {});
    await this.node?.close();
  }
}

/** What a readings or aggregates message is about, for sharing decisions; undefined for other protocols. */
function viewOf(m: GridMessage): { device: string; view: BlockView; seq?: [number, number] } | undefined {
  const protocol = protocolOf(m.pcid);
  if (protocol === 'readings') {
    const r = parseReadings(m.payload);
    return typeof r === 'string' ? undefined : { device: r.device, view: { kind: 'readings' }, seq: [r.first, r.last] };
  }
  if (protocol === 'aggregates') {
    const a = parseAggregate(m.payload);
    return typeof a === 'string' ? undefined : { device: a.device, view: { kind: 'aggregate', resolution: a.resolution, channels: a.channels } };
  }
  return undefined;
}

function levelOf(v: BlockView): 'full' | '15min' | 'daily' {
  return v.kind === 'readings' ? 'full' : v.resolution === 900 ? '15min' : 'daily';
}

function fromHex(hex: string): Uint8Array {
  return Uint8Array.from(Buffer.from(hex, 'hex'));
}

export function toMeshRecord(r: StoredRecord): MeshRecord {
  switch (r.kind) {
    case 1:
      return [r.seq, r.t, r.channel, r.value];
    case 2:
      return [r.seq, r.t, 'event', r.event, (r.data ?? {}) as { [k: string]: CborValue }];
    default:
      return [r.seq, r.t, 'gap', r.last, r.reason];
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
