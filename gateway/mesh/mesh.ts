// The gateway's part in the mesh (MESH.md): it signs a readings message for every accepted frame that
// added records (hash-chained per device through `prev`), pairing and revocation messages for its
// registry, and its own identity message, enrolled by its operator (gateway-identity-v2); it keeps them
// in the block store, sends them to the peers that may have them, serves them by CID, and verifies
// every message a peer sends before it keeps or acts on it. Only peers whose operator this gateway
// trusts are admitted (mesh-admission-v2); nothing goes to any other.
//
// Its parts, aedes-style: core.ts (what they share), handlers/ (one module per protocol behind the
// dispatch table handlers/index.ts), sync.ts (summaries, gossip, fetching), disclosure.ts (what of a
// meter goes to which gateway, by its sharing policy), node.ts (libp2p) and offload.ts (jobs for peers).

import { Gauge } from 'prom-client';
import { TokenBuckets } from '../rate.js';
import { BackendError } from '../offload/backend.js';
import { equal, toHex } from '../../firmware/core/bytes.js';
import type { CborValue } from '../../firmware/core/cbor.js';
import type { RecordsEvent } from '../events.js';
import { toMeshRecord } from '../records.js';
import type { BlockStore, StoredRecord } from '../store/store.js';
import type { GatewayContext } from '../context.js';
import type { OffloadBackend } from '../offload/backend.js';
import type { PrivacyPolicy } from '../privacy/policy.js';
import { selectionsFor, type Selection } from '../privacy/consent.js';
import { cidOf, cidText, compareCid } from './cid.js';
import { MeshCore, type From, type Received } from './core.js';
import type { MeshDeviceState } from './device-registry.js';
import { Disclosure } from './disclosure.js';
import { protocolHandlers, PUBLIC_PROTOCOLS } from './handlers/index.js';
import type { MeshHooks } from './handlers/handler.js';
import { decodeMessage, MessageError, openMessage, type GridMessage } from './message.js';
import type { Admission, MeshNode } from './node.js';
import { enrol, provePossession, type Enrollment, type TrustedOperator } from './operator.js';
import type { Signer } from './message.js';
import { PeerBackend, type ServeOffload } from './offload.js';
import { protocolOf, protocols, type ProtocolName } from './pcid.js';
import { identityV2Payload, parseAggregate, parseIdentityV2, parseReadings, parseTombstone, peerIdOf, readingsPayload, recordLast, registryPayload, type MeshRecord } from './protocols.js';
import { Sync } from './sync.js';

export { decodeGossip, encodeGossip, MAX_CLOCK_AHEAD_MS, type Received } from './core.js';
export type { SummaryEvent, SummarySent } from './sync.js';

const MAX_PENDING = 1000;
const RECOVERY_BATCH = 500;

/** The aggregate resolutions a policy asks for, once per policy object (the default and group ones are shared). */
const resolutionsByPolicy = new WeakMap<PrivacyPolicy, readonly Selection['resolution'][]>();
function resolutionsOf(policy: PrivacyPolicy): readonly Selection['resolution'][] {
  let r = resolutionsByPolicy.get(policy);
  if (!r) resolutionsByPolicy.set(policy, (r = [...new Set(selectionsFor(policy).map((s) => s.resolution))]));
  return r;
}

/** Jobs an admitted peer of this gateway's operator may run here (/gridlet/offload/1). */
export interface PeerQuota {
  /** At once. */
  concurrent: number;
  /** A bucket of `burst` jobs, one more every `intervalMs`. */
  burst: number;
  intervalMs: number;
}

export const DEFAULT_PEER_QUOTA: PeerQuota = { concurrent: 2, burst: 10, intervalMs: 2000 };

/** Who this gateway is on the mesh and whom it admits (MESH.md "Trust, version 2"). */
export interface MeshTrust {
  /** Its operator; with `signer` the gateway enrols itself (--operator-key, or an operator of its own). */
  operator: { id: string; name: string; publicKey: Uint8Array; signer?: Signer };
  /** An enrollment the operator signed offline (--operator-cert). */
  certificate?: Enrollment;
  /** Other operators whose gateways it admits (--trust-operator). */
  trusted: TrustedOperator[];
}

export interface MeshOptions {
  ctx: GatewayContext;
  trust: MeshTrust;
  /** libp2p listen multiaddr, e.g. /ip4/127.0.0.1/tcp/0. */
  listen?: string;
  /** Peers' multiaddrs (with /p2p/<peer id>), dialled and redialled. */
  peers?: string[];
  /** How often heads and registry summaries are announced (default 5 s): each names only what changed since the last. */
  syncIntervalMs?: number;
  /**
   * How often a full summary goes out besides the one for a newly admitted peer (default 12 sync
   * intervals, 60 s): it repairs a lost gossip message and heals what a partition left apart.
   */
  antiEntropyMs?: number;
  /** A summary larger than this many bytes (encoded) goes out as several gossip messages (default 256 KiB). */
  summaryMaxBytes?: number;
  /** The job kinds this gateway runs for others (offload.capabilities()), announced with each summary. */
  capabilities?: () => string[];
  /** Runs a peer's job on this gateway's backend (/gridlet/offload/1). */
  serveOffload?: ServeOffload;
  /** How many jobs each peer may run here (default DEFAULT_PEER_QUOTA). */
  peerQuota?: Partial<PeerQuota>;
  /** How long a peer has to be admitted after connecting (tests shorten it). */
  admissionTimeoutMs?: number;
  /** Revokes the device on this gateway (store, unpair) when the registry says it is revoked. */
  onRevoke?: (deviceId: string) => Promise<void>;
  /** Worker threads that sign readings messages under load (default DEFAULT_SIGN_THREADS; 0: none). */
  signThreads?: number;
}

export class Mesh {
  readonly #core: MeshCore;
  readonly #sync: Sync;
  readonly #disclosure: Disclosure;
  readonly #hooks: MeshHooks;
  identityCid!: Uint8Array;
  #ownIdentity?: Uint8Array;

  readonly #ctx: GatewayContext;
  readonly #o: MeshOptions;
  readonly #queues = new Map<string, Promise<void>>();
  /** Messages whose signer no identity binds yet, by kid, then CID (bounded). */
  readonly #pending = new Map<string, Map<string, { bytes: Uint8Array; peer?: string }>>();
  #pendingCount = 0;
  /** Messages about devices of which no pairing is known yet, by device, then CID (bounded). */
  readonly #awaiting = new Map<string, Map<string, { bytes: Uint8Array; from: From }>>();
  #awaitingCount = 0;
  #timer?: NodeJS.Timeout;
  readonly #peerBackends = new Map<string, PeerBackend>();
  readonly #unlisten: (() => void)[] = [];
  /** Peer ids whose identity named an operator this gateway does not trust (refused at connection time; bounded). */
  readonly #untrusted = new Map<string, string>();
  readonly #quota: PeerQuota;
  readonly #jobs: TokenBuckets;
  readonly #running = new Map<string, number>();
  /** Devices whose pairing conflict was reported (logged once). */
  readonly #conflicted = new Set<string>();

  private constructor(o: MeshOptions) {
    this.#o = o;
    this.#ctx = o.ctx;
    this.#core = new MeshCore({
      ctx: o.ctx, operator: o.trust.operator, trusted: o.trust.trusted, syncIntervalMs: o.syncIntervalMs, signThreads: o.signThreads,
      publishAggregate: (a) => this.#disclosure.publishAggregate(a),
    });
    this.#quota = { ...DEFAULT_PEER_QUOTA, ...o.peerQuota };
    this.#jobs = new TokenBuckets(this.#quota.burst, this.#quota.intervalMs, () => performance.now());
    const apply = (m: GridMessage, protocol: ProtocolName) => this.#apply(m, protocol, {});
    this.#disclosure = new Disclosure(this.#core, { serial: (id, f) => this.#serial(id, f), apply });
    this.#sync = new Sync(this.#core, o, {
      receive: (bytes, from) => this.receive(bytes, from), apply, identityCid: () => this.identityCid, disclosure: this.#disclosure,
    });
    this.#hooks = {
      fetchAncestor: (cid, peer) => void this.#sync.fetchBlock(cid, peer, true),
      registryChanged: (id) => this.#afterRegistryChange(id),
      consentChanged: (id) => this.#disclosure.consentChanged(id),
      awaitPairing: (id, m, from) => this.#awaitPairing(id, m, from),
    };
    const self = this;
    new Gauge({
      name: 'gridlet_mesh_peers', help: 'Mesh peers connected.', registers: [o.ctx.metrics.registry],
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
      const serve = o.serveOffload;
      mesh.#core.node = await MeshNode.start({
        seed: o.ctx.identity.sign.secretKey.subarray(0, 32),
        listen: o.listen,
        peers: o.peers ?? [],
        log: o.ctx.log,
        admissionTimeoutMs: o.admissionTimeoutMs,
        identity: () => mesh.#ownIdentity!,
        admit: (peer, bytes) => mesh.#admit(peer, bytes),
        refuseEarly: (peer) => mesh.#untrusted.get(peer),
        onRefused: (reason) => mesh.#core.refuse(reason),
        onAdmitted: (peer) => mesh.#sync.peerAdmitted(peer),
        onGone: () => {},
        onGossip: (data, from) => void mesh.#sync.onGossip(data, from),
        serveBlock: (cid, peer) => mesh.#serve(cid, peer),
        serveOffload: serve ? (peer, req, signal, onText) => mesh.#serveJob(serve, peer, req, signal, onText) : undefined,
      });
      mesh.#timer = setInterval(() => void mesh.#tick(), mesh.#sync.syncMs);
      mesh.#timer.unref();
    }
    await mesh.#recover();
    await mesh.#disclosure.start();
    return mesh;
  }

  get crdt() {
    return this.#core.crdt;
  }

  get signer() {
    return this.#core.signer;
  }

  get clock() {
    return this.#core.clock;
  }

  /** This gateway's operator id, and its name. */
  get operator(): string {
    return this.#core.operator;
  }

  get operatorName(): string {
    return this.#core.operatorName;
  }

  /** The enrolled identities of the gateways this one trusts (identities.ts). */
  get identities() {
    return this.#core.ids;
  }

  /** Trusted operators: this gateway's own first, with the names it knows them by. */
  trustedOperators(): { id: string; name: string | null; own: boolean }[] {
    const ids = this.#core.ids;
    return [ids.own, ...ids.others()].map((id) => ({ id, name: ids.nameOf(id) ?? null, own: id === ids.own }));
  }

  get peerId(): string {
    return this.#core.peerId;
  }

  get node(): MeshNode | undefined {
    return this.#core.node;
  }

  get counts() {
    return this.#core.counts;
  }

  get consents() {
    return this.#core.consents;
  }

  get aggregator() {
    return this.#core.aggregator;
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
    // Identities first: registry messages are judged by who signed them (those of an operator this
    // gateway no longer trusts, and those of version 1, bind nothing).
    for (const b of await blocks.list('identity')) {
      const m = decodeMessage(b.bytes);
      await this.#apply(m, protocolOf(m.pcid), {});
    }
    for (const b of await blocks.list('registry')) {
      const m = decodeMessage(b.bytes);
      await this.#apply(m, protocolOf(m.pcid), {});
    }
    for (const b of await blocks.list('consent')) this.#disclosure.addConsent(decodeMessage(b.bytes));
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
    const trust = this.#o.trust;
    const had = this.#core.ids.signed(this.signer.publicKey);
    const same = (e: { operator: Uint8Array; name: string; gateway: string }) =>
      equal(e.operator, trust.operator.publicKey) && e.name === trust.operator.name && e.gateway === identity.id;
    let enrollment: Enrollment;
    if (trust.certificate) enrollment = trust.certificate;
    else if (had && same(had.entry)) enrollment = { ...had.entry, signature: had.entry.enrollment };
    else {
      if (!trust.operator.signer) throw new Error('the gateway needs its operator\'s key (--operator-key) or an enrollment certificate (--operator-cert)');
      enrollment = enrol({ ...trust.operator, signer: trust.operator.signer }, {
        gateway: identity.id, x25519: identity.box.publicKey, ed25519: identity.sign.publicKey, peer: peerIdOf(identity.sign.publicKey),
      }, this.#ctx.now());
    }
    if (had && same(had.entry) && had.entry.enrolled === enrollment.enrolled) this.identityCid = had.cid;
    else {
      await this.#newIdentity(enrollment);
      // What this gateway signed before its key was enrolled (a store from before trust v2, or another
      // operator's): its registry messages count now.
      for (const b of await this.#ctx.store.blocks.list('registry')) {
        const m = decodeMessage(b.bytes);
        if (equal(m.kid, this.signer.publicKey)) await this.#apply(m, protocolOf(m.pcid), {});
      }
    }
    this.#ownIdentity = (await this.#ctx.store.blocks.get(this.identityCid))!;
    // Devices paired before this gateway had a mesh get their pairing message now.
    for (const d of await this.#ctx.store.listDevices()) {
      if (this.crdt.pairingsBy(d.id, this.signer.publicKey).length === 0) {
        await this.#pairingMessage(d.id);
        if (d.state === 'revoked') await this.#revoke(d.id);
      }
    }
  }

  async #newIdentity(e: Enrollment): Promise<void> {
    const { identity } = this.#ctx;
    const m = this.#core.sign('identity2', identityV2Payload({
      gateway: identity.id, x25519: identity.box.publicKey, ed25519: identity.sign.publicKey, peer: peerIdOf(identity.sign.publicKey),
      t: this.#ctx.now(), operator: e.operator, name: e.name, enrolled: e.enrolled, enrollment: e.signature,
      possession: provePossession(identity, e.operator, e.enrolled),
    }));
    const r = await this.#apply(m, 'identity2', {});
    if (r !== 'accepted') throw new Error(`this gateway's own identity does not hold (${r}); check its enrollment`);
    this.identityCid = m.cid;
  }

  /** Judges a connecting peer's identity message: admitted when it holds and its operator is trusted. */
  async #admit(peer: string, bytes: Uint8Array): Promise<Admission> {
    let m: GridMessage;
    try {
      m = openMessage(bytes);
    } catch (e) {
      return { ok: false, reason: 'identity', message: `its identity message does not verify: ${(e as Error).message}` };
    }
    const protocol = protocolOf(m.pcid);
    if (protocol !== 'identity2') {
      return { ok: false, reason: 'unenrolled', message: 'it presented no enrolled gateway identity (gateway-identity-v2): its operator must enrol it' };
    }
    const i = parseIdentityV2(m.payload, m.kid);
    if (typeof i === 'string') return { ok: false, reason: 'identity', message: `its identity message is malformed: ${i}` };
    if (i.peer !== peer) return { ok: false, reason: 'identity', message: `its identity is that of peer ${i.peer}, not of the peer that connected` };
    const r = await this.receive(bytes, {});
    if ((r === 'accepted' || r === 'duplicate') && this.#core.ids.identity(m.kid)?.peer === peer) {
      // A key its operator has replaced (a rotated gateway key) is admitted no more.
      if (this.#core.ids.supersededAt(m.kid) !== undefined) {
        return { ok: false, reason: 'superseded', message: `gateway ${i.gateway} has been enrolled with another key since; this key is no longer its own` };
      }
      return { ok: true };
    }
    if (r === 'operator') {
      if (this.#untrusted.size >= 10_000) this.#untrusted.delete(this.#untrusted.keys().next().value!);
      this.#untrusted.set(peer, 'operator');
      return { ok: false, reason: 'operator', message: `gateway ${i.gateway} is enrolled by operator ${i.operatorId} ("${i.name}"), which this gateway does not trust (--trust-operator ${i.operatorId})` };
    }
    if (r === 'duplicate') return { ok: false, reason: 'operator', message: `operator ${i.operatorId} is not trusted by this gateway` };
    const why: { [k: string]: string } = {
      enrollment: 'its operator\'s signature over its enrollment does not verify',
      squat: 'it does not prove it holds the X25519 key of the gateway id it claims',
      future: 'its identity is stamped in the future',
    };
    return { ok: false, reason: r === 'enrollment' || r === 'squat' ? r : 'identity', message: why[r] ?? `its identity was refused (${r})` };
  }

  /** A job of an admitted peer: only a gateway of this one's operator, within its quota. */
  async #serveJob(serve: ServeOffload, peer: string, req: Parameters<ServeOffload>[1], signal: AbortSignal, onText: (t: string) => void): Promise<void> {
    if (this.#core.peerOperator(peer) !== this.operator) {
      this.#core.refuse('operator');
      throw new BackendError('this gateway runs jobs for gateways of its own operator only');
    }
    const running = this.#running.get(peer) ?? 0;
    if (running >= this.#quota.concurrent || !this.#jobs.take(peer)) {
      this.#core.refuse('quota');
      throw new BackendError(`quota: a peer may run ${this.#quota.concurrent} job(s) at once here and ${this.#quota.burst} in a burst; ask again later`);
    }
    this.#running.set(peer, running + 1);
    try {
      await serve(peer, req, signal, onText);
    } finally {
      const left = (this.#running.get(peer) ?? 1) - 1;
      if (left > 0) this.#running.set(peer, left);
      else this.#running.delete(peer);
    }
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
    const records = (e: RecordsEvent): void => void this.#serial(e.deviceId, () => this.#onRecords(e.deviceId, e.frames))
      .catch((err: Error) => this.#ctx.log.error({ err: err.message, stack: err.stack }, 'mesh: records failed'));
    this.#ctx.events.on('records', records);
    this.#unlisten.push(() => this.#ctx.events.off('records', records));
  }

  async #tick(): Promise<void> {
    await this.#sync.tick();
    await this.aggregator.tick().catch((e: Error) => this.#ctx.log.error({ err: e.message, stack: e.stack }, 'mesh: aggregates not signed'));
  }

  /** A device was paired here: its pairing message is signed, kept and announced before this resolves. */
  paired(deviceId: string): Promise<void> {
    return this.#serial(deviceId, async () => {
      await this.#pairingMessage(deviceId);
      // A group policy may already share more than the default: the mesh learns it with the pairing.
      await this.#disclosure.checkConsent(deviceId);
    });
  }

  /** Runs per-device work one at a time, in arrival order. */
  #serial(deviceId: string, f: () => Promise<void>): Promise<void> {
    // The tail never rejects (the caller has `next` for the outcome) and leaves the map when it is the last.
    const prev = this.#queues.get(deviceId);
    const next = prev ? prev.then(f) : Promise.resolve().then(f);
    const done = () => {
      if (this.#queues.get(deviceId) === tail) this.#queues.delete(deviceId);
    };
    const tail: Promise<void> = next.then(done, done);
    this.#queues.set(deviceId, tail);
    return next;
  }

  /** Resolves when every queued local message is signed and kept (tests, shutdown). */
  async settled(): Promise<void> {
    while (this.#queues.size) await Promise.all([...this.#queues.values()]);
  }

  // ---------------------------------------------------------------- local messages

  /** One readings message per frame (MESH.md), the frames that waited together kept in one transaction. */
  async #onRecords(deviceId: string, frames: MeshRecord[][]): Promise<void> {
    const out = frames.filter((records) => records.length);
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
        signed.push(await this.#core.signAsync('readings', readingsPayload({ device: deviceId, gateway: this.gatewayId, records, prev })));
      }
      const now = this.#ctx.now();
      const ok = await blocks.appendChain({
        deviceId, prev: heads, expectHeads: heads, covers: covers[0],
        block: { cid: signed[0].cid, bytes: signed[0].bytes, kind: 'readings', deviceId, receivedAt: now },
        next: signed.slice(1).map((m, i) => ({ block: { cid: m.cid, bytes: m.bytes, kind: 'readings', deviceId, receivedAt: now }, covers: covers[i + 1] })),
      });
      if (!ok) continue;
      if (this.#ctx.events.listens('mesh-message')) {
        for (const m of signed) this.#ctx.events.emit('mesh-message', { protocol: 'readings', deviceId, cid: cidText(m.cid) });
      }
      const policy = await this.#ctx.privacy.effectivePolicy(deviceId);
      const resolutions = resolutionsOf(policy);
      if (resolutions.length) signed.forEach((m, i) => this.aggregator.noteReadings(deviceId, m.cid, messages[i], resolutions));
      const seqs = covers.map((c): [number, number] => [c[0][0], Math.max(...c.map((x) => x[1]))]);
      await this.#disclosure.disclose(deviceId, signed, { kind: 'readings' }, seqs, policy);
      return;
    }
    throw new Error(`device ${deviceId}: its chain head kept moving; readings message not written (recovered at restart)`);
  }

  async #pairingMessage(deviceId: string): Promise<void> {
    const d = await this.#ctx.store.getDevice(deviceId);
    if (!d) return;
    const m = this.#core.sign('registry2', registryPayload({
      op: 'pair', device: d.id, key: d.publicKey, gateway: this.gatewayId, model: d.model, firmware: d.firmware, hlc: this.clock.now(),
    }));
    await this.#apply(m, 'registry2', {});
    this.#core.broadcast([m.bytes]);
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
    const m = this.#core.sign('registry2', registryPayload({ op: 'revoke', device: deviceId, pairing: target, gateway: this.gatewayId, hlc: this.clock.now() }));
    await this.#apply(m, 'registry2', {});
    this.#core.broadcast([m.bytes]);
    return 'revoked';
  }

  // ---------------------------------------------------------------- receiving

  /**
   * Verifies a message from a peer and keeps or acts on it only if it holds: envelope, determinism,
   * CID (when fetched by CID), signature, a signer bound by an identity message, the payload's shape.
   */
  async receive(bytes: Uint8Array, from: From & { expect?: Uint8Array } = {}): Promise<Received> {
    if (from.expect && !equal(cidOf(bytes), from.expect)) return this.#core.count('cid');
    const r = await this.#receive(bytes, from);
    if (!['accepted', 'duplicate', 'opaque', 'untrusted', 'private', 'conflict', 'unauthorized', 'pending'].includes(r)) this.#sync.refuse(cidOf(bytes));
    return this.#core.count(r);
  }

  async #receive(bytes: Uint8Array, from: From): Promise<Received> {
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
    if (await this.#core.removed(m.cid, m.kid)) return 'removed';
    const protocol = protocolOf(m.pcid);
    if (protocol !== 'identity' && protocol !== 'identity2' && !this.#core.ids.identity(m.kid)) {
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
    // What every admitted peer may hold goes on to the others (a revocation reaches gateways this one's
    // peers are not connected to); what was fetched by CID, the peers that named it have.
    if ((r === 'accepted' || r === 'conflict') && protocol && PUBLIC_PROTOCOLS.has(protocol) && from.peer && !(from as { expect?: Uint8Array }).expect) {
      this.#core.broadcast([bytes], from.peer);
    }
    if (r === 'accepted' && protocol === 'identity2') {
      const waiting = this.#pending.get(toHex(m.kid));
      this.#pending.delete(toHex(m.kid));
      this.#pendingCount -= waiting?.size ?? 0;
      for (const w of waiting?.values() ?? []) await this.receive(w.bytes, { peer: w.peer });
    }
    return r;
  }

  /** Dispatches a verified message to its protocol's handler; a protocol without one is kept opaque. */
  async #apply(m: GridMessage, protocol: ProtocolName | undefined, from: From): Promise<Received> {
    const handler = protocol && protocolHandlers[protocol];
    if (!handler) {
      // A protocol this gateway does not know: kept as opaque bytes, served, never interpreted.
      await this.#ctx.store.blocks.put({ cid: m.cid, bytes: m.bytes, kind: 'opaque', deviceId: null, receivedAt: this.#ctx.now() });
      return 'opaque';
    }
    return handler.apply(this.#core, this.#hooks, m, from);
  }

  #awaitPairing(deviceId: string, m: GridMessage, from: From): Received {
    const waiting = this.#awaiting.get(deviceId) ?? new Map();
    if (this.#awaitingCount < MAX_PENDING && !waiting.has(toHex(m.cid))) {
      waiting.set(toHex(m.cid), { bytes: m.bytes, from });
      this.#awaitingCount++;
    }
    this.#awaiting.set(deviceId, waiting);
    return 'pending';
  }

  /** A pairing of the device is known now: what waited for it is judged. */
  async #releaseAwaiting(deviceId: string): Promise<void> {
    const waiting = this.#awaiting.get(deviceId);
    if (!waiting || !this.crdt.state(deviceId)) return;
    this.#awaiting.delete(deviceId);
    this.#awaitingCount -= waiting.size;
    for (const w of waiting.values()) await this.receive(w.bytes, w.from);
  }

  /**
   * A device whose current pairing its own operator revoked, or moved to another gateway of the same
   * operator, is refused here from now on. A pairing by another operator's gateway never unpairs it: the
   * conflict is recorded (the registry keeps both) and shown to both operators.
   */
  async #afterRegistryChange(deviceId: string): Promise<void> {
    const st = this.crdt.state(deviceId);
    if (!st) return;
    if (this.#awaiting.has(deviceId)) void this.#releaseAwaiting(deviceId).catch((e: Error) => this.#ctx.log.warn({ err: e.message }, 'mesh: held messages not judged'));
    const local = await this.#ctx.store.getDevice(deviceId);
    if (local?.state !== 'paired') return;
    if (st.state === 'paired' && st.gateway === this.gatewayId) {
      if (st.conflicts.length && !this.#conflicted.has(deviceId)) this.#reportConflict(deviceId, st);
      return;
    }
    if (st.operator !== this.operator) {
      // This gateway's pairing came while another operator's stood: it displaces nothing, and nothing is undone here.
      if (!this.#conflicted.has(deviceId)) this.#reportConflict(deviceId, st);
      return;
    }
    await this.#o.onRevoke?.(deviceId);
  }

  #reportConflict(deviceId: string, st: MeshDeviceState): void {
    this.#conflicted.add(deviceId);
    this.#ctx.log.warn({ device: deviceId, gateway: st.gateway, operator: st.operator, conflicts: st.conflicts.map((c) => `${c.gateway} (${c.operator})`) },
      'mesh: pairing conflict: gateways of two operators paired this device; the first pairing stands, nothing is unpaired (GET /api/devices/:id shows it)');
    this.#ctx.events.emit('pairing-conflict', { deviceId });
  }

  // ---------------------------------------------------------------- the network

  async #serve(cid: Uint8Array, peer: string): Promise<Uint8Array | undefined | 'refused'> {
    const bytes = (await this.#ctx.store.blocks.get(cid)) ?? (await this.#ctx.store.guests?.wasm(cidText(cid)));
    if (!bytes) return undefined;
    // A meter's data goes only to gateways its sharing policy lets have it (MESH.md "Operators and privacy").
    return this.#disclosure.serve(bytes, peer);
  }

  /** Signs a publication for every guest module in the store that has none yet (GUESTS.md, guest publication v1). */
  publishGuests(): Promise<void> {
    return this.#sync.publishGuests();
  }

  /** Announces what this gateway holds (sync.ts). */
  announceSummary(kind: 'full' | 'delta' = 'full') {
    return this.#sync.announceSummary(kind);
  }

  /** A block by CID: from the store, else from peers (the hinted one first); what is fetched is verified and kept. */
  fetchBlock(cid: Uint8Array, hint?: string, ancestor = false): Promise<Uint8Array | undefined> {
    return this.#sync.fetchBlock(cid, hint, ancestor);
  }

  /** What connected peers announced they run for others (peer id → kinds). */
  peerCapabilities(): { [peer: string]: string[] } {
    const connected = new Set(this.node?.connectedPeers() ?? []);
    const out: { [peer: string]: string[] } = {};
    for (const [p, c] of this.#sync.peerCaps) if (connected.has(p)) out[p] = [...c.capabilities];
    return out;
  }

  /** Sends messages every admitted peer may hold (a tombstone of retention.ts). */
  broadcast(bytes: Uint8Array[]): void {
    this.#core.broadcast(bytes);
  }

  /**
   * The offload router (Offload.setPeerRouter): an admitted peer of this gateway's operator that
   * announced `kind`. Undefined when none is connected.
   */
  offloadPeer(kind: string): OffloadBackend | undefined {
    if (!this.node || this.#core.closed) return undefined;
    const connected = new Set(this.node.connectedPeers());
    let best: { peer: string; gateway: string } | undefined;
    for (const [peer, c] of this.#sync.peerCaps) {
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

  // ---------------------------------------------------------------- privacy

  /** The name this gateway knows an operator (id) by. */
  nameOf(id: string): string | undefined {
    return this.#core.ids.nameOf(id);
  }

  /** What gridlet_mesh_refused_total counts, by reason. */
  get refused(): { [reason: string]: number } {
    return this.#core.counts.refused;
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
    return this.aggregator.chains.heads().filter((h) => h.device === deviceId).map((h) => cidText(Uint8Array.from(Buffer.from(h.cid, 'hex')))).sort();
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
    this.#core.closed = true;
    clearInterval(this.#timer);
    this.#sync.close();
    for (const off of this.#unlisten) off();
    this.#disclosure.stop();
    await this.settled().catch(() => {});
    await this.#core.signPool.close();
    await this.node?.close();
  }
}

