// Store-and-forward under fire (issue 4): the real agent core, with its flash log on a flash that loses
// power, talks over real MQTT connections that flap to a real gateway (embedded broker, SQLite). One seed
// drives the cuts, the flaps and the readings. At the end the gateway's stored records are checked:
//   - every reading whose append returned is stored exactly once;
//   - readings are stored in the order they were taken (seq order = taking order);
//   - nothing is invented: every stored reading was taken (or was the append a power cut interrupted).
// A failing seed is printed and replays exactly as far as the seed decides (the network's timing varies,
// so the interleaving of frames and acks is not bit-for-bit repeatable; the fault schedule is).

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Agent } from '../../firmware/core/agent/agent.js';
import { createDevice } from '../../firmware/core/device.js';
import type { FlashLog } from '../../firmware/core/log/flash-log.js';
import { MemoryFlash } from '../../firmware/core/log/memory-flash.js';
import { DEFAULT_PARTITION } from '../../firmware/core/log/partition.js';
import { LinkState, type Timers, type Transport, type TransportHandlers, type TransportOptions } from '../../firmware/core/ports.js';
import { startGateway, type Gateway } from '../../gateway/gateway.js';
import { FaultyFlash, PowerCut } from '../flash/faulty-flash.js';
import { MemoryKeyValue } from '../ports/file-kv.js';
import { MqttTransport } from '../ports/mqtt-transport.js';
import { NodeClock, NodeTimers, nodeRandom } from '../ports/node-platform.js';
import { Prng } from './prng.js';

export interface StoreForwardOptions {
  seed: number;
  /** Simulated meters, each with its own flash, connection and schedule. */
  devices?: number;
  /** Power cuts to inflict across all devices. */
  cuts: number;
  /** Link flaps to inflict across all devices. */
  flaps: number;
  /** Mean flash writes+erases between two cuts of one device. */
  meanOpsBetweenCuts?: number;
  /** Share of messages the link loses in each direction (default 0.02). */
  lossRate?: number;
  /** Where the gateway keeps its SQLite file (default: /dev/shm when present, for speed). */
  tmp?: string;
  progress?: (line: string) => void;
}

export interface StoreForwardResult {
  seed: number;
  devices: number;
  cuts: number;
  cutsDuringBoot: number;
  flaps: number;
  readingsTaken: number;
  readingsTorn: number;
  readingsStored: number;
  /** Messages the link lost on purpose, up and down. */
  messagesLost: { up: number; down: number };
  lost: number;
  duplicated: number;
  invented: number;
  outOfOrder: number;
  seconds: number;
  failures: string[];
}

/** Timers whose callbacks die with the device: a PowerCut inside one reboots the device. */
class DeviceTimers implements Timers {
  inner = new NodeTimers();
  constructor(readonly onCut: () => void) {}
  #guard(fn: () => void): () => void {
    return () => {
      try {
        fn();
      } catch (e) {
        if (e instanceof PowerCut) this.onCut();
        else throw e;
      }
    };
  }
  set(fn: () => void, ms: number): number {
    return this.inner.set(this.#guard(fn), ms);
  }
  repeat(fn: () => void, ms: number): number {
    return this.inner.repeat(this.#guard(fn), ms);
  }
  clear(id: number): void {
    this.inner.clear(id);
  }
}

/**
 * A real MQTT link whose handlers die with the device, which the simulation can sever, and which loses
 * a share of the messages in both directions (a broker restarted without persistence, a proxy that
 * drops): what no ack covered must be sent again.
 */
class DeviceLink implements Transport {
  readonly mqtt: MqttTransport;
  static lost = { up: 0, down: 0 };
  constructor(url: string, readonly onCut: () => void, readonly prng: Prng, readonly lossRate: () => number) {
    this.mqtt = new MqttTransport(url, 'primary', 0.01);
  }
  get name() { return this.mqtt.name; }
  get state() { return this.mqtt.state; }
  get lastError() { return this.mqtt.lastError; }
  #wrap(h: TransportHandlers): TransportHandlers {
    const guard = <A extends unknown[]>(fn: (...a: A) => void) => (...a: A) => {
      try {
        fn(...a);
      } catch (e) {
        if (e instanceof PowerCut) this.onCut();
        else throw e;
      }
    };
    const onMessage = guard(h.onMessage);
    return {
      onConnect: guard(h.onConnect), onDisconnect: guard(h.onDisconnect),
      onMessage: (topic, payload) => {
        if (this.prng.chance(this.lossRate())) DeviceLink.lost.down++;
        else onMessage(topic, payload);
      },
    };
  }
  start(o: TransportOptions, h: TransportHandlers) { this.mqtt.start(o, this.#wrap(h)); }
  restart(o: TransportOptions) { this.mqtt.restart(o); }
  publish(topic: string, payload: Uint8Array) {
    if (this.mqtt.state === LinkState.up && this.prng.chance(this.lossRate())) {
      DeviceLink.lost.up++; // lost on the way
      return true;
    }
    return this.mqtt.publish(topic, payload);
  }
  stop() { this.mqtt.stop(); }
}

class SimDevice {
  readonly flash: FaultyFlash;
  readonly kv = new MemoryKeyValue();
  agent!: Agent;
  log!: FlashLog;
  timers!: DeviceTimers;
  link!: DeviceLink;
  dead = false;
  cuts = 0;
  cutsDuringBoot = 0;
  flaps = 0;
  nextValue = 1;
  energy = 1_000_000;
  /** Values whose append returned: each must be stored exactly once. */
  taken: number[] = [];
  /** Values whose append a power cut interrupted: they may or may not be stored. */
  torn = new Set<number>();
  armed = false;

  constructor(readonly index: number, readonly prng: Prng, readonly gw: Gateway, readonly meanOps: number, readonly lossRate: number) {
    this.flash = new FaultyFlash(new MemoryFlash({ blocks: DEFAULT_PARTITION.blocks, blockSize: DEFAULT_PARTITION.blockSize }), prng);
  }

  boot(): void {
    for (;;) {
      try {
        this.dead = false;
        this.timers = new DeviceTimers(() => this.crash());
        this.link = new DeviceLink(this.gw.mqttUrl, () => this.crash(), this.prng, () => (this.armed ? this.lossRate : 0));
        // Composed as a meter is (firmware/core/device.ts): the log and counters on the faulty flash.
        const device = createDevice({
          kv: this.kv, random: nodeRandom, clock: new NodeClock(), timers: this.timers, flash: this.flash,
          uplinks: [this.link], model: 'sim', firmware: 'sim',
        });
        this.log = device.log;
        this.agent = device.agent;
        this.agent.start();
        return;
      } catch (e) {
        if (!(e instanceof PowerCut)) throw e;
        this.cuts++;
        this.cutsDuringBoot++;
        this.flash.reboot();
        this.arm();
      }
    }
  }

  arm(): void {
    if (this.armed) this.flash.armIn(this.prng.geometric(this.meanOps));
    else this.flash.disarm();
  }

  /** The power fails: the agent stops where it is; the device boots again on the next turn. */
  crash(): void {
    if (this.dead) return;
    this.dead = true;
    this.cuts++;
    this.link.stop();
    this.timers.inner.clearAll();
    setImmediate(() => {
      this.flash.reboot();
      this.arm();
      this.boot();
    });
  }

  /** The meter takes one reading (two channels); the value on channel 3 is unique per device. */
  take(): void {
    if (this.dead) return;
    const v = this.nextValue++;
    this.energy += 1 + this.prng.int(5);
    try {
      this.agent.recordReadings(NaN, [[1, this.energy], [3, v]]);
      this.taken.push(v);
    } catch (e) {
      if (!(e instanceof PowerCut)) throw e;
      this.torn.add(v);
      this.crash();
    }
  }

  flap(): void {
    if (this.dead) return;
    this.flaps++;
    this.link.mqtt.sever();
  }
}

async function waitFor(cond: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function storedReadings(gw: Gateway, id: string): Promise<[number, number, number, number][]> {
  const out: [number, number, number, number][] = [];
  let from = 1;
  for (;;) {
    const r = await fetch(`${gw.httpUrl}/api/devices/${id}/readings?from=${from}&limit=10000`);
    if (!r.ok) throw new Error(`readings API ${r.status}: ${await r.text()}`);
    const { records } = (await r.json()) as { records: unknown[][] };
    if (!records.length) return out;
    for (const rec of records) if (typeof rec[2] === 'number') out.push(rec as [number, number, number, number]);
    from = (records[records.length - 1][0] as number) + 1;
  }
}

export async function runStoreForwardSim(o: StoreForwardOptions): Promise<StoreForwardResult> {
  const started = Date.now();
  const base = o.tmp ?? (process.platform === 'linux' ? '/dev/shm' : tmpdir());
  const dir = mkdtempSync(join(base, 'gridlet-sfsim-'));
  const prng = new Prng(o.seed);
  const nDevices = o.devices ?? 16;
  const gw = await startGateway({ dataDir: dir, mqttListen: '127.0.0.1:0', httpListen: '127.0.0.1:0', logger: { log() {} } });
  const devices: SimDevice[] = [];
  DeviceLink.lost = { up: 0, down: 0 };
  try {
    for (let i = 0; i < nDevices; i++) {
      const d = new SimDevice(i, new Prng(prng.next()), gw, o.meanOpsBetweenCuts ?? 6, o.lossRate ?? 0.02);
      d.boot();
      devices.push(d);
    }
    // Pair every device through the HTTP API, as an operator would, before the faults begin.
    for (const d of devices) {
      await waitFor(async () => {
        const r = await fetch(`${gw.httpUrl}/api/pairings`, {
          method: 'POST', headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ deviceId: d.agent.deviceId, code: d.agent.identity.pairCode }),
        });
        return r.status === 201;
      }, 20_000, `pairing device ${d.index}`);
      d.armed = true;
      d.arm();
    }
    const cutsOf = () => devices.reduce((s, d) => s + d.cuts, 0);
    const flapsOf = () => devices.reduce((s, d) => s + d.flaps, 0);
    // Each turn a device takes a reading — mostly while online, as a meter whose readings are rare next
    // to its link's round trips; some while offline, so backlogs build up. Flaps are spread so that
    // both targets are reached together.
    let lastReport = Date.now();
    while (cutsOf() < o.cuts || flapsOf() < o.flaps) {
      for (const d of devices) {
        if (prng.chance(!d.dead && d.agent.online ? 0.6 : 0.1)) d.take();
        // About one cut per four readings at the default mean: spread the flaps over the same span.
        const flapChance = o.cuts > 0 ? (o.flaps / Math.max(1, o.cuts)) * 0.3 : 0.05;
        if (flapsOf() < o.flaps && prng.chance(flapChance)) d.flap();
      }
      if (cutsOf() >= o.cuts) for (const d of devices) { d.armed = false; d.flash.disarm(); }
      await new Promise((r) => setTimeout(r, 1));
      if (o.progress && Date.now() - lastReport > 5000) {
        lastReport = Date.now();
        o.progress(`sim seed=${o.seed}: ${cutsOf()}/${o.cuts} cuts, ${flapsOf()}/${o.flaps} flaps, ${devices.reduce((s, d) => s + d.taken.length, 0)} readings`);
      }
    }
    // Calm: no more faults; wait until every device has everything acked.
    for (const d of devices) { d.armed = false; d.flash.disarm(); }
    const failures: string[] = [];
    try {
      await waitFor(() => devices.every((d) => !d.dead && d.agent.online && d.log.stats().buffered === 0), 90_000, 'every device to drain its log');
    } catch {
      for (const d of devices) {
        const st = d.log.stats();
        if (st.buffered) failures.push(`device ${d.index} never drained: ${st.buffered} records unacked (acked seq ${st.ackedSeq}, newest ${st.newestSeq})`);
      }
    }

    let stored = 0, lost = 0, duplicated = 0, invented = 0, outOfOrder = 0;
    for (const d of devices) {
      const recs = await storedReadings(gw, d.agent.deviceId);
      const values = recs.filter((r) => r[2] === 3).map((r) => r[3]);
      stored += values.length;
      const seen = new Set<number>();
      const taken = new Set(d.taken);
      let prev = 0;
      for (const v of values) {
        if (seen.has(v)) { duplicated++; failures.push(`device ${d.index}: value ${v} stored twice`); }
        seen.add(v);
        if (v < prev) { outOfOrder++; failures.push(`device ${d.index}: value ${v} stored after ${prev}`); }
        prev = v;
        if (!d.torn.has(v) && !taken.has(v)) { invented++; failures.push(`device ${d.index}: value ${v} was never taken`); }
      }
      for (const v of d.taken) if (!seen.has(v)) { lost++; failures.push(`device ${d.index}: value ${v} was taken but is not stored`); }
    }
    return {
      seed: o.seed, devices: nDevices, cuts: cutsOf(), cutsDuringBoot: devices.reduce((s, d) => s + d.cutsDuringBoot, 0),
      flaps: flapsOf(), readingsTaken: devices.reduce((s, d) => s + d.taken.length, 0),
      readingsTorn: devices.reduce((s, d) => s + d.torn.size, 0), readingsStored: stored, messagesLost: { ...DeviceLink.lost },
      lost, duplicated, invented, outOfOrder, seconds: (Date.now() - started) / 1000, failures: failures.slice(0, 20),
    };
  } finally {
    for (const d of devices) { d.dead = true; d.link?.stop(); d.timers?.inner.clearAll(); }
    await gw.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
