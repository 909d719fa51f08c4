// The mesh transport (MESH.md "Transport"): js-libp2p over TCP with Noise and Yamux, gossipsub for
// announcements, identify and ping, and `/gridlet/blocks/1` to fetch a block by CID. The node's
// libp2p key is the gateway's Ed25519 mesh key, so its peer id names the key that signs its messages.
//
// /gridlet/blocks/1: the requester sends a binary CID (36 bytes) and closes its side; the server
// answers one status byte — 0 found (the block's bytes follow), 1 not here, 2 not for you — and closes.
// /gridlet/offload/1 (offload.ts): a job streamed to a peer that announced its kind.

import './polyfill.js';
import { createLibp2p, type Libp2p } from 'libp2p';
import { tcp } from '@libp2p/tcp';
import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import { gossipsub, type GossipSub } from '@libp2p/gossipsub';
import { identify } from '@libp2p/identify';
import { ping } from '@libp2p/ping';
import { generateKeyPairFromSeed } from '@libp2p/crypto/keys';
import { peerIdFromString } from '@libp2p/peer-id';
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr';
import type { PeerId, Stream } from '@libp2p/interface';
import type { Logger } from 'pino';
import { isCid } from './cid.js';
import { MAX_MESSAGE_BYTES } from './message.js';
import { OFFLOAD_PROTOCOL, serveOffloadStream, type ServeOffload } from './offload.js';
import { concat } from '../../firmware/core/bytes.js';

export const BLOCKS_PROTOCOL = '/gridlet/blocks/1';
const FOUND = 0;
const MISSING = 1;
const REFUSED = 2;

export interface MeshNodeOptions {
  seed: Uint8Array;
  listen?: string;
  peers: string[];
  topics: string[];
  log: Logger;
  /** A gossip message on a subscribed topic; `from` is the peer that published it. */
  onGossip(topic: string, data: Uint8Array, from: string): void;
  /** A peer (newly) subscribed to one of our topics. */
  onPeerSubscribed(peer: string, topic: string): void;
  /** What a peer asking for `cid` gets: the bytes, undefined (not here), or 'refused'. */
  serveBlock(cid: Uint8Array, peer: string): Promise<Uint8Array | undefined | 'refused'>;
  redialMs?: number;
  /** Runs a peer's offloaded job (only a gateway with a backend serves /gridlet/offload/1). */
  serveOffload?: ServeOffload;
}

async function readAll(stream: Stream, max: number, signal: AbortSignal): Promise<Uint8Array | undefined> {
  const parts: Uint8Array[] = [];
  let n = 0;
  const onAbort = () => stream.abort(new Error('timed out'));
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    for await (const chunk of stream) {
      const b = chunk.subarray();
      n += b.length;
      if (n > max) {
        stream.abort(new Error(`more than ${max} bytes`));
        return undefined;
      }
      parts.push(b);
    }
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
  return concat(...parts);
}

export class MeshNode {
  readonly #node: Libp2p<{ pubsub: GossipSub }>;
  readonly #o: MeshNodeOptions;
  #isolated = false;
  #timer?: NodeJS.Timeout;
  #closed = false;

  private constructor(node: Libp2p<{ pubsub: GossipSub }>, o: MeshNodeOptions) {
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
        denyDialPeer: () => self?.isolated ?? false,
        denyInboundConnection: () => self?.isolated ?? false,
      },
      services: {
        identify: identify(),
        ping: ping(),
        pubsub: gossipsub({ emitSelf: false, allowPublishToZeroTopicPeers: true, floodPublish: true }),
      },
    });
    self = new MeshNode(node, o);
    await self.#wire();
    return self;
  }

  get isolated(): boolean {
    return this.#isolated;
  }

  async #wire(): Promise<void> {
    const node = this.#node;
    const o = this.#o;
    const pubsub = node.services.pubsub;
    pubsub.addEventListener('message', (e) => {
      const m = e.detail;
      if (this.#isolated) return;
      const from = m.type === 'signed' ? m.from.toString() : '';
      try {
        o.onGossip(m.topic, m.data, from);
      } catch (err) {
        o.log.warn({ err: (err as Error).message }, 'mesh gossip handler failed');
      }
    });
    node.addEventListener('peer:connect', (e) => o.log.info({ peer: e.detail.toString() }, 'mesh peer connected'));
    node.addEventListener('peer:disconnect', (e) => o.log.info({ peer: e.detail.toString() }, 'mesh peer disconnected'));
    pubsub.addEventListener('subscription-change', (e) => {
      for (const s of e.detail.subscriptions) {
        if (s.subscribe && o.topics.includes(s.topic)) o.onPeerSubscribed(e.detail.peerId.toString(), s.topic);
      }
    });
    for (const t of o.topics) pubsub.subscribe(t);
    await node.handle(BLOCKS_PROTOCOL, async (stream, connection) => {
      const peer = connection.remotePeer.toString();
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
        if (!stream.send(answer)) await new Promise((r) => stream.addEventListener('drain', r, { once: true }));
        await stream.close({ signal });
      } catch (e) {
        stream.abort(e as Error);
      }
    });
    const serve = o.serveOffload;
    if (serve) {
      await node.handle(OFFLOAD_PROTOCOL, async (stream, connection) => {
        if (this.#isolated) return stream.abort(new Error('isolated'));
        await serveOffloadStream(stream, connection.remotePeer.toString(), serve);
      }, { maxInboundStreams: 16 });
    }
    this.#dialPeers();
    this.#timer = setInterval(() => this.#dialPeers(), o.redialMs ?? 1000);
    this.#timer.unref();
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
      if (id && this.#node.getConnections(peerIdFromString(id)).length > 0) continue;
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

  connectedPeers(): string[] {
    return [...new Set(this.#node.getConnections().map((c) => c.remotePeer.toString()))];
  }

  async publish(topic: string, data: Uint8Array): Promise<void> {
    if (this.#isolated) return;
    try {
      await this.#node.services.pubsub.publish(topic, data);
    } catch (e) {
      this.#o.log.debug({ topic, err: (e as Error).message }, 'mesh publish failed');
    }
  }

  /** Opens a `protocol` stream to a peer (offload.ts). */
  async dialProtocol(peer: string, protocol: string, signal: AbortSignal): Promise<Stream> {
    if (this.#isolated) throw new Error('this gateway is cut off from the mesh');
    return this.#node.dialProtocol(peerIdFromString(peer), protocol, { signal });
  }

  /** Asks one peer for a block; undefined when it does not have it (or may not give it). */
  async fetch(peer: string, cid: Uint8Array, timeoutMs = 5000): Promise<Uint8Array | undefined> {
    const r = await this.fetchAnswer(peer, cid, timeoutMs);
    return r === 'refused' ? undefined : r;
  }

  /** Asks one peer for a block: its bytes, 'refused' (the peer may not give it to us), or undefined. */
  async fetchAnswer(peer: string, cid: Uint8Array, timeoutMs = 5000): Promise<Uint8Array | 'refused' | undefined> {
    if (this.#isolated) return undefined;
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
