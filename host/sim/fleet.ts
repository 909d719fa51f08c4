// The fleet simulator behind `gridlet sim`: N simulated meters in one process, each the firmware core's
// Agent with its own MQTT connection, key, flash log (in RAM) and frame counters, paired through the
// gateway's HTTP API as an operator pairs meters, reporting on a staggered interval, optionally with
// link flaps. At the end it reads back what the gateway stored and compares it with what each meter
// generated: loss and duplication are counted from the gateway's records, not from the meters.
//
// A member is lean on purpose (no guests, relays or console): 10,000 of them share two cores with a
// gateway and a broker. Repeating core timers faster than once a second (the agent's 250 ms pacing
// tick, the links' check) run once a second here; live readings are still sent the moment they are taken.

import { AgentState, type Agent } from '../../firmware/core/agent/agent.js';
import { createDevice, type Device } from '../../firmware/core/device.js';
import { FlashUpdater } from '../../firmware/core/update/boot-control.js';
import { bootHostImage } from '../ota/host-image.js';
import type { FlashLog } from '../../firmware/core/log/flash-log.js';
import { MemoryFlash } from '../../firmware/core/log/memory-flash.js';
import type { Transport, TransportHandlers, TransportOptions } from '../../firmware/core/ports.js';
import { MemoryKeyValue } from '../ports/file-kv.js';
import { MqttTransport } from '../ports/mqtt-transport.js';
import { NodeClock, nodeRandom, NodeTimers } from '../ports/node-platform.js';
import { SimMeter } from '../meter/sim-meter.js';
import { Prng } from '../../firmware/core/prng.js';

export interface FleetOptions {
  meters: number;
  /** The broker meters connect to. */
  broker: string;
  /** The gateway's HTTP API (pairing, reading back records). */
  gateway: string;
  apiToken?: string;
  /** Seconds of reporting after the fleet is paired (default 60). */
  durationS?: number;
  /** Milliseconds between a meter's readings (default 10 s); start times are spread over one interval. */
  intervalMs?: number;
  /** Each meter's link is dropped on average once per this many seconds (0: never). */
  flapEveryS?: number;
  /** Seconds after the run for meters to drain their logs before counting (default 60). */
  graceS?: number;
  /** Pairing requests in flight at once (default 64). */
  pairConcurrency?: number;
  /** New MQTT connections per second while the fleet connects (default 400). */
  connectRate?: number;
  seed?: number;
  topicPrefix?: string;
  /** Progress lines (pairing and run); `final` marks the last line of a phase. */
  onProgress?: (p: FleetProgress) => void;
  /**
   * Release keys the meters trust: with them each meter has A/B slots (a small OTA flash in RAM) and
   * takes firmware over the air, restarting into a new image as a meter does (host images,
   * `gridlet firmware host-image`).
   */
  releaseKeys?: Uint8Array[];
  /** How long a new image has to reach its gateway before it gives itself up, ms. */
  trialMs?: number;
}

/** A member's OTA flash: boot control and two 64 KiB slots (host images for drills are small). */
const FLEET_OTA = { blocks: 2 + 2 * 64, blockSize: 1024 };
/** Where an image that never reconnects points its link (the discard port; nothing listens). */
const NOWHERE = 'mqtt://127.0.0.1:9';

export interface FleetProgress {
  phase: 'connect' | 'pair' | 'run' | 'drain' | 'count';
  done: number;
  total: number;
  detail: string;
}

export interface FleetReport {
  meters: number;
  /** Records the meters generated (readings and events). */
  sent: number;
  /** Records the gateway acknowledged, as the meters saw it. */
  acked: number;
  /** Records a meter generated that the gateway does not have (or stored as lost in a gap). */
  lost: number;
  /** Readings the gateway stored more than once, or that no meter generated at that seq. */
  dup: number;
  /** Publish of a frame to the gateway's ack arriving at the meter, ms. */
  p50_ms: number;
  p99_ms: number;
  paired: number;
  /** Meters that could not be paired (they are left out of sent/acked/lost). */
  unpaired: number;
  frames: number;
  flaps: number;
  /**
   * connect: meters coming up (at `connectRate`) and saying Hello; pair: from the first pairing request
   * until every paired meter is back online with its session; then run, drain and count.
   */
  seconds: { connect: number; pair: number; run: number; drain: number; count: number };
}

/** The report's one stdout line. */
export function reportLine(r: FleetReport): string {
  return `sim report meters=${r.meters} sent=${r.sent} acked=${r.acked} lost=${r.lost} dup=${r.dup} p50_ms=${r.p50_ms} p99_ms=${r.p99_ms}`;
}

/** The meter's MQTT link, noting when frames carrying new records leave (for ack latency). */
class TimedTransport implements Transport {
  constructor(readonly inner: MqttTransport, readonly onUp: () => void) {}
  get name() {
    return this.inner.name;
  }
  get state() {
    return this.inner.state;
  }
  get lastError() {
    return this.inner.lastError;
  }
  start(o: TransportOptions, h: TransportHandlers) {
    this.inner.start(o, h);
  }
  restart(o: TransportOptions) {
    this.inner.restart(o);
  }
  publish(topic: string, payload: Uint8Array): boolean {
    const ok = this.inner.publish(topic, payload);
    if (ok && topic.endsWith('/up')) this.onUp();
    return ok;
  }
  stop() {
    this.inner.stop();
  }
}

/** Small flash per meter: 5 log blocks (the minimum is 3) and 2 counter blocks of 1 KiB. */
const FLASH = { blocks: 7, blockSize: 1024 };

class Member {
  agent!: Agent;
  log!: FlashLog;
  link!: MqttTransport;
  readonly meter: SimMeter;
  readonly kv = new MemoryKeyValue();
  readonly flash = new MemoryFlash(FLASH);
  readonly ota: MemoryFlash | undefined;
  /** The firmware version this boot runs. */
  firmware = '0.1.0';
  boots = 0;
  /** Readings generated: seq → [t, channel, value]. */
  readonly generated = new Map<number, [number, number, number]>();
  /** [newest seq when a frame left, when] for frames that carried new records. */
  #inFlight: [number, number][] = [];
  #lastNoted = 0;
  #device: Device | undefined;
  paired = false;

  constructor(readonly index: number, readonly fleet: Fleet, seed: number) {
    this.meter = new SimMeter({ seed, intervalMs: fleet.interval });
    this.ota = fleet.o.releaseKeys ? new MemoryFlash(FLEET_OTA) : undefined;
    this.boot();
  }

  /** Boots as a meter does: the bootloader picks a slot (with A/B slots), then the device is composed. */
  boot(): void {
    const fleet = this.fleet;
    const image = this.ota ? bootHostImage(this.ota, '0.1.0') : { version: '0.1.0', fault: undefined };
    this.firmware = image.version;
    this.boots++;
    this.link = new MqttTransport(image.fault === 'no-reconnect' ? NOWHERE : fleet.o.broker, 'primary');
    const transport = new TimedTransport(this.link, () => {
      const newest = this.log.stats().newestSeq;
      if (newest > this.#lastNoted) {
        this.#lastNoted = newest;
        this.#inFlight.push([newest, performance.now()]);
      }
    });
    // The meter as firmware/main.ts and the host agent compose it, without relays, guests or console:
    // the fleet drives its readings itself (read()).
    const device = createDevice({
      kv: this.kv, random: nodeRandom, clock: fleet.clock, timers: fleet.timers, flash: this.flash,
      uplinks: [transport], model: 'gridlet-sim', firmware: image.version, capabilities: [], topicPrefix: fleet.o.topicPrefix,
      onEvent: (name, detail) => {
        if (name === 'ack') this.#onAck((detail as { seq: number }).seq, fleet);
        else if (name === 'paired') this.paired = true;
      },
      ...(this.ota ? {
        updater: new FlashUpdater(this.ota), releaseKeys: fleet.o.releaseKeys, trialMs: fleet.o.trialMs,
        reboot: () => this.restart(),
      } : {}),
    });
    this.#device = device;
    this.agent = device.agent;
    this.log = device.log;
  }

  /** A restart: this boot stops where it is; the next one starts a moment later. */
  restart(): void {
    this.#device?.stop();
    setTimeout(() => {
      this.boot();
      this.agent.start();
    }, 100);
  }

  #onAck(seq: number, fleet: Fleet): void {
    const now = performance.now();
    let i = 0;
    while (i < this.#inFlight.length && this.#inFlight[i][0] <= seq) {
      const sent = this.#inFlight[i++][1];
      if (fleet.measuring) fleet.latencies.push(now - sent);
    }
    if (i) this.#inFlight.splice(0, i);
  }

  /** Latency is measured from here on: what left before (pairing, the power-up event) does not count. */
  startMeasuring(): void {
    this.#inFlight = [];
    this.#lastNoted = this.log.stats().newestSeq;
  }

  /** Takes one reading (four channels) and hands it to the agent, which logs and sends it. */
  read(): void {
    const t = Date.now();
    const values = this.meter.sample(t);
    const first = this.log.stats().newestSeq + 1;
    this.agent.recordReadings(t, values);
    const ts = Math.floor(t / 1000);
    values.forEach(([ch, v], k) => this.generated.set(first + k, [ts, ch, v]));
  }

  /** Records generated (readings and events) and acknowledged. */
  counts(): { newest: number; acked: number } {
    return { newest: this.log.stats().newestSeq, acked: this.agent.ackedSeq };
  }
}

type Json = any;

export class Fleet {
  readonly o: FleetOptions;
  readonly clock = new NodeClock();
  /** Timers shared by the whole fleet; repeats faster than 1 s are slowed to it. */
  readonly timers = new NodeTimers({ unref: false, minRepeatMs: 1000 });
  readonly interval: number;
  readonly latencies: number[] = [];
  readonly members: Member[] = [];
  /** Ack latencies are collected while this is set (the run and its drain). */
  measuring = false;
  readonly #prng: Prng;
  #stopped = false;
  #flaps = 0;

  constructor(o: FleetOptions) {
    if (!(Number.isInteger(o.meters) && o.meters >= 1)) throw new Error('--meters must be a whole number ≥ 1');
    this.o = o;
    this.interval = o.intervalMs ?? 10_000;
    this.#prng = new Prng(o.seed ?? 1);
  }

  #progress(phase: FleetProgress['phase'], done: number, total: number, detail = ''): void {
    this.o.onProgress?.({ phase, done, total, detail });
  }

  async #api(method: string, path: string, body?: unknown, base = this.o.gateway): Promise<{ status: number; json: Json }> {
    const headers: { [k: string]: string } = {};
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (this.o.apiToken) headers.authorization = `Bearer ${this.o.apiToken}`;
    const res = await fetch(base.replace(/\/$/, '') + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    let json: Json;
    try {
      json = JSON.parse(text);
    } catch {
      json = { text };
    }
    return { status: res.status, json };
  }

  /** Connects, pairs, runs for the duration, drains, counts. */
  async run(): Promise<FleetReport> {
    const o = this.o;
    const n = o.meters;
    const t0 = performance.now();
    // Connect: meters come up at `connectRate` per second and Hello.
    const rate = o.connectRate ?? 400;
    for (let i = 0; i < n; i++) {
      const m = new Member(i, this, (o.seed ?? 1) * 100_003 + i);
      this.members.push(m);
      m.agent.start();
      if ((i + 1) % Math.max(1, Math.round(rate / 10)) === 0) {
        this.#progress('connect', i + 1, n);
        await sleep(100);
      }
    }
    this.#progress('connect', n, n, 'final');
    const tConnected = performance.now();
    // Pair in bulk through the API, `pairConcurrency` at a time.
    let paired = 0;
    const failed: string[] = [];
    await pool(this.members, o.pairConcurrency ?? 64, async (m) => {
      const ok = await this.#pair(m);
      if (ok) paired++;
      else failed.push(m.agent.deviceId);
      if ((paired + failed.length) % 50 === 0) this.#progress('pair', paired + failed.length, n, failed.length ? `${failed.length} failed` : '');
    });
    this.#progress('pair', n, n, failed.length ? `${failed.length} failed` : 'final');
    // Wait until paired meters have a link up with their session credentials (they reconnect after pairing).
    const pairedMembers = this.members.filter((m) => m.paired);
    await waitFor(() => pairedMembers.every((m) => m.agent.online), 60_000);
    const tPair = performance.now();

    // Run: each meter reads every interval, the fleet's start times spread over one interval.
    for (const m of pairedMembers) m.startMeasuring();
    this.measuring = true;
    const readers: NodeJS.Timeout[] = [];
    const starts: NodeJS.Timeout[] = [];
    for (const m of pairedMembers) {
      starts.push(setTimeout(() => {
        if (this.#stopped) return;
        m.read();
        readers.push(setInterval(() => m.read(), this.interval));
      }, this.#prng.float() * this.interval));
    }
    const flapper = o.flapEveryS ? this.#flapper(pairedMembers, o.flapEveryS) : undefined;
    const durationMs = (o.durationS ?? 60) * 1000;
    const runStart = performance.now();
    while (performance.now() - runStart < durationMs) {
      await sleep(Math.min(1000, durationMs - (performance.now() - runStart)));
      const c = this.#totals(pairedMembers);
      this.#progress('run', Math.round((performance.now() - runStart) / 1000), durationMs / 1000,
        `sent=${c.newest} acked=${c.acked} backlog=${c.newest - c.acked}`);
    }
    this.#stopped = true;
    for (const s of starts) clearTimeout(s);
    for (const r of readers) clearInterval(r);
    if (flapper) clearInterval(flapper);
    const tRun = performance.now();

    // Drain: meters get a grace period to send what their logs still hold.
    const graceMs = (o.graceS ?? 60) * 1000;
    const drainStart = performance.now();
    for (;;) {
      const c = this.#totals(pairedMembers);
      this.#progress('drain', c.acked, c.newest, `backlog=${c.newest - c.acked}`);
      if (c.acked >= c.newest || performance.now() - drainStart > graceMs) break;
      await sleep(500);
    }
    const tDrain = performance.now();

    // Count from the gateway's stored records.
    const { lost, dup } = await this.recount();
    const tCount = performance.now();
    const totals = this.#totals(pairedMembers);
    const sorted = Float64Array.from(this.latencies).sort();
    const pct = (p: number) => (sorted.length ? Math.round(sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]) : 0);
    return {
      meters: n, sent: totals.newest, acked: totals.acked, lost, dup, p50_ms: pct(0.5), p99_ms: pct(0.99),
      paired: pairedMembers.length, unpaired: n - pairedMembers.length,
      frames: pairedMembers.reduce((s, m) => s + m.agent.counters.framesSent, 0), flaps: this.#flaps,
      seconds: {
        connect: round1((tConnected - t0) / 1000), pair: round1((tPair - tConnected) / 1000), run: round1((tRun - tPair) / 1000), drain: round1((tDrain - tRun) / 1000),
        count: round1((tCount - tDrain) / 1000),
      },
    };
  }

  /**
   * Reads every paired meter's records back from a gateway (default: the one it reports to) and counts
   * generated records it does not have (lost) and readings it has that the meters did not generate (dup).
   */
  async recount(gateway = this.o.gateway): Promise<{ lost: number; dup: number }> {
    const paired = this.members.filter((m) => m.paired);
    let lost = 0;
    let dup = 0;
    let done = 0;
    await pool(paired, 32, async (m) => {
      const r = await this.#compare(m, gateway);
      lost += r.lost;
      dup += r.dup;
      if (++done % 100 === 0) this.#progress('count', done, paired.length);
    });
    this.#progress('count', paired.length, paired.length, 'final');
    return { lost, dup };
  }

  /** Stops every meter (closes their connections). */
  stop(): void {
    this.#stopped = true;
    for (const m of this.members) m.agent.stop();
  }

  #totals(ms: Member[]): { newest: number; acked: number } {
    let newest = 0;
    let acked = 0;
    for (const m of ms) {
      const c = m.counts();
      newest += c.newest;
      acked += c.acked;
    }
    return { newest, acked };
  }

  #flapper(ms: Member[], everyS: number): NodeJS.Timeout {
    // Every 100 ms, each meter's link drops with probability 0.1 / everyS.
    const p = 0.1 / everyS;
    return setInterval(() => {
      const k = Math.floor(ms.length * p) + (this.#prng.float() < (ms.length * p) % 1 ? 1 : 0);
      for (let j = 0; j < k; j++) {
        ms[this.#prng.int(ms.length)].link.sever();
        this.#flaps++;
      }
    }, 100);
  }

  /** Pairs one meter: waits for its Hello to reach the gateway (404), retries timeouts. */
  async #pair(m: Member): Promise<boolean> {
    const deadline = performance.now() + 120_000;
    while (performance.now() < deadline) {
      if (m.agent.state === AgentState.paired) return true;
      let r: { status: number; json: Json };
      try {
        r = await this.#api('POST', '/api/pairings', { deviceId: m.agent.deviceId, code: m.agent.identity.pairCode });
      } catch {
        await sleep(1000);
        continue;
      }
      if (r.status === 201) {
        m.paired = true;
        return true;
      }
      if (r.status === 403) return false;
      await sleep(r.status === 404 ? 500 : 1000);
    }
    return false;
  }

  /** Reads the meter's records back from the gateway and compares them with what it generated. */
  async #compare(m: Member, gateway: string): Promise<{ lost: number; dup: number }> {
    const id = m.agent.deviceId;
    const newest = m.counts().newest;
    const stored = new Map<number, Json[]>();
    let dup = 0;
    for (let from = 1; from <= newest;) {
      let r: { status: number; json: Json } | undefined;
      for (let attempt = 0; attempt < 5 && !(r && r.status === 200); attempt++) {
        r = await this.#api('GET', `/api/devices/${id}/readings?from=${from}&limit=1000`, undefined, gateway).catch(() => undefined);
        if (r?.status === 404) break; // a device the gateway does not know: it has none of its records
        if (!r || r.status !== 200) await sleep(500);
      }
      if (r?.status === 404) break;
      if (!r || r.status !== 200) throw new Error(`cannot read the records of ${id} back from the gateway (HTTP ${r?.status})`);
      const recs = (r.json.records ?? []) as Json[][];
      if (!recs.length) break;
      let next = from;
      for (const x of recs) {
        const seq = x[0] as number;
        if (stored.has(seq)) dup++;
        stored.set(seq, x);
        next = Math.max(next, (x[2] === 'gap' ? (x[3] as number) : seq) + 1);
      }
      if (next <= from) break;
      from = next;
    }
    let lost = 0;
    for (let seq = 1; seq <= newest; seq++) {
      const g = m.generated.get(seq);
      const s = stored.get(seq);
      if (!s || s[2] === 'gap') lost++;
      else if (g ? s[1] !== g[0] || s[2] !== g[1] || s[3] !== g[2] : s[2] !== 'event') lost++;
    }
    // A reading stored where the meter generated none (or another one) is a duplicate of something.
    for (const [seq, s] of stored) {
      if (s[2] === 'gap' || s[2] === 'event') continue;
      const g = m.generated.get(seq);
      if (!g || s[1] !== g[0] || s[2] !== g[1] || s[3] !== g[2]) dup++;
    }
    return { lost, dup };
  }
}

function round1(x: number): number {
  return Math.round(x * 10) / 10;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function waitFor(f: () => boolean, ms: number): Promise<boolean> {
  const deadline = performance.now() + ms;
  while (!f()) {
    if (performance.now() > deadline) return false;
    await sleep(200);
  }
  return true;
}

/** Runs `f` over `items`, at most `limit` at a time. */
async function pool<T>(items: T[], limit: number, f: (x: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await f(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
