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
