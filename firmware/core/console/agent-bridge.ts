// ConsoleHost over the Agent's public API and the objects the platform hands the agent (KeyValue,
// record log, clock, timers), plus the small rings the console keeps itself (readings, log lines).
//
// Some of what the console offers needs the Agent to grow (see AgentConsoleApi below) or modules that
// are still being written (the guest supervisor and the relay interlocks): until they are there the
// bridge answers as a meter without them would — `unpair`/`ask` are "not available in this firmware
// build", there are no guests and no relays.

import { utf8Decode, utf8Encode } from '../bytes.js';
import type { CborValue } from '../cbor.js';
import { AgentState, type Agent } from '../agent/agent.js';
import type { LinkStatus } from '../agent/links.js';
import type { LogStats, RecordLog } from '../log/record-log.js';
import type { Clock, KeyValue, Timers } from '../ports.js';
import {
  AskRefusal, GuestOutcome, RelayOutcome, UnpairOutcome,
  type AskSink, type ConsoleHost, type ConsoleIdentity, type ConsoleLogLine, type ConsoleReading, type ConsoleStatus,
  type GuestInfo, type GuestResult, type PinRecord, type RelayInfo, type RelayLockModeValue, type RelayResult,
  type UnpairOutcomeValue,
} from './console-host.js';
import type { LogRing } from './log-ring.js';
import { FACTORY_PIN_KEY, PIN_CONFIG_KEY } from './pin.js';
import { hasMeterSecret, isMeterSecret, setMeterSecret } from '../meter/keys.js';
import type { ReadingsRing } from './readings-ring.js';

/** One job-result body (WIRE.md type 22) as the Agent hands it on. */
export interface JobResultPart {
  index: number;
  text: string;
  final: boolean;
  error?: string;
}

/**
 * What the console needs from Agent beyond today's public API. The lead adds these methods to Agent;
 * the bridge uses each one as soon as the Agent has it (no change here needed then).
 */
export interface AgentConsoleApi {
  /**
   * Sends a `job` body (WIRE.md type 4) with a fresh device-chosen job id and routes the job-result
   * bodies (type 22) for that id to `onResult` (and down-acks them). Returns the job id, or -1 when
   * no link is up (nothing sent).
   */
  submitJob(kind: string, input: { [key: string]: CborValue }, onResult: (part: JobResultPart) => void): number;
  /** Sends `job.cancel` for `job` and forgets its callback. */
  cancelJob(job: number): void;
  /** Forgets the gateway (as an `unpair` body does) and returns to Hello. */
  unpair(): void;
}

/** The guest supervisor, as far as the console needs it (adapters.ts makes one of a GuestSupervisor). */
export interface ConsoleGuests {
  list(): GuestInfo[];
  stop(name: string): GuestResult;
  start(name: string): GuestResult;
}

/** The relays and their interlocks, as far as the console needs them (adapters.ts makes one of Interlocks). */
export interface ConsoleRelays {
  list(): RelayInfo[];
  /** A command from the technician, through the interlocks and never past a technician lock. */
  set(id: number, on: boolean): RelayResult;
  lock(id: number, mode: RelayLockModeValue): RelayResult;
}

export interface AgentBridgeOptions {
  agent: Agent;
  kv: KeyValue;
  log: RecordLog;
  clock: Clock;
  timers: Timers;
  model: string;
  firmware: string;
  heapUsed?: () => number;
  /** Fed from AgentOptions.onEvent (ReadingsRing.onAgentEvent). */
  readings?: ReadingsRing;
  /** The agent's Logger (or a tee of it). */
  logRing?: LogRing;
  guests?: ConsoleGuests;
  relays?: ConsoleRelays;
  /** Restarts the device (platform); absent when it cannot. */
  reboot?: () => void;
}

/** KeyValue flag set once the meter has been paired: from then on the factory PIN no longer works. */
export const PAIRED_ONCE_KEY = 'console.paired_once';
const PIN_KEY = 'pair.pin';
const REBOOT_DELAY_MS = 200;
/** Out-of-order job-result chunks held back at most (frames may arrive out of order). */
const MAX_HELD_CHUNKS = 16;

export class AgentBridge implements ConsoleHost {
  #o: AgentBridgeOptions;
  #bootMs: number;
  #pairedOnce: boolean;

  constructor(o: AgentBridgeOptions) {
    this.#o = o;
    this.#bootMs = o.clock.monotonic();
    this.#pairedOnce = !!o.kv.get(PAIRED_ONCE_KEY);
    this.#notePaired();
  }

  get #api(): Partial<AgentConsoleApi> {
    return this.#o.agent as Agent & Partial<AgentConsoleApi>;
  }

  #notePaired(): boolean {
    const paired = this.#o.agent.state === AgentState.paired;
    if (paired && !this.#pairedOnce) {
      this.#pairedOnce = true;
      this.#o.kv.set(PAIRED_ONCE_KEY, new Uint8Array([1]));
    }
    return paired;
  }

  identity(): ConsoleIdentity {
    const a = this.#o.agent;
    return { deviceId: a.deviceId, pairCode: a.identity.pairCode, model: this.#o.model, firmware: this.#o.firmware };
  }

  status(): ConsoleStatus {
    const a = this.#o.agent;
    const s = this.#o.log.stats();
    const paired = this.#notePaired();
    return {
      firmware: this.#o.firmware,
      model: this.#o.model,
      uptimeS: Math.floor((this.#o.clock.monotonic() - this.#bootMs) / 1000),
      paired,
      gatewayId: paired ? a.gatewayId ?? '' : '',
      activeLink: a.links.active?.name ?? '',
      buffered: s.buffered,
      dropped: s.dropped,
      heapUsed: this.#o.heapUsed?.() ?? 0,
      relays: this.#o.relays?.list() ?? [],
    };
  }

  readings(n: number): ConsoleReading[] {
    return this.#o.readings?.last(n) ?? [];
  }

  buffer(): LogStats {
    return this.#o.log.stats();
  }

  links(): LinkStatus[] {
    return this.#o.agent.links.status();
  }

  guests(): GuestInfo[] {
    return this.#o.guests?.list() ?? [];
  }

  guestStop(name: string): GuestResult {
    return this.#o.guests?.stop(name) ?? { outcome: GuestOutcome.notFound };
  }

  guestStart(name: string): GuestResult {
    return this.#o.guests?.start(name) ?? { outcome: GuestOutcome.notFound };
  }

  relaySet(id: number, on: boolean): RelayResult {
    return this.#o.relays?.set(id, on) ?? { outcome: RelayOutcome.noRelay };
  }

  relayLock(id: number, mode: RelayLockModeValue): RelayResult {
    return this.#o.relays?.lock(id, mode) ?? { outcome: RelayOutcome.noRelay };
  }

  pinnedGateway(): string {
    const b = this.#o.kv.get(PIN_KEY);
    return (b && utf8Decode(b)) || '';
  }

  pinGateway(gatewayId: string): void {
    // The Agent reads this key when a PairAccept arrives (agent.ts #onPairAccept).
    if (gatewayId) this.#o.kv.set(PIN_KEY, utf8Encode(gatewayId));
    else this.#o.kv.delete(PIN_KEY);
  }

  unpair(): UnpairOutcomeValue {
    if (!this.#notePaired()) return UnpairOutcome.notPaired;
    const unpair = this.#api.unpair;
    if (typeof unpair !== 'function') return UnpairOutcome.unavailable;
    unpair.call(this.#o.agent);
    return UnpairOutcome.done;
  }

  configGet(key: string): string | undefined {
    // Meter keys are kept apart and never read back (meter/keys.ts).
    if (isMeterSecret(key)) return hasMeterSecret(this.#o.kv, key) ? '(set)' : undefined;
    // The Agent stores config bodies' values as text under `cfg.<key>` (agent.ts, Body.config).
    const b = this.#o.kv.get('cfg.' + key);
    return b ? utf8Decode(b) ?? undefined : undefined;
  }

  configSet(key: string, value: string): void {
    if (isMeterSecret(key)) setMeterSecret(this.#o.kv, key, value);
    else this.#o.kv.set('cfg.' + key, utf8Encode(value));
  }

  pinRecord(): PinRecord | undefined {
    const set = this.configGet(PIN_CONFIG_KEY);
    if (set) return { hash: set, factory: false };
    // The factory PIN works until the first pairing, and never again after it.
    if (this.#notePaired() || this.#pairedOnce) return undefined;
    const f = this.#o.kv.get(FACTORY_PIN_KEY);
    const hash = f ? utf8Decode(f) : undefined;
    return hash ? { hash, factory: true } : undefined;
  }

  logLines(n: number): ConsoleLogLine[] {
    return this.#o.logRing?.last(n) ?? [];
  }

  ask(prompt: string, sink: AskSink): number {
    const api = this.#api;
    if (typeof api.submitJob !== 'function') return AskRefusal.unavailable;
    if (!this.#o.agent.online) return AskRefusal.offline;
    // Chunks are shown in index order; a chunk that arrives early waits (bounded) for those before it.
    let next = 0;
    const held = new Map<number, JobResultPart>();
    const job = api.submitJob.call(this.#o.agent, 'llm.generate', { prompt }, (part) => {
      if (part.index < next || held.size >= MAX_HELD_CHUNKS) return;
      held.set(part.index, part);
      for (let p = held.get(next); p; p = held.get(next)) {
        held.delete(next++);
        if (p.text) sink.chunk(p.text);
        if (p.final || p.error !== undefined) {
          sink.end(p.error);
          return;
        }
      }
    });
    return job < 0 ? AskRefusal.offline : job;
  }

  cancelAsk(job: number): void {
    this.#api.cancelJob?.call(this.#o.agent, job);
  }

  recordEvent(kind: string, data?: { [key: string]: CborValue }): void {
    this.#o.agent.recordEvent(kind, data);
  }

  reboot(): boolean {
    const r = this.#o.reboot;
    if (!r) return false;
    this.#o.timers.set(r, REBOOT_DELAY_MS);
    return true;
  }
}
