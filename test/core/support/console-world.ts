// Test doubles for console tests: a serial line the test types into and reads from, and a ConsoleHost
// that records what the console asked of it. They run on Node and inside XS (no platform imports).

import { utf8Decode, utf8Encode } from '../../../firmware/core/bytes.js';
import type { CborValue } from '../../../firmware/core/cbor.js';
import type { LinkStatus } from '../../../firmware/core/agent/links.js';
import { Console } from '../../../firmware/core/console/console.js';
import {
  AskRefusal, GuestOutcome, RelayLockMode, RelayOutcome, UnpairOutcome,
  type AskSink, type ConsoleHost, type ConsoleLogLine, type ConsoleReading, type GuestInfo, type GuestResult, type PinRecord, type RelayInfo,
  type RelayLockModeValue, type RelayResult,
} from '../../../firmware/core/console/console-host.js';
import { makePinHash } from '../../../firmware/core/console/pin.js';
import { useRandom } from '../../../firmware/core/crypto.js';
import type { LogStats } from '../../../firmware/core/log/record-log.js';
import type { KeyValue, SerialPort } from '../../../firmware/core/ports.js';
import { LinkState } from '../../../firmware/core/ports.js';
import { MemoryKV, SeededRandom, SimTime, simTimers } from './sim-world.js';

/** A serial line: `type()` delivers bytes to the console, `output` collects what it wrote. */
export class MemorySerial implements SerialPort {
  #cb: ((bytes: Uint8Array) => void) | undefined;
  chunks: Uint8Array[] = [];
  onReadable(callback: (bytes: Uint8Array) => void): void {
    this.#cb = callback;
  }
  write(bytes: Uint8Array): void {
    this.chunks.push(bytes.slice());
  }
  send(bytes: Uint8Array): void {
    this.#cb?.(bytes);
  }
  /** Everything written since the last `take()`, as text (must be valid UTF-8). */
  take(): string {
    let n = 0;
    for (const c of this.chunks) n += c.length;
    const all = new Uint8Array(n);
    let o = 0;
    for (const c of this.chunks) {
      all.set(c, o);
      o += c.length;
    }
    this.chunks = [];
    const s = utf8Decode(all);
    if (s === undefined) throw new Error('the console wrote bytes that are not UTF-8');
    return s;
  }
}

export const TEST_PIN = '246810';
export const GATEWAY_ID = 'abcdefghijklmnop';

export interface RelayState { on: boolean; lock: string; critical?: boolean }

/** A ConsoleHost whose state the test sets and whose actions it checks. */
export class FakeHost implements ConsoleHost {
  paired = true;
  pinHash: string | undefined = testPinHash();
  factoryHash: string | undefined;
  config = new Map<string, string>();
  pinned = '';
  unpaired = 0;
  unpairAvailable = true;
  rebootAvailable = true;
  reboots = 0;
  events: { kind: string; data?: { [key: string]: CborValue } }[] = [];
  guestList: GuestInfo[] = [];
  guestActions: string[] = [];
  relays = new Map<number, RelayState>();
  /** Next outcome for a relay set that the lock and the critical mark allow. */
  interlock: RelayResult = { outcome: RelayOutcome.done };
  relayActions: string[] = [];
  readingList: ConsoleReading[] = [];
  logList: ConsoleLogLine[] = [];
  linkList: LinkStatus[] = [{ name: 'primary', state: LinkState.up, lastError: '', active: true, drops: 0 }];
  stats: LogStats = { capacityBytes: 65536, usedBytes: 1200, buffered: 12, oldestSeq: 90, newestSeq: 101, ackedSeq: 89, dropped: 0 };
  online = true;
  asks: { prompt: string; sink: AskSink; job: number; cancelled: boolean }[] = [];
  askAvailable = true;

  identity() {
    return { deviceId: 'qrstuvwxyz234567', pairCode: 'ABCDE-FGH23', model: 'test-meter', firmware: '9.9.9' };
  }
  status() {
    return {
      firmware: '9.9.9', model: 'test-meter', uptimeS: 42, paired: this.paired, gatewayId: this.paired ? GATEWAY_ID : '',
      activeLink: this.online ? 'primary' : '', buffered: this.stats.buffered, dropped: this.stats.dropped, heapUsed: 4096,
      relays: [...this.relays].map(([id, r]): RelayInfo => ({ id, on: r.on, lock: r.lock })),
    };
  }
  readings(n: number) {
    return this.readingList.slice(-n);
  }
  buffer() {
    return this.stats;
  }
  links() {
    return this.linkList;
  }
  guests() {
    return this.guestList;
  }
  /** When set, `guest start` is refused with this reason. */
  guestRefusal: string | undefined;
  guestStop(name: string): GuestResult {
    if (!this.guestList.some((g) => g.name === name)) return { outcome: GuestOutcome.notFound };
    this.guestActions.push(`stop ${name}`);
    return { outcome: GuestOutcome.done };
  }
  guestStart(name: string): GuestResult {
    if (!this.guestList.some((g) => g.name === name)) return { outcome: GuestOutcome.notFound };
    if (this.guestRefusal) return { outcome: GuestOutcome.refused, reason: this.guestRefusal };
    this.guestActions.push(`start ${name}`);
    return { outcome: GuestOutcome.done };
  }
  relaySet(id: number, on: boolean): RelayResult {
    const r = this.relays.get(id);
    if (!r) return { outcome: RelayOutcome.noRelay };
    if (r.critical) return { outcome: RelayOutcome.critical };
    if (r.lock) return { outcome: RelayOutcome.techLock };
    if (this.interlock.outcome !== RelayOutcome.done) return this.interlock;
    r.on = on;
    this.relayActions.push(`set ${id} ${on ? 'on' : 'off'}`);
    return { outcome: RelayOutcome.done };
  }
  relayLock(id: number, mode: RelayLockModeValue): RelayResult {
    const r = this.relays.get(id);
    if (!r) return { outcome: RelayOutcome.noRelay };
    if (r.critical) return { outcome: RelayOutcome.critical };
    r.lock = mode === RelayLockMode.release ? '' : mode === RelayLockMode.on ? 'on' : 'off';
    if (r.lock) r.on = r.lock === 'on';
    this.relayActions.push(`lock ${id} ${r.lock || 'release'}`);
    return { outcome: RelayOutcome.done };
  }
  pinnedGateway() {
    return this.pinned;
  }
  pinGateway(id: string) {
    this.pinned = id;
  }
  unpair() {
    if (!this.paired) return UnpairOutcome.notPaired;
    if (!this.unpairAvailable) return UnpairOutcome.unavailable;
    this.paired = false;
    this.unpaired++;
    return UnpairOutcome.done;
  }
  configGet(key: string) {
    if (key === 'console.pin_hash') return this.pinHash;
    return this.config.get(key);
  }
  configSet(key: string, value: string) {
    this.config.set(key, value);
  }
  pinRecord(): PinRecord | undefined {
    if (this.pinHash) return { hash: this.pinHash, factory: false };
    if (!this.paired && this.factoryHash) return { hash: this.factoryHash, factory: true };
    return undefined;
  }
  logLines(n: number) {
    return this.logList.slice(-n);
  }
  ask(prompt: string, sink: AskSink): number {
    if (!this.askAvailable) return AskRefusal.unavailable;
    if (!this.online) return AskRefusal.offline;
    const job = this.asks.length + 1;
    this.asks.push({ prompt, sink, job, cancelled: false });
    return job;
  }
  cancelAsk(job: number) {
    const a = this.asks.find((x) => x.job === job);
    if (a) a.cancelled = true;
  }
  recordEvent(kind: string, data?: { [key: string]: CborValue }) {
    this.events.push({ kind, data });
  }
  reboot() {
    if (!this.rebootAvailable) return false;
    this.reboots++;
    return true;
  }
  /** Everything a technician's command changes: compared before and after in no-auth checks. */
  techActions(): string {
    return JSON.stringify([this.pinned, this.unpaired, this.reboots, [...this.config], this.guestActions, this.relayActions]);
  }
}

let pinHashCache: string | undefined;
/** console.pin_hash for TEST_PIN (10 iterations: the format is the same, the tests stay fast on XS). */
export function testPinHash(): string {
  if (!pinHashCache) {
    useRandom(new SeededRandom(99));
    pinHashCache = makePinHash(TEST_PIN, 10);
  }
  return pinHashCache;
}

export interface ConsoleWorld {
  time: SimTime;
  kv: KeyValue;
  host: FakeHost;
  port: MemorySerial;
  console: Console;
  /** Types a line (with `\r\n` unless `end` says otherwise) and returns what the console wrote. */
  say(line: string, end?: string): string;
  /** Sends raw bytes and returns what the console wrote. */
  bytes(b: Uint8Array | number[]): string;
  /** A new Console on the same KeyValue and host, as after a reboot. */
  reboot(): void;
}

export function consoleWorld(o: { kv?: KeyValue; host?: FakeHost; time?: SimTime } = {}): ConsoleWorld {
  const time = o.time ?? new SimTime();
  const kv = o.kv ?? new MemoryKV();
  const host = o.host ?? new FakeHost();
  const port = new MemorySerial();
  const make = () => new Console({ port, host, kv, clock: time, timers: simTimers(time) });
  const w: ConsoleWorld = {
    time, kv, host, port, console: make(),
    say(line, end = '\r\n') {
      port.take();
      port.send(utf8Encode(line + end));
      return port.take();
    },
    bytes(b) {
      port.take();
      port.send(b instanceof Uint8Array ? b : new Uint8Array(b));
      return port.take();
    },
    reboot() {
      w.console = make();
    },
  };
  return w;
}

/** The reply lines of one command in text mode, without the trailing prompt. */
export function lines(output: string): string[] {
  const s = output.endsWith('gridlet> ') ? output.slice(0, -'gridlet> '.length) : output;
  const out = s.split('\r\n');
  if (out[out.length - 1] === '') out.pop();
  return out;
}

/** The reply of one command in json mode, parsed line by line. */
export function jsonLines(output: string): { [key: string]: unknown }[] {
  return output.split('\r\n').filter((l) => l).map((l) => JSON.parse(l));
}
