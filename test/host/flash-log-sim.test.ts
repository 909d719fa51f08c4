// Power-cut simulation of the flash log and the persistent counters (host/sim/flash-log-sim.ts).
// Thousands of seeded cuts before, during and after writes and erases, with reboots and acks between.
// A failing seed prints itself; replay one with
//   GRIDLET_SEED=1234 node scripts/test.js unit flash-log-sim
// (GRIDLET_CUTS sets how many cuts the replayed seed runs; default as in the suite).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CUT_POINTS, simulate, type SimResult } from '../../host/sim/flash-log-sim.js';
import { FaultyFlash, PowerCut } from '../../host/flash/faulty-flash.js';
import { MemoryFlash } from '../../host/flash/memory-flash.js';
import { Prng } from '../../firmware/core/prng.js';
import { FlashCounters } from '../../firmware/core/log/counters.js';

const replay = process.env.GRIDLET_SEED;
const CUTS_PER_SEED = Number(process.env.GRIDLET_CUTS ?? 400);
const TOTAL_CUTS = 10_000;

test(`flash log: ${TOTAL_CUTS} power cuts across seeds keep every invariant`, () => {
  const started = Date.now();
  const seeds = replay ? [Number(replay)] : [];
  if (!replay) for (let s = 1; s <= Math.ceil(TOTAL_CUTS / CUTS_PER_SEED); s++) seeds.push(s);
  const results: SimResult[] = [];
  for (const seed of seeds) results.push(simulate(seed, { cuts: CUTS_PER_SEED }));
  const cuts = results.reduce((n, r) => n + r.cuts, 0);
  const at = Object.fromEntries(CUT_POINTS.map((p) => [p, results.reduce((n, r) => n + r.cutsAt[p], 0)]));
  const sum = (k: keyof SimResult): number => results.reduce((n, r) => n + (r[k] as number), 0);
  const seconds = (Date.now() - started) / 1000;
  console.log(
    `  ${cuts} cuts over ${seeds.length} seeds in ${seconds.toFixed(1)} s: ${JSON.stringify(at)}; ` +
      `${sum('recoveryCuts')} during recovery, ${sum('relocationCuts')} in steps that relocated events; ` +
      `${sum('reboots')} reboots, ${sum('appends')} appends, ${sum('acks')} acks, ` +
      `${sum('readingsDropped')} readings and ${sum('eventsDropped')} events dropped for space`,
  );
  if (replay) return;
  assert.ok(cuts >= TOTAL_CUTS);
  for (const p of CUT_POINTS) assert.ok(at[p] >= 100, `cuts at ${p}: ${at[p]}`);
  assert.ok(sum('recoveryCuts') >= 100, 'recovery itself was cut');
  assert.ok(sum('readingsDropped') > 0, 'the full-log policy was exercised');
});

test('counters: no value is ever handed out twice across 2,000 power cuts', () => {
  for (let seed = 1; seed <= 4; seed++) {
    const rng = new Prng(seed);
    const mem = new MemoryFlash({ blocks: 2, blockSize: 512, writeAlign: rng.pick([1, 4, 16]) });
    const flash = new FaultyFlash(mem, new Prng(seed + 99), { meanOpsBetweenCuts: 6, eraseCutChance: 0.3 });
    const boot = (): FlashCounters => {
      for (;;) {
        try {
          return new FlashCounters(flash);
        } catch (err) {
          if (!(err instanceof PowerCut)) throw err;
          flash.reboot();
        }
      }
    };
    let counters = boot();
    const last = new Map<string, number>();
    const raised = new Map<string, number>();
    while (flash.cuts < 500) {
      const name = rng.pick(['up', 'down', 'job']);
      try {
        if (rng.chance(0.2)) {
          const v = (raised.get(name) ?? 0) + rng.int(100);
          counters.raise(`hw-${name}`, v);
          raised.set(name, Math.max(v, raised.get(name) ?? 0));
        } else {
          const v = rng.chance(0.1) ? counters.reserveCounter(name, rng.range(1, 20)) : counters.next(name, rng.range(1, 16));
          const prev = last.get(name) ?? 0;
          if (v <= prev) assert.unreachable(`seed ${seed}: counter ${name} handed out ${v} after ${prev}`);
          last.set(name, v);
        }
      } catch (err) {
        if (!(err instanceof PowerCut)) throw err;
        flash.reboot();
        counters = boot();
        for (const [n, v] of raised) {
          if (counters.value(`hw-${n}`) < v) assert.unreachable(`seed ${seed}: raised ${n} to ${v}, found ${counters.value(`hw-${n}`)}`);
        }
      }
    }
  }
});

test.run();
