// The gateway's side of WIRE.md "Pairing": the bounded Hello table, the operator's pair request,
// the PairAccept it publishes, and the outcomes the HTTP call waits for
// (201 paired, 403 the device refused the code, 404 no Hello seen, 504 no answer in time).
//
// Replicas (ARCHITECTURE.md "Growing past one machine") share the Hello table and the pairings under
// way through a `PairingShare` (postgres-pairing.ts): the device's Hello and `paired` frame may reach
// any replica, and the one that settles the pairing leaves its outcome there for the replica that
// holds the operator's request, which polls for it. Without a share, all of it lives in memory here.

import { constantTimeEqual, equal, toHex } from '../firmware/core/bytes.js';
import { randomBytes } from './random.js';
import type { Paired } from '../firmware/core/wire/bodies.js';
import { ReplayWindow } from '../firmware/core/wire/frame.js';
import {
  buildPairAccept, decodeHello, encodePairAccept, idFromPublicKey, normalizePairCode, pairKey, sessionKey, type Hello,
} from '../firmware/core/wire/pairing.js';
import { isDeviceId, topics } from '../firmware/core/wire/topics.js';
import type { GatewayContext } from './context.js';
import type { DeviceRow, PairingCommit } from './store/store.js';

/** Largest Hello accepted (a Hello is a few hundred bytes; the device encodes it within 1024). */
export const MAX_HELLO_BYTES = 1024;

export interface HelloEntry {
  id: string;
  /** The address it came from (embedded broker), which the table is shared out by. */
  source?: string;
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
  /** With a share: which attempt this is (the shared row's key), and the poll for its outcome. */
  attempt?: string;
  poll?: NodeJS.Timeout;
  unlisten?: () => void;
}

export interface SharedHello { id: string; bytes: Uint8Array; firstSeen: number; receivedAt: number }
export interface SharedPending {
  id: string; attempt: string; pairKey: Uint8Array; n: Uint8Array; ks: Uint8Array; accept: Uint8Array;
  /** The Hello the PairAccept answers. */
  hello: Uint8Array;
  firstSeen: number;
  expiresAt: number;
}
export interface SharedOutcome { status: number; error?: string }

/** Hello table and pairings under way, shared by replicas (see the top of this file). */
export interface PairingShare {
  /** Keeps the Hello; returns the device's first-seen time. */
  putHello(id: string, bytes: Uint8Array, now: number, ttlMs: number): Promise<number>;
  hello(id: string, since: number): Promise<SharedHello | undefined>;
  /** Hellos received since `since`, at most `limit`, newest last. */
  hellos(since: number, limit: number): Promise<SharedHello[]>;
  forgetHello(id: string): Promise<void>;
  /** Starts a pairing unless one (not expired) is under way. */
  begin(p: SharedPending, now: number): Promise<boolean>;
  pending(id: string, now: number): Promise<SharedPending | undefined>;
  /** The device rebooted: a fresh PairAccept replaces the attempt's. */
  rebuilt(p: SharedPending): Promise<void>;
  /** Ends the attempt; true for the one caller that ended it. */
  claim(id: string, attempt: string): Promise<boolean>;
  /** Ends the attempt and pairs the device in one transaction; undefined if the attempt had ended. */
  complete(attempt: string, p: PairingCommit): Promise<DeviceRow | undefined>;
  settle(attempt: string, o: SharedOutcome, now: number): Promise<void>;
  outcome(attempt: string): Promise<SharedOutcome | undefined>;
  /** Announces attempts settled on any replica (polling then only backs it up); returns the unsubscribe. */
  onSettled?(f: (attempt: string) => void): () => void;
}

export type PairOutcome =
  | { status: 201; device: DeviceRow }
  | { status: 400 | 403 | 404 | 409 | 503 | 504; error: string };

export type HelloResult = 'accepted' | 'oversized' | 'malformed' | 'wrong-key';

/** A shared Hello as an entry (undefined if its bytes no longer decode). */
function toEntry(s: SharedHello): HelloEntry | undefined {
  try {
    return { id: s.id, bytes: s.bytes, hello: decodeHello(s.bytes), firstSeen: s.firstSeen, receivedAt: s.receivedAt };
  } catch {
    return undefined;
  }
}

function short(id: string): string {
  return id.slice(0, 4) + '…';
}

export class Pairing {
  readonly #ctx: GatewayContext;
  /** Insertion order is age order: a Hello is re-inserted when it arrives again. */
  readonly #hellos = new Map<string, HelloEntry>();
  /** The ids in #hellos by source address, oldest first (Hellos of unknown source are not in it). */
  readonly #bySource = new Map<string, Set<string>>();
  /** How many of #hellos have a known source. */
  #sourced = 0;
  readonly #pending = new Map<string, PendingPairing>();
  /** Devices with a pairing request under way, from its first check to its outcome (#pending is set only later). */
  readonly #starting = new Set<string>();
  readonly #sweep: NodeJS.Timeout;
  /** What follows a completed pairing (the gateway's: sign it on the mesh, send the time, tell the parts). */
  readonly #onPaired: (device: DeviceRow) => Promise<void>;
  readonly #share?: PairingShare;

  constructor(ctx: GatewayContext, share?: PairingShare, onPaired: (device: DeviceRow) => Promise<void> = async () => {}) {
    this.#ctx = ctx;
    this.#share = share;
    this.#onPaired = onPaired;
    this.#sweep = setInterval(() => this.#expire(), 60_000);
    this.#sweep.unref();
  }

  /**
   * A Hello arrived on hello/<id> (from `source`, when the embedded broker knows it). Returns what
   * became of it (the caller counts drops).
   */
  async onHello(id: string, payload: Uint8Array, source?: string): Promise<HelloResult> {
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
    const entry: HelloEntry = { id, source, bytes: payload.slice(), hello, firstSeen: previous?.firstSeen ?? now, receivedAt: now };
    if (this.#share) {
      entry.firstSeen = await this.#share.putHello(id, entry.bytes, now, this.#ctx.tuning.helloTtlMs);
      const shared = await this.#share.pending(id, now);
      if (shared) await this.#helloWhileShared(shared, entry);
      return 'accepted';
    }
    this.#drop(id);
    this.#hellos.set(id, entry);
    if (source !== undefined) {
      const ids = this.#bySource.get(source) ?? new Set<string>();
      ids.add(id);
      this.#bySource.set(source, ids);
      this.#sourced++;
    }
    this.#expire();
    const pending = this.#pending.get(id);
    if (pending) this.#helloWhilePending(pending, entry);
    return 'accepted';
  }

  /** #helloWhilePending for a pairing kept in the share (started on any replica). */
  async #helloWhileShared(s: SharedPending, entry: HelloEntry): Promise<void> {
    const share = this.#share!;
    if (entry.hello.rejected && constantTimeEqual(entry.hello.rejected, s.n)) {
      if (await share.claim(s.id, s.attempt)) {
        await this.#settle(s.id, s.attempt, { status: 403, error: `pair code does not match device ${short(s.id)}; check the label` }, 'refused');
      }
      return;
    }
    let accept = s.accept;
    if (!equal(entry.hello.bootNonce, decodeHello(s.hello).bootNonce)) {
      const p = { id: s.id, pairKey: s.pairKey } as Partial<PendingPairing> & { id: string; pairKey: Uint8Array };
      this.#build(p, entry);
      await share.rebuilt({ ...s, n: p.n!, ks: p.ks!, accept: p.accept!, hello: entry.bytes });
      accept = p.accept!;
      this.#ctx.log.info({ device: s.id }, 'device rebooted during pairing; sent a fresh PairAccept');
    }
    this.#ctx.publish(topics.pair(this.#ctx.prefix, s.id), accept);
  }

  /** Leaves a settled shared pairing's outcome; the replica holding the request (maybe this one) answers it. */
  async #settle(id: string, attempt: string, o: { status: 201 } | { status: 403; error: string }, result: string): Promise<void> {
    await this.#share!.settle(attempt, o, this.#ctx.now());
    const mine = this.#pending.get(id);
    if (mine?.attempt === attempt) await this.#answer(mine, o, result);
  }

  /** Answers this replica's waiting request from a shared outcome. */
  async #answer(p: PendingPairing, o: SharedOutcome, result: string): Promise<void> {
    if (o.status === 201) {
      const device = await this.#ctx.store.getDevice(p.id);
      if (device) return this.#finish(p, { status: 201, device }, result);
    }
    this.#finish(p, { status: o.status as 403, error: o.error ?? `pairing of device ${p.id} failed` }, result);
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
    const busy = { status: 409 as const, error: `a pairing of device ${deviceId} is already in progress; wait for its outcome` };
    // Checked and reserved before the first await, held until the outcome: two requests for one device
    // never both start (the second would replace the first's PairAccept, leave the first request
    // unanswered, and the device might pair under the other's session key).
    if (this.#pending.has(deviceId) || this.#starting.has(deviceId)) {
      m.pairing('conflict');
      return busy;
    }
    this.#starting.add(deviceId);
    try {
      return await this.#start(deviceId, normalized, busy);
    } finally {
      this.#starting.delete(deviceId);
    }
  }

  async #start(deviceId: string, normalized: string, busy: PairOutcome): Promise<PairOutcome> {
    const m = this.#ctx.metrics;
    const device = await this.#ctx.store.getDevice(deviceId);
    if (device?.state === 'paired') {
      m.pairing('conflict');
      return { status: 409, error: `device ${deviceId} is already paired; revoke it first (DELETE /api/devices/${deviceId})` };
    }
    const entry = await this.hello(deviceId);
    if (!entry) {
      m.pairing('no-hello');
      return { status: 404, error: `no Hello seen from device ${deviceId}; check that it is powered and connected to this gateway's broker` };
    }
    const p = { id: deviceId, pairKey: pairKey(normalized) } as Partial<PendingPairing> & { id: string; pairKey: Uint8Array };
    this.#build(p, entry);
    const timeoutMs = this.#ctx.tuning.pairTimeoutMs;
    if (this.#share) {
      p.attempt = toHex(randomBytes(12));
      const started = await this.#share.begin({
        id: deviceId, attempt: p.attempt, pairKey: p.pairKey, n: p.n!, ks: p.ks!, accept: p.accept!, hello: entry.bytes,
        firstSeen: entry.firstSeen, expiresAt: this.#ctx.now() + timeoutMs + 1000,
      }, this.#ctx.now());
      if (!started || this.#pending.has(deviceId)) {
        m.pairing('conflict');
        return busy;
      }
    }
    return new Promise<PairOutcome>((resolve) => {
      p.resolve = resolve;
      const timedOut = {
        status: 504 as const, error: `device ${deviceId} did not answer within ${Math.round(timeoutMs / 1000)} s; check that it is online and try again`,
      };
      p.timer = setTimeout(() => {
        if (!this.#share) return this.#finish(p as PendingPairing, timedOut, 'timeout');
        // The device may have answered another replica just now: whoever ends the attempt decides.
        void (async () => {
          if (await this.#share!.claim(deviceId, p.attempt!)) return this.#finish(p as PendingPairing, timedOut, 'timeout');
          const o = await this.#share!.outcome(p.attempt!);
          if (o) await this.#answer(p as PendingPairing, o, o.status === 201 ? 'paired' : 'refused');
          else this.#finish(p as PendingPairing, timedOut, 'timeout');
        })().catch((e: Error) => {
          this.#ctx.log.error({ device: deviceId, err: e.message }, 'pairing: store failed');
          this.#finish(p as PendingPairing, timedOut, 'timeout');
        });
      }, timeoutMs);
      if (this.#share) {
        const share = this.#share;
        const check = () => {
          void share.outcome(p.attempt!).then((o) => o && this.#answer(p as PendingPairing, o, o.status === 201 ? 'paired' : 'refused'))
            .catch((e: Error) => this.#ctx.log.warn({ device: deviceId, err: e.message }, 'pairing: store failed'));
        };
        // Told when another replica settles it; the poll is the fallback (a lost notification connection).
        p.unlisten = share.onSettled?.((attempt) => attempt === p.attempt && check());
        p.poll = setInterval(check, p.unlisten ? 2000 : 250);
      }
      this.#pending.set(deviceId, p as PendingPairing);
      this.#ctx.publish(topics.pair(this.#ctx.prefix, deviceId), p.accept!);
      this.#ctx.log.info({ device: deviceId }, 'PairAccept sent');
    });
  }

  #finish(p: PendingPairing, outcome: PairOutcome, result: string): void {
    if (this.#pending.get(p.id) !== p) return;
    clearTimeout(p.timer);
    clearInterval(p.poll);
    p.unlisten?.();
    if (this.#share && outcome.status !== 201) void this.#share.claim(p.id, p.attempt!).catch(() => {});
    this.#pending.delete(p.id);
    this.#ctx.metrics.pairing(result);
    this.#ctx.log.info({ device: p.id, status: outcome.status }, `pairing ${result}`);
    p.resolve(outcome);
  }

  /**
   * The pending pairing of a device, whose Ks authenticates its first frame. With a share, any
   * replica's; `device` (the store's row, when known) spares the look-up for a paired device.
   */
  async pending(id: string, device?: DeviceRow): Promise<PendingPairing | undefined> {
    if (!this.#share) return this.#pending.get(id);
    if (device?.state === 'paired') return undefined;
    const s = await this.#share.pending(id, this.#ctx.now());
    if (!s) return undefined;
    const hello = decodeHello(s.hello);
    return {
      id, entry: { id, bytes: s.hello, hello, firstSeen: s.firstSeen, receivedAt: s.firstSeen }, pairKey: s.pairKey, n: s.n, ks: s.ks,
      accept: s.accept, window: new ReplayWindow(), attempt: s.attempt, timer: undefined as never, resolve: () => {},
    };
  }

  /**
   * The `paired` frame of a pending pairing arrived and opened: persist the device, answer 201.
   * Undefined when the pairing was settled meanwhile (a second delivery of the frame, on any replica).
   */
  async complete(p: PendingPairing, counter: number, body: Paired): Promise<DeviceRow | undefined> {
    const now = this.#ctx.now();
    if (this.#share) {
      // A second delivery of the frame, or a replica that got it too, finds the attempt ended.
      const device = await this.#share.complete(p.attempt!, {
        id: p.id, publicKey: p.entry.hello.publicKey, ks: p.ks, gatewayId: this.#ctx.identity.id,
        model: body.model, firmware: body.firmware, capabilities: p.entry.hello.capabilities,
        firstSeen: p.entry.firstSeen, counter, now, reserveDown: true,
      });
      if (!device) return undefined;
      this.#ctx.log.info({ device: p.id }, 'device paired');
      await this.#settle(p.id, p.attempt!, { status: 201 }, 'paired');
      await this.#onPaired(device);
      return device;
    }
    const device = await this.#ctx.store.completePairing({
      id: p.id, publicKey: p.entry.hello.publicKey, ks: p.ks, gatewayId: this.#ctx.identity.id,
      model: body.model, firmware: body.firmware, capabilities: p.entry.hello.capabilities,
      firstSeen: p.entry.firstSeen, counter, now, reserveDown: true,
    });
    this.#drop(p.id);
    this.#finish(p, { status: 201, device }, 'paired');
    await this.#onPaired(device);
    return device;
  }

  /** A Hello seen within the last hour. */
  async hello(id: string): Promise<HelloEntry | undefined> {
    if (this.#share) {
      const s = await this.#share.hello(id, this.#ctx.now() - this.#ctx.tuning.helloTtlMs);
      return s && toEntry(s);
    }
    const e = this.#hellos.get(id);
    if (e && this.#ctx.now() - e.receivedAt > this.#ctx.tuning.helloTtlMs) {
      this.#drop(id);
      return undefined;
    }
    return e;
  }

  /** Devices seen (Hello) and not paired, newest last. */
  async seen(): Promise<HelloEntry[]> {
    if (this.#share) {
      const t = this.#ctx.tuning;
      const rows = await this.#share.hellos(this.#ctx.now() - t.helloTtlMs, t.helloTableSize);
      return rows.map(toEntry).filter((e): e is HelloEntry => e !== undefined);
    }
    this.#expire();
    return [...this.#hellos.values()];
  }

  async forget(id: string): Promise<void> {
    this.#drop(id);
    await this.#share?.forgetHello(id);
  }

  #drop(id: string): void {
    const e = this.#hellos.get(id);
    if (!e) return;
    this.#hellos.delete(id);
    if (e.source === undefined) return;
    this.#sourced--;
    const ids = this.#bySource.get(e.source);
    ids?.delete(id);
    if (ids?.size === 0) this.#bySource.delete(e.source);
  }

  /**
   * Forgets Hellos past their lifetime, then, while the table is over its bound, the oldest Hello of the
   * source that holds the most of it: a source sending Hellos of ever new ids only pushes out its own.
   */
  #expire(): void {
    const now = this.#ctx.now();
    const t = this.#ctx.tuning;
    for (const [id, e] of this.#hellos) {
      if (now - e.receivedAt > t.helloTtlMs) this.#drop(id);
      else break;
    }
    while (this.#hellos.size > t.helloTableSize) {
      let biggest: Set<string> | undefined;
      for (const ids of this.#bySource.values()) if (!biggest || ids.size > biggest.size) biggest = ids;
      // Hellos of unknown source (an external broker) are shared out as one: the table's oldest goes.
      const unknown = this.#hellos.size - this.#sourced;
      if (biggest && biggest.size >= unknown) this.#drop(biggest.values().next().value!);
      else for (const [id, e] of this.#hellos) {
        if (e.source === undefined) {
          this.#drop(id);
          break;
        }
      }
    }
  }

  close(): void {
    clearInterval(this.#sweep);
    for (const p of [...this.#pending.values()]) {
      this.#finish(p, { status: 503, error: 'the gateway is shutting down; pair the device again when it is back' }, 'aborted');
    }
  }
}
