// The firmware update state machine (WIRE.md "Firmware updates"): checks a fw-offer against the release
// keys this image trusts, pulls the image in windows of fw-chunks into the inactive slot (pausing on link
// loss, resuming after a restart from the last erase unit it kept), hashes what the slot holds, marks it
// pending, restarts into it, and confirms the new image only once it has reached its gateway and had a
// record of this boot acknowledged; an image that does not confirm within its trial is given up and the
// bootloader returns to the old one. Outcomes (confirmed, rolled back, failed) go into the record log as
// `firmware` events, so the gateway gets them even across power cuts; progress travels in fw-status.
//
// Kept in the KeyValue port under "fw" (CBOR {1: phase, 2: manifest, 3: signature, 4: resume offset,
// 5: pending attempts, 6: from version}) and "fw.why" (why a trial image gave itself up).

import { equal, utf8Decode, utf8Encode } from '../bytes.js';
import { decode, encode, type CborValue } from '../cbor.js';
import { Sha256 } from '../sha256.js';
import { BootState, type Clock, type KeyValue, type Logger, type Timers, type Updater } from '../ports.js';
import { Body, type FwCancel, type FwChunk, type FwOffer, type FwStatus, type TextMap } from '../wire/bodies.js';
import { checkRelease, decodeManifest, imageCid, type ReleaseManifest } from './release.js';

/** fw-status states (WIRE.md). */
export const FwState = {
  idle: 'idle', downloading: 'downloading', verified: 'verified', rebooting: 'rebooting', confirmed: 'confirmed',
  rolledBack: 'rolled-back', failed: 'failed', cancelled: 'cancelled',
} as const;

/** Persistent phases ("fw" key). */
const Phase = { downloading: 1, verified: 2, pending: 3, trial: 4 } as const;

/** fw-chunk bytes at most (WIRE.md). */
export const FW_CHUNK_MAX = 1024;
/** Chunks asked for at once; the next window is asked for when half of this one is in. */
export const FW_WINDOW = 8;
/** A window that brings nothing for this long is asked for again. */
export const FW_STALL_MS = 10_000;
/** How long a new image has to reach its gateway and have a record acked before it gives itself up. */
export const FW_TRIAL_MS = 10 * 60_000;
/** Between the `rebooting` report and the restart, so that the report leaves. */
export const FW_REBOOT_DELAY_MS = 2_000;
/** Bytes hashed per timer turn while verifying (readings keep flowing between turns). */
const HASH_STEP = 16 * 1024;
/** The resume point is kept at most this often (and always at an erase unit). */
const KEEP_EVERY = 16 * 1024;
/** Pending marks that did not lead to a trial boot before the update is given up. */
const MAX_ATTEMPTS = 3;

export interface UpdatesOptions {
  updater: Updater;
  kv: KeyValue;
  timers: Timers;
  clock: Clock;
  logger?: Logger;
  /** Public keys of the release keys this image trusts. */
  releaseKeys: Uint8Array[];
  model: string;
  /** The running image's version (X.Y.Z). */
  firmware: string;
  /** Sends an uplink body when paired and online; false when it could not. */
  send(body: FwStatus): boolean;
  /** Appends an event record (durable: the gateway gets it even across power cuts). */
  recordEvent(kind: string, data: TextMap): void;
  /** Restarts the meter; without it an update stops at `verified`. */
  reboot?: () => void;
  trialMs?: number;
  rebootDelayMs?: number;
  stallMs?: number;
}

interface Kept {
  phase: number;
  manifest: Uint8Array;
  signature: Uint8Array;
  offset: number;
  attempts: number;
  from: string;
}

const EMPTY: Uint8Array = new Uint8Array(0);

export class Updates {
  readonly #o: UpdatesOptions;
  #kept: Kept | undefined;
  #m: ReleaseManifest | undefined;
  /** Next byte wanted (downloading). */
  #offset = 0;
  #requestedUntil = 0;
  #lastProgress = 0;
  #stallTimer = -1;
  #trialTimer = -1;
  #workTimer = -1;
  #trial = false;
  #bootSeq = 0;
  /** The last outcome, said again on each connection until one reaches the link. */
  #outcome: FwStatus | undefined;
  #started = false;
  readonly counters = { chunks: 0, strayChunks: 0, offersRefused: 0, bytes: 0 };

  constructor(o: UpdatesOptions) {
    this.#o = o;
    this.#trial = o.updater.bootState === BootState.trial;
    this.#kept = this.#load();
    if (this.#kept) {
      try {
        this.#m = decodeManifest(this.#kept.manifest);
      } catch {
        this.#forget();
      }
    }
  }

  /** What the meter is doing about firmware, for `status` on the console. */
  get state(): string {
    if (this.#trial) return `on trial (${this.#o.firmware})`;
    const k = this.#kept, m = this.#m;
    if (!k || !m) return FwState.idle;
    if (k.phase === Phase.downloading) return `downloading ${m.version} ${Math.floor((this.#offset / m.size) * 100)} %`;
    return `installing ${m.version}`;
  }

  /**
   * At boot, once the agent has appended its power-up record (`bootSeq`): finishes what a restart
   * interrupted and judges the outcome of a trial.
   */
  start(bootSeq: number): void {
    if (this.#started) return;
    this.#started = true;
    this.#bootSeq = bootSeq;
    const k = this.#kept, m = this.#m;
    if (this.#trial) {
      // The new image runs on trial: it says so in flash first, so that the old one, should this one
      // fail, knows it started.
      if (k && m && m.version === this.#o.firmware && k.phase !== Phase.trial) this.#keep({ ...k, phase: Phase.trial });
      const ms = this.#o.trialMs ?? FW_TRIAL_MS;
      this.#trialTimer = this.#o.timers.set(() => {
        this.#trialTimer = -1;
        this.#giveUp(`${this.#o.firmware} did not reach its gateway and have a record acknowledged within ${Math.round(ms / 1000)} s`);
      }, ms);
      this.#o.logger?.log('warn', `firmware ${this.#o.firmware} is on trial: it is kept once its gateway acknowledges a record, else the previous image returns in ${Math.round(ms / 1000)} s`);
      return;
    }
    if (!k || !m) return;
    if (k.phase === Phase.downloading) {
      this.#offset = k.offset;
      this.#o.logger?.log('info', `firmware ${m.version}: resuming the download at byte ${k.offset} of ${m.size}`);
      return;
    }
    // Verified, pending or on trial before this boot, and we are not that image on trial.
    if (m.version === this.#o.firmware) {
      this.#finish(FwState.confirmed, undefined); // confirmed, then cut off before the note was cleared
      return;
    }
    const why = this.#o.kv.get('fw.why');
    if (k.phase === Phase.trial || (k.phase === Phase.pending && this.#o.updater.rejected)) {
      const reason = why ? utf8Decode(why) ?? '' : k.phase === Phase.trial
        ? `${m.version} stopped before it reached its gateway (a crash, a reset or a power cut during its trial)`
        : `${m.version} did not start (the bootloader gave it up at its first boot)`;
      this.#o.logger?.log('error', `firmware ${m.version} rolled back to ${this.#o.firmware}: ${reason}`);
      this.#finish(FwState.rolledBack, reason);
      return;
    }
    if (k.attempts >= MAX_ATTEMPTS) {
      this.#finish(FwState.failed, `the bootloader did not boot ${m.version} after ${k.attempts} restarts into it`);
      return;
    }
    // Verified (or marked pending) but the restart into it never happened: check the slot again and go on.
    this.#verify();
  }

  stop(): void {
    for (const t of [this.#stallTimer, this.#trialTimer, this.#workTimer]) if (t >= 0) this.#o.timers.clear(t);
    this.#stallTimer = this.#trialTimer = this.#workTimer = -1;
  }

  /** A link came up: resume a download, or say again how the last update ended. */
  onConnect(): void {
    const said = this.#outcome !== undefined && this.#o.send(this.#outcome);
    if (said) this.#outcome = undefined;
    const k = this.#kept, m = this.#m;
    if (k && m && k.phase === Phase.downloading) {
      this.#requestedUntil = this.#offset;
      this.#request();
    } else if (!said && !this.#outcome) {
      // Otherwise say what runs (the gateway learns the version, and that this meter takes updates).
      if (k && m && !this.#trial) this.#status(k.phase === Phase.verified ? FwState.verified : FwState.rebooting, m.cid);
      else this.#status(this.#trial ? FwState.rebooting : FwState.idle, EMPTY);
    }
  }

  /** The gateway acknowledged records up to `seq`: a trial image that reached it is kept. */
  onAck(seq: number): void {
    if (!this.#trial || seq < this.#bootSeq || this.#bootSeq === 0) return;
    this.#trial = false;
    if (this.#trialTimer >= 0) this.#o.timers.clear(this.#trialTimer);
    this.#trialTimer = -1;
    this.#o.updater.confirm();
    this.#o.logger?.log('info', `firmware ${this.#o.firmware} confirmed: it reached its gateway`);
    this.#finish(FwState.confirmed, undefined);
  }

  // ------------------------------------------------------------ downlink bodies

  offer(b: FwOffer): void {
    const check = checkRelease({ manifest: b.manifest, signature: b.signature }, {
      running: this.#o.firmware, model: this.#o.model, keys: this.#o.releaseKeys, slotSize: this.#o.updater.slotSize,
    });
    if (!check.ok && (this.#trial || !this.#kept) && this.#isRunning(b)) {
      // The release this meter already runs, offered again (a resent offer whose answer was lost, or a
      // meter updated by another rollout): it is not refused. On trial it is still being installed (its
      // outcome follows once it reaches the gateway); otherwise it is confirmed.
      const cid = decodeManifest(b.manifest).cid;
      if (this.#trial) this.#status(FwState.rebooting, cid);
      else this.#report(FwState.confirmed, cid, undefined);
      return;
    }
    if (!check.ok) {
      this.counters.offersRefused++;
      let cid = EMPTY;
      try {
        cid = decodeManifest(b.manifest).cid;
      } catch {
        // the reason says what is wrong with it
      }
      this.#o.logger?.log('warn', `firmware offer refused: ${check.reason}`);
      const data: TextMap = { state: FwState.failed, version: '', running: this.#o.firmware, reason: check.reason };
      try {
        data.version = decodeManifest(b.manifest).version;
      } catch {
        // no version to name
      }
      this.#o.recordEvent('firmware', data);
      this.#report(FwState.failed, cid, check.reason);
      return;
    }
    const m = check.manifest;
    if (this.#trial) {
      this.#status(FwState.failed, m.cid, `${this.#o.firmware} is on trial; offer again once it is confirmed`);
      return;
    }
    const k = this.#kept;
    if (k && this.#m && equal(this.#m.cid, m.cid)) {
      // The same release again (a resent offer): say where we are.
      if (k.phase === Phase.downloading) {
        this.#requestedUntil = this.#offset;
        this.#request();
      } else this.#status(k.phase === Phase.verified ? FwState.verified : FwState.rebooting, m.cid);
      return;
    }
    if (k && k.phase !== Phase.downloading) {
      this.#status(FwState.failed, m.cid, `${this.#m?.version} is being installed; offer again afterwards`);
      return;
    }
    this.#stopWork();
    this.#m = m;
    this.#offset = 0;
    this.#requestedUntil = 0;
    this.#keep({ phase: Phase.downloading, manifest: b.manifest, signature: b.signature, offset: 0, attempts: 0, from: this.#o.firmware });
    this.#o.logger?.log('info', `firmware ${m.version} (${m.size} bytes) accepted; downloading`);
    this.#request();
  }

  /** Is this a correctly signed release, for this model, of the version running now? */
  #isRunning(b: FwOffer): boolean {
    try {
      if (decodeManifest(b.manifest).version !== this.#o.firmware) return false;
    } catch {
      return false;
    }
    return checkRelease({ manifest: b.manifest, signature: b.signature }, {
      running: '', model: this.#o.model, keys: this.#o.releaseKeys, slotSize: this.#o.updater.slotSize,
    }).ok;
  }

  chunk(b: FwChunk): void {
    const k = this.#kept, m = this.#m;
    if (!k || !m || k.phase !== Phase.downloading || !equal(b.cid, m.cid) || b.offset !== this.#offset) {
      this.counters.strayChunks++; // a repeat, a stray resend, or one after a lost chunk: asked for again
      return;
    }
    const n = b.bytes.length;
    if (n === 0 || n > FW_CHUNK_MAX || b.offset + n > m.size) {
      this.#fail(`chunk of ${n} bytes at offset ${b.offset} does not fit the ${m.size}-byte image (chunks are at most ${FW_CHUNK_MAX})`);
      return;
    }
    try {
      this.#o.updater.write(b.offset, b.bytes);
    } catch (e) {
      // The platform refused the bytes (ESP-IDF: not an app image, a flash error): the update ends here.
      this.#fail(`the update slot refused the bytes at offset ${b.offset}: ${(e as Error).message}`);
      return;
    }
    this.#offset += n;
    this.counters.chunks++;
    this.counters.bytes += n;
    this.#lastProgress = this.#o.clock.monotonic();
    const keepEvery = Math.max(this.#o.updater.eraseSize, Math.ceil(KEEP_EVERY / this.#o.updater.eraseSize) * this.#o.updater.eraseSize);
    if (this.#offset === m.size) {
      this.#verify();
      return;
    }
    if (this.#offset % keepEvery === 0) this.#keep({ ...k, offset: this.#offset });
    if (this.#requestedUntil - this.#offset <= (FW_WINDOW / 2) * FW_CHUNK_MAX) this.#request();
  }

  cancel(b: FwCancel): void {
    const k = this.#kept, m = this.#m;
    if (!k || !m || !equal(b.cid, m.cid)) return;
    if (k.phase >= Phase.pending) {
      this.#status(FwState.rebooting, m.cid, 'too late to cancel: the new image is marked to boot');
      return;
    }
    this.#o.logger?.log('warn', `firmware ${m.version}: download cancelled by the gateway`);
    this.#finish(FwState.cancelled, 'cancelled by the gateway');
  }

  // ------------------------------------------------------------ steps

  /** Asks for the next window of chunks. */
  #request(): void {
    const m = this.#m;
    if (!m) return;
    const from = Math.max(this.#offset, this.#requestedUntil);
    const left = Math.ceil((m.size - from) / FW_CHUNK_MAX);
    const want = Math.min(FW_WINDOW, left);
    if (want <= 0) return;
    if (this.#send({ type: Body.fwStatus, cid: m.cid, state: FwState.downloading, offset: from, want, version: this.#o.firmware })) {
      this.#requestedUntil = Math.min(m.size, from + want * FW_CHUNK_MAX);
    }
    this.#lastProgress = this.#o.clock.monotonic();
    if (this.#stallTimer < 0) {
      const stall = this.#o.stallMs ?? FW_STALL_MS;
      this.#stallTimer = this.#o.timers.repeat(() => {
        if (this.#kept?.phase !== Phase.downloading) return;
        if (this.#o.clock.monotonic() - this.#lastProgress < stall) return;
        // Nothing came: a chunk was lost, or the link was: ask again from where we are.
        this.#requestedUntil = this.#offset;
        this.#request();
      }, stall);
    }
  }

  /** Hashes what the slot holds, a step per timer turn, then marks it pending. */
  #verify(): void {
    const m = this.#m, k = this.#kept;
    if (!m || !k) return;
    this.#stopWork();
    const h = new Sha256();
    let at = 0;
    const step = () => {
      this.#workTimer = -1;
      const n = Math.min(HASH_STEP, m.size - at);
      h.update(this.#o.updater.read(at, n));
      at += n;
      if (at < m.size) {
        this.#workTimer = this.#o.timers.set(step, 0);
        return;
      }
      const cid = imageCid(EMPTY);
      cid.set(h.digest(), 4);
      if (!equal(cid, m.cid)) {
        this.#fail(`image hash mismatch: the ${m.size} bytes in the slot do not hash to the release's CID; the running image is unchanged`);
        return;
      }
      if (k.phase === Phase.downloading) {
        this.#keep({ ...k, phase: Phase.verified, offset: m.size });
        this.#status(FwState.verified, m.cid);
      }
      this.#markPending();
    };
    this.#workTimer = this.#o.timers.set(step, 0);
  }

  #markPending(): void {
    const m = this.#m, k = this.#kept;
    if (!m || !k) return;
    if (!this.#o.reboot) {
      this.#o.logger?.log('warn', `firmware ${m.version} is verified, but this platform cannot restart into it`);
      return;
    }
    this.#keep({ ...k, phase: Phase.verified, attempts: k.attempts + 1 });
    try {
      this.#o.updater.setPending(m.size);
    } catch (e) {
      this.#fail(`the platform refused the image: ${(e as Error).message}`);
      return;
    }
    this.#keep({ ...this.#kept!, phase: Phase.pending });
    this.#o.kv.delete('fw.why');
    this.#status(FwState.rebooting, m.cid);
    this.#o.logger?.log('info', `firmware ${m.version} verified and marked to boot; restarting`);
    const reboot = this.#o.reboot;
    this.#workTimer = this.#o.timers.set(() => {
      this.#workTimer = -1;
      reboot();
    }, this.#o.rebootDelayMs ?? FW_REBOOT_DELAY_MS);
  }

  /** The trial failed: note why, give the image up, restart into the old one. */
  #giveUp(reason: string): void {
    this.#o.logger?.log('error', `firmware ${this.#o.firmware} gives itself up: ${reason}`);
    this.#o.kv.set('fw.why', utf8Encode(reason));
    this.#o.updater.rollback();
    this.#trial = false;
    this.#o.reboot?.();
  }

  #fail(reason: string): void {
    this.#o.logger?.log('error', `firmware ${this.#m?.version}: ${reason}`);
    this.#finish(FwState.failed, reason);
  }

  /** An update ended: forget it, log the outcome as a record, report it. */
  #finish(state: string, reason: string | undefined): void {
    const m = this.#m, k = this.#kept;
    this.#stopWork();
    // The outcome is in the record log before the update is forgotten: a power cut between the two
    // finds the update again at the next boot and records its outcome again (the gateway keeps one).
    const data: TextMap = { state, version: m?.version ?? this.#o.firmware, running: this.#o.firmware };
    if (k?.from) data.from = k.from;
    if (reason !== undefined) data.reason = reason;
    this.#o.recordEvent('firmware', data);
    this.#forget();
    this.#report(state, m?.cid ?? EMPTY, reason);
  }

  #report(state: string, cid: Uint8Array, reason: string | undefined): void {
    const body: FwStatus = { type: Body.fwStatus, cid, state, offset: 0, want: 0, version: this.#o.firmware };
    if (reason !== undefined) body.reason = reason.length > 200 ? reason.slice(0, 199) + '…' : reason;
    if (!this.#o.send(body)) this.#outcome = body;
  }

  #status(state: string, cid: Uint8Array, reason?: string): void {
    const body: FwStatus = { type: Body.fwStatus, cid, state, offset: this.#offset, want: 0, version: this.#o.firmware };
    if (reason !== undefined) body.reason = reason;
    this.#send(body);
  }

  #send(body: FwStatus): boolean {
    return this.#o.send(body);
  }

  #stopWork(): void {
    if (this.#workTimer >= 0) this.#o.timers.clear(this.#workTimer);
    if (this.#stallTimer >= 0) this.#o.timers.clear(this.#stallTimer);
    this.#workTimer = this.#stallTimer = -1;
  }

  #keep(k: Kept): void {
    this.#kept = k;
    this.#o.kv.set('fw', encode(new Map<number, CborValue>([
      [1, k.phase], [2, k.manifest], [3, k.signature], [4, k.offset], [5, k.attempts], [6, k.from],
    ])));
  }

  #forget(): void {
    this.#kept = undefined;
    this.#m = undefined;
    this.#offset = 0;
    this.#requestedUntil = 0;
    this.#o.kv.delete('fw');
    this.#o.kv.delete('fw.why');
  }

  #load(): Kept | undefined {
    const b = this.#o.kv.get('fw');
    if (!b || !b.length) return undefined;
    try {
      const v = decode(b);
      if (!(v instanceof Map)) return undefined;
      const phase = v.get(1), manifest = v.get(2), signature = v.get(3), offset = v.get(4), attempts = v.get(5), from = v.get(6);
      if (typeof phase !== 'number' || !(manifest instanceof Uint8Array) || !(signature instanceof Uint8Array) ||
          typeof offset !== 'number' || typeof attempts !== 'number' || typeof from !== 'string') return undefined;
      return { phase, manifest, signature, offset, attempts, from };
    } catch {
      return undefined;
    }
  }
}
