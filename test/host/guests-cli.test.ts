// `gridlet guest check` and `gridlet guest run` (host/cli/guest.ts), as a developer uses them, and the
// choice of guest engine there and on `gridlet agent`.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DIST_DIR, MANIFEST_DIR } from '../../guests/build.js';
import { agentMain } from '../../host/cli/agent.js';
import { guestMain } from '../../host/cli/guest.js';
import { createHostAgent } from '../../host/agent-host.js';
import { guest, meteredGuest } from '../core/support/guests.js';
import { wasiUnlisted } from '../core/support/wasi-world-guests.js';

const dir = mkdtempSync(join(tmpdir(), 'gridlet-guest-cli-'));
const wasmOf = (n: string) => join(DIST_DIR, `${n}.wasm`);
const manifestOf = (n: string) => join(MANIFEST_DIR, `${n}.json`);

/** Runs the command, capturing what it prints. */
async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const log = console.log;
  const error = console.error;
  const write = process.stdout.write.bind(process.stdout);
  console.log = (...a: unknown[]) => { out.push(a.join(' ') + '\n'); };
  console.error = (...a: unknown[]) => { err.push(a.join(' ') + '\n'); };
  process.stdout.write = ((s: string) => { out.push(s); return true; }) as typeof process.stdout.write;
  try {
    const code = await guestMain(argv);
    return { code, out: out.join(''), err: err.join('') };
  } finally {
    console.log = log;
    console.error = error;
    process.stdout.write = write;
  }
}

test('check: a shipped guest passes, with what it uses', async () => {
  const r = await cli('check', wasmOf('peak-guard'), '--manifest', manifestOf('peak-guard'));
  assert.is(r.code, 0, r.err);
  assert.match(r.out, /^ok: peak-guard 1\.0\.0, \d+ bytes \(budget 4096\), cid bafkrei/);
  assert.match(r.out, /metering: 14 points/);
  const j = await cli('check', wasmOf('tou-cost'), '--manifest', manifestOf('tou-cost'), '--json');
  assert.is(j.code, 0);
  const doc = JSON.parse(j.out);
  assert.is(doc.ok, true);
  assert.match(doc.cid, /^bafkrei/);
});

test('check: a module that breaks GUESTS.md exits non-zero with the reason', async () => {
  const plain = join(dir, 'plain.wasm');
  writeFileSync(plain, guest());
  const r = await cli('check', plain, '--manifest', manifestOf('tamper-watch'));
  assert.is(r.code, 1);
  assert.match(r.err, /plain\.wasm is refused: the module is not metered/);
  const j = await cli('check', plain, '--manifest', manifestOf('tamper-watch'), '--json');
  assert.equal(JSON.parse(j.out).ok, false);
  const badManifest = join(dir, 'bad.json');
  writeFileSync(badManifest, JSON.stringify({ name: 'x', version: '1', period_s: 5 }));
  const m = await cli('check', wasmOf('tou-cost'), '--manifest', badManifest);
  assert.is(m.code, 1);
  assert.match(m.err, /"version" must be a version/);
  const missing = await cli('check', join(dir, 'nope.wasm'), '--manifest', manifestOf('tou-cost'));
  assert.is(missing.code, 1);
  assert.match(missing.err, /cannot read module .*nope\.wasm: ENOENT/);
  assert.is((await cli('check', wasmOf('tou-cost'))).code, 2, 'usage error without --manifest');
});

test('check: warns about imports the manifest does not grant', async () => {
  const w = join(dir, 'nosy.wasm');
  writeFileSync(w, meteredGuest({ imports: ['relay'] }));
  const m = join(dir, 'nosy.json');
  writeFileSync(m, JSON.stringify({ name: 'nosy', version: '1.0.0', period_s: 5, fuel_per_call: 5000, memory_bytes: 1024, capabilities: [] }));
  const r = await cli('check', w, '--manifest', m);
  assert.is(r.code, 0);
  assert.match(r.out, /warning: imports relay but the manifest grants no capability for it/);
});

test('check: the C and Rust guests, the WASI job and the world pass; WASI outside the subset is refused by name', async () => {
  for (const name of ['load-shed', 'tariff-opt']) {
    const r = await cli('check', wasmOf(name), '--manifest', manifestOf(name));
    assert.is(r.code, 0, r.err);
    assert.match(r.out, new RegExp(`^ok: ${name} 1\\.0\\.0, \\d+ bytes \\(budget 4096\\)`));
  }
  const job = await cli('check', wasmOf('commission'), '--manifest', manifestOf('commission'));
  assert.is(job.code, 0, job.err);
  assert.match(job.out, /WASI: clock_time_get, fd_write, proc_exit, random_get/);
  assert.match(job.out, /exports: _start \(a one-shot job: it runs once when deployed\)/);
  const world = await cli('check', join(DIST_DIR, 'shed-world.world'));
  assert.is(world.code, 0, world.err);
  assert.match(world.out, /^ok: world shed-world 1\.0\.0, \d+ bytes, 2 members, cid bafyrei/);
  assert.match(world.out, /shedder: \d+ bytes \(budget 4096\), every 5 s, holds relay 1/);
  assert.match(world.out, /calls setpoint\.limit/);
  const wj = JSON.parse((await cli('check', join(DIST_DIR, 'shed-world.world'), '--json')).out);
  assert.equal(wj.members.map((m: { name: string; offers: string[] }) => [m.name, m.offers]), [['setpoint', ['limit']], ['shedder', []]]);
  const sneaky = join(dir, 'sneaky.wasm');
  writeFileSync(sneaky, wasiUnlisted('fd_read'));
  const refused = await cli('check', sneaky, '--manifest', manifestOf('commission'));
  assert.is(refused.code, 1);
  assert.match(refused.err, /sneaky\.wasm is refused: import wasi_snapshot_preview1\.fd_read is a WASI function gridlet does not provide/);
  assert.is((await cli('check', join(DIST_DIR, 'shed-world.world'), '--manifest', manifestOf('commission'))).code, 2, 'a world carries its manifest');
});

test('run: a world reports its members; a one-shot job runs once and reports its exit code', async () => {
  const w = await cli('run', join(DIST_DIR, 'shed-world.world'), '--changes', '--json');
  assert.is(w.code, 0, w.err);
  const doc = JSON.parse(w.out);
  assert.is(doc.summary.guest, 'shed-world');
  assert.match(doc.summary.cid, /^bafyrei/);
  const shed = doc.ticks.find((t: { log: string[] }) => t.log.some((l) => l.startsWith('shedder: shed at limit')));
  assert.ok(shed, 'the shedder shed during the household day');
  assert.equal(shed.members.map((m: { name: string }) => m.name), ['setpoint', 'shedder']);
  const j = await cli('run', wasmOf('commission'), '--manifest', manifestOf('commission'));
  assert.is(j.code, 0, j.err);
  const lines = j.out.trim().split('\n').map((l) => JSON.parse(l));
  assert.is(lines.length, 2, 'one run and the summary');
  assert.is(lines[0].state, 'exited');
  assert.ok(lines[0].log.length === 6);
  assert.is(lines[1].summary.exitCode, 0);
});

test('run: a script of readings and signals, one JSON line per tick', async () => {
  const script = join(dir, 'script.json');
  writeFileSync(script, JSON.stringify({
    duration_s: 180,
    steps: [
      { t: 0, channels: { 3: 1200 }, signals: { 3: 4000 } },
      { t: 90, channels: { 3: 5200 } },
      { t: 150, signals: { 3: null } },
    ],
  }));
  const r = await cli('run', wasmOf('peak-guard'), '--manifest', manifestOf('peak-guard'), '--script', script);
  assert.is(r.code, 0, r.err);
  const lines = r.out.trim().split('\n').map((l) => JSON.parse(l));
  const ticks = lines.filter((l) => !l.summary);
  assert.is(ticks.length, 36);
  assert.equal(Object.keys(ticks[0]), ['t', 'tick', 'state', 'fuel', 'relays', 'events', 'faults', 'log']);
  assert.equal(ticks[0].log, ['peak-guard ready, limit W 4000']);
  // Relay 1 comes back once the 60 s dwell after power-up has passed; at t = 90 the import goes over
  // 4 kW, and the interlock refuses the shed (-2) until that state too has lasted 60 s.
  const requests = ticks.flatMap((t) => t.relays.map((q: { id: number; on: boolean; result: number }) => [t.t, q.on, q.result]));
  assert.equal(requests, [
    [60, true, 0], [95, false, -2], [100, false, -2], [105, false, -2], [110, false, -2], [115, false, -2], [120, false, 0],
  ]);
  assert.ok(ticks.find((t) => t.t === 95).events.some((e: { kind: string; data: { rule: string } }) => e.kind === 'interlock' && e.data.rule === 'dwell'));
  const shed = ticks.find((t) => t.t === 120);
  assert.ok(shed.events.some((e: { kind: string }) => e.kind === 'guest.peak-guard.1'));
  assert.ok(ticks.every((t) => t.fuel > 0 && t.fuel < 20_000 && t.faults.length === 0));
  const summary = lines.at(-1).summary;
  assert.is(summary.ticks, 36);
  assert.is(summary.state, 'running');
  assert.is(summary.events, 2);
});

test('run: the default script is the household day; --changes keeps eventful ticks; --json one document', async () => {
  const r = await cli('run', wasmOf('dr-responder'), '--manifest', manifestOf('dr-responder'), '--changes', '--json');
  assert.is(r.code, 0, r.err);
  const doc = JSON.parse(r.out);
  assert.is(doc.summary.ticks, 8640, 'a whole day at period 10 s');
  const levels = doc.ticks.flatMap((t: { events: { kind: string; data: { value: number } }[] }) =>
    t.events.filter((e) => e.kind === 'guest.dr-responder.1').map((e) => e.data.value));
  assert.equal(levels, [1000, 0, 2000, 0]);
  assert.ok(doc.ticks.length < 40, 'only the ticks where something happened');
});

test('run: a failing guest is reported, and a bad script is refused', async () => {
  const w = join(dir, 'crash.wasm');
  writeFileSync(w, meteredGuest({ tick: [0x00] }));
  const m = join(dir, 'crash.json');
  writeFileSync(m, JSON.stringify({ name: 'crash', version: '1.0.0', period_s: 5, fuel_per_call: 5000, memory_bytes: 1024, capabilities: [] }));
  const s = join(dir, 'short.json');
  writeFileSync(s, JSON.stringify({ duration_s: 30, steps: [] }));
  const r = await cli('run', w, '--manifest', m, '--script', s);
  assert.is(r.code, 0);
  const first = JSON.parse(r.out.split('\n')[0]);
  assert.equal(first.faults, ['tick: trap: tick: unreachable']);
  assert.is(first.state, 'backoff');
  const bad = join(dir, 'bad-script.json');
  writeFileSync(bad, JSON.stringify({ steps: [{ t: 10 }, { t: 5 }] }));
  const b = await cli('run', w, '--manifest', m, '--script', bad);
  assert.is(b.code, 1);
  assert.match(b.err, /script: step 1: steps must be in time order/);
});

test('run --guest-engine wasm3: the meter\'s engine gives the same day, tick for tick; an unknown engine is refused', async () => {
  const args = ['run', wasmOf('dr-responder'), '--manifest', manifestOf('dr-responder')];
  const v8 = await cli(...args);
  const wasm3 = await cli(...args, '--guest-engine', 'wasm3');
  assert.is(wasm3.code, 0, wasm3.err);
  assert.ok(v8.out.includes('guest.dr-responder.1'), 'dr-responder acted during the day');
  assert.is(wasm3.out, v8.out);
  const bad = await cli(...args, '--guest-engine', 'wamr');
  assert.is(bad.code, 2);
  assert.match(bad.err, /--guest-engine wamr: expected v8 or wasm3/);
});

test('gridlet agent --guest-engine wasm3 runs its guests on wasm3; an unknown engine is refused', async () => {
  const host = createHostAgent({ brokers: ['mqtt://127.0.0.1:9'], meter: 'none', guests: ['peak-guard', 'tou-cost'], guestEngine: 'wasm3' });
  try {
    assert.equal(host.guests.status().map((g) => [g.name, g.state]), [['peak-guard', 'running'], ['tou-cost', 'running']]);
  } finally {
    host.stop();
  }
  const error = console.error;
  const err: string[] = [];
  console.error = (...a: unknown[]) => { err.push(a.join(' ')); };
  try {
    assert.is(await agentMain(['--broker', 'mqtt://127.0.0.1:9', '--guest-engine', 'wamr']), 2);
  } finally {
    console.error = error;
  }
  assert.match(err.join('\n'), /--guest-engine wamr: expected v8 or wasm3/);
});

test.after(() => rmSync(dir, { recursive: true, force: true }));

test.run();
