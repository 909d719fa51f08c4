// How gateways keep each other whole (MESH.md "Transport", mesh-admission-v2 "Gossip"): summaries of
// what a gateway holds — every sync interval what changed since the last, in full to a peer when it is
// admitted and to all every anti-entropy interval — gossip received from peers, and the fetching of what
// summaries named that this gateway lacks (a decentralized cache: ask neighbours on a miss, keep what
// was fetched). A summary's public part (identities, registry, consents, this gateway's identity and
// capabilities) goes to every admitted peer; chain heads go to each admitted peer only as far as each
// device's sharing policy lets its operator have them.

import { Counter } from 'prom-client';
import { equal, toHex } from '../../firmware/core/bytes.js';
import type { CborValue } from '../../firmware/core/cbor.js';
import type { BlockView } from '../privacy/consent.js';
import type { PrivacyPolicy } from '../privacy/policy.js';
import { cidOf, cidText, parseCidText } from './cid.js';
import { decodeGossip, encodeGossip, MAX_CLOCK_AHEAD_MS, type From, type Gossip, type MeshCore, type Received } from './core.js';
import type { Disclosure } from './disclosure.js';
import type { SummaryEvent } from '../events.js';
import type { GridMessage } from './message.js';
import { openCapabilities, signCapabilities } from './offload.js';
import { guestPayload } from './protocols.js';
import { partition, SUMMARY_MAX_BYTES, type SummaryHead } from './summary.js';

/**
 * CIDs summaries name are fetched this many at a time: a peer serves at most 32 block streams per
 * connection at once (libp2p's default), and one a summary names is asked for once per announcement.
 */
const FETCH_CONCURRENCY = 8;
/** At most this many named CIDs wait to be fetched; the next full summary names those left out again. */
const MAX_WANTED = 200_000;

/** What one summary published (announceSummary). */
export interface SummarySent {
  messages: number;
  bytes: number;
  /** CIDs named, in all parts. */
  cids: number;
}

/** The 'mesh-summary' event: one gossip message of a summary, and the peers it went to. */
export type { SummaryEvent };

export interface SyncOptions {
  syncIntervalMs?: number;
  antiEntropyMs?: number;
  summaryMaxBytes?: number;
  capabilities?: () => string[];
}

export interface SyncDeps {
  /** Verifies and keeps a message from a peer (mesh.ts receive). */
  receive(bytes: Uint8Array, from: From & { expect?: Uint8Array }): Promise<Received>;
  /** Judges and keeps one of this gateway's own messages (mesh.ts). */
  apply(m: GridMessage, protocol: 'guest'): Promise<Received>;
  /** This gateway's identity message (announced whole in every public summary). */
  identityCid(): Uint8Array;
  disclosure: Disclosure;
}

export class Sync {
  readonly #core: MeshCore;
  readonly #o: SyncOptions;
  readonly #d: SyncDeps;
  /** CIDs refused once (a revoked device's new history, bad payloads): not fetched again (bounded). */
  readonly refused = new Set<string>();
  readonly #fetching = new Map<string, Promise<Uint8Array | undefined>>();
  /** CIDs summaries named that this gateway lacks, in the order named, with the peer that named them. */
  readonly #wanted = new Map<string, { cid: Uint8Array; peer: string }>();
  #fetchers = 0;
  readonly #summaryBytes: Counter<'kind'>;
  readonly #summaryMessages: Counter<'kind'>;
  readonly #summaryCids: Counter<'kind'>;
  /** Summaries go out one at a time. */
  #summaries: Promise<unknown> = Promise.resolve();
  /** performance.now() of the last full summary. */
  #lastFull = -Infinity;
  /** What each peer (by peer id) announced it runs for others, from its latest trusted announcement. */
  readonly peerCaps = new Map<string, { capabilities: string[]; t: number; gateway: string; operator: string }>();

  constructor(core: MeshCore, o: SyncOptions, deps: SyncDeps) {
    this.#core = core;
    this.#o = o;
    this.#d = deps;
    const registers = [core.ctx.metrics.registry];
    const summaryHelp = 'full (a peer was admitted, or anti-entropy) or delta (what changed since the last)';
    this.#summaryMessages = new Counter({
      name: 'gridlet_mesh_summary_messages_total', registers, labelNames: ['kind'], help: `Summary gossip messages published, ${summaryHelp}.`,
    });
    this.#summaryBytes = new Counter({
      name: 'gridlet_mesh_summary_bytes_total', registers, labelNames: ['kind'], help: `Bytes of summary gossip published, ${summaryHelp}.`,
    });
    this.#summaryCids = new Counter({
      name: 'gridlet_mesh_summary_cids_total', registers, labelNames: ['kind'], help: `CIDs named in summary gossip, ${summaryHelp}.`,
    });
  }

  get syncMs(): number {
    return this.#o.syncIntervalMs ?? 5000;
  }

  /** One sync interval: a delta summary, or a full one when anti-entropy is due. */
  async tick(): Promise<void> {
    const full = performance.now() - this.#lastFull >= (this.#o.antiEntropyMs ?? 12 * this.syncMs);
    await this.announceSummary(full ? 'full' : 'delta').catch((e: Error) => this.#core.ctx.log.error({ err: e.message, stack: e.stack }, 'mesh: summary not announced'));
  }

  /** Signs a publication for every guest module in the store that has none yet (GUESTS.md, guest publication v1). */
  async publishGuests(): Promise<void> {
    const core = this.#core;
    const store = core.ctx.store;
    if (!store.guests) return;
    for (const g of await store.guests.list()) {
      const cid = parseCidText(g.cid);
      if (!cid || core.guestCids.has(toHex(cid))) continue;
      let m: GridMessage;
      try {
        m = core.sign('guest', guestPayload({ guest: cid, name: g.name, size: g.size, manifest: g.manifest as { [k: string]: CborValue }, gateway: core.gatewayId }));
      } catch (e) {
        core.ctx.log.warn({ guest: g.cid, err: (e as Error).message }, 'mesh: guest manifest cannot travel as CBOR; not published');
        core.guestCids.set(toHex(cid), g.size);
        continue;
      }
      await this.#d.apply(m, 'guest');
      core.broadcast([m.bytes]);
    }
  }

  /**
   * Announces what this gateway holds: identities, registry and consents to every admitted peer (with
   * our identity message and capabilities), chain heads to each peer as its operator may have them. A
   * full summary names everything; a delta only what the summaries before it did not (summary.ts).
   */
  announceSummary(kind: 'full' | 'delta' = 'full'): Promise<SummarySent> {
    const next = this.#summaries.then(() => this.#summarise(kind));
    this.#summaries = next.catch(() => {});
    return next;
  }

  /** A peer was admitted: a full summary for it alone, so that it learns everything it may have. */
  peerAdmitted(peer: string): void {
    const next = this.#summaries.then(() => this.#summarise('full', peer));
    this.#summaries = next.catch((e: Error) => this.#core.ctx.log.error({ err: e.message, stack: e.stack }, 'mesh: summary not announced'));
  }

  /** The public part of a summary: what every admitted peer may know. */
  async #publicPart(): Promise<Gossip> {
    const core = this.#core;
    // Our own identity travels whole in every summary: peers judge everything else we sign by it.
    const own = await core.ctx.store.blocks.get(this.#d.identityCid());
    const caps = signCapabilities({ capabilities: this.#o.capabilities?.() ?? [], gateway: core.gatewayId, peer: core.peerId, t: core.ctx.now() }, core.signer);
    return { blocks: own ? [own] : [], caps };
  }

  async #heads(): Promise<SummaryHead<BlockView>[]> {
    const core = this.#core;
    return [
      ...(await core.ctx.store.blocks.allHeads()).map((h) => ({ device: h.deviceId, cid: h.cid, key: toHex(h.cid), view: { kind: 'readings' } as BlockView })),
      ...core.aggregator.chains.heads().map((h) => ({ device: h.device, cid: fromHex(h.cid), key: h.cid, view: { kind: 'aggregate', ...h.selection } as BlockView })),
    ];
  }

  /** A summary to every admitted peer, or a full one to `only`. */
  async #summarise(kind: 'full' | 'delta', only?: string): Promise<SummarySent> {
    const core = this.#core;
    if (!only) await this.publishGuests().catch((e: Error) => core.ctx.log.warn({ err: e.message }, 'mesh: guest publication failed'));
    const sent: SummarySent = { messages: 0, bytes: 0, cids: 0 };
    if (!core.node || core.closed) return sent;
    const peers = only ? (core.node.isAdmitted(only) ? [only] : []) : core.node.admittedPeers();
    const full = kind === 'full';
    const rest = await this.#publicPart();
    const publicCids = [...core.ids.cids(), ...core.crdt.cids(), ...core.consents.cids()];
    const heads = await this.#heads();
    const policies = new Map<string, { policy: PrivacyPolicy; operator: string }>();
    if (only) {
      // Everything, for one peer: the ledger (what the others were told) is left as it is.
      await this.#send(peers, 'public', kind, rest, publicCids, sent);
      const op = core.peerOperator(only);
      if (op) {
        const have: Uint8Array[] = [];
        for (const h of heads) if (await this.#d.disclosure.mayAnnounce(op, h.device, h.view, policies)) have.push(h.cid);
        if (have.length) await this.#send(peers, op, kind, {}, have, sent);
      }
      return sent;
    }
    if (full) this.#lastFull = performance.now();
    core.ledger.begin();
    await this.#send(peers, 'public', kind, rest, core.ledger.publicHave(publicCids, full), sent);
    // Chain heads go to each operator's gateways, those of devices whose policy lets that operator have them only.
    for (const op of [core.operator, ...core.operators()]) {
      const have = await core.ledger.heads(op, heads, full, (h) => this.#d.disclosure.mayAnnounce(op, h.device, h.view, policies));
      const to = peers.filter((p) => core.peerOperator(p) === op);
      if (have.length && to.length) await this.#send(to, op, kind, {}, have, sent);
    }
    return sent;
  }

  /** Sends one audience's part of a summary to `peers`, in as many gossip messages as its size asks. */
  async #send(peers: string[], audience: string, kind: 'full' | 'delta', rest: Gossip, have: Uint8Array[], sent: SummarySent): Promise<void> {
    const core = this.#core;
    if (peers.length === 0) return;
    const parts = partition(have, encodeGossip({ ...rest, have: [] }).length, this.#o.summaryMaxBytes ?? SUMMARY_MAX_BYTES);
    for (const [part, cids] of parts.entries()) {
      const data = encodeGossip({ ...rest, have: cids });
      for (const p of peers) core.node!.send(p, data);
      sent.messages++;
      sent.bytes += data.length;
      sent.cids += cids.length;
      this.#summaryMessages.inc({ kind });
      this.#summaryBytes.inc({ kind }, data.length);
      this.#summaryCids.inc({ kind }, cids.length);
      core.ctx.events.emit('mesh-summary', { audience, peers, kind, part, parts: parts.length, have: cids, bytes: data.length } satisfies SummaryEvent);
    }
  }

  async onGossip(data: Uint8Array, from: string): Promise<void> {
    let g: Gossip;
    try {
      g = decodeGossip(data);
    } catch {
      return void this.#core.count('malformed');
    }
    for (const b of g.blocks ?? []) await this.#d.receive(b, { peer: from });
    if (g.caps) this.#onCapabilities(g.caps);
    for (const cid of g.have ?? []) {
      if (!(await this.#core.ctx.store.blocks.has(cid))) this.#want(cid, from);
    }
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
      for (let next = this.#wanted.entries().next(); !next.done && !this.#core.closed; next = this.#wanted.entries().next()) {
        const [key, { cid, peer }] = next.value;
        this.#wanted.delete(key);
        // A head is new history: refused for a revoked device (only ancestors of held messages are not).
        await this.fetchBlock(cid, peer, false).catch((e: Error) => this.#core.ctx.log.debug({ cid: cidText(cid), err: e.message }, 'mesh fetch failed'));
      }
    } finally {
      this.#fetchers--;
    }
  }

  /** A capability announcement (offload.ts): kept only when an identity binds its key, gateway and peer. */
  #onCapabilities(bytes: Uint8Array): void {
    const core = this.#core;
    const r = openCapabilities(bytes);
    if (typeof r === 'string') return void core.ctx.log.debug({ why: r }, 'mesh capability announcement refused');
    const { kid, caps } = r;
    const id = core.ids.identity(kid);
    if (!id || id.gateway !== caps.gateway || id.peer !== caps.peer) return;
    if (caps.peer === core.peerId || caps.t > core.ctx.now() + MAX_CLOCK_AHEAD_MS) return;
    const had = this.peerCaps.get(caps.peer);
    if (had && had.t > caps.t) return;
    this.peerCaps.set(caps.peer, { capabilities: caps.capabilities, t: caps.t, gateway: caps.gateway, operator: id.operatorId });
  }

  /** Notes a CID refused once, so that it is not fetched again (bounded). */
  refuse(cid: Uint8Array): void {
    if (this.refused.size >= 10_000) this.refused.clear();
    this.refused.add(toHex(cid));
  }

  /** A block by CID: from the store, else from peers (the hinted one first); what is fetched is verified and kept. */
  async fetchBlock(cid: Uint8Array, hint?: string, ancestor = false): Promise<Uint8Array | undefined> {
    const core = this.#core;
    const local = (await core.ctx.store.blocks.get(cid)) ?? (await core.ctx.store.guests?.wasm(cidText(cid)));
    if (local || !core.node) return local;
    const key = toHex(cid);
    if (this.refused.has(key)) return undefined;
    if (await core.removed(cid)) {
      // Not asked for again (a head peers keep announcing, a prev walk, an HTTP fetch): counted once.
      this.refuse(cid);
      core.count('removed');
      return undefined;
    }
    let f = this.#fetching.get(key);
    if (!f) {
      f = (async () => {
        const peers = core.node!.connectedPeers();
        const order = hint && peers.includes(hint) ? [hint, ...peers.filter((p) => p !== hint)] : peers;
        for (const p of order) {
          const bytes = await core.node!.fetch(p, cid);
          if (!bytes) continue;
          const wasmSize = core.guestCids.get(key);
          if (wasmSize !== undefined) {
            // A published guest's bytes: kept raw when they hash to the CID and have the published size.
            if (!equal(cidOf(bytes), cid) || bytes.length !== wasmSize) {
              core.count('cid');
              continue;
            }
            await core.ctx.store.blocks.put({ cid, bytes, kind: 'guest-wasm', deviceId: null, receivedAt: core.ctx.now() });
            return bytes;
          }
          const r = await this.#d.receive(bytes, { peer: p, expect: cid, ancestor });
          if (r === 'accepted' || r === 'duplicate' || r === 'opaque') return bytes;
        }
        return undefined;
      })().finally(() => this.#fetching.delete(key));
      this.#fetching.set(key, f);
    }
    return f;
  }

  close(): void {
    this.#wanted.clear();
  }
}

function fromHex(hex: string): Uint8Array {
  return Uint8Array.from(Buffer.from(hex, 'hex'));
}
