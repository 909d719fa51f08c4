// The host's two guest engines side by side: V8 (host/guests/wasm-engine.ts) and wasm3 compiled to
// WebAssembly (host/guests/wasm3-engine.ts, the meter's C): every shipped guest, every hostile module
// and the engine probes give the same results, fuel per call, trap kinds and import traffic on both;
// a meter's worth of guests makes the same decisions on both; and the checked-in wasm3 build is the
// one gridlet's C builds to.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DIST_DIR, MANIFEST_DIR } from '../../guests/build.js';
import type { GuestEngine } from '../../firmware/core/ports.js';
import { GuestSim } from '../../host/guests/guest-sim.js';
import { NodeGuestEngine } from '../../host/guests/wasm-engine.js';
import { Wasm3HostEngine, WASM3_ARTIFACT } from '../../host/guests/wasm3-engine.js';
import { householdDay } from '../../host/meter/household.js';
import { runProbe, type ProbeOutcome } from '../core/support/guest-probe.js';
import { guestCases } from './support/guest-cases.js';
import { EXPECTED_IMPORTS, moduleImports, ownSourcesHash } from '../../scripts/build-wasm3.js';

const engines: [string, GuestEngine][] = [['v8', new NodeGuestEngine()], ['wasm3', new Wasm3HostEngine()]];

function outcomes(engine: GuestEngine, c: ReturnType<typeof guestCases>[number]): ProbeOutcome[] {
  const out: ProbeOutcome[] = [];
  runProbe(engine, c.probe, c.wasm, (o) => out.push(o));
  return out;
}

/** What the engines must agree on: everything but the wording of a trap's message. */
function observable(o: ProbeOutcome, kindsOnly: boolean): object {
  return kindsOnly ? { step: o.step, kind: o.kind } : { ...o, msg: undefined };
}

for (const c of guestCases()) {
  test(`${c.probe.name}: the same results, fuel and trap kinds on v8 and wasm3`, () => {
    const [v8, w3] = engines.map(([, e]) => outcomes(e, c));
    assert.ok(v8.length > 0);
    assert.equal(w3.map((o) => observable(o, !!c.kindsOnly)), v8.map((o) => observable(o, !!c.kindsOnly)), c.kindsOnly);
  });
}

test('what the comparison covers: shipped guests run their ticks, hostile ones trap as designed', () => {
  const byName = new Map(guestCases().map((c) => [c.probe.name, outcomes(engines[1][1], c)]));
  for (const name of ['dr-responder', 'peak-guard', 'tamper-watch', 'tou-cost']) {
    const o = byName.get(name)!;
    assert.is(o[0].kind, 0, `${name} loads`);
    assert.ok(o.filter((x) => x.step.endsWith(':tick') && x.kind === 0).length >= 90, `${name} ticks`);
    assert.ok(o.some((x) => x.io > 0), `${name} uses its imports`);
    assert.is(o.filter((x) => x.kind === 2).length, 1, `${name}: only the starved tick runs out of fuel`);
  }
  // peak-guard has a start function (AssemblyScript's): it ran, on the start budget, at load.
  assert.ok(byName.get('peak-guard')![0].fuel > 0);
  const kinds = (name: string) => byName.get(name)!.map((o) => o.kind);
  assert.equal(kinds('runtime: spinner').slice(2), [2, 2, 2, 2, 2, 2]);
  assert.equal(kinds('runtime: grower').slice(2), [3, 3, 3, 3, 3, 3]);
  assert.equal(kinds('runtime: scribbler').slice(2), [3, 3, 3, 3, 3, 3]);
  assert.equal(kinds('runtime: hiccup'), [0, 0, 0, 0, 0, 1, 0, 0]);
  assert.is(byName.get('start spends its budget')![0].kind, 2);
  assert.is(byName.get('start calls imports')![1].r, 1_700_000_300, 'the start function stored time() for tick');
  assert.equal(byName.get('name section alias')!.map((o) => o.r), [undefined, 0, 1], 'the exported tick, not the one a name section calls tick');
  assert.equal(byName.get('grow wraps')!.map((o) => o.kind), [0, 0, 3, 0, 0], 'memory.grow(-1) is refused and the memory kept');
  assert.equal(byName.get('grow past a maximum of 0')!.map((o) => o.r), [undefined, -1, 0, 0]);
  assert.equal(byName.get('import results converted')!.map((o) => o.r), [undefined, 5, 0, -2]);
  assert.equal(kinds('log outside the cap'), [0, 0, 3, 0]);
  assert.equal(kinds('data past memory_bytes'), [1]);
});

test('what the comparison covers: C, Rust, a WASI job, a world, the WASI subset and calls between members', () => {
  const byName = new Map(guestCases().map((c) => [c.probe.name, outcomes(engines[1][1], c)]));
  for (const name of ['load-shed', 'tariff-opt']) {
    const o = byName.get(name)!;
    assert.is(o[0].kind, 0, `${name} loads`);
    assert.ok(o.filter((x) => x.step.endsWith(':tick') && x.kind === 0).length >= 90, `${name} ticks`);
    assert.ok(o.some((x) => x.io > 0), `${name} uses its imports`);
    assert.is(o.filter((x) => x.kind !== 0).length, 1, `${name}: only the starved tick stops (out of fuel)`);
  }
  // The WASI job ran its main once (its report went out through fd_write) and exited through proc_exit.
  const job = byName.get('commission')!;
  assert.is(job[1].kind, 1);
  assert.match(job[1].msg!, /^proc_exit\(\d\)$/);
  assert.ok(job[1].io > 6 && job[1].fuel > 1000, 'it asked the meter and wrote its report');
  assert.is(job[2].kind, 2, 'the starved run stops for fuel');
  // The world: both members load and tick; the shedder's ticks include its call into setpoint.
  const world = byName.get('shed-world')!;
  assert.equal(world.slice(0, 2).map((o) => [o.step, o.kind]), [['load:setpoint', 0], ['load:shedder', 0]]);
  assert.ok(world.filter((o) => /shedder\.tick$/.test(o.step) && o.kind === 0).length >= 80);
  assert.is(world[world.length - 1].kind, 2);
  const probe = byName.get('world calls between members')!;
  const fuel = (step: string) => probe.find((o) => o.step === step)!;
  assert.is(fuel('4:app.tick').fuel - fuel('3:lib.spin').fuel, fuel('7:app.tick').fuel - fuel('3:lib.spin').fuel);
  assert.ok(fuel('4:app.tick').fuel > fuel('3:lib.spin').fuel, 'the callee\'s fuel is charged to the caller');
  assert.equal([fuel('5:app.big').kind, fuel('6:app.crash').kind, fuel('8:app.tick').kind], [2, 1, 2]);
  assert.ok(fuel('5:app.big').fuel > 5000);
  assert.match(fuel('6:app.crash').msg!, /lib\.boom/);
  const wasi = byName.get('wasi subset')!.map((o) => o.r);
  assert.equal([wasi[6], wasi[9], wasi[16]], [28, 28, 8], 'clock 2 and 300 random bytes are EINVAL, fd 3 EBADF');
  assert.equal([wasi[1], wasi[13]], [0, 40], 'clock_time_get and fd_write wrote their answers into guest memory');
  assert.equal(byName.get('wasi subset')!.slice(17, 19).map((o) => o.kind), [3, 1], 'an iovec past the cap is a memory breach; proc_exit ends the call');
  const flood = byName.get('wasi 1 MiB to stdout')!;
  assert.equal([flood[1].kind, flood[1].r], [0, null], 'writing 1 MiB to stdout ends normally');
});

test('a meter of guests on the household day makes the same decisions on v8 and wasm3', () => {
  const day = householdDay();
  const run = (engine: GuestEngine) => {
    const sim = new GuestSim({ engine });
    for (const name of ['peak-guard', 'dr-responder', 'tamper-watch', 'tou-cost']) {
      const manifest = JSON.parse(readFileSync(join(MANIFEST_DIR, `${name}.json`), 'utf8'));
      const ack = sim.install(new Uint8Array(readFileSync(join(DIST_DIR, `${name}.wasm`))), manifest);
      assert.is(ack.state, 'running', `${name}: ${ack.reason}`);
    }
    sim.supervisor.setSignal(3, 4000);
    for (let minute = 0; minute < 1440; minute += 2) {
      const d = day[minute];
      sim.supervisor.setChannel(3, d.powerW);
      sim.supervisor.setChannel(5, d.voltageMv);
      if (minute === 1080) sim.supervisor.setSignal(2, 2);
      if (minute === 1140) sim.supervisor.setSignal(2, 0);
      sim.advance(120);
    }
    const status = sim.supervisor.status().map((s) => ({ name: s.name, state: s.state, ticks: s.ticks, faults: s.faultsTotal, fuel: s.fuelLast }));
    const out = { status, relays: sim.relayRequests, events: sim.events, logs: sim.logs, kv: ['peak-guard', 'tou-cost'].map((n) => sim.slots(n)) };
    sim.dispose();
    return out;
  };
  const [v8, w3] = engines.map(([, e]) => run(e));
  assert.ok(v8.relays.length > 0, 'the guests switched relays');
  assert.ok(v8.status.every((s) => s.ticks > 100 && s.faults === 0));
  assert.equal(w3, v8);
});

test('the C, Rust and WASI guests and the world on the household day make the same decisions on v8 and wasm3', () => {
  const day = householdDay();
  const run = (engine: GuestEngine, set: string[]) => {
    // Loads are powered after a power cut (safe state on), so shedding them is visible.
    const sim = new GuestSim({ engine, relays: [1, 2, 3, 4].map((id) => ({ id, safeOn: id < 4 })), restoreWindowS: 0 });
    sim.supervisor.setChannel(5, 231_000);
    sim.supervisor.setChannel(8, 4000);
    for (const name of set) {
      const ack = name.endsWith('-world')
        ? sim.installWorld(new Uint8Array(readFileSync(join(DIST_DIR, `${name}.world`))))
        : sim.install(new Uint8Array(readFileSync(join(DIST_DIR, `${name}.wasm`))), JSON.parse(readFileSync(join(MANIFEST_DIR, `${name}.json`), 'utf8')));
      assert.is(ack.state, 'running', `${name}: ${ack.reason}`);
    }
    sim.supervisor.setSignal(3, 3500);
    for (let minute = 0; minute < 1440; minute += 2) {
      const d = day[minute];
      sim.supervisor.setChannel(3, d.powerW);
      sim.supervisor.setChannel(1, 10_000_000 + minute * 10);
      sim.supervisor.setSignal(1, minute >= 1020 && minute < 1260 ? 0.42 : minute < 360 ? 0.18 : 0.27);
      if (minute === 1080) sim.supervisor.setSignal(2, 2);
      if (minute === 1140) sim.supervisor.setSignal(2, 0);
      sim.advance(120);
    }
    const status = sim.supervisor.status().map((s) => ({ name: s.name, state: s.state, ticks: s.ticks, faults: s.faultsTotal, fuel: s.fuelLast, max: s.fuelMax, exit: s.exitCode }));
    const out = { status, relays: sim.relayRequests, events: sim.events, logs: sim.logs };
    sim.dispose();
    return out;
  };
  for (const set of [['load-shed', 'tariff-opt', 'commission'], ['shed-world', 'tariff-opt']]) {
    const [v8, w3] = engines.map(([, e]) => run(e, set));
    assert.ok(v8.relays.length > 0, `${set}: the guests switched relays`);
    assert.ok(v8.status.every((s) => s.faults === 0 && (s.state === 'running' ? s.ticks > 40 : s.exit !== undefined)), JSON.stringify(v8.status));
    assert.equal(w3, v8, `${set.join(', ')}: the same decisions, fuel and logs`);
  }
});

test('the checked-in wasm3 build is what gridlet\'s C builds to, with wasm3\'s license beside it', () => {
  const info = JSON.parse(readFileSync(join(WASM3_ARTIFACT, '..', 'build.json'), 'utf8'));
  assert.is(info.sources, ownSourcesHash(), 'guest-core.c, guest-core.h or glue.c changed since host/guests/wasm3/wasm3.wasm was built: run npm run build:wasm3');
  assert.is(info.wasm3, '0.5.0');
  const bytes = readFileSync(WASM3_ARTIFACT);
  assert.is(bytes.length, info.bytes);
  assert.equal(moduleImports(bytes), EXPECTED_IMPORTS, 'a standalone module importing only the host callback');
  assert.match(readFileSync(join(WASM3_ARTIFACT, '..', 'LICENSE-wasm3'), 'utf8'), /MIT License[\s\S]*Steven Massey, Volodymyr Shymanskyy/);
});

test.run();
