// Hostile and broken guests against a running meter (GuestSim: real supervisor, interlocks and Node
// engine): each is refused at deployment or contained at run time with a clear reason, while the
// shipped peak-guard keeps serving its readings and decisions.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DIST_DIR, MANIFEST_DIR } from '../../guests/build.js';
import { guestCid } from '../../firmware/core/guests/cid.js';
import { GuestSim } from '../../host/guests/guest-sim.js';
import type { GuestAck } from '../../firmware/core/wire/bodies.js';
import { householdDay } from '../../host/meter/household.js';
import { hostileManifest, REFUSED, RUNTIME } from '../core/support/hostile-guests.js';

const day = householdDay();
const peakGuard = new Uint8Array(readFileSync(join(DIST_DIR, 'peak-guard.wasm')));
const peakManifest = JSON.parse(readFileSync(join(MANIFEST_DIR, 'peak-guard.json'), 'utf8'));

const manifest = hostileManifest;

/** A meter running peak-guard on the household day, with readings arriving every 5 s. */
function meter() {
  const sim = new GuestSim();
  sim.supervisor.setSignal(3, 5000);
  assert.is(sim.install(peakGuard, peakManifest).state, 'running');
  let minute = 6 * 60;
  let readings = 0;
  const run = (seconds: number, importW?: number) => {
    for (let t = 0; t < seconds; t += 5) {
      const d = day[Math.floor(minute) % 1440];
      sim.supervisor.setChannel(3, importW ?? d.powerW);
      readings++;
      sim.advance(5);
      minute += 5 / 60;
    }
  };
  return { sim, run, readings: () => readings };
}

/** Deploys through guest-offer / guest-chunk, as the gateway would. */
function deploy(sim: GuestSim, wasm: Uint8Array, man: Record<string, unknown>): GuestAck {
  const cid = guestCid(wasm);
  const early = sim.supervisor.offer({ type: 18, name: man.name as string, cid, manifest: man as never, size: wasm.length });
  if (early) return early;
  let ack: GuestAck | undefined;
  for (let off = 0; off < wasm.length; off += 1024) {
    ack = sim.supervisor.chunk({ type: 19, cid, offset: off, bytes: wasm.slice(off, off + 1024) }) ?? ack;
  }
  if (!ack) throw new Error('no ack after the last chunk');
  return ack;
}

function peakGuardHealthy(sim: GuestSim, ticksBefore: number) {
  const s = sim.supervisor.status().find((x) => x.name === 'peak-guard')!;
  assert.is(s.state, 'running');
  assert.is(s.faultsTotal, 0);
  assert.ok(s.ticks > ticksBefore, 'peak-guard kept ticking');
}

test('malformed and forbidden modules are refused with their reason; peak-guard runs on', () => {
  const { sim, run } = meter();
  run(60);
  const ticks = sim.supervisor.status()[0].ticks;
  for (const [what, make, why, caps] of REFUSED) {
    const ack = deploy(sim, make(), manifest('intruder', caps ?? []));
    assert.is(ack.state, 'rejected', what);
    assert.match(ack.reason!, why, `${what}: ${ack.reason}`);
    run(10);
  }
  assert.is(sim.supervisor.status().length, 1, 'nothing but peak-guard is installed');
  peakGuardHealthy(sim, ticks);
  // The 1 MiB module is refused by the validator as well, without parsing it.
  const mib = new Uint8Array(1 << 20);
  assert.match(sim.install(mib, manifest('big')).reason!, /module is 1048576 bytes; a guest is at most 4096/);
});

test('an infinite loop is stopped by fuel, backs off, and is quarantined', () => {
  const { sim, run } = meter();
  const spin = RUNTIME.spinner();
  assert.is(deploy(sim, spin, manifest('spinner')).state, 'running', 'it loads: its init is fine');
  const t0 = Date.now();
  run(3600);
  const s = sim.supervisor.status().find((x) => x.name === 'spinner')!;
  assert.is(s.state, 'quarantined');
  assert.match(s.lastFault!, /^tick: fuel: tick spent its fuel budget of 50000/);
  assert.is(s.fuelLast, 50_001, 'the call stopped as soon as the budget was spent');
  assert.is(sim.acks.at(-1)!.state, 'rejected');
  assert.match(sim.acks.at(-1)!.reason!, /quarantined after 5 faults in an hour; last: tick: fuel/);
  assert.ok(Date.now() - t0 < 20_000, 'an hour of a spinning guest costs the host little');
  peakGuardHealthy(sim, 0);
});

test('memory growth past the cap and stores outside it are contained', () => {
  const { sim, run } = meter();
  const grower = RUNTIME.grower();
  const scribbler = RUNTIME.scribbler();
  assert.is(deploy(sim, grower, manifest('grower')).state, 'running');
  assert.is(deploy(sim, scribbler, manifest('scribbler')).state, 'running');
  run(30);
  const st = (n: string) => sim.supervisor.status().find((x) => x.name === n)!;
  assert.is(st('grower').state, 'backoff');
  assert.match(st('grower').lastFault!, /^tick: memory: tick: memory\.grow past memory_bytes 4096/);
  assert.match(st('scribbler').lastFault!, /^tick: memory: tick: access at byte 60000 is outside memory_bytes 4096/);
  assert.equal(sim.eventsOf('guest-fault').map((e) => e.data.name).slice(0, 2).sort(), ['grower', 'scribbler']);
  peakGuardHealthy(sim, 0);
});

test('an import it was not granted answers -1 and never reaches the relay', () => {
  const { sim, run } = meter();
  // tick: relay(2, 1) without relay:2, returning the answer + 1.
  const sneaky = RUNTIME.sneaky();
  assert.is(deploy(sim, sneaky, manifest('sneaky', ['emit'])).state, 'running');
  const before = sim.relay(2).switches.length;
  run(120);
  const s = sim.supervisor.status().find((x) => x.name === 'sneaky')!;
  assert.is(s.state, 'running', 'a denied call is counted, not a fault');
  assert.is(s.denied, 24);
  assert.is(s.lastDenied, 'relay(2)');
  assert.is(s.softFaults, 0, 'relay() answered -1, so tick returned -1 + 1 = 0');
  assert.is(sim.relay(2).switches.length, before, 'relay 2 was never switched');
  peakGuardHealthy(sim, 0);
});

test('a guest that traps every few ticks restarts after 5, 10, 20, 40 s, then is quarantined', () => {
  const { sim, run } = meter();
  // Traps on its fourth tick after each (re)start (a global counter; a restart is a fresh instance).
  const wasm = RUNTIME.hiccup();
  assert.is(deploy(sim, wasm, manifest('hiccup')).state, 'running');
  const t0 = sim.t;
  run(600);
  const faults = sim.eventsOf('guest-fault').filter((e) => e.data.name === 'hiccup').map((e) => e.t - t0);
  assert.is(faults.length, 5);
  // Each restart runs 4 ticks (20 s) before trapping again.
  assert.equal(faults.slice(1).map((t, i) => t - faults[i]), [25, 30, 40, 60]);
  assert.is(sim.supervisor.status().find((x) => x.name === 'hiccup')!.state, 'quarantined');
  assert.equal(sim.eventsOf('guest-quarantine').map((e) => e.data.name), ['hiccup']);
  peakGuardHealthy(sim, 0);
});

test.run();
