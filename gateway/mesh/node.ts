// The mesh transport, version 2 (docs/protocols/mesh-admission-v2.md): js-libp2p over TCP with Noise
// and Yamux, and only gridlet's own protocols — no identify, no ping, no gossipsub — so that a peer no
// operator admitted learns nothing from this gateway and can send it nothing but its credentials.
// The node's libp2p key is the gateway's Ed25519 mesh key, so its peer id names the key that signs its
// messages.
//
// - Admission, at connection time: the connection gater refuses every peer this gateway already knows
//   it may not admit (a recent refusal, an identity of an operator it does not trust) and more than a few
//   connections waiting to be admitted. On every new connection the dialer opens `/gridlet/admit/2` and
//   sends its identity message (gateway-identity-v2); the listener answers with its own identity once it
//   admitted the dialer, or with the reason it did not and closes the connection; the dialer admits the
//   listener in turn. A connection not admitted within ADMISSION_TIMEOUT_MS is closed.
// - Every other protocol serves admitted peers only; a stream from any other peer is reset (counted):
//   `/gridlet/gossip/2` — frames of gossip (core.ts Gossip), one long-lived stream per peer and way;
//   `/gridlet/blocks/1` — the requester sends a binary CID (36 bytes) and closes its side; the server
//   answers one status byte — 0 found (the block's bytes follow), 1 not here, 2 not for you — and closes;
//   `/gridlet/offload/1` (offload.ts) — a job for a peer of the same operator.

import './polyfill.js';
import { createLibp2p, type Libp2p } from 'libp2p';
import { tcp } from '@libp2p/tcp';
import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import { generateKeyPairFromSeed } from '@libp2p/crypto/keys';
import { peerIdFromString } from '@libp2p/peer-id';
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr';
import type { Connection, PeerId, Stream } from '@libp2p/interface';
import type { Logger } from 'pino';
import { isCid } from './cid.js';
import { frames, prefixed, rawFrames, readAll, write, writeRaw } from './frames.js';
import { MAX_MESSAGE_BYTES } from './message.js';
import { OFFLOAD_PROTOCOL, serveOffloadStream, type ServeOffload } from './offload.js';

export const ADMIT_PROTOCOL = '/gridlet/admit/2';
export const GOSSIP_PROTOCOL = '/gridlet/gossip/2';
export const BLOCKS_PROTOCOL = '/gridlet/blocks/1';
const FOUND = 0;
const MISSING = 1;
const REFUSED = 2;
/** A peer has this long after connecting to be admitted. */
export const ADMISSION_TIMEOUT_MS = 10_000;
/** Inbound connections from peers not admitted yet, at once. */
export const MAX_UNADMITTED = 16;
/** A peer refused admission is refused at connection time for this long. */
export const REFUSAL_MEMORY_MS = 60_000;
/** A gossip frame: a summary part or a few messages (a message is at most 1 MiB). */
export const MAX_GOSSIP_FRAME = MAX_MESSAGE_BYTES + 64 * 1024;
/** Gossip queued for one peer beyond this many bytes: the oldest is dropped (anti-entropy repairs it). */
export const MAX_OUTBOX_BYTES = 16 * 1024 * 1024;

export type Admission = { ok: true } | { ok: false; reason: string; message: string };

export interface MeshNodeOptions {
  seed: Uint8Array;
  listen?: string;
  peers: string[];
  log: Logger;
  /** This gateway's current identity message, presented to every peer it is admitted by. */
  identity(): Uint8Array;
  /** Judges a peer's identity message (its peer id as Noise authenticated it). */
  admit(peer: string, identity: Uint8Array): Promise<Admission>;
  /** A reason to refuse a peer at connection time, from what this gateway knows of it already. */
  refuseEarly(peer: string): string | undefined;
  /** Counts a refusal (gridlet_mesh_refused_total{reason}). */
  onRefused(reason: string, peer: string): void;
  /** A peer was admitted (its first connection), or lost its last connection. */
  onAdmitted(peer: string): void;
  onGone(peer: string): void;
  /** A gossip frame from an admitted peer. */
  onGossip(data: Uint8Array, from: string): void;
  /** What an admitted peer asking for `cid` gets: the bytes, undefined (not here), or 'refused'. */
  serveBlock(cid: Uint8Array, peer: string): Promise<Uint8Array | undefined | 'refused'>;
  redialMs?: number;
  admissionTimeoutMs?: number;
  /** Runs an admitted peer's offloaded job (only a gateway with a backend serves /gridlet/offload/1). */
  serveOffload?: ServeOffload;
}

/** Gossip waiting to go to one peer, and the stream it goes on. */
interface Outbox {
  queue: Uint8Array[];
  bytes: number;
  stream?: Stream;
  pumping: boolean;
}

export class MeshNode {
  readonly #node: Libp2p;
  readonly #o: MeshNodeOptions;
  #isolated = false;
  #timer?: NodeJS.Timeout;
  #closed = false;
  /** Peers admitted (until their last connection closes). */
  readonly #admitted = new Set<string>();
  /** Connections of peers not admitted yet, by connection id. */
  readonly #unadmitted = new Set<string>();
  /** Peers refused, until when (performance.now()). */
  readonly #refusedUntil = new Map<string, number>();
  readonly #outboxes = new Map<string, Outbox>();
  /** Gossip frames dropped for a peer that could not keep up. */
  dropped = 0;

  private constructor(node: Libp2p, o: MeshNodeOptions) {
    this.#node = node;
    this.#o = o;
  }

  static async start(o: MeshNodeOptions): Promise<MeshNode> {
    for (const p of o.peers) {
      let id: string | undefined;
      try {
        id = multiaddr(p).getComponents().find((c) => c.name === 'p2p')?.value;
      } catch {
        id = undefined;
      }
      if (!id) throw new Error(`--peer "${p.slice(0, 200)}" is not a multiaddr ending in /p2p/<peer id> (a peer's ready line shows it as mesh=…)`);
    }
    const privateKey = await generateKeyPairFromSeed('Ed25519', o.seed);
    let self!: MeshNode;
    const node = await createLibp2p({
      privateKey,
      addresses: { listen: o.listen ? [o.listen] : [] },
      transports: [tcp()],
      connectionEncrypters: [noise()],
      streamMuxers: [yamux()],
      connectionGater: {
        // Operators list peers explicitly, on loopback too (libp2p would refuse private addresses).
        denyDialMultiaddr: () => self?.isolated ?? false,
        denyDialPeer: (peer) => (self ? self.isolated || self.#early(peer.toString()) !== undefined : false),
        denyInboundConnection: () => self?.isolated ?? false,
        denyInboundEncryptedConnection: (peer) => (self ? self.#denyInbound(peer.toString()) : true),
        denyOutboundEncryptedConnection: (peer) => (self ? self.isolated || self.#early(peer.toString()) !== undefined : false),
      },
      services: {},
    });
    self = new MeshNode(node, o);
    await self.#wire();
    return self;
  }

  get isolated(): boolean {
    return this.#isolated;
  }

  /** Why a peer is refused before any handshake, or undefined. */
  #early(peer: string): string | undefined {
    const until = this.#refusedUntil.get(peer);
    if (until !== undefined) {
      if (performance.now() < until) return 'refused-recently';
      this.#refusedUntil.delete(peer);
    }
    return this.#o.refuseEarly(peer);
  }

  #denyInbound(peer: string): boolean {
    if (this.#isolated) return true;
    const why = this.#early(peer) ?? (!this.#admitted.has(peer) && this.#unadmitted.size >= MAX_UNADMITTED ? 'too-many-unadmitted' : undefined);
    if (why) {
      this.#o.onRefused(why, peer);
      this.#o.log.debug({ peer, reason: why }, 'mesh connection refused');
    }
    return why !== undefined;
  }

  async #wire(): Promise<void> {
    const node = this.#node;
    const o = this.#o;
    node.addEventListener('connection:open', (e) => void this.#onConnection(e.detail));
    node.addEventListener('peer:disconnect', (e) => {
      const peer = e.detail.toString();
      if (this.#admitted.delete(peer)) {
        this.#outboxes.delete(peer);
        o.log.info({ peer }, 'mesh peer disconnected');
        o.onGone(peer);
      }
    });
    await node.handle(ADMIT_PROTOCOL, (stream, connection) => this.#answerAdmission(stream, connection));
    await node.handle(GOSSIP_PROTOCOL, async (stream, connection) => {
      const peer = connection.remotePeer.toString();
      if (!this.#admittedStream(stream, peer)) return;
      try {
        for await (const data of rawFrames(stream, MAX_GOSSIP_FRAME)) {
          if (this.#isolated || !this.#admitted.has(peer)) break;
          try {
            o.onGossip(data, peer);
          } catch (err) {
            o.log.warn({ err: (err as Error).message }, 'mesh gossip handler failed');
          }
        }
      } catch (e) {
        stream.abort(e as Error);
      }
    }, { maxInboundStreams: 4 });
    await node.handle(BLOCKS_PROTOCOL, async (stream, connection) => {
      const peer = connection.remotePeer.toString();
      if (!this.#admittedStream(stream, peer)) return;
      const signal = AbortSignal.timeout(10_000);
      try {
        const req = await readAll(stream, 64, signal);
        if (!req) return;
        let answer: Uint8Array;
        if (!isCid(req) || this.#isolated) answer = new Uint8Array([MISSING]);
        else {
          const b = await o.serveBlock(req, peer);
          if (b === 'refused') answer = new Uint8Array([REFUSED]);
          else if (!b) answer = new Uint8Array([MISSING]);
          else {
            answer = new Uint8Array(1 + b.length);
            answer[0] = FOUND;
            answer.set(b, 1);
          }
        }
        await writeRaw(stream, answer, signal);
        await stream.close({ signal });
      } catch (e) {
        stream.abort(e as Error);
      }
    });
    const serve = o.serveOffload;
    if (serve) {
      await node.handle(OFFLOAD_PROTOCOL, async (stream, connection) => {
        const peer = connection.remotePeer.toString();
        if (!this.#admittedStream(stream, peer)) return;
        await serveOffloadStream(stream, peer, serve);
      }, { maxInboundStreams: 16 });
    }
    this.#dialPeers();
    this.#timer = setInterval(() => this.#dialPeers(), o.redialMs ?? 1000);
    this.#timer.unref();
  }

  /** True for a stream of an admitted peer; any other is reset and counted. */
  #admittedStream(stream: Stream, peer: string): boolean {
    if (!this.#isolated && this.#admitted.has(peer)) return true;
    this.#o.onRefused('not-admitted', peer);
    stream.abort(new Error('not admitted'));
    return false;
  }

  /** Refuses a peer: remembered for a while (refused at connection time), its connections closed. */
  #refuse(peer: string, reason: string): void {
    this.#refusedUntil.set(peer, performance.now() + REFUSAL_MEMORY_MS);
    if (this.#refusedUntil.size > 10_000) this.#refusedUntil.delete(this.#refusedUntil.keys().next().value!);
    this.#o.onRefused(reason, peer);
    for (const c of this.#node.getConnections(peerIdFromString(peer))) void c.close().catch(() => c.abort(new Error(reason)));
  }

  async #onConnection(c: Connection): Promise<void> {
    const peer = c.remotePeer.toString();
    if (this.#admitted.has(peer)) return;
    const o = this.#o;
    this.#unadmitted.add(c.id);
    const timeout = AbortSignal.timeout(o.admissionTimeoutMs ?? ADMISSION_TIMEOUT_MS);
    const onTimeout = () => {
      if (this.#admitted.has(peer) || c.status !== 'open') return;
      o.log.info({ peer }, 'mesh peer not admitted in time; connection closed');
      this.#refuse(peer, 'admission-timeout');
    };
    timeout.addEventListener('abort', onTimeout, { once: true });
    c.addEventListener?.('close', () => this.#unadmitted.delete(c.id), { once: true });
    if (c.direction !== 'outbound') return;
    // The dialer presents itself first; the listener answers only once it admitted it.
    let stream: Stream | undefined;
    try {
      stream = await c.newStream(ADMIT_PROTOCOL, { signal: timeout });
      await write(stream, { identity: o.identity() }, timeout);
      const it = frames(stream, MAX_MESSAGE_BYTES + 1024)[Symbol.asyncIterator]();
      const answer = (await it.next()).value;
      await stream.close({ signal: timeout }).catch(() => {});
      if (!answer) throw new Error('the peer closed the admission stream without an answer');
      if (typeof answer.refused === 'string') {
        o.log.warn({ peer, why: answer.refused.slice(0, 300) }, 'mesh peer refused to admit this gateway');
        return this.#refuse(peer, 'refused-by-peer');
      }
      if (!(answer.identity instanceof Uint8Array)) throw new Error('the answer holds no identity');
      const a = await o.admit(peer, answer.identity);
      if (!a.ok) {
        o.log.warn({ peer, reason: a.reason, why: a.message }, 'mesh peer not admitted');
        return this.#refuse(peer, a.reason);
      }
      this.#admitPeer(peer, c);
    } catch (e) {
      stream?.abort(e as Error);
      if (!this.#admitted.has(peer) && c.status === 'open') {
        o.log.debug({ peer, err: (e as Error).message }, 'mesh admission failed');
        void c.close().catch(() => {});
      }
    } finally {
      timeout.removeEventListener('abort', onTimeout);
    }
  }

  /** The listener's side of `/gridlet/admit/2`. */
  async #answerAdmission(stream: Stream, c: Connection): Promise<void> {
    const peer = c.remotePeer.toString();
    const o = this.#o;
    const signal = AbortSignal.timeout(o.admissionTimeoutMs ?? ADMISSION_TIMEOUT_MS);
    try {
      const it = frames(stream, MAX_MESSAGE_BYTES + 1024)[Symbol.asyncIterator]();
      const req = (await it.next()).value;
      if (!req || !(req.identity instanceof Uint8Array)) throw new Error('no identity in the admission request');
      const a = this.#isolated ? { ok: false as const, reason: 'isolated', message: 'this gateway is cut off from the mesh' } : await o.admit(peer, req.identity);
      if (!a.ok) {
        o.log.warn({ peer, reason: a.reason, why: a.message }, 'mesh peer not admitted');
        await write(stream, { refused: a.message }, signal).catch(() => {});
        await stream.close({ signal }).catch(() => {});
        return this.#refuse(peer, a.reason);
      }
      this.#admitPeer(peer, c);
      await write(stream, { identity: o.identity() }, signal);
      await stream.close({ signal });
    } catch (e) {
      stream.abort(e as Error);
      o.onRefused('admission-failed', peer);
      void c.close().catch(() => {});
    }
  }

  #admitPeer(peer: string, c: Connection): void {
    this.#unadmitted.delete(c.id);
    if (this.#admitted.has(peer)) return;
    this.#admitted.add(peer);
    this.#refusedUntil.delete(peer);
    this.#o.log.info({ peer }, 'mesh peer admitted');
    this.#o.onAdmitted(peer);
  }

  #dialPeers(): void {
    if (this.#isolated || this.#closed) return;
    for (const p of this.#o.peers) {
      let ma: Multiaddr;
      try {
        ma = multiaddr(p);
      } catch {
        continue;
      }
      const id = ma.getComponents().find((c) => c.name === 'p2p')?.value;
      if (id && (this.#node.getConnections(peerIdFromString(id)).length > 0 || this.#early(id) !== undefined)) continue;
      this.#node.dial(ma, { signal: AbortSignal.timeout(5000) }).catch((e: Error) => {
        this.#o.log.debug({ peer: p, err: e.message }, 'mesh peer not reachable');
      });
    }
  }

  get peerId(): string {
    return this.#node.peerId.toString();
  }

  /** The listen addresses with /p2p/<peer id>. */
  get multiaddrs(): string[] {
    return this.#node.getMultiaddrs().map((m) => m.toString());
  }

  /** Peers admitted and connected. */
  admittedPeers(): string[] {
    return [...this.#admitted];
  }

  /** Peers admitted and connected (the mesh never deals with any other). */
  connectedPeers(): string[] {
    return this.admittedPeers();
  }

  isAdmitted(peer: string): boolean {
    return this.#admitted.has(peer);
  }

  /** Queues a gossip frame for an admitted peer; nothing for any other. */
  send(peer: string, data: Uint8Array): void {
    if (this.#isolated || this.#closed || !this.#admitted.has(peer)) return;
    let box = this.#outboxes.get(peer);
    if (!box) this.#outboxes.set(peer, (box = { queue: [], bytes: 0, pumping: false }));
    const f = prefixed(data);
    box.queue.push(f);
    box.bytes += f.length;
    while (box.bytes > MAX_OUTBOX_BYTES && box.queue.length > 1) {
      box.bytes -= box.queue.shift()!.length;
      this.dropped++;
    }
    if (!box.pumping) void this.#pump(peer, box);
  }

  async #pump(peer: string, box: Outbox): Promise<void> {
    box.pumping = true;
    try {
      while (box.queue.length && this.#admitted.has(peer) && !this.#isolated && !this.#closed) {
        try {
          if (!box.stream || box.stream.status !== 'open' || box.stream.writeStatus !== 'writable') {
            box.stream = await this.#node.dialProtocol(peerIdFromString(peer), GOSSIP_PROTOCOL, { signal: AbortSignal.timeout(5000) });
          }
          const f = box.queue[0];
          await writeRaw(box.stream, f, AbortSignal.timeout(30_000));
          box.queue.shift();
          box.bytes -= f.length;
        } catch (e) {
          box.stream?.abort(e as Error);
          box.stream = undefined;
          this.#o.log.debug({ peer, err: (e as Error).message }, 'mesh gossip not sent');
          if (!this.#admitted.has(peer)) break;
          await new Promise((r) => setTimeout(r, 200));
        }
      }
    } finally {
      box.pumping = false;
    }
  }

  /** Opens a `protocol` stream to an admitted peer (offload.ts). */
  async dialProtocol(peer: string, protocol: string, signal: AbortSignal): Promise<Stream> {
    if (this.#isolated) throw new Error('this gateway is cut off from the mesh');
    if (!this.#admitted.has(peer)) throw new Error('the peer is not admitted');
    return this.#node.dialProtocol(peerIdFromString(peer), protocol, { signal });
  }

  /** Asks one peer for a block; undefined when it does not have it (or may not give it). */
  async fetch(peer: string, cid: Uint8Array, timeoutMs = 5000): Promise<Uint8Array | undefined> {
    const r = await this.fetchAnswer(peer, cid, timeoutMs);
    return r === 'refused' ? undefined : r;
  }

  /** Asks one admitted peer for a block: its bytes, 'refused' (the peer may not give it to us), or undefined. */
  async fetchAnswer(peer: string, cid: Uint8Array, timeoutMs = 5000): Promise<Uint8Array | 'refused' | undefined> {
    if (this.#isolated || !this.#admitted.has(peer)) return undefined;
    const signal = AbortSignal.timeout(timeoutMs);
    let pid: PeerId;
    try {
      pid = peerIdFromString(peer);
    } catch {
      return undefined;
    }
    let stream: Stream | undefined;
    try {
      stream = await this.#node.dialProtocol(pid, BLOCKS_PROTOCOL, { signal });
      stream.send(cid);
      await stream.close({ signal });
      const res = await readAll(stream, MAX_MESSAGE_BYTES + 1, signal);
      if (res && res.length === 1 && res[0] === REFUSED) return 'refused';
      if (!res || res.length === 0 || res[0] !== FOUND) return undefined;
      return res.subarray(1);
    } catch (e) {
      stream?.abort(e as Error);
      this.#o.log.debug({ peer, err: (e as Error).message }, 'mesh fetch failed');
      return undefined;
    }
  }

  /** Cuts every connection and refuses new ones until rejoin() (partition tests, maintenance). */
  async isolate(): Promise<void> {
    this.#isolated = true;
    await Promise.all(this.#node.getConnections().map((c) => c.close().catch(() => {})));
  }

  rejoin(): void {
    this.#isolated = false;
    this.#dialPeers();
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#timer);
    await this.#node.stop();
  }
}
