// Power-cut simulation of the flash record log (STYLE.md: the real code against a simulated world).
// One seed drives everything: the flash geometry, the meter's readings and events, a gateway that
// goes offline and comes back and acks what it read, and the power cuts (before, during and after
// writes and erases, also during recovery). After every reboot a reference model checks:
//   - no acked record comes back as unacked, and the ack position never moves past an ack not given;
//   - every record whose append returned is read back exactly once, in seq order, with its content,
//     until acked — or, for readings only, inside a gap entry once the log was full;
//   - nothing is invented: every record read was appended (or was the append the cut interrupted);
//   - seqs never go backwards and are never handed out twice; a dropped seq never comes back;
//   - stats agree with what read() returns.

import { FlashLog } from '../../firmware/core/log/flash-log.js';
import type { LogEntry } from '../../firmware/core/log/record-log.js';
import { encode as cborEncode, type CborValue } from '../../firmware/core/cbor.js';
import { utf8Encode } from '../../firmware/core/bytes.js';
import { alignUp, uvarintSize } from '../../firmware/core/log/log-format.js';
import type { Flash } from '../../firmware/core/ports.js';
import { MemoryFlash } from '../flash/memory-flash.js';
import { CUT_POINTS, type CutPoint, FaultyFlash, PowerCut } from '../flash/faulty-flash.js';
import { Prng } from '../../firmware/core/prng.js';

type Rec =
  | { kind: 1; t: number; channel: number; value: number }
  | { kind: 2; t: number; event: string; data?: { [key: string]: CborValue } };

export interface SimOptions {
  /** Power cuts to simulate (the run stops after this many). */
  cuts: number;
  /** Mean writes+erases between cuts. */
  meanOpsBetweenCuts?: number;
  /** Override the geometry the seed would pick. */
  blocks?: number;
  blockSize?: number;
  writeAlign?: number;
  /** The flash under the faults (default: a MemoryFlash of the seed's geometry). */
  makeFlash?: (blocks: number, blockSize: number, writeAlign: number) => Flash;
}

export interface SimResult {
  seed: number;
  geometry: string;
  cuts: number;
  cutsAt: Record<CutPoint, number>;
  reboots: number;
  appends: number;
  acks: number;
  readingsDropped: number;
  eventsDropped: number;
  flashOps: number;
  /** Cuts that hit a recovery (the constructor) itself. */
  recoveryCuts: number;
  /** Cuts while a reclaim was copying events forward. */
  relocationCuts: number;
}

export class SimFailure extends Error {
  constructor(readonly seed: number, message: string) {
    super(`flash-log simulation, seed ${seed}: ${message}\n  replay: GRIDLET_SEED=${seed} node scripts/test.js unit flash-log-sim`);
    this.name = 'SimFailure';
  }
}

const MAX_SAFE = Number.MAX_SAFE_INTEGER;

function sameRec(e: LogEntry, r: Rec): boolean {
  if (e.kind === 1 && r.kind === 1) return e.t === r.t && e.channel === r.channel && e.value === r.value;
  if (e.kind === 2 && r.kind === 2) return e.t === r.t && e.event === r.event && sorted(e.data) === sorted(r.data);
  return false;
}

/** Event data compared regardless of key order (the log stores deterministic CBOR, keys sorted). */
function sorted(data: { [key: string]: CborValue } | undefined): string {
  if (data === undefined) return 'none';
  return JSON.stringify(Object.keys(data).sort().map((k) => [k, data[k]]));
}

function show(x: unknown): string {
  return JSON.stringify(x);
}

export function simulate(seed: number, options: SimOptions): SimResult {
  const rng = new Prng(seed);
  const blocks = options.blocks ?? rng.pick([3, 4, 5, 8, 12]);
  const blockSize = options.blockSize ?? rng.pick([512, 512, 1024]);
  const writeAlign = options.writeAlign ?? rng.pick([1, 1, 4, 16]);
  const mean = options.meanOpsBetweenCuts ?? rng.pick([5, 20, 60, 200]);
  const mem = options.makeFlash ? options.makeFlash(blocks, blockSize, writeAlign) : new MemoryFlash({ blocks, blockSize, writeAlign });
  const flash = new FaultyFlash(mem, new Prng(seed ^ 0x5bd1e995), { meanOpsBetweenCuts: mean, eraseCutChance: 0.15 });
  const fail = (message: string): never => {
    throw new SimFailure(seed, `${message} [${blocks}×${blockSize} align ${writeAlign}, cut ${flash.cuts}]`);
  };

  // The reference model.
  const durable = new Map<number, Rec>(); // returned appends, not yet acked (or seen dropped)
  const droppedSeqs = new Set<number>(); // seqs seen in gaps, above the ack position
  let acked = 0;
  let pendingAck = 0; // an ack() the cut interrupted
  let nextSeq = 1;
  let maxReturned = 0;
  let inflight: { first: number; recs: Rec[] } | null = null;
  let readingsDropped = 0;
  let eventsDropped = 0;
  let reboots = 0;
  let appends = 0;
  let acks = 0;
  let recoveryCuts = 0;
  let relocationCuts = 0;

  // The world.
  let t = rng.chance(0.2) ? 0 : 1_700_000_000 + rng.int(1_000_000);
  let energyIn = rng.int(10_000_000);
  let energyOut = rng.int(1_000_000);
  let power = 500;
  let online = true;

  const boot = (): FlashLog => {
    for (;;) {
      try {
        return new FlashLog(flash);
      } catch (err) {
        if (!(err instanceof PowerCut)) throw err;
        recoveryCuts++;
        flash.reboot();
      }
    }
  };
  let log = boot();

  const recordFor = (seq: number): Rec | undefined => {
    const r = durable.get(seq);
    if (r) return r;
    if (inflight && seq >= inflight.first && seq < inflight.first + inflight.recs.length) return inflight.recs[seq - inflight.first];
    return undefined;
  };

  const eventBytes = (seq: number, r: Rec & { kind: 2 }): number => {
    const name = utf8Encode(r.event).length;
    const data = r.data === undefined ? 0 : cborEncode(r.data).length;
    const body = 1 + uvarintSize(seq) + uvarintSize(r.t) + uvarintSize(name) + name + uvarintSize(data) + data + 4;
    return alignUp(body, writeAlign);
  };
  const unackedEventBytes = (): number => {
    let sum = 0;
    for (const [seq, r] of durable) if (seq > acked && r.kind === 2) sum += eventBytes(seq, r);
    if (inflight) inflight.recs.forEach((r, i) => r.kind === 2 && (sum += eventBytes(inflight!.first + i, r)));
    return sum;
  };

  /** Checks a page of read() starting right after `from`; returns the seq after the last entry. */
  const checkPage = (page: LogEntry[], from: number): number => {
    let expect = from + 1;
    for (const e of page) {
      if (e.seq !== expect) fail(`read() entries must continue at seq ${expect}, got ${show(e)}`);
      if (e.kind === 7) {
        if (e.reason !== 'full' || e.last < e.seq) fail(`bad gap ${show(e)}`);
        if (e.last >= nextSeq) fail(`gap ${show(e)} reaches past the newest seq ${nextSeq - 1}`);
        for (let s = e.seq; s <= e.last; s++) {
          if (droppedSeqs.has(s)) continue;
          const r = recordFor(s);
          if (!r) fail(`gap ${show(e)} covers seq ${s}, which was never appended or was acked`);
          if (r!.kind === 2) {
            // The one case an event may go: unacked events alone outgrew what a reclaim carries.
            const pending = unackedEventBytes();
            if (pending <= log.relocationBudget)
              fail(`event ${s} ${show(r)} was dropped (gap ${show(e)}) with only ${pending} bytes of unacked events (budget ${log.relocationBudget})`);
            eventsDropped++;
          } else readingsDropped++;
          droppedSeqs.add(s);
          durable.delete(s);
        }
        expect = e.last + 1;
      } else {
        if (droppedSeqs.has(e.seq)) fail(`seq ${e.seq} came back after it was reported in a gap: ${show(e)}`);
        const r = recordFor(e.seq);
        if (!r) fail(`read() invented a record: ${show(e)}`);
        if (!sameRec(e, r!)) fail(`record ${e.seq} reads back as ${show(e)}, appended as ${show(r)}`);
        expect = e.seq + 1;
      }
    }
    return expect - 1;
  };

  const forgetAcked = (): void => {
    for (const s of durable.keys()) if (s <= acked) durable.delete(s);
    for (const s of droppedSeqs) if (s <= acked) droppedSeqs.delete(s);
  };

  /** Reads the whole backlog and checks it, with stats. */
  const fullCheck = (): void => {
    const st = log.stats();
    if (st.ackedSeq !== acked) fail(`stats ackedSeq ${st.ackedSeq}, model ${acked}`);
    if (st.newestSeq !== nextSeq - 1) fail(`stats newestSeq ${st.newestSeq}, model ${nextSeq - 1}`);
    let after = acked;
    let records = 0;
    let oldest = 0;
    for (;;) {
      const page = log.read(after, rng.range(1, 80));
      if (page.length === 0) break;
      for (const e of page)
        if (e.kind !== 7) {
          records++;
          if (oldest === 0) oldest = e.seq;
        }
      after = checkPage(page, after);
    }
    if (after !== nextSeq - 1) fail(`read() stopped at seq ${after}, the newest is ${nextSeq - 1}`);
    if (st.buffered !== records) fail(`stats buffered ${st.buffered}, read() returned ${records} records`);
    if (st.oldestSeq !== oldest) fail(`stats oldestSeq ${st.oldestSeq}, read() starts at ${oldest}`);
    if (st.dropped !== readingsDropped) fail(`stats dropped ${st.dropped}, gaps covered ${readingsDropped} readings`);
    if ((st.droppedEvents ?? 0) !== eventsDropped) fail(`stats droppedEvents ${st.droppedEvents}, gaps covered ${eventsDropped} events`);
    if (st.usedBytes > st.capacityBytes || st.usedBytes < 0) fail(`stats usedBytes ${st.usedBytes} of ${st.capacityBytes}`);
  };

  const afterReboot = (): void => {
    reboots++;
    const st = log.stats();
    if (st.ackedSeq < acked) fail(`acked records came back: ack position ${st.ackedSeq} after ack(${acked}) returned`);
    if (st.ackedSeq > Math.max(acked, pendingAck)) fail(`ack position ${st.ackedSeq} was never acked (last ${acked}, pending ${pendingAck})`);
    acked = st.ackedSeq;
    pendingAck = 0;
    if (st.newestSeq < maxReturned) fail(`seqs went backwards: newest ${st.newestSeq} after seq ${maxReturned} was returned`);
    const limit = inflight ? inflight.first + inflight.recs.length - 1 : maxReturned;
    if (st.newestSeq > limit) fail(`newest seq ${st.newestSeq} was never appended (limit ${limit})`);
    nextSeq = st.newestSeq + 1;
    if (inflight) {
      // What of the interrupted append survived is now as durable as anything else.
      for (let i = 0; i < inflight.recs.length; i++) if (inflight.first + i < nextSeq) durable.set(inflight.first + i, inflight.recs[i]);
      if (nextSeq - 1 > maxReturned) maxReturned = nextSeq - 1;
      inflight = null;
    }
    forgetAcked();
    fullCheck();
  };

  const nextValue = (): void => {
    if (t > 4e9) t = 1_700_000_000; // after an extreme
    t += rng.chance(0.02) ? rng.range(-3600, 3600) : 10;
    if (t < 0) t = 0;
    power = Math.max(0, power + rng.range(-40, 40) + (rng.chance(0.02) ? rng.pick([2000, -2000]) : 0));
    energyIn += Math.floor(power / 360);
    if (rng.chance(0.3)) energyOut += rng.int(3);
  };

  const appendSome = (): void => {
    const r = rng.float();
    let recs: Rec[];
    if (r < 0.08) {
      const event = rng.pick(['power-up', 'relay', 'dr', 'guest.heater.temp', 'tamper']);
      const data = rng.chance(0.3)
        ? undefined
        : rng.chance(0.5)
          ? { id: rng.int(4), on: rng.chance(0.5) }
          : { value: rng.range(-1_000_000, 1_000_000), by: 'guest' };
      recs = [data === undefined ? { kind: 2, t, event } : { kind: 2, t, event, data }];
      inflight = { first: nextSeq, recs };
      const seq = log.appendEvent(t, event, data);
      if (seq !== nextSeq) fail(`appendEvent returned seq ${seq}, expected ${nextSeq}`);
    } else {
      nextValue();
      let readings: [number, number][];
      if (rng.chance(0.03)) {
        // Extremes: the encoding must round-trip anything the contract allows.
        readings = [
          [rng.pick([1, 3, 200, MAX_SAFE]), rng.pick([MAX_SAFE, -MAX_SAFE, 0, -1, 2 ** 40])],
          [rng.pick([2, 4]), rng.pick([-MAX_SAFE, MAX_SAFE, 1])],
        ];
        if (rng.chance(0.3)) t = rng.pick([0, MAX_SAFE, t]);
      } else if (r < 0.2) readings = [[rng.range(1, 4), rng.pick([energyIn, energyOut, power, 0])]];
      else {
        readings = [
          [1, energyIn],
          [2, energyOut],
          [3, power],
          [4, 0],
        ].slice(0, rng.pick([4, 4, 4, 2, 3])) as [number, number][];
      }
      recs = readings.map(([channel, value]) => ({ kind: 1 as const, t, channel, value }));
      inflight = { first: nextSeq, recs };
      const seq = rng.chance(0.1) && readings.length === 1
        ? log.appendReading(t, readings[0][0], readings[0][1])
        : log.appendReadings(t, readings);
      if (seq !== nextSeq) fail(`append returned seq ${seq}, expected ${nextSeq}`);
    }
    const first = nextSeq;
    if (first <= maxReturned) fail(`seq ${first} handed out twice`);
    recs.forEach((rec, i) => durable.set(first + i, rec));
    nextSeq += recs.length;
    maxReturned = nextSeq - 1;
    inflight = null;
    appends++;
  };

  const gateway = (): void => {
    const page = log.read(acked, rng.range(1, 60));
    const end = checkPage(page, acked);
    if (page.length === 0 || rng.chance(0.1)) return; // lost ack
    const e = page[rng.int(page.length)];
    const upTo = rng.chance(0.7) ? end : e.kind === 7 ? e.last : e.seq;
    pendingAck = upTo;
    log.ack(upTo);
    acked = Math.max(acked, Math.min(upTo, nextSeq - 1));
    pendingAck = 0;
    acks++;
    forgetAcked();
  };

  while (flash.cuts < options.cuts) {
    const relocatedBefore = log.io.relocatedBytes;
    try {
      const r = rng.float();
      if (rng.chance(online ? 0.002 : 0.004)) online = !online;
      if (r < 0.8) appendSome();
      else if (r < 0.97) {
        if (online) gateway();
      } else if (r < 0.985) {
        const st = log.stats();
        if (st.newestSeq !== nextSeq - 1 || st.ackedSeq !== acked) fail(`stats ${show(st)} disagree with the model`);
      } else if (r < 0.99) fullCheck();
      else {
        // A clean reboot, no cut.
        log = boot();
        afterReboot();
      }
    } catch (err) {
      if (!(err instanceof PowerCut)) throw err;
      if (log.io.relocatedBytes > relocatedBefore) relocationCuts++;
      flash.reboot();
      log = boot();
      afterReboot();
    }
  }
  flash.disarm();
  fullCheck();
  return {
    seed,
    geometry: `${blocks}x${blockSize}/${writeAlign}`,
    cuts: flash.cuts,
    cutsAt: { ...flash.cutsAt },
    reboots,
    appends,
    acks,
    readingsDropped,
    eventsDropped,
    flashOps: flash.ops,
    recoveryCuts,
    relocationCuts,
  };
}

export { CUT_POINTS };
