// WASI guests on a simulated meter (GUESTS.md "WASI"), on V8 and on wasm3: the commissioning job runs
// once after its deployment is acknowledged, its stdout is the guest log, it exits with its verdict
// and stays exited across a reboot until a technician starts it again; a job that writes 1 MiB to
// stdout is cut at the log limit while the meter goes on; one that traps goes down the fault path;
// one importing a WASI function outside the subset is refused with that function's name.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DIST_DIR, MANIFEST_DIR } from '../../guests/build.js';
import { instrumentMetering } from '../../guests/tools/instrument.js';
import { LOG_LINES_PER_JOB, LOG_MAX_BYTES, LOG_SCAN_BYTES_JOB } from '../../firmware/core/guests/wasi.js';
import type { GuestEngine } from '../../firmware/core/ports.js';
import { GuestSim, MemoryKeyValue } from '../../host/guests/guest-sim.js';
import { NodeGuestEngine } from '../../host/guests/wasm-engine.js';
import { Wasm3HostEngine } from '../../host/guests/wasm3-engine.js';
import { assemble } from '../core/support/guests.js';
import { FLOOD_CHUNK, FLOOD_WRITES, wasiFlood, wasiUnlisted } from '../core/support/wasi-world-guests.js';

const engines: [string, () => GuestEngine][] = [['v8', () => new NodeGuestEngine()], ['wasm3', () => new Wasm3HostEngine()]];
const commission = new Uint8Array(readFileSync(join(DIST_DIR, 'commission.wasm')));
const commissionManifest = JSON.parse(readFileSync(join(MANIFEST_DIR, 'commission.json'), 'utf8'));
const tamper = new Uint8Array(readFileSync(join(DIST_DIR, 'tamper-watch.wasm')));
const tamperManifest = JSON.parse(readFileSync(join(MANIFEST_DIR, 'tamper-watch.json'), 'utf8'));
const job = (name: string, extra = {}) => ({ name, version: '1.0.0', period_s: 60, fuel_per_call: 100_000, memory_bytes: 4096, capabilities: [], ...extra });

function fitted(sim: GuestSim, volts: number): void {
  sim.supervisor.setChannel(1, 123_456);
  sim.supervisor.setChannel(3, 1800);
  sim.supervisor.setChannel(5, volts * 1000);
  sim.supervisor.setChannel(8, 8200);
}

const state = (sim: GuestSim, name: string) => sim.supervisor.status().find((s) => s.name === name)!;

for (const [engineName, make] of engines) {
  test(`${engineName}: the commissioning job runs once, reports on stdout, exits with its verdict, and stays exited across a reboot`, () => {
    const kv = new MemoryKeyValue();
    const sim = new GuestSim({ engine: make(), kv });
    fitted(sim, 231);
    const ack = sim.install(commission, commissionManifest);
    assert.is(ack.state, 'running', ack.reason);
    assert.is(sim.logs.length, 0, 'it runs after its deployment is acknowledged, in a turn of its own');
    sim.advance(0);
    const report = sim.logs.map((l) => l.text);
    assert.is(report.length, 6);
    assert.match(report[0], /^commission [0-9a-f]{8} at 1170288000$/);
    assert.equal(report.slice(1).map((l) => l.slice(20)), [
      'voltage L1 ok 231 V', 'current L1 ok 8200 mA', 'power vs V*I ok 1800 W', 'import register ok 123456 Wh', 'passed, failed checks 0',
    ]);
    assert.not.equal(report[0].slice(11, 19), '00000000', 'the report id came from random_get');
    assert.equal(sim.eventsOf('guest.commission.0').map((e) => e.data), [{ value: 0 }]);
    assert.equal(sim.eventsOf('guest-exit').map((e) => e.data), [{ name: 'commission', code: 0 }]);
    const st = state(sim, 'commission');
    assert.equal([st.state, st.exitCode, st.job, st.ticks, st.faultsTotal], ['exited', 0, true, 1, 0]);
    assert.ok(st.fuelLast > 1000 && st.fuelLast < commissionManifest.fuel_per_call);
    sim.advance(600);
    assert.is(sim.logs.length, 6, 'once');
    sim.dispose();
    const after = new GuestSim({ engine: make(), kv });
    fitted(after, 190);
    assert.equal(after.supervisor.restore(), ['commission']);
    after.advance(60);
    assert.equal([state(after, 'commission').state, after.logs.length], ['exited', 0], 'not run again at boot');
    assert.equal(after.supervisor.start('commission'), { ok: true });
    after.advance(0);
    // 190 V: the voltage is out of range, and 1800 W is more than 190 V × 8.2 A could carry.
    assert.match(after.logs[1].text, /voltage L1 FAIL 190 V$/);
    assert.match(after.logs[3].text, /power vs V\*I FAIL 1800 W$/);
    assert.match(after.logs.at(-1)!.text, /FAILED checks 2$/);
    const again = state(after, 'commission');
    assert.equal([again.state, again.exitCode, again.softFaults], ['exited', 2, 1], 'a non-zero exit is a soft fault');
    assert.equal(after.eventsOf('guest-exit').map((e) => e.data), [{ name: 'commission', code: 2 }]);
    after.dispose();
  });

  test(`${engineName}: a job writing 1 MiB to stdout is cut at the log limit; the meter goes on`, () => {
    const sim = new GuestSim({ engine: make() });
    assert.is(sim.install(tamper, tamperManifest).state, 'running');
    assert.is(sim.install(wasiFlood(), job('flood')).state, 'running');
    sim.advance(30);
    const lines = sim.logs.filter((l) => l.guest === 'flood');
    assert.is(lines.length, LOG_LINES_PER_JOB);
    assert.ok(lines.every((l) => l.text === 'x'.repeat(63) && l.text.length <= LOG_MAX_BYTES));
    const st = state(sim, 'flood');
    assert.equal([st.state, st.exitCode, st.faultsTotal], ['exited', 0, 0], 'it ran to its end');
    assert.is(st.logBytesDropped, FLOOD_CHUNK * FLOOD_WRITES - LOG_SCAN_BYTES_JOB, 'everything past 8 KiB was dropped unread');
    assert.ok(st.logLinesDropped > 0);
    const t = state(sim, 'tamper-watch');
    assert.equal([t.state, t.ticks], ['running', 6], 'the other guest ticked on');
    sim.dispose();
  });

  test(`${engineName}: a job that traps goes down the fault path and runs again; WASI outside the subset is refused by name`, () => {
    const sim = new GuestSim({ engine: make() });
    const crash = instrumentMetering(assemble({ funcs: [{ code: [0x00] }], exports: [['memory', 2, 0], ['_start', 0, 0]] })).wasm;
    assert.is(sim.install(crash, job('crash')).state, 'running');
    sim.advance(0);
    assert.equal(sim.eventsOf('guest-fault').map((e) => e.data.name), ['crash']);
    assert.is(state(sim, 'crash').state, 'backoff');
    sim.advance(6);
    assert.is(sim.eventsOf('guest-fault').length, 2, 'it ran again after its backoff');
    for (const name of ['fd_read', 'path_open', 'sock_send']) {
      const ack = sim.install(wasiUnlisted(name), job('sneaky'));
      assert.is(ack.state, 'rejected');
      assert.match(ack.reason!, new RegExp(`import wasi_snapshot_preview1\\.${name} is a WASI function gridlet does not provide`));
    }
    sim.dispose();
  });
}

test('the same job on V8 and wasm3: the same report, fuel and exit', () => {
  const run = (engine: GuestEngine) => {
    const sim = new GuestSim({ engine });
    fitted(sim, 251);
    sim.install(commission, commissionManifest);
    sim.install(wasiFlood(), job('flood'));
    sim.advance(1);
    const out = { logs: sim.logs, events: sim.events, status: sim.supervisor.status().map((s) => [s.name, s.fuelLast, s.exitCode, s.logBytesDropped]) };
    sim.dispose();
    return out;
  };
  const [v8, w3] = engines.map(([, make]) => run(make()));
  assert.equal(w3, v8);
});

test.run();
