// Persistent frame counters and the data partition layout. No Node imports: also runs under XS.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FlashCounters } from '../../firmware/core/log/counters.js';
import { FlashLog } from '../../firmware/core/log/flash-log.js';
import { MemoryFlash } from '../../firmware/core/log/memory-flash.js';
import { DEFAULT_PARTITION, FlashSlice, splitPartition } from '../../firmware/core/log/partition.js';

function flash(blockSize = 1024, writeAlign = 1): MemoryFlash {
  return new MemoryFlash({ blocks: 2, blockSize, writeAlign });
}

test('next() counts from 1 and, after a reboot, continues past every value possibly handed out', () => {
  const mem = flash();
  let c = new FlashCounters(mem);
  const up: number[] = [];
  for (let i = 0; i < 10; i++) up.push(c.next('up'));
  assert.equal(up, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  assert.is(c.value('up'), 64, 'one block of 64 reserved');
  assert.is(c.writes, 2, 'one record plus the first header, not one write per frame');
  c = new FlashCounters(mem);
  assert.is(c.next('up'), 65, 'skips the rest of the reserved block');
  assert.is(c.next('up'), 66);
});

test('reserveCounter hands out whole blocks, persisted before it returns', () => {
  const mem = flash();
  let c = new FlashCounters(mem);
  assert.is(c.reserveCounter('up'), 1);
  assert.is(c.reserveCounter('up', 10), 65);
  assert.is(c.value('up'), 74);
  assert.is(c.next('up'), 75, 'next() never reuses a reserved block');
  c = new FlashCounters(mem);
  assert.is(c.value('up'), 138);
  assert.is(c.reserveCounter('up', 1), 139);
  assert.throws(() => c.reserveCounter('up', 0), /positive/);
});

test('raise() keeps a high-water mark that never goes down (the highest downlink counter acted on)', () => {
  const mem = flash();
  let c = new FlashCounters(mem);
  c.raise('down', 41);
  c.raise('down', 7);
  assert.is(c.value('down'), 41);
  c = new FlashCounters(mem);
  assert.is(c.value('down'), 41);
  assert.is(c.next('down'), 42);
  assert.is(c.value('other'), 0);
});

test('counters are independent and survive many compactions between the two blocks', () => {
  const mem = flash(512, 4);
  let c = new FlashCounters(mem);
  let up = 0;
  let down = 0;
  for (let i = 0; i < 500; i++) {
    up = c.next('up', 4);
    if (i % 3 === 0) c.raise('down', (down = i * 10));
    if (i % 97 === 0) c = new FlashCounters(mem);
  }
  assert.ok(c.wear()[0] >= 3 && c.wear()[1] >= 3, `both blocks took turns: ${c.wear()}`);
  c = new FlashCounters(mem);
  assert.ok(c.next('up', 4) > up);
  assert.is(c.value('down'), down);
});

test('a torn counter record is zeroed at boot; the previous value stands', () => {
  const mem = flash();
  let c = new FlashCounters(mem);
  c.reserveCounter('up');
  let end = 1024;
  while (mem.bytes[end - 1] === 0xff) end--;
  mem.bytes[end] = 0x50;
  mem.bytes[end + 1] = 0x02;
  mem.bytes[end + 2] = 0x75; // "u", the rest never programmed
  c = new FlashCounters(mem);
  assert.is(c.value('up'), 64);
  assert.is(c.reserveCounter('up'), 65);
  assert.is(new FlashCounters(mem).value('up'), 128);
});

test('names are bounded: too long or too many is refused with a reason', () => {
  const c = new FlashCounters(flash());
  assert.throws(() => c.next('x'.repeat(33)), /1 to 32 bytes/);
  assert.throws(() => {
    for (let i = 0; i < 40; i++) c.next(`n${i}`);
  }, /too many/);
});

test('the default partition holds the log and the counters side by side', () => {
  const mem = new MemoryFlash({ blocks: DEFAULT_PARTITION.blocks, blockSize: DEFAULT_PARTITION.blockSize });
  let parts = splitPartition(mem);
  assert.is(parts.log.blocks, 62);
  assert.is(parts.counters.blocks, 2);
  let log = new FlashLog(parts.log);
  let counters = new FlashCounters(parts.counters);
  for (let i = 0; i < 20_000; i++) log.appendReadings(1_700_000_000 + i * 10, [[1, i * 3], [3, 500 + (i % 50)]]);
  const frame = counters.next('up');
  parts = splitPartition(mem);
  log = new FlashLog(parts.log);
  counters = new FlashCounters(parts.counters);
  assert.is(log.stats().newestSeq, 40_000);
  assert.ok(counters.next('up') > frame);
  assert.is(mem.eraseCounts[63] + mem.eraseCounts[62], 1, 'the log never touched the counter blocks');
  assert.throws(() => new FlashSlice(mem, 60, 5), /outside/);
});

test.run();
