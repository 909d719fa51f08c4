// A TEST DOUBLE of a device, built only from the WIRE.md primitives in firmware/core/wire: an mqtt.js
// client that Hellos, checks a PairAccept, sends `paired`, readings, events and gaps, and decodes the
// downlinks it gets. It lets the gateway tests say exactly which bytes go on the wire (replays,
// forgeries, garbage); the real agent is tested elsewhere.

import mqtt, { type MqttClient } from 'mqtt';
import { sha256, boxKeyPair, randomBytes, type BoxKeyPair } from '../../firmware/core/crypto.js';
import { decodeBody, DOWNLINK_TYPES, encodeBody, type DownBody, type UpBody } from '../../firmware/core/wire/bodies.js';
import { Direction, openBox, parseFrame, ReplayWindow, sealFrame, type DirectionValue } from '../../firmware/core/wire/frame.js';
import {
  decodePairAccept, encodeHello, formatPairCode, idFromPublicKey, mqttPassword, pairKey, pairSecretFromRandom, sessionKey,
  verifyPairAccept, type PairAccept,
} from '../../firmware/core/wire/pairing.js';
import { topics } from '../../firmware/core/wire/topics.js';

export interface Downlink {
  counter: number;
  body: DownBody;
}

export interface ConnectOptions {
  /** true: user name = id, password = mqttPassword(Ks); an object: exactly these. */
  credentials?: boolean | { username?: string; password?: string };
  clientId?: string;
  will?: string;
  subscribe?: boolean;
}

export class WireDevice {
  readonly keys: BoxKeyPair = boxKeyPair();
  readonly id = idFromPublicKey(this.keys.publicKey);
  readonly secret = pairSecretFromRandom(randomBytes(7));
  readonly code = formatPairCode(this.secret);
  bootNonce = randomBytes(16);
  helloHashes: Uint8Array[] = [];
  client?: MqttClient;
  ks?: Uint8Array;
  gatewayId?: string;
  upCounter = 0;
  downWindow = new ReplayWindow();
  downlinks: Downlink[] = [];
  pairAccepts: Uint8Array[] = [];
  /** Downlink frames that did not open or were replays (a real device would drop them). */
  refusedDownlinks = 0;
  /** Answer PairAccepts like a device: `paired` on success, a Hello with field 7 on failure. */
  autoPair = true;
  lastRejected?: Uint8Array;
  readonly #waiters: (() => void)[] = [];

  constructor(readonly prefix: string, readonly model = 'wire-test', readonly firmware = '0.0.1-test') {}

  async connect(url: string, o: ConnectOptions = {}): Promise<MqttClient> {
    let username: string | undefined;
    let password: string | undefined;
    if (o.credentials === true) {
      username = this.id;
      password = mqttPassword(this.ks!);
    } else if (typeof o.credentials === 'object') ({ username, password } = o.credentials);
    const client = mqtt.connect(url, {
      clientId: o.clientId ?? this.id, username, password, clean: true, reconnectPeriod: 0, connectTimeout: 5000,
      protocolVersion: 4,
      will: { topic: o.will ?? topics.lwt(this.prefix, this.id), payload: Buffer.alloc(0), qos: 1, retain: false },
    });
    await new Promise<void>((resolve, reject) => {
      client.once('connect', () => resolve());
      client.once('error', (e) => {
        client.end(true);
        reject(e);
      });
      client.once('close', () => reject(new Error('connection closed before CONNACK')));
    });
    client.on('error', () => {});
    client.on('message', (topic, payload) => this.#onMessage(topic, new Uint8Array(payload)));
    if (o.subscribe !== false) {
      await client.subscribeAsync({ [topics.pair(this.prefix, this.id)]: { qos: 1 }, [topics.down(this.prefix, this.id)]: { qos: 1 } });
    }
    this.client = client;
    return client;
  }

  helloBytes(rejected?: Uint8Array): Uint8Array {
    return encodeHello({
      version: 1, publicKey: this.keys.publicKey, model: this.model, firmware: this.firmware,
      capabilities: ['relay:1'], bootNonce: this.bootNonce, rejected,
    });
  }

  async hello(rejected?: Uint8Array): Promise<void> {
    const bytes = this.helloBytes(rejected);
    this.helloHashes.push(sha256(bytes));
    await this.publish(topics.hello(this.prefix, this.id), bytes);
  }

  /** A new boot: new nonce, and the Hellos of the last boot no longer count. */
  reboot(): void {
    this.bootNonce = randomBytes(16);
    this.helloHashes = [];
  }

  async publish(topic: string, payload: Uint8Array): Promise<void> {
    await this.client!.publishAsync(topic, Buffer.from(payload), { qos: 1 });
  }

  /** Seals a body as an up frame (by default with the next counter, this session's key, the up direction). */
  frame(body: UpBody, o: { counter?: number; key?: Uint8Array; direction?: DirectionValue } = {}): { bytes: Uint8Array; counter: number } {
    const counter = o.counter ?? ++this.upCounter;
    if (counter > this.upCounter) this.upCounter = counter;
    return { bytes: sealFrame(encodeBody(body), counter, randomBytes(8), o.key ?? this.ks!, o.direction ?? Direction.up), counter };
  }

  async send(body: UpBody, o: { counter?: number; key?: Uint8Array; direction?: DirectionValue } = {}): Promise<Uint8Array> {
    const f = this.frame(body, o);
    await this.sendRaw(f.bytes);
    return f.bytes;
  }

  async sendRaw(bytes: Uint8Array): Promise<void> {
    await this.publish(topics.up(this.prefix, this.id), bytes);
  }

  /** Why the last automatic answer to a PairAccept did not go out, if it did not. */
  answerError: Error | undefined;

  #onMessage(topic: string, payload: Uint8Array): void {
    if (topic === topics.pair(this.prefix, this.id)) {
      this.pairAccepts.push(payload);
      // Not awaited: a close right after pairing (the gateway answered, the broker's PUBACK not yet
      // back) ends the publish with "Connection closed", which is kept here rather than left unhandled.
      if (this.autoPair && !this.ks) this.#answerPairAccept(payload).catch((e: Error) => (this.answerError = e));
    } else if (topic === topics.down(this.prefix, this.id)) {
      const f = parseFrame(payload);
      const plain = typeof f === 'string' || !this.ks || !this.downWindow.check(f.counter) ? undefined : openBox(f, this.ks, Direction.down);
      if (typeof f === 'string' || !plain) {
        this.refusedDownlinks++;
      } else {
        this.downWindow.accept(f.counter);
        this.downlinks.push({ counter: f.counter, body: decodeBody(plain, DOWNLINK_TYPES) as DownBody });
      }
    }
    for (const w of this.#waiters.splice(0)) w();
  }

  /** Checks a PairAccept as WIRE.md "Pairing" 4 says; returns Ks or the failure. */
  check(bytes: Uint8Array): { ok: true; ks: Uint8Array; accept: PairAccept } | { ok: false; accept: PairAccept } {
    const accept = decodePairAccept(bytes);
    const r = verifyPairAccept({ accept, helloHashes: this.helloHashes, deviceId: this.id, deviceSecretKey: this.keys.secretKey, pairKey: pairKey(this.secret) });
    if (!r.ok) return { ok: false, accept };
    return { ok: true, ks: sessionKey(r.k, this.bootNonce, accept.nonce), accept };
  }

  async #answerPairAccept(bytes: Uint8Array): Promise<void> {
    const r = this.check(bytes);
    if (!r.ok) {
      this.lastRejected = r.accept.nonce;
      await this.hello(r.accept.nonce);
      return;
    }
    this.ks = r.ks;
    this.gatewayId = r.accept.gatewayId;
    this.upCounter = 0;
    this.downWindow = new ReplayWindow();
    await this.send({ type: 5, firmware: this.firmware, model: this.model });
  }

  /** Waits until `pred` holds (checked on every message), or fails after `ms`. */
  async until<T>(pred: () => T | undefined | false, ms = 5000, what = 'condition'): Promise<T> {
    const deadline = Date.now() + ms;
    for (;;) {
      const v = pred();
      if (v) return v;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`device ${this.id}: timed out waiting for ${what}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 100));
        this.#waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** The highest `ack` seq received so far (0 when none). */
  get acked(): number {
    let a = 0;
    for (const d of this.downlinks) if (d.body.type === 16 && d.body.seq > a) a = d.body.seq;
    return a;
  }

  async waitAck(seq: number, ms = 5000): Promise<void> {
    await this.until(() => this.acked >= seq, ms, `ack ${seq} (have ${this.acked})`);
  }

  bodies(type: number): DownBody[] {
    return this.downlinks.filter((d) => d.body.type === type).map((d) => d.body);
  }

  async close(): Promise<void> {
    const c = this.client;
    this.client = undefined;
    if (c) await c.endAsync(true).catch(() => {});
  }
}
