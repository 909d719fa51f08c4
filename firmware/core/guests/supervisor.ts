// The guest supervisor (GUESTS.md "Imports", "Supervision", "Deployment"): runs guests over the
// GuestEngine port with capability-checked imports, a fuel budget per call and a memory cap; isolates
// their faults (restart with exponential backoff, quarantine after 5 faults in an hour); stands the
// relay interlocks between them and the hardware; and deploys them by CID from guest-offer /
// guest-chunk / guest-remove bodies, checking the hash before it swaps, so that on any failure the old
// guest keeps running.

import { equal as equalBytes, utf8Decode } from '../bytes.js';
import { decode, encode, type CborValue } from '../cbor.js';
import type { Interlocks } from '../control/relays.js';
import { RelayResult } from '../control/relays.js';
import type { Clock, GuestEngine, GuestImport, GuestInstance, KeyValue, Logger, Timers } from '../ports.js';
import { TrapKind } from '../ports.js';
import type { GuestAck, GuestChunk, GuestOffer, GuestRemove } from '../wire/bodies.js';
import { cidMatches, cidToText, guestCid as cidOf, isGuestCid } from './cid.js';
import { channelGranted, manifestToMap, parseManifest, relayGranted, signalGranted, type GuestManifest, type Grants } from './manifest.js';
import { GUEST_MAX_BYTES, validateGuest } from './validate.js';

type TextMap = { [key: string]: CborValue };

/** Guest states as they appear in `status()` and the status body (WIRE.md body 3 field 6). */
export const GuestState = {
  running: 'running',
  backoff: 'backoff',
  quarantined: 'quarantined',
  stopped: 'stopped',
} as const;
export type GuestStateValue = (typeof GuestState)[keyof typeof GuestState];

export const BACKOFF_FIRST_MS = 5_000;
export const BACKOFF_MAX_MS = 10 * 60_000;
export const QUARANTINE_FAULTS = 5;
const HOUR_MS = 3_600_000;
/** A guest that ran this long since its last (re)start without a fault starts its backoff afresh. */
const CLEAN_RUN_MS = HOUR_MS;
export const EMIT_EVERY_MS = 60_000;
export const EMIT_KINDS = 100;
export const LOG_MAX_BYTES = 120;
/** Log lines kept per call; more are counted and dropped. */
const LOG_LINES_PER_CALL = 4;
const CHANNELS = 64;
const SIGNALS = 16;
const CHUNK_MAX = 1024;
const PENDING_MAX = 2;
const NO_ARGS: number[] = [];

export interface GuestSupervisorOptions {
  engine: GuestEngine;
  clock: Clock;
  timers: Timers;
  /** Persists deployed guests and their kv slots. */
  kv: KeyValue;
  interlocks: Interlocks;
  /** Records to log and send upstream: guest-fault, guest-quarantine and guest.<name>.<kind>. */
  onEvent?: (kind: string, data: TextMap) => void;
  /** guest-acks that do not answer a downlink body (quarantine), to send upstream. */
  onAck?: (ack: GuestAck) => void;
  /** Every `relay` import call that reached the interlocks (for tools and tests). */
  onRelayRequest?: (guest: string, id: number, on: boolean, result: number) => void;
  /** Each guest log line, after cutting and cleaning (also written to `logger`). */
  onLog?: (guest: string, text: string) => void;
  logger?: Logger;
  /** Local hour 0–23 and weekday 0 Monday … 6 Sunday for a unix ms (config `tz`); default UTC. */
  localHour?: (unixMs: number) => number;
  weekday?: (unixMs: number) => number;
  /** Size budget for a guest (default 4096). */
  maxBytes?: number;
  /** kv slots are written to flash at most this often per guest, ms (default 60 000; 0 = every set). */
  kvFlushMs?: number;
}

export interface GuestStatus {
  name: string;
  version: string;
  cid: Uint8Array;
  cidText: string;
  state: GuestStateValue;
  /** Faults in the last hour (5 quarantine it). */
  faults: number;
  faultsTotal: number;
  /** tick() calls that returned non-zero. */
  softFaults: number;
  lastFault: string | undefined;
  /** Import calls the manifest did not grant, and the last one. */
  denied: number;
  lastDenied: string | undefined;
  ticks: number;
  /** Fuel budget per call, and what the last and the most expensive call used. */
  fuelPerCall: number;
  fuelLast: number;
  fuelMax: number;
  memoryBytes: number;
  /** Monotonic ms when a guest in backoff restarts. */
  restartAt: number | undefined;
}

export type StartResult = { ok: true } | { ok: false; reason: string };

const DENY_KINDS = ['channel', 'signal', 'relay', 'emit', 'kv_get', 'kv_set'];
const D_CHANNEL = 0;
const D_SIGNAL = 1;
const D_RELAY = 2;
const D_EMIT = 3;
const D_KVGET = 4;
const D_KVSET = 5;

/** A guest's persistent slots (`kv:N`), shared by the versions of one guest name. */
class KvSlots {
  values: Float64Array;
  dirty = false;
  lastWrite = -Infinity;
  timer = -1;
  constructor(readonly key: string, slots: number, stored: Uint8Array | undefined) {
    this.values = new Float64Array(slots).fill(NaN);
    if (stored) {
      const view = new DataView(stored.buffer, stored.byteOffset, stored.byteLength);
      const n = Math.min(slots, stored.byteLength >> 3);
      for (let i = 0; i < n; i++) this.values[i] = view.getFloat64(i * 8, true);
    }
  }
  resize(slots: number): void {
    if (slots === this.values.length) return;
    const next = new Float64Array(slots).fill(NaN);
    next.set(this.values.subarray(0, Math.min(slots, this.values.length)));
    this.values = next;
    this.dirty = true;
  }
  bytes(): Uint8Array {
    const out = new Uint8Array(this.values.length * 8);
    const view = new DataView(out.buffer);
    for (let i = 0; i < this.values.length; i++) view.setFloat64(i * 8, this.values[i], true);
    return out;
  }
}

/** One loaded version of a guest. */
class Guest {
  instance: GuestInstance | undefined = undefined;
  state: GuestStateValue = GuestState.stopped;
  hasOnSignal = false;
  tickTimer = -1;
  restartTimer = -1;
  restartAt: number | undefined = undefined;
  faultTimes: number[] = [];
  faultsTotal = 0;
  streak = 0;
  startedAt = 0;
  softFaults = 0;
  lastFault: string | undefined = undefined;
  denied = 0;
  deniedKind = -1;
  deniedArg = 0;
  ticks = 0;
  fuelLast = 0;
  fuelMax = 0;
  logsThisCall = 0;
  logsDropped = 0;
  emitLast = new Float64Array(EMIT_KINDS).fill(-Infinity);
  emitKinds: string[] = [];
  imports: Record<string, GuestImport> = {};
  constructor(readonly name: string, readonly manifest: GuestManifest, readonly grants: Grants,
    readonly wasm: Uint8Array, readonly cid: Uint8Array, readonly kv: KvSlots) {}
}

interface Transfer {
  name: string;
  cid: Uint8Array;
  manifest: GuestManifest;
  buffer: Uint8Array;
  /** One byte per received byte: chunks may repeat or overlap. */
  have: Uint8Array;
  received: number;
}

const K_LIST = 'guests';
const kWasm = (name: string) => `guest.${name}.wasm`;
const kManifest = (name: string) => `guest.${name}.man`;
const kSlots = (name: string) => `guest.${name}.kv`;

function sameNumber(a: number, b: number): boolean {
  return a === b || (a !== a && b !== b);
}

/** value × 1000 as an integer, rounded half to even (WIRE.md: emitted values travel in milli-units). */
export function toMilli(value: number): number {
  const x = value * 1000;
  let r = Math.round(x);
  if (Math.abs(x - Math.trunc(x)) === 0.5) r = 2 * Math.round(x / 2);
  if (r > Number.MAX_SAFE_INTEGER) return Number.MAX_SAFE_INTEGER;
  if (r < -Number.MAX_SAFE_INTEGER) return -Number.MAX_SAFE_INTEGER;
  return r === 0 ? 0 : r; // no -0 on the wire
}

/** A log line as the console shows it: at most 120 bytes, UTF-8 cut on a boundary, no control characters. */
export function cleanLogLine(bytes: Uint8Array): string {
  let end = Math.min(bytes.length, LOG_MAX_BYTES);
  let text = utf8Decode(bytes, 0, end);
  // A cut inside a multi-byte character: drop the partial character.
  for (let k = 0; text === undefined && k < 3 && end > 0; k++) text = utf8Decode(bytes, 0, --end);
  if (text === undefined) {
    text = '';
    for (let i = 0; i < Math.min(bytes.length, LOG_MAX_BYTES); i++) text += bytes[i] < 0x80 ? String.fromCharCode(bytes[i]) : '?';
  }
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x20 || (c >= 0x7f && c <= 0x9f) || c === 0x2028 || c === 0x2029) continue;
    out += text[i];
  }
  return out;
}

function utcHour(ms: number): number {
  return Math.floor(ms / 3_600_000) % 24;
}

function utcWeekday(ms: number): number {
  // 1970-01-01 was a Thursday (3 with Monday = 0).
  return (Math.floor(ms / 86_400_000) + 3) % 7;
}

function trapText(e: unknown): string {
  const kind = (e as { kind?: unknown }).kind;
  const message = e instanceof Error ? e.message : String(e);
  switch (kind) {
    case TrapKind.fuel: return `fuel: ${message}`;
    case TrapKind.memory: return `memory: ${message}`;
    default: return `trap: ${message}`;
  }
}

export class GuestSupervisor {
  #o: GuestSupervisorOptions;
  #guests = new Map<string, Guest>();
  #slots = new Map<string, KvSlots>();
  #pending: Transfer[] = [];
  #channels = new Float64Array(CHANNELS).fill(NaN);
  #signals = new Float64Array(SIGNALS).fill(NaN);
  #maxBytes: number;
  #kvFlushMs: number;
  /** Chunks that matched no offer (after a reboot mid-transfer, or a stray resend). */
  strayChunks = 0;

  constructor(options: GuestSupervisorOptions) {
    this.#o = options;
    this.#maxBytes = options.maxBytes ?? GUEST_MAX_BYTES;
    this.#kvFlushMs = options.kvFlushMs ?? 60_000;
  }

  // ------------------------------------------------------------ inputs from the agent

  /** The latest value of a meter channel (WIRE.md channels, integer units). */
  setChannel(ch: number, value: number): void {
    if (ch >= 0 && ch < CHANNELS) this.#channels[ch] = value;
  }

  /** A grid signal (1 price per kWh, 2 DR level, 3 import limit W; NaN = none). Calls on_signal on a change. */
  setSignal(id: number, value: number): void {
    if (id < 0 || id >= SIGNALS || sameNumber(this.#signals[id], value)) return;
    this.#signals[id] = value;
    for (const g of this.#guests.values()) {
      if (g.state !== GuestState.running || !g.hasOnSignal || !signalGranted(g.grants, id)) continue;
      this.#call(g, 'on_signal', [id, value]);
    }
  }

  // ------------------------------------------------------------ lifecycle

  /** Loads the guests deployed before a reboot; returns their names. Failures follow the fault path. */
  restore(): string[] {
    const list = this.#readList();
    const names: string[] = [];
    for (const [name, saved] of list) {
      const wasm = this.#o.kv.get(kWasm(name));
      const man = this.#o.kv.get(kManifest(name));
      if (!wasm || !man) continue;
      let manifest: unknown;
      try {
        manifest = decode(man);
      } catch {
        continue;
      }
      const v = validateGuest(wasm, manifest, { maxBytes: this.#maxBytes });
      if (!v.ok) {
        this.#o.logger?.log('error', `guest ${name}: stored module no longer valid: ${v.reason}`);
        continue;
      }
      const mr = parseManifest(manifest);
      if (!mr.ok) continue;
      const g = this.#newGuest(mr.manifest, mr.grants, wasm, cidOf(wasm));
      this.#guests.set(name, g);
      names.push(name);
      // A stopped or quarantined guest stays so across reboots, until a technician or a new deployment.
      if (saved === GuestState.stopped || saved === GuestState.quarantined) {
        g.state = saved;
        continue;
      }
      this.#launch(g);
    }
    return names;
  }

  /**
   * Installs a guest directly (tools, tests): the same checks and swap as a completed deployment.
   * Returns the guest-ack it would send.
   */
  install(wasm: Uint8Array, manifest: unknown): GuestAck {
    const cid = cidOf(wasm);
    const mr = parseManifest(manifest);
    if (!mr.ok) return rejected(cid, mr.reason);
    return this.#deploy(cid, wasm, mr.manifest, mr.grants);
  }

  /** Starts a stopped, backing-off or quarantined guest now (technician), forgetting its faults. */
  start(name: string): StartResult {
    const g = this.#guests.get(name);
    if (!g) return { ok: false, reason: `no guest named ${name}` };
    if (g.state === GuestState.running) return { ok: true };
    this.#cancelRestart(g);
    g.faultTimes.length = 0;
    g.streak = 0;
    const conflict = this.#conflict(g.name, g.grants);
    if (conflict) return { ok: false, reason: conflict };
    const ok = this.#launch(g);
    this.#saveList();
    if (!ok) return { ok: false, reason: g.lastFault ?? 'init failed' };
    return { ok: true };
  }

  /** Stops a guest (technician); it stays stopped across reboots until started. */
  stop(name: string): boolean {
    const g = this.#guests.get(name);
    if (!g) return false;
    this.#halt(g);
    this.#cancelRestart(g);
    g.state = GuestState.stopped;
    this.#o.interlocks.release(name);
    this.#saveList();
    return true;
  }

  status(): GuestStatus[] {
    const out: GuestStatus[] = [];
    const now = this.#o.clock.monotonic();
    for (const g of this.#guests.values()) {
      out.push({
        name: g.name, version: g.manifest.version, cid: g.cid, cidText: cidToText(g.cid), state: g.state,
        faults: this.#recentFaults(g, now), faultsTotal: g.faultsTotal, softFaults: g.softFaults, lastFault: g.lastFault,
        denied: g.denied, lastDenied: g.deniedKind < 0 ? undefined : `${DENY_KINDS[g.deniedKind]}(${g.deniedArg})`,
        ticks: g.ticks, fuelPerCall: g.manifest.fuel_per_call, fuelLast: g.fuelLast, fuelMax: g.fuelMax,
        memoryBytes: g.manifest.memory_bytes, restartAt: g.restartAt,
      });
    }
    return out;
  }

  /** The status body's guest list (WIRE.md body 3 field 6). */
  statusEntries(): [string, Uint8Array, string][] {
    const out: [string, Uint8Array, string][] = [];
    for (const g of this.#guests.values()) out.push([g.name, g.cid, g.state]);
    return out;
  }

  /** Stops every guest and flushes kv slots (shutdown). */
  dispose(): void {
    for (const g of this.#guests.values()) {
      this.#halt(g);
      this.#cancelRestart(g);
    }
    for (const s of this.#slots.values()) this.#flush(s);
  }

  // ------------------------------------------------------------ deployment (WIRE.md bodies 18–20)

  /** guest-offer: checks what can be checked before the bytes arrive. Returns an ack only when it settles the offer. */
  offer(body: GuestOffer): GuestAck | undefined {
    const cid = body.cid;
    if (!isGuestCid(cid)) return rejected(cid, 'cid is not a CIDv1 raw sha2-256 (01 55 12 20 + digest)');
    const mr = parseManifest(body.manifest);
    if (!mr.ok) return rejected(cid, mr.reason);
    if (mr.manifest.name !== body.name) {
      return rejected(cid, `offer names guest "${body.name}" but its manifest names "${mr.manifest.name}"`);
    }
    if (!Number.isInteger(body.size) || body.size < 8 || body.size > this.#maxBytes) {
      return rejected(cid, `module size ${body.size} bytes is outside 8–${this.#maxBytes} (GUESTS.md size budget)`);
    }
    const current = this.#guests.get(body.name);
    if (current && equalBytes(current.cid, cid) && current.state === GuestState.running) {
      return { type: 6, cid, state: 'running' }; // a resend of what already runs
    }
    const conflict = this.#conflict(body.name, mr.grants);
    if (conflict) return rejected(cid, conflict);
    // One transfer per guest name; a newer offer replaces an older one.
    this.#pending = this.#pending.filter((t) => t.name !== body.name && !equalBytes(t.cid, cid));
    if (this.#pending.length >= PENDING_MAX) this.#pending.shift();
    this.#pending.push({
      name: body.name, cid, manifest: mr.manifest, buffer: new Uint8Array(body.size),
      have: new Uint8Array(body.size), received: 0,
    });
    return undefined;
  }

  /** guest-chunk: stores the bytes; when all are in, checks the hash, validates and swaps. */
  chunk(body: GuestChunk): GuestAck | undefined {
    const i = this.#pending.findIndex((t) => equalBytes(t.cid, body.cid));
    if (i < 0) {
      this.strayChunks++;
      return undefined;
    }
    const t = this.#pending[i];
    const n = body.bytes.length;
    if (n > CHUNK_MAX || !Number.isInteger(body.offset) || body.offset < 0 || body.offset + n > t.buffer.length) {
      this.#pending.splice(i, 1);
      return rejected(t.cid, `chunk of ${n} bytes at offset ${body.offset} does not fit the offered size ${t.buffer.length} (chunks are at most ${CHUNK_MAX})`);
    }
    t.buffer.set(body.bytes, body.offset);
    for (let k = body.offset; k < body.offset + n; k++) {
      if (!t.have[k]) {
        t.have[k] = 1;
        t.received++;
      }
    }
    if (t.received < t.buffer.length) return undefined;
    this.#pending.splice(i, 1);
    if (!cidMatches(t.cid, t.buffer)) {
      return rejected(t.cid, `hash mismatch: the received ${t.buffer.length} bytes hash to ${cidToText(cidOf(t.buffer))}, not the offered ${cidToText(t.cid)}; the running guest is unchanged`);
    }
    const mr = parseManifest(manifestToMap(t.manifest));
    if (!mr.ok) return rejected(t.cid, mr.reason);
    return this.#deploy(t.cid, t.buffer, mr.manifest, mr.grants);
  }

  /** guest-remove: stops the guest, releases its relays and forgets it and its kv slots. */
  remove(body: GuestRemove): GuestAck {
    this.#pending = this.#pending.filter((t) => t.name !== body.name);
    const g = this.#guests.get(body.name);
    if (!g) return { type: 6, cid: new Uint8Array(0), state: 'removed', reason: `no guest named ${body.name}` };
    this.#halt(g);
    this.#cancelRestart(g);
    this.#o.interlocks.release(g.name);
    this.#guests.delete(g.name);
    const slots = this.#slots.get(g.name);
    if (slots && slots.timer >= 0) this.#o.timers.clear(slots.timer);
    this.#slots.delete(g.name);
    this.#o.kv.delete(kWasm(g.name));
    this.#o.kv.delete(kManifest(g.name));
    this.#o.kv.delete(kSlots(g.name));
    this.#saveList();
    return { type: 6, cid: g.cid, state: 'removed' };
  }

  // ------------------------------------------------------------ internals

  /** Validates, loads and initialises a new version; swaps it in only when all of that worked. */
  #deploy(cid: Uint8Array, wasm: Uint8Array, manifest: GuestManifest, grants: Grants): GuestAck {
    const v = validateGuest(wasm, manifest, { maxBytes: this.#maxBytes });
    if (!v.ok) return rejected(cid, v.reason);
    const conflict = this.#conflict(manifest.name, grants);
    if (conflict) return rejected(cid, conflict);
    const old = this.#guests.get(manifest.name);
    const existing = this.#slots.get(manifest.name);
    if (existing) this.#flush(existing);
    const kvBefore = existing?.values.slice();
    const g = this.#newGuest(manifest, grants, wasm, cid);
    // The new version may switch its relays from init: it holds them under the same name as the old one.
    for (const id of grants.relays) this.#o.interlocks.claim(id, g.name);
    const why = this.#load(g);
    if (why !== undefined) {
      // Leave everything as the old version had it: its relays, its kv slots.
      this.#o.interlocks.release(g.name);
      if (old && old.state !== GuestState.stopped && old.state !== GuestState.quarantined) this.#claim(old);
      if (g.kv.timer >= 0) this.#o.timers.clear(g.kv.timer);
      g.kv.timer = -1;
      if (kvBefore) {
        g.kv.values = kvBefore;
        g.kv.dirty = true;
        this.#flush(g.kv);
      } else {
        this.#slots.delete(g.name);
        this.#o.kv.delete(kSlots(g.name));
      }
      return rejected(cid, why);
    }
    if (old) {
      this.#halt(old);
      this.#cancelRestart(old);
      this.#o.interlocks.release(old.name);
    }
    this.#claim(g);
    this.#guests.set(g.name, g);
    this.#startTicking(g);
    this.#o.kv.set(kWasm(g.name), wasm);
    this.#o.kv.set(kManifest(g.name), encode(manifestToMap(manifest)));
    this.#saveList();
    return { type: 6, cid, state: 'running' };
  }

  #newGuest(manifest: GuestManifest, grants: Grants, wasm: Uint8Array, cid: Uint8Array): Guest {
    let slots = this.#slots.get(manifest.name);
    if (!slots) {
      slots = new KvSlots(kSlots(manifest.name), grants.kvSlots, this.#o.kv.get(kSlots(manifest.name)));
      this.#slots.set(manifest.name, slots);
    } else {
      this.#flush(slots);
      slots.resize(grants.kvSlots);
    }
    const g = new Guest(manifest.name, manifest, grants, wasm, cid, slots);
    g.imports = this.#bindImports(g);
    return g;
  }

  /** Instantiates and runs init; the reason when that failed (the instance is then disposed). */
  #load(g: Guest): string | undefined {
    let instance: GuestInstance;
    try {
      instance = this.#o.engine.instantiate(g.wasm, g.imports, { memoryBytes: g.manifest.memory_bytes, fuel: g.manifest.fuel_per_call });
    } catch (e) {
      return `load: ${trapText(e)}`;
    }
    g.instance = instance;
    g.hasOnSignal = instance.hasExport('on_signal');
    let r: number | undefined;
    try {
      g.logsThisCall = 0;
      r = instance.call('init', NO_ARGS, g.manifest.fuel_per_call);
      this.#fuel(g, instance.fuelUsed);
    } catch (e) {
      this.#fuel(g, instance.fuelUsed);
      instance.dispose();
      g.instance = undefined;
      return `init: ${trapText(e)}`;
    }
    if (r !== 0) {
      instance.dispose();
      g.instance = undefined;
      return `init returned ${r}: the guest refused to start`;
    }
    g.state = GuestState.running;
    g.startedAt = this.#o.clock.monotonic();
    return undefined;
  }

  /** (Re)starts a guest that is already in the table; a failure goes down the fault path. */
  #launch(g: Guest): boolean {
    const conflict = this.#conflict(g.name, g.grants);
    if (conflict) {
      this.#fault(g, conflict);
      return false;
    }
    this.#claim(g);
    const why = this.#load(g);
    if (why !== undefined) {
      this.#fault(g, why);
      return false;
    }
    this.#startTicking(g);
    return true;
  }

  #startTicking(g: Guest): void {
    if (g.tickTimer >= 0) this.#o.timers.clear(g.tickTimer);
    g.tickTimer = this.#o.timers.repeat(() => this.#tick(g), g.manifest.period_s * 1000);
  }

  #tick(g: Guest): void {
    if (g.state !== GuestState.running) return;
    g.ticks++;
    const r = this.#call(g, 'tick', NO_ARGS);
    if (r !== undefined && r !== 0) g.softFaults++;
  }

  /** Calls an export under the fuel budget; a trap becomes a fault (and undefined). */
  #call(g: Guest, name: string, args: number[]): number | undefined {
    const instance = g.instance;
    if (!instance) return undefined;
    g.logsThisCall = 0;
    try {
      const r = instance.call(name, args, g.manifest.fuel_per_call);
      this.#fuel(g, instance.fuelUsed);
      return r ?? 0;
    } catch (e) {
      this.#fuel(g, instance.fuelUsed);
      this.#fault(g, `${name}: ${trapText(e)}`);
      return undefined;
    }
  }

  #fuel(g: Guest, used: number): void {
    g.fuelLast = used;
    if (used > g.fuelMax) g.fuelMax = used;
  }

  /** A trap, fuel exhaustion, memory breach or failed init: stop, report, back off or quarantine. */
  #fault(g: Guest, why: string): void {
    const now = this.#o.clock.monotonic();
    this.#halt(g);
    g.faultsTotal++;
    g.lastFault = why;
    if (g.state === GuestState.running && now - g.startedAt >= CLEAN_RUN_MS) g.streak = 0;
    g.streak++;
    // Keep only the faults of the last hour (at most QUARANTINE_FAULTS of them).
    g.faultTimes.push(now);
    while (g.faultTimes.length > QUARANTINE_FAULTS || (g.faultTimes.length && now - g.faultTimes[0] >= HOUR_MS)) g.faultTimes.shift();
    this.#o.logger?.log('warn', `guest ${g.name}: ${why}`);
    this.#o.onEvent?.('guest-fault', { name: g.name, why });
    if (g.faultTimes.length >= QUARANTINE_FAULTS) {
      g.state = GuestState.quarantined;
      this.#o.interlocks.release(g.name);
      const reason = `quarantined after ${QUARANTINE_FAULTS} faults in an hour; last: ${why}`;
      this.#o.logger?.log('error', `guest ${g.name}: ${reason}`);
      this.#o.onEvent?.('guest-quarantine', { name: g.name, why });
      this.#o.onAck?.({ type: 6, cid: g.cid, state: 'rejected', reason });
      this.#saveList();
      return;
    }
    g.state = GuestState.backoff;
    const delay = Math.min(BACKOFF_FIRST_MS * 2 ** (g.streak - 1), BACKOFF_MAX_MS);
    g.restartAt = now + delay;
    g.restartTimer = this.#o.timers.set(() => {
      g.restartTimer = -1;
      g.restartAt = undefined;
      if (g.state !== GuestState.backoff || this.#guests.get(g.name) !== g) return;
      this.#launch(g);
    }, delay);
  }

  #recentFaults(g: Guest, now: number): number {
    let n = 0;
    for (const t of g.faultTimes) if (now - t < HOUR_MS) n++;
    return n;
  }

  /** Disposes the instance and stops ticking (state is the caller's business). */
  #halt(g: Guest): void {
    if (g.tickTimer >= 0) {
      this.#o.timers.clear(g.tickTimer);
      g.tickTimer = -1;
    }
    if (g.instance) {
      g.instance.dispose();
      g.instance = undefined;
    }
    this.#flush(g.kv);
  }

  #cancelRestart(g: Guest): void {
    if (g.restartTimer >= 0) {
      this.#o.timers.clear(g.restartTimer);
      g.restartTimer = -1;
    }
    g.restartAt = undefined;
  }

  /** Why `name` may not hold the relays `grants` names, or undefined. */
  #conflict(name: string, grants: Grants): string | undefined {
    for (const id of grants.relays) {
      if (!this.#o.interlocks.has(id)) return `relay ${id} does not exist on this meter`;
      const holder = this.#o.interlocks.holder(id);
      if (holder !== undefined && holder !== name) {
        return `relay ${id} is held by running guest ${holder}; at most one guest holds a relay`;
      }
    }
    return undefined;
  }

  #claim(g: Guest): boolean {
    let ok = true;
    for (const id of g.grants.relays) if (!this.#o.interlocks.claim(id, g.name)) ok = false;
    return ok;
  }

  #deny(g: Guest, kind: number, arg: number): void {
    g.denied++;
    g.deniedKind = kind;
    g.deniedArg = arg;
  }

  #flush(s: KvSlots): void {
    if (!s.dirty) return;
    s.dirty = false;
    s.lastWrite = this.#o.clock.monotonic();
    if (s.timer >= 0) {
      this.#o.timers.clear(s.timer);
      s.timer = -1;
    }
    this.#o.kv.set(s.key, s.bytes());
  }

  #kvChanged(s: KvSlots): void {
    s.dirty = true;
    const wait = s.lastWrite + this.#kvFlushMs - this.#o.clock.monotonic();
    if (wait <= 0) this.#flush(s);
    else if (s.timer < 0) s.timer = this.#o.timers.set(() => { s.timer = -1; this.#flush(s); }, wait);
  }

  /** The deployed guests and the state each was left in: [[name, state], …]. */
  #readList(): [string, string][] {
    const b = this.#o.kv.get(K_LIST);
    if (!b) return [];
    try {
      const v = decode(b);
      if (!Array.isArray(v)) return [];
      const out: [string, string][] = [];
      for (const e of v) if (Array.isArray(e) && typeof e[0] === 'string') out.push([e[0], typeof e[1] === 'string' ? e[1] : '']);
      return out;
    } catch {
      return [];
    }
  }

  #saveList(): void {
    const list: CborValue[] = [];
    for (const g of this.#guests.values()) {
      const kept = g.state === GuestState.stopped || g.state === GuestState.quarantined ? g.state : GuestState.running;
      list.push([g.name, kept]);
    }
    this.#o.kv.set(K_LIST, encode(list));
  }

  /** The `gridlet` imports of one guest version (GUESTS.md "Imports"), capability-checked. */
  #bindImports(g: Guest): Record<string, GuestImport> {
    const o = this.#o;
    const clock = o.clock;
    const localHour = o.localHour ?? utcHour;
    const weekday = o.weekday ?? utcWeekday;
    const channels = this.#channels;
    const signals = this.#signals;
    const grants = g.grants;
    return {
      time: () => clock.now() / 1000,
      local_hour: () => {
        const t = clock.now();
        return t === t ? localHour(t) : -1;
      },
      weekday: () => {
        const t = clock.now();
        return t === t ? weekday(t) : -1;
      },
      channel: (ch: number) => {
        if (!channelGranted(grants, ch)) {
          this.#deny(g, D_CHANNEL, ch);
          return NaN;
        }
        return ch >= 0 && ch < CHANNELS ? channels[ch] : NaN;
      },
      signal: (id: number) => {
        if (!signalGranted(grants, id)) {
          this.#deny(g, D_SIGNAL, id);
          return NaN;
        }
        return id >= 0 && id < SIGNALS ? signals[id] : NaN;
      },
      relay: (id: number, on: number) => {
        if (!relayGranted(grants, id)) {
          this.#deny(g, D_RELAY, id);
          return RelayResult.noCapability;
        }
        const r = o.interlocks.request(id, on !== 0, g.name);
        o.onRelayRequest?.(g.name, id, on !== 0, r);
        return r;
      },
      relay_state: (id: number) => o.interlocks.state(id),
      emit: (kind: number, value: number) => {
        if (!grants.emit) {
          this.#deny(g, D_EMIT, kind);
          return -1;
        }
        if (kind < 0 || kind >= EMIT_KINDS || value !== value || value === Infinity || value === -Infinity) return -1;
        const now = clock.monotonic();
        if (now - g.emitLast[kind] < EMIT_EVERY_MS) return -3;
        g.emitLast[kind] = now;
        const k = g.emitKinds[kind] ?? (g.emitKinds[kind] = `guest.${g.name}.${kind}`);
        o.onEvent?.(k, { value: toMilli(value) });
        return 0;
      },
      log: (ptr: number, len: number) => {
        if (g.logsThisCall >= LOG_LINES_PER_CALL) {
          g.logsDropped++;
          return;
        }
        g.logsThisCall++;
        const instance = g.instance;
        if (!instance || len <= 0) return;
        // readMemory enforces the memory cap (a log from outside it is a breach like any other access).
        const text = cleanLogLine(instance.readMemory(ptr >>> 0, Math.min(len >>> 0, LOG_MAX_BYTES)));
        o.logger?.log('info', `guest ${g.name}: ${text}`);
        o.onLog?.(g.name, text);
      },
      kv_get: (slot: number) => {
        if (slot < 0 || slot >= grants.kvSlots) {
          this.#deny(g, D_KVGET, slot);
          return NaN;
        }
        return g.kv.values[slot];
      },
      kv_set: (slot: number, value: number) => {
        if (slot < 0 || slot >= grants.kvSlots) {
          this.#deny(g, D_KVSET, slot);
          return -1;
        }
        if (!sameNumber(g.kv.values[slot], value)) {
          g.kv.values[slot] = value;
          this.#kvChanged(g.kv);
        }
        return 0;
      },
    };
  }
}

function rejected(cid: Uint8Array, reason: string): GuestAck {
  return { type: 6, cid, state: 'rejected', reason };
}

