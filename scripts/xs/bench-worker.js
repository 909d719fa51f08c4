#!/usr/bin/env node
// The XS bench: what the firmware core costs on XS, from XS's own meters, against the ESP32 budget.
//   node scripts/xs/bench-worker.js [--json]
// Runs in its own process because @agoric/xsnap's Node API needs `@endo/init`, which locks down
// the realm (scripts/bench/xs.ts spawns it and parses the --json output).
//
// Meters: computrons are xsnap's compute meter (one per XS byte-code step, roughly). Heap comes
// from a build of the same worker that also reports XS's chunk and slot counters with their
// per-crank peaks (scripts/xs/meter-worker.js); if that build is impossible (no C compiler),
// the stock worker's slot count is used and chunk bytes are reported as null.
//
// Method, per workload: a crank that only collects garbage, then one crank running the workload
// N times. allocated = growth of chunks + slots over the crank (nothing is collected within it:
// the host heap is 32 MB), minus the same for an empty crank, divided by N. Retained = growth of
// the live set (after a collection) across a setup. Slots are 32 bytes on this 64-bit host and 16
// on the ESP32, so the ESP32 figure counts slots at 16 bytes and chunks as measured.

import { join } from 'node:path';
import { bundleForXS, esbuildErrorText, fromBytes, loadBundle, root, startWorker, toBytes } from './xsnap.js';
import { ensureMeterWorker, spawnWith } from './meter-worker.js';

const ESP32_SLOT = 16;
/** JS heap left on an ESP32 with Moddable's default creation for esp32 (manifests/ explains). */
const BUDGET_BYTES = 154 * 1024;

const json = process.argv.includes('--json');
const say = (s) => (json ? process.stderr : process.stdout).write(s + '\n');

let meterBin;
let meterNote;
try {
  meterBin = await ensureMeterWorker({ log: (s) => process.stderr.write(s + '\n') });
} catch (e) {
  meterNote = `heap meters limited to slots: could not build the metered worker (${String(e.message).split('\n')[0]})`;
}

async function open(entry, name) {
  const bundle = await bundleForXS(entry, { name, resolveDir: join(root, 'scripts', 'xs') });
  const w = await startWorker({ name, spawn: meterBin ? spawnWith(meterBin) : undefined });
  const err = await loadBundle(w, bundle);
  if (err) throw new Error(`${name} throws while loading on XS: ${err.name}: ${err.message}`);
  return w;
}

async function cmd(w, c) {
  const r = await w.issueCommand(toBytes(JSON.stringify(c)));
  return { reply: JSON.parse(fromBytes(r.reply)), m: r.meterUsage };
}

function heap(m) {
  const slotSize = m.slotSize ?? 32;
  const slots = m.slots ?? m.currentHeapCount;
  return { chunks: m.chunks ?? null, slots, slotSize, peakChunks: m.peakChunks ?? null, peakSlots: m.peakSlots ?? slots };
}

/** Meters of one crank relative to the end of the previous one. */
function delta(before, after) {
  const a = heap(before);
  const b = heap(after);
  const chunks = b.chunks === null ? null : b.chunks - a.chunks;
  const peakChunks = b.peakChunks === null ? null : b.peakChunks - a.chunks;
  return {
    compute: after.compute,
    slots: b.slots - a.slots,
    chunks,
    peakSlots: b.peakSlots - a.slots,
    peakChunks,
    collected: b.slots < b.peakSlots || (b.chunks !== null && b.chunks < b.peakChunks),
    slotSize: b.slotSize,
  };
}

async function crank(w, c) {
  const g = await cmd(w, { op: 'gc' });
  const r = await cmd(w, c);
  return { d: delta(g.m, r.m), reply: r.reply };
}

const round = (x) => (x === null ? null : Math.round(x));

/**
 * One workload: computrons and allocation per operation from a crank of `n`, then the largest
 * live set above the starting one during a single operation, from a crank with a collection
 * before every allocation (the metered worker only).
 */
async function perOp(w, name, n) {
  const empty = (await crank(w, { op: 'run', name: 'noop', n: 1 })).d;
  const many = (await crank(w, { op: 'run', name, n })).d;
  const slots = (many.slots - empty.slots) / n;
  const chunks = many.chunks === null ? null : (many.chunks - empty.chunks) / n;
  let peak = null;
  if (meterBin) {
    const emptyStressed = (await crank(w, { op: 'run', name: 'noop', n: 1, stress: true })).d;
    const one = (await crank(w, { op: 'run', name, n: 1, stress: true })).d;
    peak = { slots: one.peakSlots - emptyStressed.peakSlots, chunks: one.peakChunks - emptyStressed.peakChunks };
  }
  const peakLive = peak && peak.chunks + peak.slots * ESP32_SLOT;
  return {
    n,
    computrons: round((many.compute - empty.compute) / n),
    slots: round(slots),
    chunkBytes: round(chunks),
    allocatedBytes: chunks === null ? null : round(chunks + slots * many.slotSize),
    allocatedBytesEsp32: chunks === null ? null : round(chunks + slots * ESP32_SLOT),
    peakLiveBytesEsp32: round(peakLive),
    peakLiveSlots: peak && peak.slots,
    peakLiveChunkBytes: peak && peak.chunks,
    ...(many.collected ? { warning: 'the heap was collected during the measurement; allocation is understated' } : {}),
  };
}

/** A workload that changes state for good: each measuring crank gets its own `prepare`. */
async function oneShot(w, name, prepare) {
  const empty = (await crank(w, { op: 'run', name: 'noop', n: 1 })).d;
  await prepare();
  const plain = (await crank(w, { op: 'run', name, n: 1 })).d;
  let peak = null;
  if (meterBin) {
    const emptyStressed = (await crank(w, { op: 'run', name: 'noop', n: 1, stress: true })).d;
    await prepare();
    const one = (await crank(w, { op: 'run', name, n: 1, stress: true })).d;
    peak = { slots: one.peakSlots - emptyStressed.peakSlots, chunks: one.peakChunks - emptyStressed.peakChunks };
  }
  const slots = plain.slots - empty.slots;
  const chunks = plain.chunks === null ? null : plain.chunks - empty.chunks;
  return {
    n: 1,
    computrons: plain.compute - empty.compute,
    slots,
    chunkBytes: chunks,
    allocatedBytes: chunks === null ? null : chunks + slots * plain.slotSize,
    allocatedBytesEsp32: chunks === null ? null : chunks + slots * ESP32_SLOT,
    peakLiveBytesEsp32: peak && peak.chunks + peak.slots * ESP32_SLOT,
    peakLiveSlots: peak && peak.slots,
    peakLiveChunkBytes: peak && peak.chunks,
  };
}

async function live(w) {
  const g = await cmd(w, { op: 'gc' });
  return heap(g.m);
}

function liveDelta(a, b) {
  const slots = b.slots - a.slots;
  const chunks = b.chunks === null ? null : b.chunks - a.chunks;
  return {
    slots,
    chunkBytes: chunks,
    bytes: chunks === null ? null : chunks + slots * b.slotSize,
    bytesEsp32: chunks === null ? null : chunks + slots * ESP32_SLOT,
  };
}

const result = {
  engine: 'XS in @agoric/xsnap\'s worker' + (meterBin ? ' (rebuilt with heap meters)' : ''),
  meterType: undefined,
  budgetBytes: BUDGET_BYTES,
  perOp: {},
  agent: null,
  notes: [
    'computrons: xsnap\'s compute meter; allocated: chunk bytes + slots, ESP32 counting 16-byte slots',
    'the agent runs with the FlashLog over a 1 MB partition in RAM allocated before the baseline: only the log\'s own state counts',
  ],
};
if (meterNote) result.notes.push(meterNote);

// --- the core alone: codec and frames
{
  const empty = await startWorker({ name: 'xs-bench-empty', spawn: meterBin ? spawnWith(meterBin) : undefined });
  await empty.evaluate('globalThis.handleCommand = () => { gc(); return new ArrayBuffer(0); }');
  const bare = heap((await empty.issueCommand(new Uint8Array(0))).meterUsage);
  await empty.terminate();

  const w = await open(`import './bench-workload.ts';\nimport './bench-meter.ts';`, 'xs-bench-core');
  const loaded = await live(w);
  result.coreLoaded = { ...liveDelta(bare, loaded), note: 'code and module state of codec + frames + crypto on the host heap; byte code is in flash on a meter (preload)' };
  result.perOp.reading = await perOp(w, 'reading', 200);
  result.perOp.frame = await perOp(w, 'frame', 50);
  result.perOp.backlogFrame = await perOp(w, 'backlogFrame', 10);
  result.perOp.backlogEncode = await perOp(w, 'backlogEncode', 10);
  result.perOp.backlogSeal = await perOp(w, 'backlogSeal', 10);
  result.meterType = (await w.issueCommand(toBytes(JSON.stringify({ op: 'list' })))).meterUsage.meterType;
  // The meter parsers: one message per operation, parser already locked on its framing (bench-meter.ts).
  result.meterParse = {};
  for (const m of JSON.parse((await cmd(w, { op: 'setup', name: 'meterList' })).reply)) {
    await cmd(w, { op: 'setup', name: m.name });
    result.meterParse[m.name] = { what: m.what, bytes: m.bytes, ...(await perOp(w, m.name, m.name === 'gcm.open512' ? 20 : 10)) };
  }
  await w.terminate();
}

// --- the agent: steady state and backlog
try {
  const w = await open(`import './bench-workload.ts';\nimport './bench-agent.ts';`, 'xs-bench-agent');
  const before = await live(w);
  const setup = await crank(w, { op: 'setup', name: 'agent' });
  for (let i = 0; i < 20; i++) {
    await cmd(w, { op: 'run', name: 'agentReading', n: 1 });
    await cmd(w, { op: 'run', name: 'agentAck', n: 1 });
  }
  const steady = await live(w);
  const reading = await perOp(w, 'agentReading', 50);
  await cmd(w, { op: 'run', name: 'agentAck', n: 1 });
  const ack = await perOp(w, 'agentAck', 20);
  const acked = await live(w);
  const backlog = await crank(w, { op: 'setup', name: 'agentBacklog' });
  const withBacklog = await live(w);
  let backlogs = 0;
  const reconnect = await oneShot(w, 'agentReconnect', async () => {
    if (backlogs++) {
      await cmd(w, { op: 'run', name: 'agentAck', n: 1 });
      await cmd(w, { op: 'setup', name: 'agentBacklog' });
    }
  });
  const published0 = (await cmd(w, { op: 'setup', name: 'agentReport' })).reply;
  const tick = await perOp(w, 'agentTick', 1);
  const report = (await cmd(w, { op: 'setup', name: 'agentReport' })).reply;
  await w.terminate();

  const retained = liveDelta(before, steady);
  const worst = [reading, ack, reconnect, tick].reduce((a, b) => ((b.peakLiveBytesEsp32 ?? 0) > (a.peakLiveBytesEsp32 ?? 0) ? b : a));
  const peakEsp32 = retained.bytesEsp32 === null ? null : retained.bytesEsp32 + (worst.peakLiveBytesEsp32 ?? 0);
  result.perOp.agentReading = reading;
  result.perOp.agentAck = ack;
  result.perOp.agentReconnect = { ...reconnect, note: 'link back after a backlog: status + the first frames of 120 records' };
  result.perOp.agentBacklogTick = { ...tick, note: 'one 250 ms tick sending up to 8 frames of 120 records from a backlog' };
  result.agent = {
    setupComputrons: setup.d.compute,
    retained: { ...retained, note: 'agent + FlashLog state after start, pairing restored, 40 readings sent and acked' },
    afterAcks: liveDelta(before, acked),
    backlog: { ...liveDelta(acked, withBacklog), note: `${backlog.reply}, held in flash` },
    peakBytesEsp32: peakEsp32,
    peakSlots: retained.slots + (worst.peakLiveSlots ?? 0),
    peakChunkBytes: retained.chunkBytes === null ? null : retained.chunkBytes + (worst.peakLiveChunkBytes ?? 0),
    peakNote: 'retained agent state + the largest live set above it during one operation (collection before every allocation)',
    budgetShare: peakEsp32 === null ? null : Math.round((peakEsp32 / BUDGET_BYTES) * 1000) / 10,
    guests: 'two guests (peak-guard, tamper-watch) installed and running in the measured agent: supervisor, manifests, grants, kv slots, interlocks; wasm3 itself (linear memory capped by memory_bytes, code, stack) lives in native memory outside the JS heap and is stood in for by a double',
    report: `${published0} after reconnecting; ${report} at the end`,
  };
} catch (e) {
  result.agent = { error: String(e && e.errors ? esbuildErrorText(e) : e.message) };
}

if (json) {
  process.stdout.write(JSON.stringify(result, null, 2) + '\n');
} else {
  const kb = (b) => (b === null || b === undefined ? '   n/a' : (b / 1024).toFixed(1).padStart(6) + ' KB');
  say(`XS bench — ${result.engine}, meter ${result.meterType}; ESP32 budget ${kb(BUDGET_BYTES)} of JS heap`);
  say('per operation                 computrons   allocated (ESP32)   peak live above start (ESP32)');
  for (const [name, r] of Object.entries(result.perOp)) {
    say(`  ${name.padEnd(26)} ${String(r.computrons).padStart(10)}   ${kb(r.allocatedBytesEsp32)}          ${kb(r.peakLiveBytesEsp32)}`);
  }
  if (result.agent?.error) say(`agent: ${result.agent.error}`);
  else if (result.agent) {
    say(`agent retained ${kb(result.agent.retained.bytesEsp32)} (ESP32), peak ${kb(result.agent.peakBytesEsp32)} = ${result.agent.budgetShare}% of the budget (${result.agent.peakSlots} slots + ${kb(result.agent.peakChunkBytes)} of chunks)`);
  }
  say(`core code + state on the host heap ${kb(result.coreLoaded.bytes)} (in flash on a meter when preloaded)`);
  say('meter parse, per message             bytes   computrons   allocated (ESP32)');
  for (const [name, r] of Object.entries(result.meterParse ?? {})) {
    say(`  ${name.padEnd(26)} ${String(r.bytes).padStart(10)} ${String(r.computrons).padStart(12)}   ${kb(r.allocatedBytesEsp32)}`);
  }
}
process.exit(0);
