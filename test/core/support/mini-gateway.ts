// A minimal gateway built from the core's wire primitives: a test double for core agent tests
// (the real gateway, with its broker and store, is tested in test/gateway and test/integration).

import { boxKeyPairFromSecret, randomBytes, sha256 } from '../../../firmware/core/crypto.js';
import { Body, decodeBody, encodeBody, UPLINK_TYPES, type DownBody, type UpBody } from '../../../firmware/core/wire/bodies.js';
import { Direction, openBox, parseFrame, ReplayWindow, sealFrame } from '../../../firmware/core/wire/frame.js';
import {
  buildPairAccept, decodeHello, encodePairAccept, idFromPublicKey, normalizePairCode, pairKey, sessionKey,
} from '../../../firmware/core/wire/pairing.js';
import { parseTopic, topics, TopicKind } from '../../../firmware/core/wire/topics.js';
import { BusTransport, SeededRandom, type MemoryBus } from './sim-world.js';

function secretFrom(random: SeededRandom): Uint8Array {
  const b = new Uint8Array(32);
  random.fill(b);
  return b;
}

export interface StoredRecord { seq: number; kind: number; t: number; a: unknown; b: unknown }

export class MiniGateway {
  keys = boxKeyPairFromSecret(secretFrom(new SeededRandom(0x6a7e)));
  id = idFromPublicKey(this.keys.publicKey);
  links: BusTransport[];
  /** The link each device was last heard on: downlinks go back that way. */
  via = new Map<string, BusTransport>();
  hellos = new Map<string, Uint8Array>();
  rejectedNonces: Uint8Array[] = [];
  sessions = new Map<string, { ks: Uint8Array; window: ReplayWindow; down: number; n: Uint8Array; confirmed: boolean }>();
  records = new Map<string, Map<number, StoredRecord>>();
  acked = new Map<string, number>();
  bodies: { id: string; body: UpBody }[] = [];
  dropped = 0;
  /** When false, the gateway stores records but sends no acks (to test resends). */
  sendAcks = true;
  /** Firmware images served to fw-status requests, by CID as hex. */
  images = new Map<string, Uint8Array>();
  /** fw-status bodies received, per device. */
  fwStatus: { id: string; state: string; offset: number; want: number; version: string; reason?: string }[] = [];
  /** Drops a fw-chunk instead of sending it when this says true (a lossy link). */
  dropChunk: ((offset: number) => boolean) | undefined;

  constructor(buses: MemoryBus | MemoryBus[]) {
    this.links = (Array.isArray(buses) ? buses : [buses]).map((bus) => {
      const link = new BusTransport(bus, 'gateway');
      link.start({ clientId: 'gateway', subscriptions: ['gl/v1/hello/+', 'gl/v1/d/+/up'] }, {
        onConnect() {}, onDisconnect() {},
        onMessage: (topic, payload) => this.#onMessage(link, topic, payload),
      });
      return link;
    });
  }

  #out(deviceId: string): BusTransport {
    return this.via.get(deviceId) ?? this.links[0];
  }

  pair(deviceId: string, code: string): void {
    const hello = this.hellos.get(deviceId);
    if (!hello) throw new Error('no Hello seen');
    const h = decodeHello(hello);
    const n = randomBytes(24);
    const { accept, k } = buildPairAccept({
      helloBytes: hello, devicePublicKey: h.publicKey, deviceId, gatewayPublicKey: this.keys.publicKey,
      gatewaySecretKey: this.keys.secretKey, gatewayId: this.id, pairKey: pairKey(normalizePairCode(code) ?? code), nonce: n,
    });
    this.sessions.set(deviceId, { ks: sessionKey(k, h.bootNonce, n), window: new ReplayWindow(), down: 0, n, confirmed: false });
    this.#out(deviceId).publish(topics.pair('gl', deviceId), encodePairAccept(accept));
  }

  send(deviceId: string, body: DownBody): Uint8Array {
    const s = this.sessions.get(deviceId)!;
    const frame = sealFrame(encodeBody(body), ++s.down, randomBytes(8), s.ks, Direction.down);
    this.#out(deviceId).publish(topics.down('gl', deviceId), frame);
    return frame;
  }

  stored(deviceId: string): StoredRecord[] {
    return [...(this.records.get(deviceId)?.values() ?? [])].sort((a, b) => a.seq - b.seq);
  }

  #onMessage(link: BusTransport, topic: string, payload: Uint8Array): void {
    const t = parseTopic('gl', topic);
    if (!t) return;
    this.via.set(t.id, link);
    if (t.kind === TopicKind.hello) {
      const h = decodeHello(payload);
      if (idFromPublicKey(h.publicKey) !== t.id) return;
      if (h.rejected) this.rejectedNonces.push(h.rejected);
      this.hellos.set(t.id, payload);
      return;
    }
    const s = this.sessions.get(t.id);
    const f = parseFrame(payload);
    if (!s || typeof f === 'string' || !s.window.check(f.counter)) { this.dropped++; return; }
    const plain = openBox(f, s.ks, Direction.up);
    if (!plain) { this.dropped++; return; }
    const body = decodeBody(plain, UPLINK_TYPES) as UpBody;
    s.window.accept(f.counter);
    this.bodies.push({ id: t.id, body });
    const recs = this.records.get(t.id) ?? new Map<number, StoredRecord>();
    this.records.set(t.id, recs);
    const put = (r: StoredRecord) => { if (!recs.has(r.seq)) recs.set(r.seq, r); };
    if (body.type === Body.paired) {
      s.confirmed = true;
      this.send(t.id, { type: Body.time, time: 1_700_000_000 });
    } else if (body.type === Body.readings) {
      body.records.forEach(([ts, ch, v], i) => put({ seq: body.first + i, kind: 1, t: ts, a: ch, b: v }));
    } else if (body.type === Body.event) {
      put({ seq: body.seq, kind: 2, t: body.t, a: body.kind, b: body.data });
    } else if (body.type === Body.fwStatus) {
      this.fwStatus.push({ id: t.id, state: body.state, offset: body.offset, want: body.want, version: body.version, ...(body.reason ? { reason: body.reason } : {}) });
      const image = this.images.get(hex(body.cid));
      if (image && body.want > 0) {
        for (let i = 0, at = body.offset; i < body.want && at < image.length; i++, at += 1024) {
          if (this.dropChunk?.(at)) continue;
          this.send(t.id, { type: Body.fwChunk, cid: body.cid, offset: at, bytes: image.slice(at, at + 1024) });
        }
      }
      return;
    } else if (body.type === Body.gap) {
      for (let q = body.first; q <= body.last; q++) put({ seq: q, kind: 7, t: 0, a: body.last, b: body.reason });
    } else return;
    let a = this.acked.get(t.id) ?? 0;
    while (recs.has(a + 1)) a++;
    this.acked.set(t.id, a);
    if (this.sendAcks && body.type !== Body.paired) this.send(t.id, { type: Body.ack, seq: a });
  }
}

function hex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

export { sha256, hex };
