// Adds the Agent's workloads to scripts/xs/bench-workload.ts: a paired agent on a link that is up,
// with in-memory ports, its readings acked by a simulated gateway (sealed ack frames). The record
// log is the meter's FlashLog over a 1 MB partition of 4 KB blocks (manifests/partitions-*.csv); the
// partition's bytes are allocated before the baseline, so only the log's RAM state counts as heap.
// Kept apart so that a change in the Agent's API costs the bench its agent figures, not all of them.

import { Agent } from '../../firmware/core/agent/agent.js';
import { saveSession } from '../../firmware/core/agent/identity.js';
import { FlashLog } from '../../firmware/core/log/flash-log.js';
import { MemoryFlash } from '../../firmware/core/log/memory-flash.js';
import type { KeyValue, Timers, Transport, TransportHandlers, TransportOptions } from '../../firmware/core/ports.js';
import { LinkState } from '../../firmware/core/ports.js';
import { Body, encodeBody } from '../../firmware/core/wire/bodies.js';
import { Direction, sealFrame } from '../../firmware/core/wire/frame.js';
import { topics } from '../../firmware/core/wire/topics.js';
import { random, setups, workloads } from './bench-workload.js';
import { Interlocks } from '../../firmware/core/control/relays.js';
import { GuestSupervisor } from '../../firmware/core/guests/supervisor.js';
import type { GuestEngine, GuestInstance, Relay } from '../../firmware/core/ports.js';
// @ts-expect-error: esbuild embeds .wasm files as bytes (loader 'binary' in scripts/xs/xsnap.js)
import peakGuardWasm from '../../guests/dist/peak-guard.wasm';
// @ts-expect-error: as above
import tamperWatchWasm from '../../guests/dist/tamper-watch.wasm';
import peakGuardManifest from '../../manifests/guests/peak-guard.json' with { type: 'json' };
import tamperWatchManifest from '../../manifests/guests/tamper-watch.json' with { type: 'json' };

/**
 * wasm3 lives in native memory on the meter, outside the JS heap this bench measures; this stand-in
 * engine (a test double for the native binding) answers init/tick with 0, so what is measured is the
 * JS side of two running guests: supervisor, manifests, grants, kv slots, interlocks and their status.
 */
const standInEngine: GuestEngine = {
  instantiate(): GuestInstance {
    return {
      call: () => 0, hasExport: (n: string) => n === 'init' || n === 'tick', fuelUsed: 0,
      readMemory: (_p: number, len: number) => new Uint8Array(len), writeMemory() {}, fuelLeft: () => 0, charge() {},
      dispose() {},
    };
  },
};
const relays: Relay[] = [1, 2].map((id) => {
  let on = false;
  return { id, get: () => on, set: (v: boolean) => void (on = v) };
});
let guests: GuestSupervisor | undefined;

const store = new Map<string, Uint8Array>();
const kv: KeyValue = {
  get: (k) => store.get(k),
  set: (k, v) => void store.set(k, v.slice()),
  delete: (k) => void store.delete(k),
};

let now = 1_767_225_600_000;
let mono = 0;
const clock = { now: () => now, monotonic: () => mono, set: (ms: number) => void (now = ms) };

interface Pending { id: number; due: number; every: number; fn: () => void }
let timerId = 0;
const pending: Pending[] = [];
const timers: Timers = {
  set: (fn, ms) => (pending.push({ id: ++timerId, due: mono + ms, every: 0, fn }), timerId),
  repeat: (fn, ms) => (pending.push({ id: ++timerId, due: mono + ms, every: ms, fn }), timerId),
  clear: (id) => {
    const i = pending.findIndex((p) => p.id === id);
    if (i >= 0) pending.splice(i, 1);
  },
};
function advance(ms: number): void {
  const until = mono + ms;
  for (;;) {
    let next: Pending | undefined;
    for (const p of pending) if (p.due <= until && (!next || p.due < next.due)) next = p;
    if (!next) break;
    mono = next.due;
    if (next.every) next.due += next.every;
    else pending.splice(pending.indexOf(next), 1);
    next.fn();
  }
  mono = until;
}

let handlers: TransportHandlers | undefined;
let published = 0;
let lastUp: Uint8Array | undefined;
const link: Transport = {
  name: 'bench',
  state: LinkState.up,
  lastError: '',
  start(_o: TransportOptions, h: TransportHandlers) {
    handlers = h;
    h.onConnect();
  },
  restart() {},
  publish(_topic: string, payload: Uint8Array) {
    published++;
    lastUp = payload;
    return true;
  },
  stop() {},
};

const ks = new Uint8Array(32);
random.fill(ks);
let agent: Agent | undefined;
let log: FlashLog | undefined;
/** 1 MB of 4 KB blocks: the `gridlog` partition of manifests/partitions-4MB.csv. */
export const LOG_BLOCKS = 256;
const flash = new MemoryFlash({ blocks: LOG_BLOCKS, blockSize: 4096 });
let downCounter = 1;
let t = 0;
const values: [number, number][] = [[1, 0], [2, 1_234_567], [3, 0], [4, 0]];

setups.agent = () => {
  saveSession(kv, { gatewayPublicKey: new Uint8Array(32).fill(9), gatewayId: 'benchgatewayaaaa', ks });
  log = new FlashLog(flash);
  agent = new Agent({ kv, random, clock, timers, log, uplinks: [link], model: 'bench', firmware: '0.0.0' });
  const interlocks = new Interlocks({ relays, clock, timers, kv, random, onEvent: (k, d) => agent!.recordEvent(k, d) });
  interlocks.powerUp();
  guests = new GuestSupervisor({ engine: standInEngine, clock, timers, kv, interlocks, onEvent: (k, d) => agent!.recordEvent(k, d) });
  agent.attachGuests(guests);
  const acks = [guests.install(peakGuardWasm as Uint8Array, peakGuardManifest), guests.install(tamperWatchWasm as Uint8Array, tamperWatchManifest)];
  agent.start();
  advance(1000);
  return `agent ${agent.deviceId} with guests ${acks.map((a) => a.state).join(', ')}, published ${published} frames at start`;
};

workloads.agentReading = () => {
  t++;
  values[0][1] = 12_345_678 + t;
  values[2][1] = 1_840 + (t % 50);
  agent!.recordReadings(now + t * 10_000, values);
};

workloads.agentAck = () => {
  const seq = log!.stats().newestSeq;
  const frame = sealFrame(encodeBody({ type: Body.ack, seq }), downCounter++, Uint8Array.of(8, 7, 6, 5, 4, 3, 2, 1), ks, Direction.down);
  handlers!.onMessage(topics.down('gl', agent!.deviceId), frame);
};

/** Link down while 960 readings (3840 records) arrive. */
setups.agentBacklog = () => {
  (link as { state: number }).state = LinkState.down;
  handlers!.onDisconnect('bench: link down');
  for (let i = 0; i < 960; i++) workloads.agentReading();
  const buffered = log!.stats().buffered;
  (link as { state: number }).state = LinkState.up;
  return `backlog of ${buffered} records`;
};

/** The link comes back: the agent resends everything unacked, a tick's worth of frames at once. */
workloads.agentReconnect = () => {
  handlers!.onConnect();
};

workloads.agentTick = () => {
  advance(250);
};

setups.agentReport = () => `published ${published} frames, last ${lastUp?.length ?? 0} bytes, buffered ${log!.stats().buffered}`;
