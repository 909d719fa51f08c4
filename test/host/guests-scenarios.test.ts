// The four shipped guests (guests/dist/*.wasm, as checked in) doing their job on the real Node engine,
// driven by the household day shipped with the project (host/meter/household.ts).

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DIST_DIR, MANIFEST_DIR } from '../../guests/build.js';
import { GuestSim } from '../../host/guests/guest-sim.js';
import { householdDay, type HouseholdMinute } from '../../host/meter/household.js';

const day = householdDay();

function shipped(name: string): [Uint8Array, unknown] {
  return [
    new Uint8Array(readFileSync(join(DIST_DIR, `${name}.wasm`))),
    JSON.parse(readFileSync(join(MANIFEST_DIR, `${name}.json`), 'utf8')),
  ];
}

function start(sim: GuestSim, name: string): void {
  const ack = sim.install(...shipped(name));
  assert.is(ack.state, 'running', ack.reason);
}

/** Feeds the meter channels of one household minute (WIRE.md units). */
function feed(sim: GuestSim, d: HouseholdMinute, importW = d.powerW): void {
  sim.supervisor.setChannel(3, importW);
  sim.supervisor.setChannel(4, 0);
  sim.supervisor.setChannel(5, d.voltageMv);
  sim.supervisor.setChannel(8, d.currentMa);
}

// ---------------------------------------------------------------- peak-guard

const LIMIT_W = 5000;
const HEATER_W = 2000;
/** The water heater on relay 1 wants to heat in the morning and the evening. */
const heaterWants = (minute: number) => (minute >= 330 && minute < 510) || (minute >= 1020 && minute < 1320);

/** The day in 5 s steps; import = household + the heater when relay 1 lets it run. */
function peakDay(guarded: boolean) {
  const sim = new GuestSim();
  sim.supervisor.setSignal(3, LIMIT_W);
  if (guarded) start(sim, 'peak-guard');
  const over: number[] = [];
  let fixableOver = 0;
  let longest = 0;
  let run = 0;
  for (let t = 0; t < 86_400; t += 5) {
    const m = Math.floor(t / 60);
    const heaterOn = guarded ? sim.relay(1).on : true;
    const p = day[m].powerW + (heaterOn && heaterWants(m) ? HEATER_W : 0);
    feed(sim, day[m], p);
    if (p > LIMIT_W) over.push(t);
    // Over the limit although shedding the heater would have been enough.
    if (p > LIMIT_W && day[m].powerW <= LIMIT_W) {
      fixableOver++;
      run += 5;
      longest = Math.max(longest, run);
    } else run = 0;
    sim.advance(5);
  }
  return { sim, over, fixableOver, longest };
}

test('peak-guard holds the import under the limit by shedding relay 1', () => {
  const without = peakDay(false);
  const withGuard = peakDay(true);
  const { sim } = withGuard;
  // Without it the heater pushes the house over 5 kW for a long time.
  assert.ok(without.fixableOver > 600, `${without.fixableOver} samples over the limit without the guard`);
  // With it, an excursion lasts at most the tick that detects it.
  assert.ok(withGuard.fixableOver <= 10, `${withGuard.fixableOver} fixable samples over the limit`);
  assert.ok(withGuard.longest <= 5, `an excursion lasted ${withGuard.longest} s`);
  const sheds = sim.eventsOf('guest.peak-guard.1');
  const restores = sim.eventsOf('guest.peak-guard.2');
  assert.ok(sheds.length >= 3, 'it shed in the morning and the evening peaks');
  assert.ok(restores.length >= sheds.length, 'and gave the heater back afterwards');
  for (const e of sheds) assert.ok((e.data.value as number) > LIMIT_W * 1000, 'the shed event carries the import in milli-W');
  const slots = sim.slots('peak-guard');
  assert.is(slots[1], HEATER_W, 'it learnt the shed load from the drop');
  assert.is(slots[2], sheds.length, 'and counted its sheds');
  const s = sim.supervisor.status()[0];
  assert.is(s.faultsTotal, 0);
  assert.ok(s.fuelMax < s.fuelPerCall);
});

test('peak-guard restores with hysteresis and never fights the relay interlocks', () => {
  const { sim } = peakDay(true);
  const switches = sim.relay(1).switches;
  assert.ok(switches.length <= 16, `${switches.length} switches in a day`);
  for (let i = 1; i < switches.length; i++) {
    assert.ok(switches[i][0] - switches[i - 1][0] >= 60_000, 'each state is held at least the 60 s dwell');
  }
  for (const [t] of switches) {
    const inHour = switches.filter(([u]) => u > t - 3_600_000 && u <= t).length;
    assert.ok(inHour <= 6, 'at most 6 toggles an hour');
  }
  // Hysteresis: a restore happens only when house + heater fits under 90 % of the limit.
  for (const e of sim.eventsOf('guest.peak-guard.2')) {
    const m = Math.floor(e.t / 60);
    assert.ok(day[m].powerW + HEATER_W <= LIMIT_W * 0.9 + 1e-9, `restored at minute ${m} with ${day[m].powerW} W`);
  }
  assert.is(sim.relayRequests.filter((r) => r.result === -1).length, 0);
});

test('peak-guard follows a lower import limit at once (on_signal)', () => {
  const sim = new GuestSim();
  sim.supervisor.setSignal(3, 6000);
  start(sim, 'peak-guard');
  const d = day[19 * 60 + 10]; // 19:10, an evening peak
  for (let t = 0; t < 300; t += 5) {
    feed(sim, d, d.powerW + (sim.relay(1).on ? HEATER_W : 0));
    sim.advance(5);
  }
  assert.ok(sim.relay(1).on, 'under 6 kW the heater runs');
  const before = sim.relayRequests.length;
  sim.supervisor.setSignal(3, 3000);
  assert.not.ok(sim.relay(1).on, 'shed within the signal change, before the next tick');
  assert.is(sim.relayRequests.length, before + 1);
});

// ---------------------------------------------------------------- dr-responder

test('dr-responder sheds by demand-response level and restores after the event', () => {
  const sim = new GuestSim();
  start(sim, 'dr-responder');
  const EV_W = 3700; // relay 2
  const HEAT_PUMP_W = 1500; // relay 3
  const level = (m: number) => (m >= 420 && m < 480 ? 1 : m >= 1080 && m < 1140 ? 2 : m >= 1200 && m < 1215 ? 3 : 0);
  const samples: { m: number; r2: boolean; r3: boolean; importW: number }[] = [];
  for (let t = 0; t < 86_400; t += 5) {
    const m = Math.floor(t / 60);
    if (t % 60 === 0) sim.supervisor.setSignal(2, level(m));
    const importW = day[m].powerW + (sim.relay(2).on ? EV_W : 0) + (sim.relay(3).on ? HEAT_PUMP_W : 0);
    feed(sim, day[m], importW);
    samples.push({ m, r2: sim.relay(2).on, r3: sim.relay(3).on, importW });
    sim.advance(5);
  }
  const during = (from: number, to: number) => samples.filter((s) => s.m >= from && s.m < to);
  // Level 1: relay 2 off, relay 3 on; level 2 and 3: both off (from the signal on, on_signal acts at once).
  assert.ok(during(420, 480).every((s) => !s.r2 && s.r3));
  assert.ok(during(1080, 1140).every((s) => !s.r2 && !s.r3));
  assert.ok(during(1200, 1215).every((s) => !s.r2 && !s.r3));
  // Restored within a minute after each event, relay 3 before relay 2.
  assert.ok(during(481, 1080).every((s) => s.r2 && s.r3));
  assert.ok(during(1141, 1200).every((s) => s.r2 && s.r3));
  assert.ok(during(1216, 1440).every((s) => s.r2 && s.r3));
  const restoreAfter2 = sim.events.filter((e) => e.kind === 'relay' && e.data.on === true && e.t >= 1140 * 60 && e.t < 1141 * 60);
  assert.equal(restoreAfter2.map((e) => e.data.id), [3, 2], 'one relay per tick, the later-shed first');
  assert.ok(restoreAfter2[1].t > restoreAfter2[0].t);
  // The level changes went upstream.
  assert.equal(sim.eventsOf('guest.dr-responder.1').map((e) => e.data.value), [1000, 0, 2000, 0, 3000, 0]);
  // And the shed load shows in the import.
  const avg = (xs: { importW: number }[]) => xs.reduce((a, s) => a + s.importW, 0) / xs.length;
  const shed = during(1080, 1140);
  const houseOnly = shed.reduce((a, s) => a + day[s.m].powerW, 0) / shed.length;
  assert.ok(Math.abs(avg(shed) - houseOnly) < 1e-9, 'during level 2 the import is the house alone');
  assert.is(sim.slots('dr-responder')[0], 0);
});

// ---------------------------------------------------------------- tamper-watch

function tamperDay(tamper: boolean) {
  const sim = new GuestSim();
  start(sim, 'tamper-watch');
  // Injected tampering: reverse flow at 10:00–10:03, sudden zero at 07:20–07:22 (a 6 kW minute
  // before), a voltage sag to 195 V at 15:00–15:04.
  for (let t = 0; t < 86_400; t += 5) {
    const m = Math.floor(t / 60);
    const d = day[m];
    let p = d.powerW;
    let px = 0;
    let v = d.voltageMv;
    if (tamper) {
      if (m >= 600 && m < 603) { px = 800; p = 0; }
      if (m >= 440 && m < 442) p = 0;
      if (m >= 900 && m < 904) v = 195_000;
    }
    feed(sim, d, p);
    sim.supervisor.setChannel(4, px);
    sim.supervisor.setChannel(5, v);
    sim.advance(5);
  }
  return sim;
}

test('tamper-watch is silent on an ordinary day', () => {
  const sim = tamperDay(false);
  assert.equal(sim.eventsOf('guest.tamper-watch'), []);
  assert.is(sim.supervisor.status()[0].faultsTotal, 0);
});

test('tamper-watch raises reverse flow, sudden zero and voltage sag, once each', () => {
  const sim = tamperDay(true);
  assert.ok(day[439].powerW >= 1000, 'the minute before the zero is a real load');
  const ev = sim.eventsOf('guest.tamper-watch').map((e) => ({ kind: e.kind, min: Math.floor(e.t / 60), value: e.data.value }));
  assert.equal(ev, [
    { kind: 'guest.tamper-watch.2', min: 440, value: day[439].powerW * 1000 },
    { kind: 'guest.tamper-watch.1', min: 600, value: 800_000 },
    { kind: 'guest.tamper-watch.3', min: 900, value: 195_000 },
  ]);
});

test('tamper-watch accepts reverse flow where the installer marked the site as exporting', () => {
  const sim = new GuestSim();
  sim.setSlots('tamper-watch', [1]);
  start(sim, 'tamper-watch');
  for (let t = 0; t < 600; t += 5) {
    feed(sim, day[600], 0);
    sim.supervisor.setChannel(4, 1500);
    sim.advance(5);
  }
  assert.equal(sim.eventsOf('guest.tamper-watch'), []);
});

// ---------------------------------------------------------------- tou-cost

/** Runs tou-cost over the day with channel 1 = energy imported (Wh), and replays its arithmetic. */
function touDay(price?: number) {
  const sim = new GuestSim();
  if (price !== undefined) sim.supervisor.setSignal(1, price);
  start(sim, 'tou-cost');
  let wh = 0;
  let expected = 0;
  let expectedKwh = 0;
  let last = NaN;
  const tariff = (h: number) => (h >= 17 && h < 21 ? 0.32 : h >= 23 || h < 7 ? 0.14 : 0.22); // a Thursday
  for (let t = 0; t < 86_400; t += 60) {
    const m = t / 60;
    sim.supervisor.setChannel(1, Math.round(wh));
    feed(sim, day[m]);
    sim.advance(60); // tou-cost ticks every 60 s, at the end of this minute
    const e = Math.round(wh);
    if (Number.isNaN(last)) last = e;
    else if (e > last) {
      const h = Math.floor((t + 60) / 3600) % 24;
      expected += ((e - last) / 1000) * (price ?? tariff(h));
      expectedKwh += (e - last) / 1000;
      last = e;
    }
    wh += day[m].powerW / 60;
  }
  return { sim, expected, expectedKwh, wh };
}

test('tou-cost tallies the day in kv slots at the time-of-use tariff', () => {
  const { sim, expected, expectedKwh, wh } = touDay();
  const s = sim.slots('tou-cost');
  assert.ok(Math.abs(s[0] - expected) < 1e-9, `cost ${s[0]} vs ${expected}`);
  assert.ok(Math.abs(s[1] - expectedKwh) < 1e-9);
  assert.ok(Math.abs(s[1] - wh / 1000) < 0.1, 'the tally covers the whole day of energy');
  assert.ok(s[2] > 0 && s[3] > 0, 'peak and night kWh are split out');
  assert.ok(s[0] > s[1] * 0.14 && s[0] < s[1] * 0.32);
  // Midnight: yesterday's cost goes upstream and into slot 6.
  sim.advance(120);
  const close = sim.eventsOf('guest.tou-cost.1');
  assert.is(close.length, 1);
  assert.is(close[0].t, 86_400);
  assert.ok(Math.abs(sim.slots('tou-cost')[6] - (close[0].data.value as number) / 1000) < 0.001);
});

test('tou-cost uses the tariff signal when there is one, and survives an upgrade', () => {
  const { sim, expectedKwh } = touDay(0.25);
  const s = sim.slots('tou-cost');
  assert.ok(Math.abs(s[0] - expectedKwh * 0.25) < 1e-9);
  // Re-deploying (same name, new version) keeps the tally.
  const [wasm, manifest] = shipped('tou-cost');
  const v2 = new Uint8Array([...wasm, 0, 4, 3, 0x76, 0x32, 0x21]); // a custom section "v2" → another CID
  const ack = sim.install(v2, { ...(manifest as object), version: '1.0.1' });
  assert.is(ack.state, 'running', ack.reason);
  sim.advance(60);
  assert.ok(Math.abs(sim.slots('tou-cost')[0] - s[0]) < 1e-9);
});

test.run();
