// Benchmark of the flash record log (firmware/core/log/flash-log.ts) on the default data partition
// (64 × 4 KiB: 62 log blocks + 2 counter blocks, see firmware/core/log/partition.ts), fed by a
// simulated house meter reporting 4 channels every 10 s: energy imported / exported (Wh, monotonic)
// and power imported / exported (W): a slowly drifting base load, appliances switching, solar by day.
// Measures what a meter owner would notice: bytes of flash per reading, write amplification, erases
// per block per day, how many days the log lasts with the gateway unreachable, boot and read times,
// and a 100,000-cut power-failure simulation.
//   npm run bench -- flash-log      (or: node --import tsx scripts/bench/flash-log.ts)

import { FlashLog } from '../../firmware/core/log/flash-log.js';
import { MemoryFlash } from '../../firmware/core/log/memory-flash.js';
import { DEFAULT_PARTITION, splitPartition } from '../../firmware/core/log/partition.js';
import { simulate } from '../../host/sim/flash-log-sim.js';
import { Prng } from '../../firmware/core/prng.js';

const T0 = 1_717_200_000; // 2024-06-01 00:00 UTC
const DAY = 86_400;
const PERIOD = 10;
const EVENTS_PER_DAY = 6;

/** One telegram every 10 s: [t, [[channel, value], …]]. */
function house(seed: number): () => [number, [number, number][]] {
  const rng = new Prng(seed);
  let t = T0;
  let energyIn = 8_123_456;
  let energyOut = 1_234_567;
  let fracIn = 0;
  let fracOut = 0;
  let base = 320;
  let appliance = 0;
  let cloud = 1;
  return () => {
    t += PERIOD;
    const hour = (t % DAY) / 3600;
    base = Math.min(900, Math.max(150, base + rng.range(-12, 12)));
    if (rng.chance(0.004)) appliance = appliance ? 0 : rng.pick([150, 800, 2000, 2800]);
    cloud = Math.min(1, Math.max(0.2, cloud + (rng.float() - 0.5) * 0.05));
    const solar = hour > 5.5 && hour < 20.5 ? 4200 * Math.sin((Math.PI * (hour - 5.5)) / 15) * cloud : 0;
    const net = base + appliance - solar;
    const pIn = Math.max(0, Math.round(net));
    const pOut = Math.max(0, Math.round(-net));
    fracIn += (pIn * PERIOD) / 3600;
    fracOut += (pOut * PERIOD) / 3600;
    energyIn += Math.floor(fracIn);
    energyOut += Math.floor(fracOut);
    fracIn -= Math.floor(fracIn);
    fracOut -= Math.floor(fracOut);
    return [t, [[1, energyIn], [2, energyOut], [3, pIn], [4, pOut]]];
  };
}

function partition(): { mem: MemoryFlash; log: FlashLog; logBlocks: number } {
  const mem = new MemoryFlash({ blocks: DEFAULT_PARTITION.blocks, blockSize: DEFAULT_PARTITION.blockSize });
  const parts = splitPartition(mem);
  return { mem, log: new FlashLog(parts.log), logBlocks: parts.log.blocks };
}

const round = (x: number, digits = 2): number => Math.round(x * 10 ** digits) / 10 ** digits;

/** Online: every telegram sent at once and acked (the worst case for ack overhead). */
function online(days: number, single: boolean) {
  const { mem, log, logBlocks } = partition();
  const next = house(1);
  const steps = (days * DAY) / PERIOD;
  const eventEvery = Math.floor(steps / (days * EVENTS_PER_DAY));
  for (let i = 0; i < steps; i++) {
    const [t, readings] = next();
    if (single) for (const [ch, v] of readings) log.appendReading(t, ch, v);
    else log.appendReadings(t, readings);
    if (i % eventEvery === 0) log.appendEvent(t, 'relay', { id: 1, on: i % 2 === 0, by: 'guest' });
    log.ack(log.stats().newestSeq);
  }
  const io = log.io;
  const erases = Array.from(mem.eraseCounts).slice(0, logBlocks);
  return {
    bytesPerReading: round(mem.bytesWritten / io.readings),
    recordBytesPerReading: round(io.readingBytes / io.readings),
    writeAmplification: round(mem.bytesWritten / io.recordBytes),
    ackBytesPerReading: round(io.ackBytes / io.readings),
    erasesPerBlockPerDay: round(erases.reduce((a, b) => a + b, 0) / logBlocks / days, 3),
    eraseCountMin: Math.min(...erases),
    eraseCountMax: Math.max(...erases),
  };
}

/** Offline: nothing acked. How long until the first reading is dropped? */
function offline() {
  const { mem, log } = partition();
  const next = house(2);
  const steps0 = (DAY / PERIOD) / EVENTS_PER_DAY;
  let i = 0;
  let t = T0;
  while (log.stats().dropped === 0) {
    const [tt, readings] = next();
    t = tt;
    log.appendReadings(t, readings);
    if (i++ % steps0 === 0) log.appendEvent(t, 'tamper', { why: 'cover' });
  }
  const s = log.stats();
  // Keep going a day past full: the oldest readings go, events stay, the gaps say so.
  for (let k = 0; k < DAY / PERIOD; k++) log.appendReadings(...next());
  const after = log.stats();
  const backlog = [];
  for (let after2 = 0; ; ) {
    const page = log.read(after2, 500);
    if (!page.length) break;
    backlog.push(...page);
    const last = page[page.length - 1];
    after2 = last.kind === 7 ? last.last : last.seq;
  }
  return {
    daysUntilFull: round((t - T0) / DAY, 2),
    readingsHeld: s.buffered - log.io.events,
    bytesPerReading: round(mem.bytesWritten / log.io.readings),
    capacityBytes: s.capacityBytes,
    afterOneMoreDay: {
      droppedReadings: after.dropped,
      droppedEvents: after.droppedEvents,
      eventsKept: backlog.filter((e) => e.kind === 2).length,
      gapEntries: backlog.filter((e) => e.kind === 7).length,
    },
  };
}

/** Boot (recovery) and read() cost with a full partition. */
function timings() {
  const { mem, log } = partition();
  const next = house(3);
  while (log.stats().usedBytes < log.stats().capacityBytes * 0.95) log.appendReadings(...next());
  const parts = splitPartition(mem);
  let t0 = performance.now();
  const boots = 20;
  let booted = log;
  for (let i = 0; i < boots; i++) booted = new FlashLog(parts.log);
  const bootMs = (performance.now() - t0) / boots;
  const newest = booted.stats().newestSeq;
  t0 = performance.now();
  const reads = 2000;
  let n = 0;
  for (let i = 0; i < reads; i++) n += booted.read(Math.floor((newest * i) / reads), 50).length;
  const readMs = (performance.now() - t0) / reads;
  return { bootMsFullLog: round(bootMs, 2), readMsPer50Entries: round(readMs, 3), entriesRead: n };
}

/** The power-failure simulation at scale (host/sim/flash-log-sim.ts, same invariants as the tests). */
function powerCuts(total: number) {
  const started = performance.now();
  let cuts = 0;
  let seeds = 0;
  let reboots = 0;
  let recoveryCuts = 0;
  const at: Record<string, number> = {};
  for (let seed = 10_001; cuts < total; seed++) {
    const r = simulate(seed, { cuts: Math.min(500, total - cuts) });
    cuts += r.cuts;
    seeds++;
    reboots += r.reboots;
    recoveryCuts += r.recoveryCuts;
    for (const [k, v] of Object.entries(r.cutsAt)) at[k] = (at[k] ?? 0) + v;
  }
  return { cuts, seeds, reboots, recoveryCuts, cutsAt: at, seconds: round((performance.now() - started) / 1000, 1), violations: 0 };
}

export async function run(): Promise<object> {
  const cuts = Number(process.env.GRIDLET_BENCH_CUTS ?? 100_000);
  return {
    on: `${DEFAULT_PARTITION.blocks} × ${DEFAULT_PARTITION.blockSize} B partition (log ${DEFAULT_PARTITION.blocks - DEFAULT_PARTITION.counterBlocks} blocks), in-memory NOR flash, Node ${process.version}`,
    workload: `4 channels every ${PERIOD} s (energy in/out Wh, power in/out W; house with solar), ${EVENTS_PER_DAY} events/day`,
    onlineBatched: { days: 7, ...online(7, false) },
    onlineOneReadingPerAppend: { days: 2, ...online(2, true) },
    offline: offline(),
    timings: timings(),
    powerCuts: powerCuts(cuts),
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log(JSON.stringify(await run(), null, 2));
}
