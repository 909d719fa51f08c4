// The guest supervisor (GUESTS.md "Imports", "WASI", "Microworlds", "Supervision", "Deployment"): runs
// guests over the GuestEngine port with capability-checked imports, a fuel budget per call and a
// memory cap; isolates their faults (restart with exponential backoff, quarantine after 5 faults in
// an hour); stands the relay interlocks between them and the hardware; and deploys them by CID from
// guest-offer / guest-chunk / guest-remove bodies, checking the hash before it swaps, so that on any
// failure the old guest keeps running.
//
// What it supervises is a unit: a guest, or a world of several guests (world.ts) that are loaded,
// swapped, faulted, restarted and quarantined together, whose relays go to their safe state whenever
// the world stops on a fault. A guest that exports `_start` instead of init/tick is a one-shot job:
// it runs once after it is deployed (or started by a technician) and then stays `exited`.

import { equal as equalBytes, utf8Decode } from '../bytes.js';
import { decode, encode, type CborValue } from '../cbor.js';
import type { Interlocks } from '../control/relays.js';
import { RelayResult } from '../control/relays.js';
import type { Clock, GuestEngine, GuestImport, GuestInstance, GuestLinks, KeyValue, Logger, Random, Timers } from '../ports.js';
import { TrapKind } from '../ports.js';
import type { GuestAck, GuestChunk, GuestOffer, GuestRemove } from '../wire/bodies.js';
import { cidMatches, cidToText, guestCid as cidOf, isGuestCid, isWorldCid, worldCid } from './cid.js';
import { channelGranted, manifestToMap, parseManifest, relayGranted, signalGranted, type GuestManifest, type Grants } from './manifest.js';
import { GUEST_MAX_BYTES, INITIALIZE_EXPORT, START_EXPORT, validateGuest, type GuestInfo } from './validate.js';
import { GuestLog, LOG_MAX_BYTES, wasiImports, WASI_MODULE } from './wasi.js';
import {
  decodeWorld, encodeWorld, parseWorldManifest, peerCall, sameWorldManifest, validateWorld, WORLD_MAX_BYTES,
  worldManifestToMap, type WorldManifest,
} from './world.js';

export { LOG_MAX_BYTES } from './wasi.js';

type TextMap = { [key: string]: CborValue };

/** Guest states as they appear in `status()` and the status body (WIRE.md body 3 field 6). */
export const GuestState = {
  running: 'running',
  backoff: 'backoff',
  quarantined: 'quarantined',
  stopped: 'stopped',
  /** A one-shot job that has run (or a guest that called proc_exit). */
  exited: 'exited',
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
const CHANNELS = 64;
const SIGNALS = 16;
const CHUNK_MAX = 1024;
const PENDING_MAX = 2;
const NO_ARGS: number[] = [];
const NO_STEPS: string[] = [];
const NO_PEERS: string[] = [];
const INIT_ONLY = ['init'];
const INIT_STEPS = [INITIALIZE_EXPORT, 'init'];

export interface GuestSupervisorOptions {
  engine: GuestEngine;
  clock: Clock;
  timers: Timers;
  /** Persists deployed guests and their kv slots. */
  kv: KeyValue;
  interlocks: Interlocks;
  /** The platform's random source, for WASI random_get (without it random_get answers ENOSYS). */
  random?: Random;
  /** Records to log and send upstream: guest-fault, guest-quarantine, guest-exit and guest.<name>.<kind>. */
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
  /** The guest's name; a world member's is `<world>.<member>`. */
  name: string;
  /** The world it belongs to, for a world member. */
  world: string | undefined;
  version: string;
  /** The module's CID (a world member's own; the world's is `unitCid`). */
  cid: Uint8Array;
  cidText: string;
  /** The CID it was deployed under: its own, or its world's. */
  unitCid: Uint8Array;
  state: GuestStateValue;
  /** A one-shot job (`_start`). */
  job: boolean;
  /** Its exit code once it has exited. */
  exitCode: number | undefined;
  /** Faults in the last hour (5 quarantine it; a world's are counted for the whole world). */
  faults: number;
  faultsTotal: number;
  /** tick() calls that returned non-zero, and non-zero exit codes. */
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
  /** Log lines over the per-call limit, and stdout/stderr bytes dropped unread. */
  logLinesDropped: number;
  logBytesDropped: number;
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

/**
 * What is supervised as one: a guest, or a world. It holds the relays its members were granted (under
 * its name), and faults, backoff and quarantine are counted for it as a whole.
 */
class Unit {
  state: GuestStateValue = GuestState.stopped;
  /** Members in load order: each after the members it calls. */
  members: Guest[] = [];
  restartTimer = -1;
  faultTimes: number[] = [];
  faultsTotal = 0;
  streak = 0;
  startedAt = 0;
  // Set only when they happen, so that a guest's unit holds no slot for them before (a meter's heap).
  declare restartAt: number | undefined;
  declare lastFault: string | undefined;
  declare world: WorldManifest | undefined;
  constructor(readonly name: string, readonly cid: Uint8Array, world: WorldManifest | undefined) {
    if (world) this.world = world;
  }
}

/**
 * One loaded version of a guest (alone, or a member of a world). It is its own log (GuestLog), and
 * fields most guests never need are set only when they do (each field is a heap slot on the meter).
 */
class Guest extends GuestLog {
  unit!: Unit;
  instance: GuestInstance | undefined = undefined;
  hasOnSignal = false;
  tickTimer = -1;
  softFaults = 0;
  denied = 0;
  deniedKind = -1;
  deniedArg = 0;
  ticks = 0;
  fuelLast = 0;
  fuelMax = 0;
  /** An export of it is running (its own call, or one from another member). */
  busy = false;
  emitLast = new Float64Array(EMIT_KINDS).fill(-Infinity);
  emitKinds: string[] = [];
  imports: Record<string, GuestImport> = {};
  /** Set by proc_exit during the current call, and kept once it exited. */
  declare exitCode: number | undefined;
  /** Imports from other modules (WASI, world members), only for a guest that has them. */
  declare links: { [module: string]: Record<string, GuestImport> } | undefined;
  /** A one-shot job; exports _initialize; the members' functions it calls ("member.name"). */
  declare job: boolean | undefined;
  declare hasInitialize: boolean | undefined;
  declare peers: string[] | undefined;
  constructor(readonly name: string, readonly member: string, readonly manifest: GuestManifest, readonly grants: Grants,
    readonly wasm: Uint8Array, readonly cid: Uint8Array, readonly kv: KvSlots, info: GuestInfo,
    sink: (bytes: Uint8Array, fd: number, g: Guest) => void) {
    super(sink);
    // Only what the supervisor needs of the check (the rest of it is garbage on a meter's heap).
    if (info.job) this.job = true;
    if (info.hasInitialize) this.hasInitialize = true;
    if (info.peers.length) this.peers = info.peers;
  }
  get state(): GuestStateValue {
    return this.unit.state;
  }
  /** How its faults are named: the export alone for a guest, `<member>: <export>` in a world. */
  label(fn: string): string {
    return this.unit.world ? `${this.member}: ${fn}` : fn;
  }
}

interface Transfer {
  name: string;
  cid: Uint8Array;
  manifest: GuestManifest | undefined;
  world: WorldManifest | undefined;
  buffer: Uint8Array;
  /** One bit per received byte: chunks may repeat or overlap (a world's bundle is up to 18 KiB). */
  have: Uint8Array;
  received: number;
}

/** A validated unit, ready to load. */
interface Plan {
  name: string;
  version: string;
  cid: Uint8Array;
  world: WorldManifest | undefined;
  /** Per member in load order: [short name, manifest, grants, wasm, info]. */
  members: [string, GuestManifest, Grants, Uint8Array, GuestInfo][];
}

const K_LIST = 'guests';
const WORLD_MARK = 'world';
const kWasm = (name: string) => `guest.${name}.wasm`;
const kManifest = (name: string) => `guest.${name}.man`;
const kSlots = (name: string) => `guest.${name}.kv`;
const kWorld = (name: string) => `world.${name}.man`;

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

function isRunning(state: GuestStateValue): boolean {
  return state !== GuestState.stopped && state !== GuestState.quarantined && state !== GuestState.exited;
}

/**
 * The supervisor's methods are prototype methods (TypeScript `private`), not `#methods`: XS installs
 * every `#method` on each instance, a heap slot apiece on the meter.
 */
export class GuestSupervisor {
  #o: GuestSupervisorOptions;
  #units = new Map<string, Unit>();
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
    for (const u of this.#units.values()) {
      for (const g of u.members) {
        // A fault in one member stops its whole world: check the state before each call.
        if (u.state !== GuestState.running || !g.hasOnSignal || !signalGranted(g.grants, id)) continue;
        this.call(g, 'on_signal', [id, value]);
      }
    }
  }

  // ------------------------------------------------------------ lifecycle

  /** Loads the guests and worlds deployed before a reboot; returns their names. Failures follow the fault path. */
  restore(): string[] {
    const names: string[] = [];
    for (const [name, saved, kind] of this.readList()) {
      const plan = kind === WORLD_MARK ? this.storedWorld(name) : this.storedGuest(name);
      if (!plan) continue;
      const u = this.newUnit(plan);
      this.#units.set(name, u);
      names.push(name);
      // A stopped, quarantined or exited guest stays so across reboots, until a technician or a new deployment.
      if (saved === GuestState.stopped || saved === GuestState.quarantined || saved === GuestState.exited) {
        u.state = saved;
        continue;
      }
      this.launch(u);
    }
    return names;
  }

  /** A stored CBOR value (a manifest), or undefined when it is missing or unreadable. */
  private stored(key: string): unknown {
    const b = this.#o.kv.get(key);
    if (!b) return undefined;
    try {
      return decode(b);
    } catch {
      return undefined;
    }
  }

  private storedGuest(name: string): Plan | undefined {
    const wasm = this.#o.kv.get(kWasm(name));
    const manifest = this.stored(kManifest(name));
    if (!wasm || manifest === undefined) return undefined;
    const v = validateGuest(wasm, manifest, { maxBytes: this.#maxBytes });
    if (!v.ok) {
      this.#o.logger?.log('error', `guest ${name}: stored module no longer valid: ${v.reason}`);
      return undefined;
    }
    return { name, version: v.manifest.version, cid: cidOf(wasm), world: undefined, members: [[name, v.manifest, v.info.grants, wasm, v.info]] };
  }

  private storedWorld(name: string): Plan | undefined {
    const mr = parseWorldManifest(this.stored(kWorld(name)));
    if (!mr.ok) return undefined;
    const modules: Uint8Array[] = [];
    for (const m of mr.world.members) {
      const wasm = this.#o.kv.get(kWasm(`${name}.${m.name}`));
      if (!wasm) return undefined;
      modules.push(wasm);
    }
    const plan = this.planWorld(worldCid(encodeWorld(mr.world, modules)), { world: mr.world, modules });
    if (typeof plan === 'string') {
      this.#o.logger?.log('error', `world ${name}: stored modules no longer valid: ${plan}`);
      return undefined;
    }
    return plan;
  }

  /**
   * Installs a guest directly (tools, tests): the same checks and swap as a completed deployment.
   * Returns the guest-ack it would send.
   */
  install(wasm: Uint8Array, manifest: unknown): GuestAck {
    const cid = cidOf(wasm);
    const mr = parseManifest(manifest);
    if (!mr.ok) return rejected(cid, mr.reason);
    return this.deployGuest(cid, wasm, mr.manifest);
  }

  /** Installs a world from its bundle (tools, tests), as a completed deployment would. */
  installWorld(bundle: Uint8Array): GuestAck {
    const cid = worldCid(bundle);
    const d = decodeWorld(bundle);
    if (!d.ok) return rejected(cid, d.reason);
    return this.deployWorld(cid, d);
  }

  /** Whether a guest or a world of that name is deployed here. */
  has(name: string): boolean {
    return this.#units.has(name);
  }

  /** Starts a stopped, backing-off, quarantined or exited guest or world now (technician), forgetting its faults. */
  start(name: string): StartResult {
    const u = this.#units.get(name);
    if (!u) return { ok: false, reason: `no guest or world named ${name}` };
    if (u.state === GuestState.running) return { ok: true };
    this.cancelRestart(u);
    u.faultTimes.length = 0;
    u.streak = 0;
    const conflict = this.conflict(u.name, u.members);
    if (conflict) return { ok: false, reason: conflict };
    const ok = this.launch(u);
    this.saveList();
    if (!ok) return { ok: false, reason: u.lastFault ?? 'init failed' };
    return { ok: true };
  }

  /** Stops a guest or a world (technician); it stays stopped across reboots until started. */
  stop(name: string): boolean {
    const u = this.#units.get(name);
    if (!u) return false;
    this.haltUnit(u);
    this.cancelRestart(u);
    u.state = GuestState.stopped;
    this.#o.interlocks.release(name);
    this.saveList();
    return true;
  }

  status(): GuestStatus[] {
    const out: GuestStatus[] = [];
    const now = this.#o.clock.monotonic();
    for (const u of this.#units.values()) {
      const faults = this.recentFaults(u, now);
      for (const g of u.members) {
        out.push({
          name: g.name, world: u.world ? u.name : undefined, version: g.manifest.version, cid: g.cid, cidText: cidToText(g.cid),
          unitCid: u.cid, state: u.state, job: g.job === true, exitCode: g.exitCode,
          faults, faultsTotal: u.faultsTotal, softFaults: g.softFaults, lastFault: u.lastFault,
          denied: g.denied, lastDenied: g.deniedKind < 0 ? undefined : `${DENY_KINDS[g.deniedKind]}(${g.deniedArg})`,
          ticks: g.ticks, fuelPerCall: g.manifest.fuel_per_call, fuelLast: g.fuelLast, fuelMax: g.fuelMax,
          memoryBytes: g.manifest.memory_bytes, logLinesDropped: g.droppedLines, logBytesDropped: g.droppedBytes,
          restartAt: u.restartAt,
        });
      }
    }
    return out;
  }

  /** The status body's guest list (WIRE.md body 3 field 6): one entry per guest or world. */
  statusEntries(): [string, Uint8Array, string][] {
    const out: [string, Uint8Array, string][] = [];
    for (const u of this.#units.values()) out.push([u.name, u.cid, u.state]);
    return out;
  }

  /** Stops every guest and flushes kv slots (shutdown). */
  dispose(): void {
    for (const u of this.#units.values()) {
      this.haltUnit(u);
      this.cancelRestart(u);
    }
    for (const s of this.#slots.values()) this.flush(s);
  }

  // ------------------------------------------------------------ deployment (WIRE.md bodies 18–20)

  /**
   * guest-offer: checks what can be checked before the bytes arrive. Returns an ack only when it
   * settles the offer. A world is offered under its world CID with the world's manifest (GUESTS.md "Microworlds").
   */
  offer(body: GuestOffer): GuestAck | undefined {
    const cid = body.cid;
    const isWorld = isWorldCid(cid);
    if (!isWorld && !isGuestCid(cid)) {
      return rejected(cid, 'cid is not a CIDv1 raw sha2-256 (01 55 12 20 + digest) or, for a world, dag-cbor sha2-256 (01 71 12 20 + digest)');
    }
    let manifest: GuestManifest | undefined;
    let world: WorldManifest | undefined;
    let grants: Grants[];
    let name: string;
    let max: number;
    if (isWorld) {
      const wr = parseWorldManifest(body.manifest);
      if (!wr.ok) return rejected(cid, wr.reason);
      world = wr.world;
      name = world.name;
      grants = world.members.map((m) => m.grants);
      max = WORLD_MAX_BYTES;
    } else {
      const mr = parseManifest(body.manifest);
      if (!mr.ok) return rejected(cid, mr.reason);
      manifest = mr.manifest;
      name = manifest.name;
      grants = [mr.grants];
      max = this.#maxBytes;
    }
    if (name !== body.name) {
      return rejected(cid, `offer names ${isWorld ? 'world' : 'guest'} "${body.name}" but its manifest names "${name}"`);
    }
    if (!Number.isInteger(body.size) || body.size < 8 || body.size > max) {
      return rejected(cid, `${isWorld ? 'world bundle' : 'module'} size ${body.size} bytes is outside 8–${max} (GUESTS.md size budget)`);
    }
    const current = this.#units.get(body.name);
    if (current && equalBytes(current.cid, cid) && current.state === GuestState.running) {
      return { type: 6, cid, state: 'running' }; // a resend of what already runs
    }
    const other = this.kindConflict(name, isWorld);
    if (other) return rejected(cid, other);
    const conflict = this.conflictGrants(name, grants);
    if (conflict) return rejected(cid, conflict);
    // One transfer per name, and one world at a time (a bundle is up to 18 KiB of RAM); a newer offer replaces an older one.
    this.#pending = this.#pending.filter((t) => t.name !== body.name && !equalBytes(t.cid, cid) && !(isWorld && t.world));
    if (this.#pending.length >= PENDING_MAX) this.#pending.shift();
    this.#pending.push({
      name: body.name, cid, manifest, world, buffer: new Uint8Array(body.size),
      have: new Uint8Array((body.size + 7) >> 3), received: 0,
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
      const bit = 1 << (k & 7);
      if (!(t.have[k >> 3] & bit)) {
        t.have[k >> 3] |= bit;
        t.received++;
      }
    }
    if (t.received < t.buffer.length) return undefined;
    this.#pending.splice(i, 1);
    if (!cidMatches(t.cid, t.buffer)) {
      const got = t.world ? worldCid(t.buffer) : cidOf(t.buffer);
      return rejected(t.cid, `hash mismatch: the received ${t.buffer.length} bytes hash to ${cidToText(got)}, not the offered ${cidToText(t.cid)}; the running guest is unchanged`);
    }
    if (t.world) {
      const d = decodeWorld(t.buffer);
      if (!d.ok) return rejected(t.cid, d.reason);
      if (!sameWorldManifest(d.world, t.world)) return rejected(t.cid, 'the world bundle\'s manifest is not the one offered');
      return this.deployWorld(t.cid, d);
    }
    const mr = parseManifest(manifestToMap(t.manifest!));
    if (!mr.ok) return rejected(t.cid, mr.reason);
    return this.deployGuest(t.cid, t.buffer, mr.manifest);
  }

  /** guest-remove: stops the guest or world, releases its relays and forgets it and its kv slots. */
  remove(body: GuestRemove): GuestAck {
    this.#pending = this.#pending.filter((t) => t.name !== body.name);
    const u = this.#units.get(body.name);
    if (!u) return { type: 6, cid: new Uint8Array(0), state: 'removed', reason: `no guest named ${body.name}` };
    this.haltUnit(u);
    this.cancelRestart(u);
    this.#o.interlocks.release(u.name);
    this.#units.delete(u.name);
    for (const g of u.members) this.forget(g.name);
    if (u.world) this.#o.kv.delete(kWorld(u.name));
    else this.#o.kv.delete(kManifest(u.name));
    this.saveList();
    return { type: 6, cid: u.cid, state: 'removed' };
  }

  /** Drops a guest's stored module and kv slots. */
  private forget(name: string): void {
    const slots = this.#slots.get(name);
    if (slots && slots.timer >= 0) this.#o.timers.clear(slots.timer);
    this.#slots.delete(name);
    this.#o.kv.delete(kWasm(name));
    this.#o.kv.delete(kSlots(name));
  }

  // ------------------------------------------------------------ internals

  private deployGuest(cid: Uint8Array, wasm: Uint8Array, manifest: GuestManifest): GuestAck {
    const v = validateGuest(wasm, manifest, { maxBytes: this.#maxBytes });
    if (!v.ok) return rejected(cid, v.reason);
    const other = this.kindConflict(manifest.name, false);
    if (other) return rejected(cid, other);
    return this.deploy({ name: manifest.name, version: manifest.version, cid, world: undefined, members: [[manifest.name, v.manifest, v.info.grants, wasm, v.info]] });
  }

  private deployWorld(cid: Uint8Array, bundle: { world: WorldManifest; modules: Uint8Array[] }): GuestAck {
    const plan = this.planWorld(cid, bundle);
    if (typeof plan === 'string') return rejected(cid, plan);
    const other = this.kindConflict(plan.name, true);
    if (other) return rejected(cid, other);
    return this.deploy(plan);
  }

  private planWorld(cid: Uint8Array, bundle: { world: WorldManifest; modules: Uint8Array[] }): Plan | string {
    const v = validateWorld(bundle, { maxBytes: this.#maxBytes });
    if (!v.ok) return v.reason;
    const w = v.world;
    return {
      name: w.name, version: w.version, cid, world: w,
      members: v.order.map((i): [string, GuestManifest, Grants, Uint8Array, GuestInfo] =>
        [w.members[i].name, w.members[i].manifest, w.members[i].grants, v.modules[i], v.infos[i]]),
    };
  }

  /** A guest offered under a world's name, or the other way round. */
  private kindConflict(name: string, world: boolean): string | undefined {
    const u = this.#units.get(name);
    if (!u || !!u.world === world) return undefined;
    return `${name} is a ${u.world ? 'world' : 'guest'} on this meter; remove it (guest-remove ${name}) before deploying a ${world ? 'world' : 'guest'} of that name`;
  }

  /** Validates, loads and initialises a new version; swaps it in only when all of that worked. */
  private deploy(plan: Plan): GuestAck {
    const conflict = this.conflictGrants(plan.name, plan.members.map((m) => m[2]));
    if (conflict) return rejected(plan.cid, conflict);
    const old = this.#units.get(plan.name);
    // kv slots as they were, in case the new version's init changes them and then fails.
    const kvBefore = plan.members.map(([member]) => {
      const existing = this.#slots.get(this.fullName(plan, member));
      if (existing) this.flush(existing);
      return existing?.values.slice();
    });
    const u = this.newUnit(plan);
    // The new version may switch its relays from init: it holds them under the same name as the old one.
    for (const g of u.members) for (const id of g.grants.relays) this.#o.interlocks.claim(id, u.name);
    const why = this.loadUnit(u);
    if (why !== undefined) {
      // Leave everything as the old version had it: its relays, its kv slots.
      this.#o.interlocks.release(u.name);
      if (old && isRunning(old.state)) this.claim(old);
      u.members.forEach((g, i) => {
        if (g.kv.timer >= 0) this.#o.timers.clear(g.kv.timer);
        g.kv.timer = -1;
        const before = kvBefore[i];
        if (before) {
          g.kv.values = before;
          g.kv.dirty = true;
          this.flush(g.kv);
        } else {
          this.#slots.delete(g.name);
          this.#o.kv.delete(kSlots(g.name));
        }
      });
      return rejected(plan.cid, why);
    }
    if (old) {
      this.haltUnit(old);
      this.cancelRestart(old);
      this.#o.interlocks.release(old.name);
      // Members the new version no longer has: their modules and slots go.
      for (const g of old.members) if (!u.members.some((n) => n.name === g.name)) this.forget(g.name);
    }
    this.claim(u);
    this.#units.set(u.name, u);
    for (const g of u.members) this.startTicking(g);
    if (u.world) {
      for (const g of u.members) this.#o.kv.set(kWasm(g.name), g.wasm);
      this.#o.kv.set(kWorld(u.name), encode(worldManifestToMap(u.world)));
    } else {
      const g = u.members[0];
      this.#o.kv.set(kWasm(g.name), g.wasm);
      this.#o.kv.set(kManifest(g.name), encode(manifestToMap(g.manifest)));
    }
    this.saveList();
    return { type: 6, cid: plan.cid, state: 'running' };
  }

  private fullName(plan: { name: string; world: WorldManifest | undefined }, member: string): string {
    return plan.world ? `${plan.name}.${member}` : plan.name;
  }

  private newUnit(plan: Plan): Unit {
    const u = new Unit(plan.name, plan.cid, plan.world);
    for (const [member, manifest, grants, wasm, info] of plan.members) {
      const g = this.newGuest(this.fullName(plan, member), member, manifest, grants, wasm, info);
      g.unit = u;
      u.members.push(g);
    }
    // Calls between members: each member's imports from the others, through the agent.
    if (plan.world) {
      for (const g of u.members) {
        for (const call of g.peers ?? NO_PEERS) {
          const dot = call.indexOf('.');
          const peer = u.members.find((p) => p.member === call.slice(0, dot))!;
          const fn = call.slice(dot + 1);
          const links = g.links ?? (g.links = {});
          const into = links[peer.member] ?? (links[peer.member] = {});
          into[fn] = peerCall(() => g.instance, () => peer.instance, fn, `${peer.member}.${fn}`, {
            begin: () => {
              if (peer.busy) return false;
              peer.busy = true;
              peer.begin();
              return true;
            },
            end: () => {
              peer.busy = false;
              peer.end();
            },
          });
        }
      }
    }
    return u;
  }

  private newGuest(name: string, member: string, manifest: GuestManifest, grants: Grants, wasm: Uint8Array, info: GuestInfo): Guest {
    let slots = this.#slots.get(name);
    if (!slots) {
      slots = new KvSlots(kSlots(name), grants.kvSlots, this.#o.kv.get(kSlots(name)));
      this.#slots.set(name, slots);
    } else {
      this.flush(slots);
      slots.resize(grants.kvSlots);
    }
    const g = new Guest(name, member, manifest, grants, wasm, cidOf(wasm), slots, info, this.#sink);
    g.imports = this.bindImports(g);
    // WASI only for a guest that imports it (every import costs the meter's heap).
    if (info.wasi.length) {
      g.links = {};
      g.links[WASI_MODULE] = wasiImports({
        instance: () => g.instance,
        clock: this.#o.clock,
        random: this.#o.random,
        out: g,
        exit: (code) => { g.exitCode = code; },
      });
    }
    return g;
  }

  /** Every guest's log lines, as GuestLog hands them over. */
  readonly #sink = (bytes: Uint8Array, fd: number, g: Guest): void => this.logLine(g, bytes, fd);


  private logLine(g: Guest, bytes: Uint8Array, fd: number): void {
    const text = cleanLogLine(bytes);
    this.#o.logger?.log(fd === 2 ? 'warn' : 'info', `guest ${g.name}: ${text}`);
    this.#o.onLog?.(g.name, text);
  }

  /** Loads every member (each after those it calls); the reason when one failed (all are then disposed). */
  private loadUnit(u: Unit): string | undefined {
    for (const g of u.members) {
      const why = this.load(g);
      if (why === undefined) continue;
      for (const m of u.members) this.halt(m);
      return u.world ? `${g.member}: ${why}` : why;
    }
    u.state = GuestState.running;
    u.startedAt = this.#o.clock.monotonic();
    return undefined;
  }

  /** Instantiates and runs `_initialize` and init; the reason when that failed (the instance is then disposed). */
  private load(g: Guest): string | undefined {
    let instance: GuestInstance;
    try {
      instance = this.#o.engine.instantiate(g.wasm, g.imports, { memoryBytes: g.manifest.memory_bytes, fuel: g.manifest.fuel_per_call }, g.links as GuestLinks);
    } catch (e) {
      return `load: ${trapText(e)}`;
    }
    g.instance = instance;
    g.hasOnSignal = instance.hasExport('on_signal');
    if (g.exitCode !== undefined) g.exitCode = undefined;
    const steps = g.job ? NO_STEPS : g.hasInitialize ? INIT_STEPS : INIT_ONLY;
    for (const step of steps) {
      let r: number | undefined;
      g.busy = true;
      g.begin();
      try {
        r = instance.call(step, NO_ARGS, g.manifest.fuel_per_call);
        this.fuel(g, instance.fuelUsed);
      } catch (e) {
        this.fuel(g, instance.fuelUsed);
        this.halt(g);
        return g.exitCode !== undefined ? `${step} called proc_exit(${g.exitCode})` : `${step}: ${trapText(e)}`;
      } finally {
        g.busy = false;
        g.end();
      }
      if (step === 'init' && r !== 0) {
        this.halt(g);
        return `init returned ${r}: the guest refused to start`;
      }
    }
    return undefined;
  }

  /** (Re)starts a unit that is already in the table; a failure goes down the fault path. */
  private launch(u: Unit): boolean {
    const conflict = this.conflict(u.name, u.members);
    if (conflict) {
      this.fault(u, conflict);
      return false;
    }
    this.claim(u);
    const why = this.loadUnit(u);
    if (why !== undefined) {
      this.fault(u, why);
      return false;
    }
    for (const g of u.members) this.startTicking(g);
    return true;
  }

  private startTicking(g: Guest): void {
    if (g.tickTimer >= 0) this.#o.timers.clear(g.tickTimer);
    // A one-shot job runs once, in a turn of its own (its deployment is acknowledged first).
    if (g.job) g.tickTimer = this.#o.timers.set(() => this.runJob(g), 0);
    else g.tickTimer = this.#o.timers.repeat(() => this.tick(g), g.manifest.period_s * 1000);
  }

  private tick(g: Guest): void {
    if (g.state !== GuestState.running) return;
    g.ticks++;
    const r = this.call(g, 'tick', NO_ARGS);
    if (r !== undefined && r !== 0) g.softFaults++;
  }

  private runJob(g: Guest): void {
    g.tickTimer = -1;
    if (g.state !== GuestState.running) return;
    g.ticks++;
    const r = this.call(g, START_EXPORT, NO_ARGS);
    // Returning from _start is exit code 0 (a C main's return goes through proc_exit).
    if (r !== undefined && g.state === GuestState.running) this.exit(g, 0);
  }

  /** Calls an export under the fuel budget; a trap becomes a fault (and undefined); proc_exit ends the guest. */
  private call(g: Guest, name: string, args: number[]): number | undefined {
    const instance = g.instance;
    if (!instance) return undefined;
    if (g.exitCode !== undefined) g.exitCode = undefined;
    g.busy = true;
    g.begin(name === START_EXPORT);
    let r: number | undefined;
    let failed: unknown;
    try {
      r = instance.call(name, args, g.manifest.fuel_per_call);
    } catch (e) {
      failed = e;
    } finally {
      g.busy = false;
      g.end();
    }
    this.fuel(g, instance.fuelUsed);
    if (failed === undefined) return r ?? 0;
    if (g.exitCode !== undefined) {
      if (g.unit.world) this.fault(g.unit, `${g.label(name)}: called proc_exit(${g.exitCode}); a world member does not exit`);
      else this.exit(g, g.exitCode);
    } else {
      this.fault(g.unit, `${g.label(name)}: ${trapText(failed)}`);
    }
    return undefined;
  }

  /** A guest ended itself (a job's _start returned, or proc_exit): it stays `exited` until started again. */
  private exit(g: Guest, code: number): void {
    const u = g.unit;
    this.haltUnit(u);
    u.state = GuestState.exited;
    g.exitCode = code;
    if (code !== 0) g.softFaults++;
    this.#o.interlocks.release(u.name);
    this.#o.logger?.log(code === 0 ? 'info' : 'warn', `guest ${g.name}: exited with code ${code}`);
    this.#o.onEvent?.('guest-exit', { name: g.name, code });
    this.saveList();
  }

  private fuel(g: Guest, used: number): void {
    g.fuelLast = used;
    if (used > g.fuelMax) g.fuelMax = used;
  }

  /**
   * A trap, fuel exhaustion, memory breach or failed init: stop the unit, report, back off or
   * quarantine. A world's relays go to their safe state while it is down.
   */
  private fault(u: Unit, why: string): void {
    const now = this.#o.clock.monotonic();
    this.haltUnit(u);
    if (u.world) this.#o.interlocks.toSafe(u.name);
    u.faultsTotal++;
    u.lastFault = why;
    if (u.state === GuestState.running && now - u.startedAt >= CLEAN_RUN_MS) u.streak = 0;
    u.streak++;
    // Keep only the faults of the last hour (at most QUARANTINE_FAULTS of them).
    u.faultTimes.push(now);
    while (u.faultTimes.length > QUARANTINE_FAULTS || (u.faultTimes.length && now - u.faultTimes[0] >= HOUR_MS)) u.faultTimes.shift();
    const what = u.world ? 'world' : 'guest';
    this.#o.logger?.log('warn', `${what} ${u.name}: ${why}`);
    this.#o.onEvent?.('guest-fault', { name: u.name, why });
    if (u.faultTimes.length >= QUARANTINE_FAULTS) {
      u.state = GuestState.quarantined;
      this.#o.interlocks.release(u.name);
      const reason = `quarantined after ${QUARANTINE_FAULTS} faults in an hour; last: ${why}`;
      this.#o.logger?.log('error', `${what} ${u.name}: ${reason}`);
      this.#o.onEvent?.('guest-quarantine', { name: u.name, why });
      this.#o.onAck?.({ type: 6, cid: u.cid, state: 'rejected', reason });
      this.saveList();
      return;
    }
    u.state = GuestState.backoff;
    const delay = Math.min(BACKOFF_FIRST_MS * 2 ** (u.streak - 1), BACKOFF_MAX_MS);
    u.restartAt = now + delay;
    u.restartTimer = this.#o.timers.set(() => {
      u.restartTimer = -1;
      u.restartAt = undefined;
      if (u.state !== GuestState.backoff || this.#units.get(u.name) !== u) return;
      this.launch(u);
    }, delay);
  }

  private recentFaults(u: Unit, now: number): number {
    let n = 0;
    for (const t of u.faultTimes) if (now - t < HOUR_MS) n++;
    return n;
  }

  private haltUnit(u: Unit): void {
    for (const g of u.members) this.halt(g);
  }

  /** Disposes the instance and stops ticking (state is the unit's business). */
  private halt(g: Guest): void {
    if (g.tickTimer >= 0) {
      this.#o.timers.clear(g.tickTimer);
      g.tickTimer = -1;
    }
    if (g.instance) {
      g.instance.dispose();
      g.instance = undefined;
    }
    this.flush(g.kv);
  }

  private cancelRestart(u: Unit): void {
    if (u.restartTimer >= 0) {
      this.#o.timers.clear(u.restartTimer);
      u.restartTimer = -1;
    }
    u.restartAt = undefined;
  }

  /** Why `name` may not hold the relays its members were granted, or undefined. */
  private conflict(name: string, members: Guest[]): string | undefined {
    return this.conflictGrants(name, members.map((g) => g.grants));
  }

  private conflictGrants(name: string, grants: Grants[]): string | undefined {
    for (const g of grants) {
      for (const id of g.relays) {
        if (!this.#o.interlocks.has(id)) return `relay ${id} does not exist on this meter`;
        const holder = this.#o.interlocks.holder(id);
        if (holder !== undefined && holder !== name) {
          const what = this.#units.get(holder)?.world ? 'world' : 'guest';
          return `relay ${id} is held by running ${what} ${holder}; at most one guest holds a relay`;
        }
      }
    }
    return undefined;
  }

  private claim(u: Unit): boolean {
    let ok = true;
    for (const g of u.members) for (const id of g.grants.relays) if (!this.#o.interlocks.claim(id, u.name)) ok = false;
    return ok;
  }

  private deny(g: Guest, kind: number, arg: number): void {
    g.denied++;
    g.deniedKind = kind;
    g.deniedArg = arg;
  }

  private flush(s: KvSlots): void {
    if (!s.dirty) return;
    s.dirty = false;
    s.lastWrite = this.#o.clock.monotonic();
    if (s.timer >= 0) {
      this.#o.timers.clear(s.timer);
      s.timer = -1;
    }
    this.#o.kv.set(s.key, s.bytes());
  }

  private kvChanged(s: KvSlots): void {
    s.dirty = true;
    const wait = s.lastWrite + this.#kvFlushMs - this.#o.clock.monotonic();
    if (wait <= 0) this.flush(s);
    else if (s.timer < 0) s.timer = this.#o.timers.set(() => { s.timer = -1; this.flush(s); }, wait);
  }

  /** The deployed units and the state each was left in: [[name, state], …], a world's marked [name, state, "world"]. */
  private readList(): [string, string, string][] {
    const b = this.#o.kv.get(K_LIST);
    if (!b) return [];
    try {
      const v = decode(b);
      if (!Array.isArray(v)) return [];
      const out: [string, string, string][] = [];
      for (const e of v) {
        if (Array.isArray(e) && typeof e[0] === 'string') out.push([e[0], typeof e[1] === 'string' ? e[1] : '', e[2] === WORLD_MARK ? WORLD_MARK : '']);
      }
      return out;
    } catch {
      return [];
    }
  }

  private saveList(): void {
    const list: CborValue[] = [];
    for (const u of this.#units.values()) {
      const kept = isRunning(u.state) ? GuestState.running : u.state;
      list.push(u.world ? [u.name, kept, WORLD_MARK] : [u.name, kept]);
    }
    this.#o.kv.set(K_LIST, encode(list));
  }

  /** The `gridlet` imports of one guest version (GUESTS.md "Imports"), capability-checked. */
  private bindImports(g: Guest): Record<string, GuestImport> {
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
          this.deny(g, D_CHANNEL, ch);
          return NaN;
        }
        return ch >= 0 && ch < CHANNELS ? channels[ch] : NaN;
      },
      signal: (id: number) => {
        if (!signalGranted(grants, id)) {
          this.deny(g, D_SIGNAL, id);
          return NaN;
        }
        return id >= 0 && id < SIGNALS ? signals[id] : NaN;
      },
      relay: (id: number, on: number) => {
        if (!relayGranted(grants, id)) {
          this.deny(g, D_RELAY, id);
          return RelayResult.noCapability;
        }
        const r = o.interlocks.request(id, on !== 0, g.unit.name);
        o.onRelayRequest?.(g.name, id, on !== 0, r);
        return r;
      },
      relay_state: (id: number) => o.interlocks.state(id),
      emit: (kind: number, value: number) => {
        if (!grants.emit) {
          this.deny(g, D_EMIT, kind);
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
        if (!g.take()) return;
        const instance = g.instance;
        if (!instance || len <= 0) return;
        // readMemory enforces the memory cap (a log from outside it is a breach like any other access).
        g.line(instance.readMemory(ptr >>> 0, Math.min(len >>> 0, LOG_MAX_BYTES)), 0);
      },
      kv_get: (slot: number) => {
        if (slot < 0 || slot >= grants.kvSlots) {
          this.deny(g, D_KVGET, slot);
          return NaN;
        }
        return g.kv.values[slot];
      },
      kv_set: (slot: number, value: number) => {
        if (slot < 0 || slot >= grants.kvSlots) {
          this.deny(g, D_KVSET, slot);
          return -1;
        }
        if (!sameNumber(g.kv.values[slot], value)) {
          g.kv.values[slot] = value;
          this.kvChanged(g.kv);
        }
        return 0;
      },
    };
  }
}

function rejected(cid: Uint8Array, reason: string): GuestAck {
  return { type: 6, cid, state: 'rejected', reason };
}
