// Scripted runs of one guest, one-shot job or world (`gridlet guest run`): a sequence of channel
// values and grid signals over simulated time, and per tick what the guest asked of its relays, what
// it emitted, its faults and the fuel it used (per member for a world).
//
// Script format (JSON):
//   {
//     "start": 1170288000,          unix seconds at t = 0 (default 2007-02-01T00:00:00Z, the household day)
//     "duration_s": 3600,           how long to run (default: the last step's t plus one period)
//     "relays": [{"id": 1, "critical": false, "safe_on": false, "min_dwell_s": 60, "max_toggles_per_hour": 6}],
//                                   the meter's relays (default 1–4, plain)
//     "kv": [5000, null],           the guest's kv slots before it starts (null = unset)
//     "steps": [                    in time order; each sets values from its t on
//       {"t": 0, "channels": {"3": 2300, "5": 231000}, "signals": {"3": 5000}},
//       {"t": 60, "channels": {"3": 5400}, "signals": {"2": 1}},
//       {"t": 120, "signals": {"2": null}}          null clears a signal (NaN)
//     ]
//   }
// Channels are WIRE.md channels in integer units; signals are GUESTS.md's (1 price per kWh,
// 2 demand-response level, 3 import limit W).

import type { CborValue } from '../../firmware/core/cbor.js';
import type { RelayConfig } from '../../firmware/core/control/relays.js';
import { parseManifest } from '../../firmware/core/guests/manifest.js';
import { cidToText } from '../../firmware/core/guests/cid.js';
import { decodeWorld } from '../../firmware/core/guests/world.js';
import type { GuestEngine } from '../../firmware/core/ports.js';
import type { GuestAck } from '../../firmware/core/wire/bodies.js';
import { householdDay } from '../meter/household.js';
import { GuestSim, HOUSEHOLD_START_S } from './guest-sim.js';

export interface ScriptStep {
  t: number;
  channels?: Record<string, number>;
  signals?: Record<string, number | null>;
}

export interface Script {
  start?: number;
  duration_s?: number;
  relays?: { id: number; critical?: boolean; safe_on?: boolean; min_dwell_s?: number; max_toggles_per_hour?: number }[];
  kv?: (number | null)[];
  steps: ScriptStep[];
}

export interface TickReport {
  /** Seconds since the start. */
  t: number;
  tick: number;
  state: string;
  fuel: number;
  relays: { id: number; on: boolean; result: number }[];
  events: { kind: string; data: { [key: string]: CborValue } }[];
  faults: string[];
  log: string[];
  /** A world's members: the ticks each has had and the fuel of its last call. */
  members?: { name: string; tick: number; fuel: number }[];
}

export interface RunSummary {
  guest: string;
  cid: string;
  ack: { state: string; reason?: string };
  ticks: number;
  state: string;
  faults: number;
  softFaults: number;
  denied: number;
  fuelPerCall: number;
  fuelMax: number;
  fuelMean: number;
  events: number;
  relaySwitches: { id: number; switches: number }[];
  /** A one-shot job's exit code (absent while it has not exited). */
  exitCode?: number;
}

function fail(msg: string): never {
  throw new Error(`script: ${msg}`);
}

function isNumberMap(v: unknown, nullable: boolean): boolean {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  return Object.entries(v).every(([k, x]) => /^\d+$/.test(k) && (typeof x === 'number' || (nullable && x === null)));
}

/** Checks a parsed script; throws with the first problem. */
export function parseScript(v: unknown): Script {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail('must be a JSON object with "steps"');
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!['start', 'duration_s', 'relays', 'kv', 'steps'].includes(k)) fail(`unknown field "${k}"`);
  if (o.start !== undefined && (typeof o.start !== 'number' || o.start < 0)) fail('"start" must be unix seconds');
  if (o.duration_s !== undefined && (typeof o.duration_s !== 'number' || o.duration_s <= 0 || o.duration_s > 31 * 86400)) {
    fail('"duration_s" must be a number of seconds up to 31 days');
  }
  if (!Array.isArray(o.steps)) fail('"steps" must be a list');
  let last = -Infinity;
  (o.steps as unknown[]).forEach((s, i) => {
    if (typeof s !== 'object' || s === null) fail(`step ${i} must be an object`);
    const st = s as Record<string, unknown>;
    if (typeof st.t !== 'number' || st.t < 0) fail(`step ${i}: "t" must be seconds from the start`);
    if (st.t < last) fail(`step ${i}: steps must be in time order`);
    last = st.t;
    if (st.channels !== undefined && !isNumberMap(st.channels, false)) fail(`step ${i}: "channels" must map channel numbers to numbers`);
    if (st.signals !== undefined && !isNumberMap(st.signals, true)) fail(`step ${i}: "signals" must map signal ids to numbers or null`);
  });
  if (o.relays !== undefined && (!Array.isArray(o.relays) || !o.relays.every((r) => typeof r?.id === 'number'))) {
    fail('"relays" must be a list of {"id": N, …}');
  }
  if (o.kv !== undefined && (!Array.isArray(o.kv) || !o.kv.every((x) => typeof x === 'number' || x === null))) {
    fail('"kv" must be a list of numbers or null');
  }
  return o as unknown as Script;
}

/**
 * The default script: the household day shipped with the project (1-minute readings of import power,
 * voltage and current, with energy imported integrated from them), an import limit of 5000 W, and
 * demand-response events at level 1 from 07:00 to 08:00 and level 2 from 18:00 to 19:00.
 */
export function householdScript(): Script {
  const day = householdDay();
  const steps: ScriptStep[] = [];
  let wh = 0;
  for (const d of day) {
    const m = d.minute;
    const step: ScriptStep = {
      t: m * 60,
      channels: { 1: Math.round(wh), 2: 0, 3: d.powerW, 4: 0, 5: d.voltageMv, 8: d.currentMa },
    };
    if (m === 0) step.signals = { 2: 0, 3: 5000 };
    if (m === 7 * 60) step.signals = { 2: 1 };
    if (m === 8 * 60) step.signals = { 2: 0 };
    if (m === 18 * 60) step.signals = { 2: 2 };
    if (m === 19 * 60) step.signals = { 2: 0 };
    steps.push(step);
    wh += d.powerW / 60;
  }
  return { start: HOUSEHOLD_START_S, duration_s: 86_400, steps };
}

/** Runs one guest (or one-shot job) through a script, reporting each tick; returns the summary. */
export function runScript(wasm: Uint8Array, manifest: unknown, script: Script, onTick: (r: TickReport) => void, engine?: GuestEngine): RunSummary {
  const mr = parseManifest(manifest);
  if (!mr.ok) throw new Error(mr.reason);
  return run({
    name: mr.manifest.name, period: mr.manifest.period_s, fuelPerCall: mr.manifest.fuel_per_call, slots: mr.manifest.name,
    install: (sim) => sim.install(wasm, manifest),
  }, script, onTick, engine);
}

/** Runs a world (its bundle) through a script; ticks are reported every period of its fastest member. */
export function runWorldScript(bundle: Uint8Array, script: Script, onTick: (r: TickReport) => void, engine?: GuestEngine): RunSummary {
  const d = decodeWorld(bundle);
  if (!d.ok) throw new Error(d.reason);
  const members = d.world.members;
  return run({
    name: d.world.name, period: Math.min(...members.map((m) => m.manifest.period_s)),
    fuelPerCall: Math.max(...members.map((m) => m.manifest.fuel_per_call)), slots: `${d.world.name}.${members[0].name}`,
    install: (sim) => sim.installWorld(bundle), world: true,
  }, script, onTick, engine);
}

interface Unit {
  name: string;
  period: number;
  fuelPerCall: number;
  /** Whose kv slots the script's "kv" presets (a world's first member). */
  slots: string;
  install(sim: GuestSim): GuestAck;
  world?: boolean;
}

function run(unit: Unit, script: Script, onTick: (r: TickReport) => void, engine?: GuestEngine): RunSummary {
  const name = unit.name;
  const period = unit.period;
  const relays: RelayConfig[] | undefined = script.relays?.map((r) => ({
    id: r.id, critical: r.critical, safeOn: r.safe_on, minDwellS: r.min_dwell_s, maxTogglesPerHour: r.max_toggles_per_hour,
  }));
  const sim = new GuestSim({ startUnixS: script.start, relays, engine });
  if (script.kv) sim.setSlots(unit.slots, script.kv.map((x) => (x === null ? NaN : x)));
  const mine = () => sim.supervisor.status().filter((s) => (unit.world ? s.world === name : s.name === name));
  const steps = script.steps;
  let next = 0;
  const apply = (upTo: number) => {
    while (next < steps.length && steps[next].t <= upTo) {
      const s = steps[next++];
      for (const [ch, v] of Object.entries(s.channels ?? {})) sim.supervisor.setChannel(Number(ch), v);
      for (const [id, v] of Object.entries(s.signals ?? {})) sim.supervisor.setSignal(Number(id), v === null ? NaN : v);
    }
  };
  // Values at t = 0 are there before the guest starts (init may read them).
  apply(0);
  const ack = unit.install(sim);
  const job = mine().some((s) => s.job);
  const duration = script.duration_s ?? (steps.length ? steps[steps.length - 1].t + period : period);
  let fuelSum = 0;
  let fuelCalls = 0;
  let lastTicks = mine().map(() => 0);
  const marks = { events: 0, requests: 0, logs: 0 };
  // A one-shot job runs once, at t = 0 (right after it is installed).
  for (let t = job ? 0 : period; t <= duration + 1e-9; t += period) {
    // Advance to each step inside this period, applying it at its own time.
    while (next < steps.length && steps[next].t < t) {
      sim.advance(steps[next].t - sim.t);
      apply(sim.t);
    }
    sim.advance(t - sim.t);
    apply(t);
    const now = mine();
    now.forEach((st, i) => {
      if (st.ticks > (lastTicks[i] ?? 0)) {
        fuelSum += st.fuelLast;
        fuelCalls++;
      }
    });
    lastTicks = now.map((st) => st.ticks);
    const events = sim.events.slice(marks.events);
    onTick({
      t,
      tick: Math.max(0, ...lastTicks),
      state: now[0]?.state ?? ack.state,
      fuel: now.reduce((sum, st) => sum + st.fuelLast, 0),
      relays: sim.relayRequests.slice(marks.requests).map((r) => ({ id: r.id, on: r.on, result: r.result })),
      events: events.filter((e) => e.kind !== 'guest-fault').map((e) => ({ kind: e.kind, data: e.data })),
      faults: events.filter((e) => e.kind === 'guest-fault').map((e) => String(e.data.why)),
      log: sim.logs.slice(marks.logs).map((l) => (unit.world ? `${l.guest.slice(name.length + 1)}: ${l.text}` : l.text)),
      ...(unit.world ? { members: now.map((st) => ({ name: st.name.slice(name.length + 1), tick: st.ticks, fuel: st.fuelLast })) } : {}),
    });
    marks.events = sim.events.length;
    marks.requests = sim.relayRequests.length;
    marks.logs = sim.logs.length;
    if (ack.state !== 'running' || job) break;
  }
  const all = mine();
  const st = all[0];
  sim.dispose();
  return {
    guest: name,
    cid: st ? (unit.world ? cidToText(st.unitCid) : st.cidText) : '',
    ack: ack.reason === undefined ? { state: ack.state } : { state: ack.state, reason: ack.reason },
    ticks: Math.max(0, ...all.map((x) => x.ticks)),
    state: st?.state ?? ack.state,
    faults: st?.faultsTotal ?? 0,
    softFaults: all.reduce((sum, x) => sum + x.softFaults, 0),
    denied: all.reduce((sum, x) => sum + x.denied, 0),
    fuelPerCall: unit.fuelPerCall,
    fuelMax: Math.max(0, ...all.map((x) => x.fuelMax)),
    fuelMean: fuelCalls ? Math.round(fuelSum / fuelCalls) : 0,
    events: sim.events.filter((e) => e.kind.startsWith(`guest.${name}.`)).length,
    relaySwitches: sim.relays.map((r) => ({ id: r.id, switches: r.switches.length })),
    ...(st?.exitCode !== undefined ? { exitCode: st.exitCode } : {}),
  };
}
