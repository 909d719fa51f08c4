// Store-and-forward under fire: the real agent core, with its flash log on a flash that loses
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
import { BootState, LinkState, type KeyValue, type Timers, type Transport, type TransportHandlers, type TransportOptions } from '../../firmware/core/ports.js';
import { bootloader, FACTORY_SLOT, FlashUpdater, OtaFlash } from '../../firmware/core/update/boot-control.js';
import { encodeManifest, encodeReleaseFile, imageCid, keyIdOf, releaseKeyPair, signManifest } from '../../firmware/core/update/release.js';
import { toHex } from '../../firmware/core/bytes.js';
import { makeHostImage, parseHostImage } from '../ota/host-image.js';
import { FaultyFlash, PowerCut } from '../flash/faulty-flash.js';
import { MemoryKeyValue } from '../ports/file-kv.js';
import { MqttTransport } from '../ports/mqtt-transport.js';
import { NodeClock, NodeTimers, nodeRandom } from '../ports/node-platform.js';
import { Prng } from '../../firmware/core/prng.js';

/** What the simulation needs of a gateway; the caller starts a real one (gateway/gateway.ts). */
export interface SimGateway {
  mqttUrl: string;
  httpUrl: string;
  close(): Promise<void>;
}

export interface StoreForwardOptions {
  seed: number;
  /**
   * Starts the gateway the meters talk to, keeping its data in `dataDir`: a real gateway with an
   * embedded broker and SQLite, listening on free ports (host/ never imports the gateway itself).
   */
  startGateway(dataDir: string): Promise<SimGateway>;
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
  /**
   * Firmware updates under the cuts: each device has A/B slots on a flash that loses power too (and a
   * KeyValue store whose writes it cuts), and the gateway rolls out one release after another to every
   * device — good ones, and ones that never reach the gateway and must roll back by themselves. Every
   * boot is checked to start an intact image (factory or a release, byte for byte).
   */
  updates?: boolean;
  /** Mean slot and boot-control writes+erases between two cuts (updates; default 25). */
  meanOtaOpsBetweenCuts?: number;
  /**
   * Updates: the faults go on until this many rollouts have ended under them, however soon the cuts are
   * reached (default 0; 3 takes in the third release, one that must roll back).
   */
  releasesUnderFaults?: number;
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
  /** With `updates`: cuts that fell while an update was under way (download, verify, restart, trial). */
  updateCuts?: number;
  /** With `updates`: releases rolled out, and per-device outcomes of all of them. */
  releases?: number;
  outcomes?: { [state: string]: number };
  /**
   * With `updates`: the per-device states of the last rollout once the faults stopped and the meters had
   * the calm to finish (reporting as meters do): every one should be final.
   */
  lastOutcomes?: { [state: string]: number };
  /** With `updates`: boots checked to start an intact image. */
  bootsChecked?: number;
}

/**
 * A KeyValue whose writes of the update state machine's keys ("fw", "fw.why") lose power on a seeded
 * schedule (NVS: a write is whole or not at all). Other keys (identity, session, windows) are left
 * alone here, as in the store-and-forward runs without updates.
 */
class FaultyKeyValue implements KeyValue {
  #countdown = 0;
  armed = false;
  /** The device's power is off (a cut here or in one of its flashes): every call throws until it is back. */
  down = false;
  constructor(readonly inner: MemoryKeyValue, readonly prng: Prng, readonly mean: number, readonly onCut: () => void) {}
  arm(): void {
    this.armed = true;
    this.#countdown = this.prng.geometric(this.mean);
  }
  get(k: string) {
    if (this.down) throw new PowerCut('write-before');
    return this.inner.get(k);
  }
  #step(k: string, apply: () => void): void {
    if (this.down) throw new PowerCut('write-before');
    if (this.armed && k.startsWith('fw') && --this.#countdown <= 0) {
      this.armed = false;
      if (this.prng.chance(0.5)) apply(); // cut after the write, or before it
      this.onCut();
      throw new PowerCut('write-during');
    }
    apply();
  }
  set(k: string, v: Uint8Array) { this.#step(k, () => this.inner.set(k, v)); }
  delete(k: string) { this.#step(k, () => this.inner.delete(k)); }
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
  constructor(url: string, readonly onCut: () => void, readonly prng: Prng, readonly lossRate: () => number, readonly powered: () => boolean) {
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
        if (!this.powered()) return; // the device is dead until it boots again
        if (this.prng.chance(this.lossRate())) DeviceLink.lost.down++;
        else onMessage(topic, payload);
      },
    };
  }
  start(o: TransportOptions, h: TransportHandlers) { this.mqtt.start(o, this.#wrap(h)); }
  restart(o: TransportOptions) { this.mqtt.restart(o); }
  publish(topic: string, payload: Uint8Array) {
    if (!this.powered()) return true; // code that caught the cut and went on: a dead device sends nothing
    if (this.mqtt.state === LinkState.up && this.prng.chance(this.lossRate())) {
      DeviceLink.lost.up++; // lost on the way
      return true;
    }
    return this.mqtt.publish(topic, payload);
  }
  stop() { this.mqtt.stop(); }
}

/** What a simulated device with updates knows of the world: the good images by CID hex, the key. */
interface UpdateWorld {
  images: Map<string, string>;
  key: Uint8Array;
  trialMs: number;
  meanOta: number;
}

class SimDevice {
  readonly flash: FaultyFlash;
  readonly store = new MemoryKeyValue();
  kv: KeyValue = this.store;
  ota: FaultyFlash | undefined;
  faultyKv: FaultyKeyValue | undefined;
  updates: UpdateWorld | undefined;
  firmware = '0.1.0';
  updateCuts = 0;
  bootsChecked = 0;
  badBoots: string[] = [];
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

  constructor(readonly index: number, readonly prng: Prng, readonly gw: SimGateway, readonly meanOps: number, readonly lossRate: number) {
    this.flash = new FaultyFlash(new MemoryFlash({ blocks: DEFAULT_PARTITION.blocks, blockSize: DEFAULT_PARTITION.blockSize }), prng, { onCut: () => this.#powerOff() });
  }

  withUpdates(u: UpdateWorld): void {
    this.updates = u;
    this.ota = new FaultyFlash(new MemoryFlash({ blocks: 2 + 2 * 16, blockSize: 4096 }), this.prng, { onCut: () => this.#powerOff() });
    this.faultyKv = new FaultyKeyValue(this.store, this.prng, u.meanOta, () => this.#powerOff());
    this.kv = this.faultyKv;
  }

  /** A cut in one store is a cut of the whole device: its flashes and its KeyValue store stay off. */
  #powerOff(): void {
    this.flash.powerOff();
    this.ota?.powerOff();
    if (this.faultyKv) this.faultyKv.down = true;
  }

  #powerOn(): void {
    this.flash.reboot();
    this.ota?.reboot();
    if (this.faultyKv) this.faultyKv.down = false;
  }

  /** Is an update under way (a download kept, or a new image on trial)? Where a cut counts as on the update path. */
  updating(): boolean {
    if (!this.updates) return false;
    if (this.store.get('fw')) return true;
    try {
      return new FlashUpdater(this.ota!.inner).bootState === BootState.trial;
    } catch {
      return false;
    }
  }

  /** Plays the bootloader and checks that what it boots is an intact image; returns its version and fault. */
  #bootImage(): { version: string; fault?: string } {
    const ota = this.ota!;
    const choice = bootloader(ota);
    this.bootsChecked++;
    if (choice.slot === FACTORY_SLOT) return { version: '0.1.0' };
    const bytes = new OtaFlash(ota).readSlot(choice.slot, 0, choice.size);
    const cid = toHex(imageCid(bytes));
    if (!this.updates!.images.has(cid)) {
      this.badBoots.push(`device ${this.index}: the bootloader started slot ${choice.slot} (${choice.size} bytes), which is no intact image`);
      return { version: '0.0.0' };
    }
    return parseHostImage(bytes);
  }

  boot(): void {
    for (;;) {
      try {
        this.dead = false;
        this.timers = new DeviceTimers(() => this.crash());
        let fault: string | undefined;
        if (this.updates) {
          const image = this.#bootImage();
          this.firmware = image.version;
          fault = image.fault;
        }
        const broker = fault === 'no-reconnect' ? 'mqtt://127.0.0.1:9' : this.gw.mqttUrl;
        this.link = new DeviceLink(broker, () => this.crash(), this.prng, () => (this.armed ? this.lossRate : 0), () => !this.flash.down);
        // Composed as a meter is (firmware/core/device.ts): the log and counters on the faulty flash.
        const device = createDevice({
          kv: this.kv, random: nodeRandom, clock: new NodeClock(), timers: this.timers, flash: this.flash,
          uplinks: [this.link], model: 'sim', firmware: this.updates ? this.firmware : 'sim',
          ...(this.updates ? {
            updater: new FlashUpdater(this.ota!), releaseKeys: [this.updates.key], trialMs: this.updates.trialMs,
            reboot: () => this.restart(),
          } : {}),
        });
        this.log = device.log;
        this.agent = device.agent;
        this.agent.start();
        return;
      } catch (e) {
        if (!(e instanceof PowerCut)) throw e;
        this.cuts++;
        this.cutsDuringBoot++;
        if (this.updating()) this.updateCuts++;
        this.#powerOn();
        this.arm();
      }
    }
  }

  arm(): void {
    if (this.armed) {
      this.flash.armIn(this.prng.geometric(this.meanOps));
      if (this.updates) {
        this.ota!.armIn(this.prng.geometric(this.updates.meanOta));
        this.faultyKv!.arm();
      }
    } else {
      this.flash.disarm();
      this.ota?.disarm();
      if (this.faultyKv) this.faultyKv.armed = false;
    }
  }

  /** A restart the firmware asked for (into a new image, or back from a failed trial). */
  restart(): void {
    if (this.dead) return;
    this.dead = true;
    this.link.stop();
    this.timers.inner.clearAll();
    setImmediate(() => this.boot());
  }

  /** The power fails: the agent stops where it is; the device boots again on the next turn. */
  crash(): void {
    if (this.dead) return;
    this.dead = true;
    this.cuts++;
    if (this.updating()) this.updateCuts++;
    this.link.stop();
    this.timers.inner.clearAll();
    setImmediate(() => {
      this.#powerOn();
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

async function storedReadings(gw: SimGateway, id: string): Promise<[number, number, number, number][]> {
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
  const gw = await o.startGateway(dir);
  const devices: SimDevice[] = [];
  DeviceLink.lost = { up: 0, down: 0 };
  try {
    const key = releaseKeyPair(new Uint8Array(32).fill(0x5e));
    const world: UpdateWorld = { images: new Map(), key: key.publicKey, trialMs: 2000, meanOta: o.meanOtaOpsBetweenCuts ?? 25 };
    for (let i = 0; i < nDevices; i++) {
      const d = new SimDevice(i, new Prng(prng.next()), gw, o.meanOpsBetweenCuts ?? 6, o.lossRate ?? 0.02);
      if (o.updates) d.withUpdates(world);
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
    const totalCutsOf = () => devices.reduce((s, d) => s + d.cuts, 0);
    const updateCutsOf = () => devices.reduce((s, d) => s + d.updateCuts, 0);
    // With updates, the cuts that count are those on the update path.
    const cutsOf = o.updates ? updateCutsOf : totalCutsOf;
    // Releases, one after another, to every device: each third one never reaches its gateway.
    const outcomes: { [state: string]: number } = {};
    let releases = 0, releasesEnded = 0, lastRollout = 0;
    let releasing = o.updates === true;
    /** Counts a rollout's devices by state into `into`. */
    const tally = (devices: { state: string }[], into: { [state: string]: number }) => {
      for (const t of devices) into[t.state] = (into[t.state] ?? 0) + 1;
      return into;
    };
    const api = async (method: string, path: string, body?: unknown) => {
      const r = await fetch(`${gw.httpUrl}${path}`, { method, headers: body ? { 'content-type': 'application/json' } : {}, body: body ? JSON.stringify(body) : undefined });
      return { status: r.status, json: await r.json() as any };
    };
    const rollouts = (async () => {
      while (releasing) {
        releases++;
        const version = `0.${releases + 1}.0`;
        const bad = releases % 3 === 0;
        const image = makeHostImage({ version, ...(bad ? { fault: 'no-reconnect' as const } : {}) }, 24_000 + prng.int(8000));
        world.images.set(toHex(imageCid(image)), version);
        const manifest = encodeManifest({
          cid: imageCid(image), size: image.length, version, models: ['sim'], minVersion: '0.0.0', keyId: keyIdOf(key.publicKey), created: 1_700_000_000,
        });
        const file = encodeReleaseFile({ manifest, signature: signManifest(manifest, key.secretKey) }, image);
        const up = await api('POST', '/api/firmware', { release: Buffer.from(file).toString('base64') });
        if (up.status !== 201) throw new Error(`release ${version} refused: ${JSON.stringify(up.json)}`);
        const r = await api('POST', '/api/firmware/rollouts', { release: version, devices: devices.map((d) => d.agent.deviceId), maxFailures: 0 });
        if (r.status !== 201) throw new Error(`rollout of ${version} refused: ${JSON.stringify(r.json)}`);
        lastRollout = r.json.id;
        const end = Date.now() + 30_000;
        for (;;) {
          await new Promise((res) => setTimeout(res, 200));
          const st = await api('GET', `/api/firmware/rollouts/${r.json.id}`);
          // Once the faults stop, the devices still under way get 20 s more to finish.
          if (st.json.state === 'done' || (releasing && Date.now() > end) || Date.now() > end + 20_000) {
            tally(st.json.devices, outcomes);
            releasesEnded++;
            break;
          }
        }
      }
    })();
    const flapsOf = () => devices.reduce((s, d) => s + d.flaps, 0);
    // Each turn a device takes a reading — mostly while online, as a meter whose readings are rare next
    // to its link's round trips; some while offline, so backlogs build up. Flaps are spread so that
    // both targets are reached together.
    let lastReport = Date.now();
    while (cutsOf() < o.cuts || flapsOf() < o.flaps || releasesEnded < (o.releasesUnderFaults ?? 0)) {
      for (const d of devices) {
        if (prng.chance(!d.dead && d.agent.online ? 0.6 : 0.1)) d.take();
        // About one cut per four readings at the default mean: spread the flaps over the same span.
        const flapChance = o.cuts > 0 ? (o.flaps / Math.max(1, o.cuts)) * 0.3 : 0.05;
        if (flapsOf() < o.flaps && prng.chance(flapChance)) d.flap();
      }
      if (cutsOf() >= o.cuts) for (const d of devices) { d.armed = false; d.arm(); }
      await new Promise((r) => setTimeout(r, 1));
      if (o.progress && Date.now() - lastReport > 5000) {
        lastReport = Date.now();
        o.progress(`sim seed=${o.seed}: ${cutsOf()}/${o.cuts} cuts, ${flapsOf()}/${o.flaps} flaps, ${devices.reduce((s, d) => s + d.taken.length, 0)} readings`);
      }
    }
    // Calm: no more faults; wait until every device has everything acked.
    for (const d of devices) { d.armed = false; d.arm(); }
    releasing = false;
    // Meters go on reporting while the last rollout ends, as meters do: a kept downlink that a cut or
    // the link lost (an offer among them) is resent when its device is next heard (WIRE.md "Records
    // and acks"); a simulation of meters that fell silent left such offers unanswered.
    let reporting = o.updates === true;
    const reports = (async () => {
      while (reporting) {
        await new Promise((r) => setTimeout(r, 1000));
        for (const d of devices) if (!d.dead && d.agent.online) d.take();
      }
    })();
    await rollouts;
    // The last rollout, whether it ended under the faults or in the calm: 30 s more for every device
    // to reach a final state (a trial, a rollback after it, a download resumed after the last cut).
    let lastOutcomes: { [state: string]: number } | undefined;
    if (lastRollout) {
      const until = Date.now() + 30_000;
      for (;;) {
        const st = await api('GET', `/api/firmware/rollouts/${lastRollout}`);
        if (st.json.state === 'done' || Date.now() > until) {
          lastOutcomes = tally(st.json.devices, {});
          break;
        }
        await new Promise((res) => setTimeout(res, 200));
      }
    }
    reporting = false;
    await reports;
    const failures: string[] = [];
    for (const d of devices) failures.push(...d.badBoots);
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
    if (o.updates) {
      // Every device ends on an intact image that reaches its gateway: no image that cannot stays.
      for (const d of devices) {
        const v = d.firmware;
        const good = [...world.images.values()].includes(v) || v === '0.1.0';
        const fault = [...world.images.entries()].some(([, ver]) => ver === v) && Number(v.split('.')[1]) % 3 === 1 && v !== '0.1.0';
        if (!good || fault || !d.agent.online) failures.push(`device ${d.index} ended on ${v}${d.agent.online ? '' : ', offline'}`);
      }
    }
    return {
      ...(o.updates ? { updateCuts: updateCutsOf(), releases, outcomes, lastOutcomes, bootsChecked: devices.reduce((s, d) => s + d.bootsChecked, 0) } : {}),
      seed: o.seed, devices: nDevices, cuts: totalCutsOf(), cutsDuringBoot: devices.reduce((s, d) => s + d.cutsDuringBoot, 0),
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
