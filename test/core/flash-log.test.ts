// The flash record log's behaviour, on an in-memory NOR flash. No Node imports: this file also runs
// inside the XS engine.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FlashLog } from '../../firmware/core/log/flash-log.js';
import { MemoryFlash } from '../../firmware/core/log/memory-flash.js';
import { crc32 } from '../../firmware/core/log/crc32.js';
import type { LogEntry } from '../../firmware/core/log/record-log.js';

const MAX = Number.MAX_SAFE_INTEGER;
const T0 = 1_700_000_000;

function flash(blocks = 8, blockSize = 512, writeAlign = 1): MemoryFlash {
  return new MemoryFlash({ blocks, blockSize, writeAlign });
}

/** Everything read() returns after `after`, page by page. */
function readAll(log: FlashLog, after = 0, page = 50): LogEntry[] {
  const out: LogEntry[] = [];
  for (;;) {
    const got = log.read(after, page);
    if (got.length === 0) return out;
    out.push(...got);
    const last = got[got.length - 1];
    after = last.kind === 7 ? last.last : last.seq;
  }
}

/** A house meter: energy import/export totals (Wh) and power (W), 4 channels every 10 s. */
function meter(start = T0) {
  let t = start;
  let e1 = 12_345_678;
  let e2 = 2_345_678;
  let p = 450;
  let frac = 0;
  return (): [number, [number, number][]] => {
    t += 10;
    p = Math.max(80, p + ((t * 7919) % 61) - 30);
    frac += (p * 10) / 3600;
    e1 += Math.floor(frac);
    frac -= Math.floor(frac);
    return [t, [[1, e1], [2, e2], [3, p], [4, 0]]];
  };
}

test('CRC-32 matches the standard check value', () => {
  const bytes = Uint8Array.from('123456789', (c) => c.charCodeAt(0));
  assert.is(crc32(bytes), 0xcbf43926);
  assert.is.not(crc32(bytes, 0, bytes.length, 7), 0xcbf43926, 'a salt changes the checksum');
});

test('appended readings and events read back in seq order with their content', () => {
  const log = new FlashLog(flash());
  assert.is(log.appendReading(T0, 1, 1000), 1);
  assert.is(log.appendReadings(T0 + 10, [[1, 1003], [3, 420]]), 2);
  assert.is(log.appendEvent(T0 + 11, 'relay', { id: 1, on: true, by: 'dr' }), 4);
  assert.is(log.appendEvent(T0 + 12, 'power-up'), 5);
  assert.is(log.appendReading(0, 12, 2), 6);
  assert.equal(log.read(0, 10), [
    { kind: 1, seq: 1, t: T0, channel: 1, value: 1000 },
    { kind: 1, seq: 2, t: T0 + 10, channel: 1, value: 1003 },
    { kind: 1, seq: 3, t: T0 + 10, channel: 3, value: 420 },
    { kind: 2, seq: 4, t: T0 + 11, event: 'relay', data: { by: 'dr', id: 1, on: true } },
    { kind: 2, seq: 5, t: T0 + 12, event: 'power-up' },
    { kind: 1, seq: 6, t: 0, channel: 12, value: 2 },
  ]);
  assert.equal(log.read(2, 2).map((e) => e.seq), [3, 4], 'read starts after `after` and stops at `max`');
  assert.equal(log.read(6, 10), []);
  const s = log.stats();
  assert.is(s.buffered, 6);
  assert.is(s.oldestSeq, 1);
  assert.is(s.newestSeq, 6);
  assert.is(s.ackedSeq, 0);
  assert.is(s.dropped, 0);
});

test('ack trims: acked records never come back, and fully acked blocks are freed', () => {
  const log = new FlashLog(flash(4, 512));
  const next = meter();
  for (let i = 0; i < 60; i++) log.appendReadings(...next());
  const before = log.stats();
  assert.ok(before.usedBytes > 512, 'the readings span several blocks');
  log.ack(200);
  const s = log.stats();
  assert.is(s.ackedSeq, 200);
  assert.is(s.buffered, 40);
  assert.is(s.oldestSeq, 201);
  assert.ok(s.usedBytes < before.usedBytes, 'acked blocks leave the log');
  assert.is(readAll(log)[0].seq, 201, 'read(0) resends only what no ack covers');
  assert.is(log.read(150, 1)[0].seq, 201);
  log.ack(100); // an older ack changes nothing
  assert.is(log.stats().ackedSeq, 200);
  log.ack(10_000); // beyond the newest seq: clamped
  assert.is(log.stats().ackedSeq, 240);
  assert.is(log.stats().buffered, 0);
  assert.is(log.stats().oldestSeq, 0);
  assert.equal(log.read(0, 10), []);
});

test('blocks are reused in a circle, wear spread evenly, seqs keep growing', () => {
  const mem = flash(6, 512);
  const log = new FlashLog(mem);
  const next = meter();
  let last = 0;
  for (let i = 0; i < 3000; i++) {
    const seq = log.appendReadings(...next());
    assert.is(seq, last + 1);
    last = seq + 3;
    if (i % 5 === 4) log.ack(last);
  }
  const counts = Array.from(mem.eraseCounts);
  assert.ok(Math.min(...counts) >= 10, `every block was used many times: ${counts}`);
  assert.ok(Math.max(...counts) - Math.min(...counts) <= 1, `erases are even: ${counts}`);
  assert.equal(log.wear().eraseCounts, counts, 'the headers record the erase counts');
  assert.is(log.stats().dropped, 0, 'acked in time, nothing was dropped');
});

test('full log: the oldest readings are dropped and reported as gaps, events are kept', () => {
  const log = new FlashLog(flash(5, 512));
  const next = meter();
  const events: number[] = [];
  let total = 0;
  for (let i = 0; i < 600; i++) {
    log.appendReadings(...next());
    total += 4;
    if (i % 40 === 0) {
      events.push(log.appendEvent(T0 + i, 'tamper', { why: `cover ${i}` }));
      total++;
    }
  }
  const s = log.stats();
  assert.ok(s.dropped > 1000, `readings were dropped: ${s.dropped}`);
  assert.is(s.droppedEvents, 0);
  assert.is(s.newestSeq, total);
  const all = readAll(log, 0, 7);
  // Every seq from 1 is accounted for exactly once: a record or inside a gap.
  let expect = 1;
  let gapped = 0;
  for (const e of all) {
    assert.is(e.seq, expect);
    if (e.kind === 7) {
      assert.is(e.reason, 'full');
      gapped += e.last - e.seq + 1;
      expect = e.last + 1;
    } else expect = e.seq + 1;
  }
  assert.is(expect, total + 1);
  assert.is(gapped, s.dropped, 'the gaps cover exactly the dropped readings');
  assert.equal(all.filter((e) => e.kind === 2).map((e) => e.seq), events, 'every event survived');
  assert.is(s.buffered, all.filter((e) => e.kind !== 7).length);
  assert.is(all[0].kind, 7, 'the backlog starts with the oldest gap');
  // The gateway acks through the gaps; the log moves on.
  log.ack(all[all.length - 1].seq);
  assert.is(log.stats().buffered, 0);
});

test('a log of nothing but events drops its oldest events only when they outgrow a block', () => {
  const log = new FlashLog(flash(3, 512));
  const seqs: number[] = [];
  for (let i = 0; i < 200; i++) seqs.push(log.appendEvent(T0 + i, 'guest.pump.level', { value: i * 1000 }));
  const s = log.stats();
  assert.ok((s.droppedEvents ?? 0) > 0, 'the log cannot hold 200 events in 1.5 KiB');
  const all = readAll(log);
  const kept = all.filter((e) => e.kind === 2).map((e) => e.seq);
  assert.equal(kept, seqs.slice(seqs.length - kept.length), 'the newest events are the ones kept');
  assert.is(all[0].kind, 7);
  assert.is(s.dropped, 0, 'no readings to drop');
});

test('recovery after a clean reboot keeps records, ack position, seqs and the delta context', () => {
  const mem = flash(6, 512);
  let log = new FlashLog(mem);
  const next = meter();
  for (let i = 0; i < 100; i++) log.appendReadings(...next());
  log.appendEvent(T0, 'clock-set');
  log.ack(123);
  const before = readAll(log);
  const stats = log.stats();
  log = new FlashLog(mem);
  assert.equal(log.stats(), stats);
  assert.equal(readAll(log), before);
  // Appending after the reboot continues the same block's deltas.
  const [t, r] = next();
  assert.is(log.appendReadings(t, r), 402);
  log = new FlashLog(mem);
  assert.equal(readAll(log, 401), r.map(([channel, value], i) => ({ kind: 1, seq: 402 + i, t, channel, value })));
  assert.is(log.stats().ackedSeq, 123);
});

test('extreme values round-trip: ±(2^53-1), t = 0 and t = 2^53-1, huge channels', () => {
  const mem = flash(4, 1024);
  const log = new FlashLog(mem);
  const cases: [number, number, number][] = [
    [0, 1, 0],
    [0, 1, MAX],
    [MAX, 1, -MAX],
    [0, 2, -MAX],
    [MAX, MAX, MAX],
    [1, 2, MAX],
    [T0, 1, -1],
    [0, 3, 2 ** 52 + 1],
    [T0, 3, -(2 ** 52) - 1],
  ];
  for (const [t, channel, value] of cases) log.appendReading(t, channel, value);
  log.appendReadings(MAX, [[1, MAX], [2, -MAX], [MAX, 0]]);
  log.appendReadings(0, [[1, -MAX], [2, MAX], [MAX, MAX]]);
  log.appendEvent(MAX, 'guest.x.y', { value: -MAX, big: MAX, neg: -1 });
  const want: LogEntry[] = cases.map(([t, channel, value], i) => ({ kind: 1, seq: i + 1, t, channel, value }));
  let seq = cases.length;
  for (const [channel, value] of [[1, MAX], [2, -MAX], [MAX, 0]]) want.push({ kind: 1, seq: ++seq, t: MAX, channel, value });
  for (const [channel, value] of [[1, -MAX], [2, MAX], [MAX, MAX]]) want.push({ kind: 1, seq: ++seq, t: 0, channel, value });
  want.push({ kind: 2, seq: ++seq, t: MAX, event: 'guest.x.y', data: { big: MAX, neg: -1, value: -MAX } });
  assert.equal(readAll(log), want);
  assert.equal(readAll(new FlashLog(mem)), want, 'and after a reboot');
});

test('readings and events that the contract does not allow are refused with a reason', () => {
  const log = new FlashLog(flash());
  assert.throws(() => log.appendReading(T0, 1, 1.5), /not an integer/);
  assert.throws(() => log.appendReading(T0, 1, NaN), /not an integer/);
  assert.throws(() => log.appendReading(T0, -1, 1), /channel/);
  assert.throws(() => log.appendReading(-1, 1, 1), /unix seconds/);
  assert.throws(() => log.appendReading(T0 + 0.5, 1, 1), /unix seconds/);
  assert.throws(() => log.appendReadings(T0, []), /at least one/);
  assert.throws(() => log.appendEvent(T0, ''), /event name/);
  assert.throws(() => log.appendEvent(T0, 'big', { blob: new Uint8Array(4000) }), /shorten its data/);
  assert.is(log.stats().newestSeq, 0, 'nothing was appended');
});

test('a torn last write is discarded at boot and its space reused after zeroing', () => {
  const mem = flash(4, 512);
  let log = new FlashLog(mem);
  const next = meter();
  for (let i = 0; i < 5; i++) log.appendReadings(...next());
  let end = 512;
  while (mem.bytes[end - 1] === 0xff) end--; // the first erased byte of block 0, where the next record goes
  assert.ok(end > 48 && end < 400);
  // A record cut short: three bytes of a readings record, the last one half-programmed.
  mem.bytes[end] = 0x10;
  mem.bytes[end + 1] = 0x14;
  mem.bytes[end + 2] = 0xf7;
  log = new FlashLog(mem);
  assert.is(log.stats().newestSeq, 20, 'the torn record is not a record');
  assert.is(log.io.zeroedBytes, 3, 'its bytes were zeroed');
  assert.is(log.appendReading(T0 + 100, 1, 5), 21, 'the seq the torn append would have had is free again');
  log = new FlashLog(mem);
  assert.is(readAll(log).length, 21);
  assert.equal(log.read(20, 1), [{ kind: 1, seq: 21, t: T0 + 100, channel: 1, value: 5 }]);
});

test('a meter reporting 4 channels every 10 s costs well under 8 bytes per reading on flash', () => {
  const mem = flash(64, 4096);
  const log = new FlashLog(mem);
  const next = meter();
  for (let i = 0; i < 6 * 60 * 12; i++) {
    log.appendReadings(...next());
    if (i % 3 === 2) log.ack(log.stats().newestSeq); // a readings frame every 30 s, acked
  }
  const perReading = mem.bytesWritten / log.io.readings;
  assert.ok(perReading < 5, `${perReading.toFixed(2)} bytes per reading (everything written, acks and headers included)`);
  const single = new MemoryFlash({ blocks: 64, blockSize: 4096 });
  const slog = new FlashLog(single);
  const again = meter();
  for (let i = 0; i < 1000; i++) {
    const [t, r] = again();
    for (const [ch, v] of r) slog.appendReading(t, ch, v);
  }
  assert.ok(single.bytesWritten / slog.io.readings < 9, 'one reading per append still fits in about 8 bytes');
});

test('flash that writes in aligned 16-byte units works the same', () => {
  const mem = flash(5, 1024, 16);
  let log = new FlashLog(mem);
  const next = meter();
  for (let i = 0; i < 300; i++) {
    log.appendReadings(...next());
    if (i % 25 === 0) log.appendEvent(T0 + i, 'dr', { event: 'e1', phase: 'start' });
    if (i % 7 === 0) log.ack(log.stats().newestSeq - 30);
  }
  const all = readAll(log);
  log = new FlashLog(mem);
  assert.equal(readAll(log), all);
  assert.is(log.stats().ackedSeq, all[0].seq - 1);
});

test.run();
