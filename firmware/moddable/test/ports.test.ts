// The Moddable Flash, Timers, Clock and serial adapters over fakes of their modules, on XS.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { PartitionFlash } from '../flash.js';
import { ModdableClock, ModdableTimers } from '../timers.js';
import { UartPort } from '../serial.js';
import { meterLine, P1Meter } from '../p1-meter.js';
import { fixtureBytes } from '../../../test/core/support/dlms-build.js';
import { FlashLog } from '../../core/log/flash-log.js';
import { advance, pending } from './fakes/timer.js';
import { nearWrap } from './fakes/time.js';
import { ports } from './fakes/serial.js';
import { HardwareRandom } from '../random.js';
import { entropyLog } from './fakes/random.js';
import { loadIdentity } from '../../core/agent/identity.js';
import { provisionFactoryPin } from '../../core/console/pin.js';
import { useRandom } from '../../core/crypto.js';
import { MemoryKV } from '../../../test/core/support/sim-world.js';

test('the gridlog partition is a NOR Flash the record log accepts, and survives a reopen', () => {
  const flash = new PartitionFlash('gridlog');
  assert.is(flash.blockSize, 4096);
  assert.is(flash.blocks, 256);
  assert.is(flash.erasedValue, 0xff);
  flash.eraseBlock(0);
  flash.write(10, Uint8Array.of(0x0f, 0xf0));
  flash.write(10, Uint8Array.of(0xf3, 0xff));
  assert.equal(flash.read(9, 4), Uint8Array.of(0xff, 0x03, 0xf0, 0xff));
  const log = new FlashLog(new PartitionFlash('gridlog'));
  const seq = log.appendReading(1_767_225_600, 1, 42);
  const again = new FlashLog(new PartitionFlash('gridlog'));
  assert.is(again.stats().newestSeq, seq);
});

test('the hardware Random port: first-boot secrets with the bootloader entropy source on, never once the radio starts', () => {
  const random = new HardwareRandom();
  useRandom(random);
  entropyLog.length = 0;
  const kv = new MemoryKV();
  loadIdentity(kv);
  provisionFactoryPin(kv);
  assert.equal(entropyLog.slice(0, 6), ['on', 'fill 32', 'off', 'on', 'fill 7', 'off'], 'identity key, then pair secret');
  assert.equal(entropyLog.slice(6, 7), ['on']);
  assert.is(entropyLog[entropyLog.length - 1], 'off', 'the source is off again after the factory PIN');
  assert.is(entropyLog.filter((e) => e === 'on').length, entropyLog.filter((e) => e === 'off').length);
  // Nested strong() switches once.
  entropyLog.length = 0;
  random.strong(() => random.strong(() => random.fill(new Uint8Array(2))));
  assert.equal(entropyLog, ['on', 'fill 2', 'off']);
  // Once Wi-Fi is about to start, the source stays off (the radio is the entropy then).
  random.radioStarting();
  entropyLog.length = 0;
  loadIdentity(new MemoryKV());
  assert.equal(entropyLog, []);
  // An exception inside still switches the source off.
  const fresh = new HardwareRandom();
  assert.throws(() => fresh.strong(() => { throw new Error('boom'); }), /boom/);
  assert.is(entropyLog[entropyLog.length - 1], 'off');
});

test('a missing partition names the fix', () => {
  assert.throws(() => new PartitionFlash('nosuch'), /no flash partition "nosuch".*partition table/);
});

test('timers: numbered, one-shot ones forget themselves, clear stops a repeat', () => {
  const timers = new ModdableTimers();
  const before = pending();
  const fired: string[] = [];
  timers.set(() => fired.push('once'), 100);
  const id = timers.repeat(() => fired.push('tick'), 40);
  advance(100);
  assert.equal(fired, ['tick', 'tick', 'once']);
  timers.clear(id);
  timers.clear(id);
  advance(1000);
  assert.is(fired.length, 3);
  assert.is(pending(), before);
});

test('the monotonic clock keeps counting across the 32-bit tick wrap; no wall clock before it is set', () => {
  const clock = new ModdableClock();
  nearWrap(10);
  const a = clock.monotonic();
  advance(30);
  const b = clock.monotonic();
  assert.is(b - a, 30);
  assert.ok(Number.isNaN(clock.now()) || clock.now() > Date.UTC(2024, 0, 1));
});

test('serial: bytes arrive whole, 7E1 parity is cleared, writes wait for room and the queue is bounded', () => {
  const received: number[] = [];
  const p1 = new UartPort({ port: 2, receive: 26, baud: 9600, sevenBit: true });
  const fake = ports[ports.length - 1];
  p1.onReadable((b) => received.push(...b));
  fake.receive([0x2f | 0x80, 0x21]);
  assert.equal(received, [0x2f, 0x21]);

  const con = new UartPort({ port: 1, receive: 18, transmit: 19, baud: 115200, queueBytes: 8 });
  const tx = ports[ports.length - 1];
  con.write(Uint8Array.of(1, 2, 3));
  assert.equal(tx.sent, [], 'no room offered yet');
  con.write(Uint8Array.of(4, 5, 6, 7, 8, 9, 10));
  assert.is(con.dropped, 2);
  tx.offerWritable(5);
  assert.equal(tx.sent, [1, 2, 3, 4, 5]);
  tx.offerWritable(64);
  assert.equal(tx.sent, [1, 2, 3, 4, 5, 6, 7, 8]);
});

test('the meter port: a HAN meter gets 2400 8E1, a P1 port 115200 8N1, and a HAN frame becomes a reading', () => {
  const han = new UartPort({ port: 2, receive: 26, ...meterLine('dlms') });
  const fake = ports[ports.length - 1];
  assert.equal([fake.options.baud, fake.options.data, fake.options.parity], [2400, 8, 'even']);
  new UartPort({ port: 2, receive: 26, ...meterLine('dsmr') });
  const p1 = ports[ports.length - 1];
  assert.equal([p1.options.baud, p1.options.data, p1.options.parity], [115200, undefined, undefined]);

  const meter = new P1Meter(han, { type: 'dlms' });
  const got: Array<[number, Array<readonly [number, number]>]> = [];
  meter.start((t, values) => got.push([t, [...values]]));
  const frame = fixtureBytes('hdlc_dlms_plain/robinsmidsrod-ams-han-decoder__aidon-6525__list2-3ph.hex');
  for (let i = 0; i < frame.length; i += 64) fake.receive(Array.from(frame.subarray(i, i + 64)));
  assert.is(got.length, 1);
  assert.ok(Number.isNaN(got[0][0]), 'a DLMS reading takes the agent\'s clock');
  assert.equal(Object.fromEntries(got[0][1]), { 3: 2077, 4: 0, 5: 237600, 6: 235900, 7: 236500, 8: 4600, 10: 6100, 15: 0, 16: 86 });
  assert.is(meter.framing, 'hdlc');
});

test.run();
