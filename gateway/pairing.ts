// The gateway's side of WIRE.md "Pairing": the bounded Hello table, the operator's pair request,
// the PairAccept it publishes, and the outcomes the HTTP call waits for
// (201 paired, 403 the device refused the code, 404 no Hello seen, 504 no answer in time).

import { constantTimeEqual, equal } from '../firmware/core/bytes.js';
import { randomBytes } from '../firmware/core/crypto.js';
import type { Paired } from '../firmware/core/wire/bodies.js';
import { ReplayWindow } from '../firmware/core/wire/frame.js';
import {
  buildPairAccept, decodeHello, encodePairAccept, idFromPublicKey, normalizePairCode, pairKey, sessionKey, type Hello,
} from '../firmware/core/wire/pairing.js';
import { isDeviceId, topics } from '../firmware/core/wire/topics.js';
import type { GatewayContext } from './context.js';
import type { DeviceRow } from './store/store.js';

/** Largest Hello accepted (a Hello is a few hundred bytes; the device encodes it within 1024). */
export const MAX_HELLO_BYTES = 1024;

export interface HelloEntry {
  id: string;
  /** The Hello exactly as received: the PairAccept's MAC and box cover its hash. */
  bytes: Uint8Array;
  hello: Hello;
  firstSeen: number;
  receivedAt: number;
}

export interface PendingPairing {
  id: string;
  entry: HelloEntry;
  pairKey: Uint8Array;
  n: Uint8Array;
  ks: Uint8Array;
  accept: Uint8Array;
  /** The new session's up window, persisted when the `paired` frame completes the pairing. */
  window: ReplayWindow;
  timer: NodeJS.Timeout;
  resolve: (o: PairOutcome) => void;
}

export type PairOutcome =
  | { status: 201; device: DeviceRow }
  | { status: 400 | 403 | 404 | 409 | 503 | 504; error: string };

export type HelloResult = 'accepted' | 'oversized' | 'malformed' | 'wrong-key';

function short(id: string): string {
  return id.slice(0, 4) + '…';
}

export class Pairing {
  readonly #ctx: GatewayContext;
  /** Insertion order is age order: a Hello is re-inserted when it arrives again. */
  readonly #hellos = new Map<string, HelloEntry>();
  readonly #pending = new Map<string, PendingPairing>();
  readonly #sweep: NodeJS.Timeout;
  /** Completes a pairing: persists the device and answers it (set by the gateway). */
  onPaired: (device: DeviceRow) => Promise<void> = async () => {};

  constructor(ctx: GatewayContext) {
    this.#ctx = ctx;
    this.#sweep = setInterval(() => this.#expire(), 60_000);
    this.#sweep.unref();
  }

  /** A Hello arrived on hello/<id>. Returns what became of it (the caller counts drops). */
  onHello(id: string, payload: Uint8Array): HelloResult {
    if (payload.length > MAX_HELLO_BYTES) return 'oversized';
    let hello: Hello;
    try {
      hello = decodeHello(payload);
    } catch {
      return 'malformed';
    }
    if (idFromPublicKey(hello.publicKey) !== id) return 'wrong-key';
    const now = this.#ctx.now();
    const previous = this.#hellos.get(id);
    const entry: HelloEntry = { id, bytes: payload.slice(), hello, firstSeen: previous?.firstSeen ?? now, receivedAt: now };
    this.#hellos.delete(id);
    this.#hellos.set(id, entry);
    this.#expire();
    const pending = this.#pending.get(id);
    if (pending) this.#helloWhilePending(pending, entry);
    return 'accepted';
  }

  #helloWhilePending(p: PendingPairing, entry: HelloEntry): void {
    if (entry.hello.rejected && constantTimeEqual(entry.hello.rejected, p.n)) {
      this.#finish(p, { status: 403, error: `pair code does not match device ${short(p.id)}; check the label` }, 'refused');
      return;
    }
    if (!equal(entry.hello.bootNonce, p.entry.hello.bootNonce)) {
      // The device rebooted: it only accepts a PairAccept for a Hello of its current boot.
      this.#build(p, entry);
      this.#ctx.log.info({ device: p.id }, 'device rebooted during pairing; sent a fresh PairAccept');
    }
    this.#ctx.publish(topics.pair(this.#ctx.prefix, p.id), p.accept);
  }

  #build(p: Pick<PendingPairing, 'id' | 'pairKey'> & Partial<PendingPairing>, entry: HelloEntry): void {
    const { identity } = this.#ctx;
    const n = randomBytes(24);
    const { accept, k } = buildPairAccept({
      helloBytes: entry.bytes, devicePublicKey: entry.hello.publicKey, deviceId: p.id,
      gatewayPublicKey: identity.box.publicKey, gatewaySecretKey: identity.box.secretKey, gatewayId: identity.id,
      pairKey: p.pairKey, nonce: n,
    });
    p.entry = entry;
    p.n = n;
    p.ks = sessionKey(k, entry.hello.bootNonce, n);
    p.accept = encodePairAccept(accept);
    p.window = new ReplayWindow();
  }

  /** The operator pairs a device by id and pair code; resolves with the outcome. */
  async pair(deviceId: unknown, code: unknown): Promise<PairOutcome> {
    const m = this.#ctx.metrics;
    if (typeof deviceId !== 'string' || !isDeviceId(deviceId)) {
      m.pairing('invalid');
      return { status: 400, error: `"${String(deviceId).slice(0, 40)}" is not a device id: expected 16 characters a-z and 2-7 (as printed by the device's id command)` };
    }
    const normalized = typeof code === 'string' ? normalizePairCode(code) : undefined;
    if (!normalized) {
      m.pairing('invalid');
      return { status: 400, error: `pair code for device ${short(deviceId)} must be 10 characters A-Z and 2-7, as on the label (XXXXX-XXXXX)` };
    }
    const device = await this.#ctx.store.getDevice(deviceId);
    if (device?.state === 'paired') {
      m.pairing('conflict');
      return { status: 409, error: `device ${deviceId} is already paired; revoke it first (DELETE /api/devices/${deviceId})` };
    }
    if (this.#pending.has(deviceId)) {
      m.pairing('conflict');
      return { status: 409, error: `a pairing of device ${deviceId} is already in progress; wait for its outcome` };
    }
    const entry = this.hello(deviceId);
    if (!entry) {
      m.pairing('no-hello');
      return { status: 404, error: `no Hello seen from device ${deviceId}; check that it is powered and connected to this gateway's broker` };
    }
    return new Promise<PairOutcome>((resolve) => {
      const p = { id: deviceId, pairKey: pairKey(normalized), resolve } as Partial<PendingPairing> & { id: string; pairKey: Uint8Array };
      this.#build(p, entry);
      p.timer = setTimeout(() => {
        this.#finish(p as PendingPairing, {
          status: 504, error: `device ${deviceId} did not answer within ${Math.round(this.#ctx.tuning.pairTimeoutMs / 1000)} s; check that it is online and try again`,
        }, 'timeout');
      }, this.#ctx.tuning.pairTimeoutMs);
      this.#pending.set(deviceId, p as PendingPairing);
      this.#ctx.publish(topics.pair(this.#ctx.prefix, deviceId), p.accept!);
      this.#ctx.log.info({ device: deviceId }, 'PairAccept sent');
    });
  }

  #finish(p: PendingPairing, outcome: PairOutcome, result: string): void {
    if (this.#pending.get(p.id) !== p) return;
    clearTimeout(p.timer);
    this.#pending.delete(p.id);
    this.#ctx.metrics.pairing(result);
    this.#ctx.log.info({ device: p.id, status: outcome.status }, `pairing ${result}`);
    p.resolve(outcome);
  }

  /** The pending pairing of a device, whose Ks authenticates its first frame. */
  pending(id: string): PendingPairing | undefined {
    return this.#pending.get(id);
  }

  /** The `paired` frame of a pending pairing arrived and opened: persist the device, answer 201. */
  async complete(p: PendingPairing, counter: number, body: Paired): Promise<DeviceRow> {
    const now = this.#ctx.now();
    const device = await this.#ctx.store.completePairing({
      id: p.id, publicKey: p.entry.hello.publicKey, ks: p.ks, gatewayId: this.#ctx.identity.id,
      model: body.model, firmware: body.firmware, capabilities: p.entry.hello.capabilities,
      firstSeen: p.entry.firstSeen, counter, now,
    });
    this.#hellos.delete(p.id);
    this.#finish(p, { status: 201, device }, 'paired');
    await this.onPaired(device);
    return device;
  }

  /** A Hello seen within the last hour. */
  hello(id: string): HelloEntry | undefined {
    const e = this.#hellos.get(id);
    if (e && this.#ctx.now() - e.receivedAt > this.#ctx.tuning.helloTtlMs) {
      this.#hellos.delete(id);
      return undefined;
    }
    return e;
  }

  /** Devices seen (Hello) and not paired, newest last. */
  seen(): HelloEntry[] {
    this.#expire();
    return [...this.#hellos.values()];
  }

  forget(id: string): void {
    this.#hellos.delete(id);
  }

  #expire(): void {
    const now = this.#ctx.now();
    for (const [id, e] of this.#hellos) {
      if (this.#hellos.size > this.#ctx.tuning.helloTableSize || now - e.receivedAt > this.#ctx.tuning.helloTtlMs) {
        this.#hellos.delete(id);
      } else break;
    }
  }

  close(): void {
    clearInterval(this.#sweep);
    for (const p of [...this.#pending.values()]) {
      this.#finish(p, { status: 503, error: 'the gateway is shutting down; pair the device again when it is back' }, 'aborted');
    }
  }
}
