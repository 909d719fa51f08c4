// The agent: one meter's life. It pairs with a gateway (WIRE.md "Pairing"), logs every reading
// in its record log, sends the backlog oldest first in sealed frames, trims on ack, and acts on
// downlink bodies. It touches the world only through ports.

import { equal, utf8Decode, utf8Encode } from '../bytes.js';
import { decode as decodeCbor, encode as encodeCbor, type CborValue } from '../cbor.js';
import { randomBytes, sha256, useRandom, withStrongEntropy } from '../crypto.js';
import type { BatchRecordLog, LogEntry, RecordLog } from '../log/record-log.js';
import type { Clock, KeyValue, Logger, MeterSource, Random, Timers, Transport, TransportOptions } from '../ports.js';
import { Links, UNHEALTHY_AFTER_MS } from './links.js';
import { DemandResponse } from './dr.js';
import { checkMeterConfig, isMeterSecret, setMeterSecret } from '../meter/keys.js';
import type { FwCancel, FwChunk, FwOffer, FwStatus, GuestAck, GuestChunk, GuestOffer, GuestRemove, TextMap } from '../wire/bodies.js';

/** What the agent needs of the guest supervisor (firmware/core/guests/supervisor.ts). */
export interface AgentGuests {
  setChannel(ch: number, value: number): void;
  setSignal(id: number, value: number): void;
  offer(b: GuestOffer): GuestAck | undefined;
  chunk(b: GuestChunk): GuestAck | undefined;
  remove(b: GuestRemove): GuestAck;
  statusEntries(): [string, Uint8Array, string][];
}

/** What the agent needs of the firmware update state machine (firmware/core/update/updates.ts). */
export interface AgentUpdates {
  /** At start, once the power-up record of this boot is appended (its seq). */
  start(bootSeq: number): void;
  stop(): void;
  onConnect(): void;
  onAck(seq: number): void;
  offer(b: FwOffer): void;
  chunk(b: FwChunk): void;
  cancel(b: FwCancel): void;
}

/** One job-result body as handed to whoever submitted the job. */
export interface JobResultPart {
  index: number;
  text: string;
  final: boolean;
  error?: string;
}
import { Body, BodyError, decodeBody, DOWNLINK_TYPES, encodeBody, type DownBody, type ReadingRecord, type UpBody } from '../wire/bodies.js';
import { Direction, openBox, parseFrame, ReplayWindow, sealFrame } from '../wire/frame.js';
import {
  decodePairAccept, encodeHello, mqttPassword, PairCheck, PROTOCOL_VERSION, sessionKey, verifyPairAccept,
} from '../wire/pairing.js';
import { Signal } from '../wire/constants.js';
import { DEFAULT_PREFIX, topics } from '../wire/topics.js';
import {
  confirmSession, forgetSession, loadDownWindow, loadIdentity, loadSession, saveDownWindow, saveSession, UpCounter,
  type Identity, type Session,
} from './identity.js';

export const AgentState = { unpaired: 0, paired: 1 } as const;

export interface AgentOptions {
  kv: KeyValue;
  random: Random;
  clock: Clock;
  timers: Timers;
  log: RecordLog;
  /** Uplinks in order of preference (links.ts decides which one carries frames). */
  uplinks: Transport[];
  meter?: MeterSource;
  logger?: Logger;
  model: string;
  firmware: string;
  capabilities?: string[];
  topicPrefix?: string;
  /**
   * Persistent counters for the uplink frame counter (the flash log's FlashCounters on a meter).
   * Without them the counter is kept in the KeyValue port.
   */
  counters?: { next(name: string): number };
  /** Heap bytes in use, for `status` (the platform knows; 0 if it does not). */
  heapUsed?: () => number;
  /**
   * How long a new pairing may go without a word from its gateway before the device gives it up and
   * says Hello again (default PAIR_CONFIRM_MS).
   */
  pairConfirmMs?: number;
  /** Called on things a host UI shows: 'paired', 'unpaired', 'ack', 'reading', 'link'. */
  onEvent?: (name: string, detail?: unknown) => void;
}

/** Seconds without an ack after which unacked records are sent again (WIRE.md). */
export const RESEND_AFTER_MS = 30_000;
export const HELLO_EVERY_MS = 60_000;
/**
 * A pairing the gateway never confirmed (power cut or crash between PairAccept and the gateway's
 * first answer; the gateway gives up after 15 s) is dropped after this long, so that the meter says
 * Hello again instead of knocking with credentials its gateway does not know.
 */
export const PAIR_CONFIRM_MS = 120_000;
/**
 * A paired meter says `paired` (its firmware and model) on every connection, and again this often until
 * the gateway answers with a `time` body: a meter restarted into a new image is recognised by it.
 */
export const PAIRED_EVERY_MS = 30_000;
const PAIR_FAILURE_LIMIT = 5;
const PAIR_LOCKOUT_MS = 10 * 60_000;
/** Body bytes per frame: 2048 minus the frame's own overhead (array, counter, salt, MAC) with margin. */
const MAX_BODY_BYTES = 1900;
const RECORDS_PER_FRAME = 120;
/** Frames sent per pacing tick, so a day of backlog does not starve live readings or the link. */
const FRAMES_PER_TICK = 8;
/**
 * Frames of records sent and not yet covered by an ack, at most (WIRE.md "Records and acks"): a gateway
 * that falls behind, or a link that keeps dropping, gets this many again on each reconnect, not the
 * whole backlog over and over.
 */
export const SEND_WINDOW = 16;
const TICK_MS = 250;
const STATUS_EVERY_MS = 5 * 60_000;
const MAX_TARIFFS = 8;

export class Agent {
  readonly identity: Identity;
  readonly bootNonce: Uint8Array;
  state: number = AgentState.unpaired;
  #o: AgentOptions;
  #prefix: string;
  #links: Links;
  #session: Session | undefined;
  #upCounter: { take(): number } | undefined;
  #downWindow = new ReplayWindow();
  #helloHashes: Uint8Array[] = [];
  #rejectedNonce: Uint8Array | undefined;
  #pairFailures = 0;
  #pairLockedUntil = 0;
  #announcePaired = false;
  /** `paired` said on this connection and not yet answered by a `time` body. */
  #pairedUnanswered = false;
  #pairedTimer = -1;
  #helloTimer = -1;
  #tickTimer = -1;
  #statusTimer = -1;
  #confirmTimer = -1;
  #pumpTimer = -1;
  /** Highest seq handed to the link; everything above `ackedSeq` up to it is in flight. */
  #sentSeq = 0;
  #ackedSeq = 0;
  /** The last seq of each frame of records in flight (above `ackedSeq`), oldest first; at most SEND_WINDOW. */
  readonly #inFlight: number[] = [];
  #lastProgress = 0;
  #started = false;
  #startedAt = 0;
  #clockValid: boolean;
  #guests: AgentGuests | undefined;
  #updates: AgentUpdates | undefined;
  /** Seq of this boot's power-up record. */
  #bootSeq = 0;
  #ticks = 0;
  readonly dr: DemandResponse;
  /** Tariffs by validity window (OpenADR prices come one per interval), at most MAX_TARIFFS. */
  #tariffs: { price: number; from: number; until: number }[] = [];
  /** Open jobs: the callback stays until every chunk up to the final one has arrived (frames may reorder). */
  #jobs = new Map<number, { cb: (part: JobResultPart) => void; got: number; last: number }>();
  #nextJob = 1;
  readonly counters = { framesSent: 0, framesDropped: 0, acks: 0, resends: 0, pairFailures: 0, downlinks: 0 };

  constructor(options: AgentOptions) {
    this.#o = options;
    useRandom(options.random);
    this.#prefix = options.topicPrefix ?? DEFAULT_PREFIX;
    if (!options.uplinks.length) throw new Error('the agent needs at least one uplink');
    this.#links = new Links(options.uplinks, options.timers, options.clock, options.logger);
    this.#links.onFailover = (from, to) => this.recordEvent('link-failover', { from, to });
    this.identity = loadIdentity(options.kv);
    // Made at boot, before the radio is up: from the strongest entropy the Random port has.
    this.bootNonce = withStrongEntropy(() => randomBytes(16));
    const j = randomBytes(4);
    // Job ids start at a random point each boot, so ids of jobs from before a reboot are not reused.
    this.#nextJob = 1 + ((((j[0] << 24) | (j[1] << 16) | (j[2] << 8) | j[3]) >>> 0) % 0x7fffffff);
    this.#session = loadSession(options.kv);
    if (this.#session) this.#enterPaired(this.#session, false);
    this.#clockValid = !Number.isNaN(options.clock.now());
    const stats = options.log.stats();
    this.#ackedSeq = stats.ackedSeq;
    this.#sentSeq = stats.ackedSeq;
    this.dr = new DemandResponse({
      kv: options.kv, clock: options.clock, timers: options.timers, random: options.random,
      onSignals: (level, limit) => {
        this.#guests?.setSignal(Signal.drLevel, level);
        this.#guests?.setSignal(Signal.importLimit, limit);
      },
      onEvent: (kind, data) => this.recordEvent(kind, data),
    });
    const t = options.kv.get('tariffs');
    if (t && t.length) {
      try {
        const v = decodeCbor(t);
        if (Array.isArray(v)) {
          for (const r of v) {
            if (Array.isArray(r) && r.length === 3 && r.every((x) => typeof x === 'number'))
              this.#tariffs.push({ price: r[0] as number, from: r[1] as number, until: r[2] as number });
          }
        }
      } catch {
        // damaged tariffs are forgotten; the gateway sends them again
      }
    }
  }

  /** Connects the guest supervisor: readings and grid signals flow to it, guest-* bodies from the gateway. */
  attachGuests(guests: AgentGuests): void {
    this.#guests = guests;
    guests.setSignal(Signal.drLevel, this.dr.level);
    guests.setSignal(Signal.importLimit, this.dr.limit);
    this.#tariffCheck();
  }

  /** Connects the firmware update state machine: fw-* bodies from the gateway, acks and connections to it. */
  attachUpdates(updates: AgentUpdates): void {
    this.#updates = updates;
  }

  /** Sends a fw-status body; false when not paired or no link is up. */
  sendFirmwareStatus(body: FwStatus): boolean {
    return this.#sendBody(body);
  }

  /** Seq of this boot's power-up record (0 before start). */
  get bootSeq(): number {
    return this.#bootSeq;
  }

  /** Sends a guest-ack upstream (for acks that answer no downlink, such as a quarantine). */
  sendGuestAck(ack: GuestAck): void {
    this.#sendBody(ack);
  }

  get deviceId(): string {
    return this.identity.deviceId;
  }
  get gatewayId(): string | undefined {
    return this.#session?.gatewayId;
  }
  get ackedSeq(): number {
    return this.#ackedSeq;
  }
  get links(): Links {
    return this.#links;
  }
  /** True when some uplink is up and carrying frames. */
  get online(): boolean {
    return this.#links.active !== undefined;
  }

  start(): void {
    if (this.#started) return;
    this.#started = true;
    this.#startedAt = this.#o.clock.monotonic();
    this.#bootSeq = this.#o.log.appendEvent(this.#unixSeconds(), 'power-up');
    this.#updates?.start(this.#bootSeq);
    this.#awaitConfirmation();
    this.#links.start(this.#transportOptions(), {
      onConnect: () => this.#onConnect(),
      onDisconnect: (reason) => this.#emit('link', { state: 'down', reason }),
      onMessage: (topic, payload) => this.#onMessage(topic, payload),
    });
    this.#o.meter?.start((t, values) => this.recordReadings(t, values));
    this.dr.start();
    this.#tickTimer = this.#o.timers.repeat(() => this.#tick(), TICK_MS);
    this.#statusTimer = this.#o.timers.repeat(() => this.#sendStatus(), STATUS_EVERY_MS);
    this.#pairedTimer = this.#o.timers.repeat(() => {
      if (this.#pairedUnanswered && this.state === AgentState.paired && this.#links.active) this.#sayPaired();
    }, PAIRED_EVERY_MS);
  }

  stop(): void {
    this.#updates?.stop();
    this.#o.meter?.stop();
    this.dr.stop();
    for (const id of [this.#helloTimer, this.#tickTimer, this.#statusTimer, this.#confirmTimer, this.#pumpTimer, this.#pairedTimer]) if (id >= 0) this.#o.timers.clear(id);
    this.#helloTimer = this.#tickTimer = this.#statusTimer = this.#confirmTimer = this.#pumpTimer = this.#pairedTimer = -1;
    this.#links.stop();
    this.#started = false;
  }

  /** Appends one reading per channel at unix ms `t` (NaN: use the device clock, or 0 without one). */
  recordReadings(t: number, values: ReadonlyArray<readonly [number, number]>): void {
    const ts = Number.isNaN(t) ? this.#unixSeconds() : Math.floor(t / 1000);
    let first = 0;
    const log = this.#o.log as RecordLog & Partial<BatchRecordLog>;
    // One record per telegram packs readings far tighter on flash than one record per channel.
    if (log.appendReadings && values.length) first = log.appendReadings(ts, values);
    else for (const [channel, value] of values) {
      const seq = log.appendReading(ts, channel, value);
      if (!first) first = seq;
    }
    if (this.#guests) for (const [channel, value] of values) this.#guests.setChannel(channel, value);
    this.#emit('reading', { seq: first, t: ts, values });
    // Sent from a timer turn of its own, not from inside the meter's callback: on a meter the serial
    // port's callback, the meter parser and the agent would otherwise seal and publish at the bottom of
    // one call chain, the deepest the firmware has (XS stack, docs/firmware.md "Heap budget").
    if (this.#pumpTimer < 0) {
      this.#pumpTimer = this.#o.timers.set(() => {
        this.#pumpTimer = -1;
        this.#pump();
      }, 0);
    }
  }

  /** Appends an event record (WIRE.md event kinds). */
  recordEvent(kind: string, data?: { [key: string]: CborValue }): number {
    const seq = this.#o.log.appendEvent(this.#unixSeconds(), kind, data);
    this.#pump();
    return seq;
  }

  #unixSeconds(): number {
    const now = this.#o.clock.now();
    return this.#clockValid && !Number.isNaN(now) ? Math.floor(now / 1000) : 0;
  }

  #emit(name: string, detail?: unknown): void {
    this.#o.onEvent?.(name, detail);
  }

  #transportOptions(): TransportOptions {
    const id = this.identity.deviceId;
    const o: TransportOptions = {
      clientId: id,
      will: { topic: topics.lwt(this.#prefix, id), payload: new Uint8Array(0), qos: 1 },
      subscriptions: [topics.pair(this.#prefix, id), topics.down(this.#prefix, id)],
    };
    if (this.#session) {
      o.username = id;
      o.password = mqttPassword(this.#session.ks);
    }
    return o;
  }

  // ------------------------------------------------------------ link events

  #onConnect(): void {
    this.#emit('link', { state: 'up', name: this.#links.active?.name });
    if (this.state === AgentState.unpaired) {
      this.#sendHello();
      return;
    }
    this.#pairedUnanswered = true;
    this.#sayPaired();
    // Everything not acked is sent again on a new connection: the old one may have lost it.
    this.#sendAgain();
    this.#sendStatus();
    this.#updates?.onConnect();
    this.#pump();
  }

  #onMessage(topic: string, payload: Uint8Array): void {
    const id = this.identity.deviceId;
    if (topic === topics.pair(this.#prefix, id)) this.#onPairAccept(payload);
    else if (topic === topics.down(this.#prefix, id)) this.#onDownFrame(payload);
  }

  // ------------------------------------------------------------ pairing

  #sendHello(): void {
    if (this.state !== AgentState.unpaired) return;
    const hello = encodeHello({
      version: PROTOCOL_VERSION,
      publicKey: this.identity.keys.publicKey,
      model: this.#o.model,
      firmware: this.#o.firmware,
      capabilities: this.#o.capabilities ?? [],
      bootNonce: this.bootNonce,
      rejected: this.#rejectedNonce,
    });
    const h = sha256(hello);
    if (!this.#helloHashes.some((x) => equal(x, h))) {
      this.#helloHashes.push(h);
      if (this.#helloHashes.length > 8) this.#helloHashes.shift();
    }
    this.#links.publish(topics.hello(this.#prefix, this.identity.deviceId), hello);
    if (this.#helloTimer < 0) this.#helloTimer = this.#o.timers.repeat(() => this.#sendHello(), HELLO_EVERY_MS);
  }

  #onPairAccept(payload: Uint8Array): void {
    if (this.state !== AgentState.unpaired) return; // ignored until unpaired (WIRE.md step 5)
    if (this.#o.clock.monotonic() < this.#pairLockedUntil) return;
    let accept;
    try {
      accept = decodePairAccept(payload);
    } catch (e) {
      this.#o.logger?.log('warn', `ignored a malformed PairAccept: ${(e as Error).message}`);
      return;
    }
    const pinned = this.#o.kv.get('pair.pin');
    const result = verifyPairAccept({
      accept,
      helloHashes: this.#helloHashes,
      deviceId: this.identity.deviceId,
      deviceSecretKey: this.identity.keys.secretKey,
      pairKey: this.identity.pairKey,
      pinnedGatewayId: pinned ? utf8Decode(pinned) : undefined,
    });
    if (!result.ok) {
      this.counters.pairFailures++;
      this.#pairFailures++;
      this.#rejectedNonce = accept.nonce;
      const why = result.why === PairCheck.badMac ? 'pair code does not match' :
        result.why === PairCheck.pinned ? `gateway ${accept.gatewayId} is not the pinned one` : 'PairAccept does not verify';
      this.#o.logger?.log('warn', `pairing with gateway ${accept.gatewayId} refused: ${why}`);
      if (this.#pairFailures >= PAIR_FAILURE_LIMIT) {
        this.#pairLockedUntil = this.#o.clock.monotonic() + PAIR_LOCKOUT_MS;
        this.#pairFailures = 0;
      }
      this.#sendHello(); // tells the gateway at once (field 7)
      return;
    }
    const ks = sessionKey(result.k, this.bootNonce, accept.nonce);
    const session: Session = { gatewayPublicKey: accept.gatewayPublicKey, gatewayId: accept.gatewayId, ks };
    saveSession(this.#o.kv, session);
    this.#enterPaired(session, true);
    this.#o.logger?.log('info', `paired with gateway ${accept.gatewayId}`);
    this.#emit('paired', { gatewayId: accept.gatewayId });
    this.#awaitConfirmation();
    // Reconnect with the session's MQTT credentials; #onConnect then sends the `paired` body.
    this.#links.restart(this.#transportOptions());
  }

  /** Gives an unconfirmed pairing PAIR_CONFIRM_MS to hear from its gateway (see there). */
  #awaitConfirmation(): void {
    if (!this.#session || this.#session.confirmed || this.#confirmTimer >= 0) return;
    const ms = this.#o.pairConfirmMs ?? PAIR_CONFIRM_MS;
    this.#confirmTimer = this.#o.timers.set(() => {
      this.#confirmTimer = -1;
      if (this.state !== AgentState.paired || this.#session?.confirmed) return;
      this.#unpair(`gateway ${this.#session?.gatewayId} never confirmed the pairing within ${Math.round(ms / 1000)} s; saying Hello again (pair it again)`);
    }, ms);
  }

  #enterPaired(session: Session, fresh: boolean): void {
    this.#session = session;
    this.state = AgentState.paired;
    const counters = this.#o.counters;
    this.#upCounter = counters ? { take: () => counters.next('frame.up') } : new UpCounter(this.#o.kv);
    const [highest, bits] = loadDownWindow(this.#o.kv);
    this.#downWindow = ReplayWindow.from(highest, bits);
    // Until the gateway answers, every connection says `paired` again: the first may have been lost.
    this.#announcePaired = fresh || !session.confirmed;
    if (this.#helloTimer >= 0) this.#o.timers.clear(this.#helloTimer);
    this.#helloTimer = -1;
    this.#helloHashes = [];
    this.#rejectedNonce = undefined;
    this.#pairFailures = 0;
  }

  /** Forgets the gateway (the technician's `unpair`) and returns to Hello. */
  unpair(): void {
    if (this.state === AgentState.paired) this.#unpair('unpaired by the technician; returning to Hello');
  }

  /**
   * Sends a `job` body with a fresh job id and routes its job-result bodies to `onResult`.
   * Returns the job id, or -1 when no link is up (nothing sent).
   */
  submitJob(kind: string, input: TextMap, onResult: (part: JobResultPart) => void): number {
    if (this.state !== AgentState.paired || !this.#links.active) return -1;
    const job = this.#nextJob++;
    if (this.#nextJob >= 0xffffffff) this.#nextJob = 1;
    if (!this.#sendBody({ type: Body.job, job, kind, input })) return -1;
    this.#jobs.set(job, { cb: onResult, got: 0, last: -1 });
    return job;
  }

  /** Asks the gateway to stop a job and forgets its callback. */
  cancelJob(job: number): void {
    if (!this.#jobs.delete(job)) return;
    this.#sendBody({ type: Body.job, job: this.#nextJob++, kind: 'job.cancel', input: { job } });
  }

  #unpair(reason = 'unpaired by the gateway; returning to Hello'): void {
    forgetSession(this.#o.kv);
    this.#session = undefined;
    this.#upCounter = undefined;
    this.state = AgentState.unpaired;
    this.#announcePaired = false;
    if (this.#confirmTimer >= 0) this.#o.timers.clear(this.#confirmTimer);
    this.#confirmTimer = -1;
    this.#o.logger?.log('warn', reason);
    this.#emit('unpaired');
    this.#links.restart(this.#transportOptions());
  }

  // ------------------------------------------------------------ frames

  #sendBody(body: UpBody): boolean {
    if (!this.#session || !this.#upCounter) return false;
    if (!this.#links.active) return false;
    const bytes = encodeBody(body, MAX_BODY_BYTES + 100);
    const frame = sealFrame(bytes, this.#upCounter.take(), randomBytes(8), this.#session.ks, Direction.up);
    const ok = this.#links.publish(topics.up(this.#prefix, this.identity.deviceId), frame);
    if (ok) this.counters.framesSent++;
    return ok;
  }

  #onDownFrame(payload: Uint8Array): void {
    const s = this.#session;
    if (!s) return;
    const f = parseFrame(payload);
    if (typeof f === 'string' || !this.#downWindow.check(f.counter)) {
      this.counters.framesDropped++;
      return;
    }
    const plain = openBox(f, s.ks, Direction.down);
    if (!plain) {
      this.counters.framesDropped++;
      return;
    }
    let body: DownBody;
    try {
      body = decodeBody(plain, DOWNLINK_TYPES) as DownBody;
    } catch (e) {
      if (!(e instanceof BodyError)) throw e;
      this.counters.framesDropped++;
      this.#o.logger?.log('warn', `dropped a downlink frame: ${e.message}`);
      return;
    }
    this.#downWindow.accept(f.counter);
    saveDownWindow(this.#o.kv, this.#downWindow.highest, this.#downWindow.bits);
    this.counters.downlinks++;
    this.#announcePaired = false; // the gateway has heard us
    if (!s.confirmed) {
      confirmSession(this.#o.kv, s);
      if (this.#confirmTimer >= 0) this.#o.timers.clear(this.#confirmTimer);
      this.#confirmTimer = -1;
    }
    this.#onDownBody(body, f.counter);
    this.#pump();
  }

  #onDownBody(body: DownBody, counter: number): void {
    switch (body.type) {
      case Body.ack:
        this.#onAck(body.seq);
        return;
      case Body.time:
        this.#pairedUnanswered = false; // the gateway answers `paired` with the time
        this.#setClock(body.time);
        return;
      case Body.unpair:
        this.#unpair();
        return;
      case Body.config:
        for (const key of Object.keys(body.values)) {
          const v = body.values[key];
          if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean') continue;
          // Meter keys are stored apart and never logged (meter/keys.ts); a wrong one is refused.
          const wrong = checkMeterConfig(key, String(v));
          if (wrong) this.#o.logger?.log('warn', `config ${key} from the gateway refused: ${wrong}`);
          else if (isMeterSecret(key)) setMeterSecret(this.#o.kv, key, String(v));
          else this.#o.kv.set('cfg.' + key, utf8Encode(String(v)));
        }
        this.#downAck(counter);
        return;
      case Body.drEvent:
        this.dr.apply(body);
        this.#downAck(counter);
        return;
      case Body.tariff:
        this.#addTariff(body.price, body.from, body.until);
        this.#tariffCheck();
        this.#downAck(counter);
        return;
      case Body.guestOffer:
      case Body.guestChunk:
      case Body.guestRemove: {
        const g = this.#guests;
        let ack: GuestAck | undefined;
        if (!g) ack = { type: Body.guestAck, cid: body.type === Body.guestRemove ? new Uint8Array(0) : body.cid, state: 'rejected', reason: 'this meter runs no guests' };
        else if (body.type === Body.guestOffer) ack = g.offer(body);
        else if (body.type === Body.guestChunk) ack = g.chunk(body);
        else ack = g.remove(body);
        if (ack) this.#sendBody(ack);
        this.#downAck(counter);
        return;
      }
      case Body.fwOffer:
      case Body.fwCancel: {
        const u = this.#updates;
        if (!u) {
          if (body.type === Body.fwOffer) {
            this.#sendBody({ type: Body.fwStatus, cid: new Uint8Array(0), state: 'failed', offset: 0, want: 0, version: this.#o.firmware, reason: 'this meter cannot update its firmware over the air' });
          }
        } else if (body.type === Body.fwOffer) u.offer(body);
        else u.cancel(body);
        this.#downAck(counter);
        return;
      }
      case Body.fwChunk:
        // Not kept by the gateway (the meter asks again for what it lacks), so not down-acked.
        this.#updates?.chunk(body);
        return;
      case Body.jobResult: {
        const j = this.#jobs.get(body.job);
        if (!j) return;
        j.got++;
        if (body.final) j.last = body.index;
        if (j.last >= 0 && j.got >= j.last + 1) this.#jobs.delete(body.job);
        j.cb({ index: body.index, text: body.text, final: body.final, ...(body.error !== undefined ? { error: body.error } : {}) });
        return;
      }
    }
  }

  #sayPaired(): void {
    this.#sendBody({ type: Body.paired, firmware: this.#o.firmware, model: this.#o.model });
  }

  #downAck(counter: number): void {
    this.#sendBody({ type: Body.downAck, counter });
  }

  #setClock(unixSeconds: number): void {
    const was = this.#clockValid;
    const named = unixSeconds * 1000;
    const now = this.#o.clock.now();
    // A time body names the whole second it was sent in and arrives a moment later. A valid clock that reads
    // within that second (or the next, for transit) is as good as the body can tell; setting it to the
    // second's start would put the meter up to a second behind, and DR events start by this clock.
    // Otherwise the middle of the named second is the best guess.
    if (!(was && now >= named && now < named + 2000)) this.#o.clock.set?.(named + 500);
    this.#clockValid = true;
    if (!was) this.recordEvent('clock-set');
  }

  #onAck(seq: number): void {
    if (seq <= this.#ackedSeq) return;
    const stats = this.#o.log.stats();
    if (seq > stats.newestSeq) {
      // An ack beyond anything we have written would trim unsent records: never trust it.
      this.#o.logger?.log('error', `gateway acked seq ${seq} beyond newest ${stats.newestSeq}; ignored`);
      return;
    }
    this.#o.log.ack(seq);
    this.#ackedSeq = seq;
    if (this.#sentSeq < seq) this.#sentSeq = seq;
    const covered = this.#inFlight.findIndex((last) => last > seq);
    this.#inFlight.splice(0, covered < 0 ? this.#inFlight.length : covered);
    this.#lastProgress = this.#o.clock.monotonic();
    this.counters.acks++;
    this.#emit('ack', { seq });
    this.#updates?.onAck(seq);
  }

  // ------------------------------------------------------------ sending the backlog

  /** Sends what is ready now, within this tick's budget. */
  #pump(): void {
    if (this.state !== AgentState.paired || !this.#links.active || this.#announcePaired) return;
    for (let frames = 0; frames < FRAMES_PER_TICK && this.#inFlight.length < SEND_WINDOW; frames++) {
      const entries = this.#o.log.read(this.#sentSeq, RECORDS_PER_FRAME);
      if (!entries.length) return;
      const [body, last] = this.#nextBody(entries);
      if (!this.#sendBody(body)) return;
      if (this.#sentSeq === this.#ackedSeq) this.#lastProgress = this.#o.clock.monotonic();
      this.#sentSeq = last;
      this.#inFlight.push(last);
    }
  }

  /** Sends everything unacked again, from the oldest record (a new connection, or no ack for too long). */
  #sendAgain(): void {
    this.#sentSeq = this.#ackedSeq;
    this.#inFlight.length = 0;
  }

  /** The body for the first entries: a run of consecutive readings, or one event, or one gap. */
  #nextBody(entries: LogEntry[]): [UpBody, number] {
    const e = entries[0];
    if (e.kind === 2) {
      const b: UpBody = { type: Body.event, seq: e.seq, t: e.t, kind: e.event };
      if (e.data) b.data = e.data;
      return [b, e.seq];
    }
    if (e.kind === 7) return [{ type: Body.gap, first: e.seq, last: e.last, reason: e.reason }, e.last];
    const records: ReadingRecord[] = [];
    let last = e.seq;
    let bytes = 8;
    for (const r of entries) {
      if (r.kind !== 1 || r.seq !== e.seq + records.length) break;
      const size = 3 + 9 + 2 + 9; // worst case per record
      if (bytes + size > MAX_BODY_BYTES) break;
      bytes += size;
      records.push([r.t, r.channel, r.value]);
      last = r.seq;
    }
    return [{ type: Body.readings, first: e.seq, records }, last];
  }

  /** Keeps a tariff by its window: one for the same window replaces it; expired ones go first. */
  #addTariff(price: number, from: number, until: number): void {
    const now = this.#unixSeconds();
    const list = this.#tariffs.filter((x) => !(x.from === from && x.until === until) && !(now > 0 && x.until !== 0 && x.until <= now));
    list.push({ price, from, until });
    list.sort((a, b) => a.from - b.from);
    while (list.length > MAX_TARIFFS) list.shift();
    this.#tariffs = list;
    this.#o.kv.set('tariffs', encodeCbor(list.map((x) => [x.price, x.from, x.until])));
  }

  /** The tariff covering now: the one that started last among those whose window holds now. */
  currentTariff(): { price: number; from: number; until: number } | undefined {
    const now = this.#unixSeconds();
    if (now <= 0) return undefined;
    let best: { price: number; from: number; until: number } | undefined;
    for (const x of this.#tariffs) if (now >= x.from && (x.until === 0 || now < x.until) && (!best || x.from >= best.from)) best = x;
    return best;
  }

  /** Grid signal 1: the price per kWh in currency units while a tariff covers now, NaN otherwise. */
  #tariffCheck(): void {
    const g = this.#guests;
    if (!g) return;
    const tf = this.currentTariff();
    g.setSignal(Signal.price, tf ? tf.price / 100000 : NaN);
  }

  #tick(): void {
    if (++this.#ticks % 4 === 0) this.#tariffCheck();
    if (this.state !== AgentState.paired) return;
    const now = this.#o.clock.monotonic();
    if (this.#sentSeq > this.#ackedSeq && now - this.#lastProgress > UNHEALTHY_AFTER_MS) {
      this.#links.reportUnhealthy(`no ack for ${Math.round((now - this.#lastProgress) / 1000)} s`);
    }
    if (this.#sentSeq > this.#ackedSeq && now - this.#lastProgress > RESEND_AFTER_MS) {
      // No ack covered what we sent: send it again from the oldest unacked record.
      this.counters.resends++;
      this.#sendAgain();
      this.#lastProgress = now;
    }
    this.#pump();
  }

  #sendStatus(): void {
    if (this.state !== AgentState.paired) return;
    const s = this.#o.log.stats();
    this.#sendBody({
      type: Body.status,
      t: this.#unixSeconds(),
      uptime: Math.floor((this.#o.clock.monotonic() - this.#startedAt) / 1000),
      buffered: s.buffered,
      dropped: s.dropped,
      heap: this.#o.heapUsed?.() ?? 0,
      guests: this.#guests?.statusEntries() ?? [],
      link: this.#links.active?.name ?? '',
    });
  }
}

