// COSEM values → WIRE.md channels (firmware/core/meter/cosem.ts): scalers and units, exact integer
// scaling with rounding half to even, what is left out rather than guessed, totals from tariffs, the
// meter clock, and malformed A-XDR. Bodies are written here item by item. Runs in XS too.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CosemReader, dateTime } from '../../firmware/core/meter/cosem.js';
import type { Register } from '../../firmware/core/meter/reading.js';

// A-XDR items.
const obis = (a: number, b: number, c: number, d: number, e: number, f = 255) => [0x09, 6, a, b, c, d, e, f];
const u32 = (v: number) => [0x06, (v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff];
const i32 = (v: number) => [0x05, (v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff];
const u16 = (v: number) => [0x12, (v >> 8) & 0xff, v & 0xff];
const i16 = (v: number) => [0x10, (v >> 8) & 0xff, v & 0xff];
const su = (scaler: number, unit: number) => [0x02, 0x02, 0x0f, scaler & 0xff, 0x16, unit];
const struct = (...items: number[][]) => [0x02, items.length, ...items.flat()];
const array = (...items: number[][]) => [0x01, items.length, ...items.flat()];
const text = (s: string) => [0x0a, s.length, ...Array.from(s, (c) => c.charCodeAt(0))];
const f64 = (v: number) => {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setFloat64(0, v);
  return [0x18, ...b];
};
const u64 = (hi: number, lo: number) => [0x15, ...u32(hi).slice(1), ...u32(lo).slice(1)];
const W = 27, VAR = 29, WH = 30, VARH = 32, A = 33, V = 35, KWH_WRONG = 31;

function read(body: number[], notificationTime = NaN) {
  const r = new CosemReader();
  const bytes = Uint8Array.from(body);
  const t = new Float64Array(1);
  const registers: Register[] = [];
  const values = r.read(bytes, 0, bytes.length, notificationTime, t, registers);
  return { values, time: t[0], registers, error: r.error, listId: r.listId };
}

const channels = (body: number[]) => Object.fromEntries(read(body).values ?? []);

test('scalers: exact integer scaling into the channel unit, rounding half to even, negatives symmetric', () => {
  const reg = (c: number, value: number[], s: number, unit: number) => struct(obis(1, 0, c, 7, 0), value, su(s, unit));
  assert.equal(channels(array(
    reg(1, u32(12345), -1, W), // 1234.5 W → 1234 (half to even)
    reg(2, u32(12355), -1, W), // 1235.5 → 1236
    reg(32, u16(2301), -1, V), // 230.1 V → 230100 mV
    reg(31, i16(-51), -1, A), // −5.1 A → −5100 mA
    reg(51, u32(123456), -5, A), // 1.23456 A → 1235 mA (…6 rounds up)
    reg(71, i32(-25), -4, A), // −0.0025 A → −2 mA (half to even)
    reg(3, u32(7), 3, VAR), // 7 kvar → 7000 var
  )), { 3: 1234, 4: 1236, 5: 230100, 8: -5100, 9: 1235, 10: -2, 15: 7000 });
});

test('a unit other than the channel\'s, or no known scaler for a voltage or current, leaves the channel out', () => {
  const r = read(array(
    struct(obis(1, 0, 1, 8, 0), u32(100), su(0, KWH_WRONG)), // VAh is not Wh
    struct(obis(1, 0, 32, 7, 0), u16(2301)), // V without a scaler: an unknown meter's dV or V?
    struct(obis(1, 0, 31, 7, 0), u16(13)),
    struct(obis(1, 0, 1, 7, 0), u32(280)), // W without a scaler: the OBIS code's unit, scaler 0
    struct(obis(1, 0, 1, 7, 0, 101), u32(99), su(0, W)), // a billing period, not the current value
    struct(obis(9, 0, 1, 7, 0), u32(98), su(0, W)), // not electricity
    struct(obis(1, 0, 99, 7, 0), u32(97), su(0, W)), // no channel
  ));
  assert.equal(r.values, [[3, 280]]);
  const v = r.registers.find((x) => x.obis === '1-0:32.7.0.255')!;
  assert.equal([v.value, v.raw, v.scaler, v.unit, v.channel], [2301, 2301, null, null, undefined]);
  assert.is(r.registers.find((x) => x.obis === '1-0:1.7.0.255')!.scalerFrom, 'obis');
  assert.is(r.registers.length, 7, 'every value is still listed');
});

test('energy totals: C.8.0 when given, else the sum of the tariff registers; 64-bit counters and floats', () => {
  assert.equal(channels(array(
    struct(obis(1, 0, 1, 8, 1), u32(1000), su(0, WH)),
    struct(obis(1, 0, 1, 8, 2), u32(234), su(0, WH)),
    struct(obis(1, 0, 2, 8, 0), u32(7), su(0, WH)),
    struct(obis(1, 0, 2, 8, 1), u32(999), su(0, WH)),
    struct(obis(1, 0, 3, 8, 1), u64(0, 5), su(3, VARH)),
    struct(obis(1, 0, 4, 8, 0), u64(1, 0), su(0, VARH)),
    struct(obis(1, 0, 21, 7, 0), f64(12.5), su(0, W)),
    struct(obis(1, 0, 41, 7, 0), f64(13.5), su(0, W)),
  )), { 1: 1234, 2: 7, 13: 5000, 14: 4294967296, 17: 12, 18: 14 });
  // Beyond 2^53 a 64-bit counter is not exact: left out.
  assert.equal(channels(array(struct(obis(1, 0, 1, 8, 0), u64(0x00300000, 0), su(0, WH)))), {});
});

test('lists: Kamstrup\'s flat pairs with its scalers; position lists only where the list is known', () => {
  const kamstrup = read(struct(
    text('Kamstrup_V0001'), obis(1, 1, 96, 1, 1), text('6851234'), // a CT meter: current in mA
    obis(1, 1, 31, 7, 0), u32(1234), [0x00], [0x00], obis(1, 1, 1, 8, 0), u32(1000),
  ));
  assert.is(kamstrup.listId, 'Kamstrup_V0001');
  assert.equal(kamstrup.values, [[1, 10000], [8, 1234]]);
  // Values without OBIS codes and no list identifier that says what they are: nothing is guessed.
  const unknown = read(struct(text('XYZ_001'), u32(1), u32(2), u32(3)));
  assert.equal(unknown.values, []);
  assert.equal(unknown.registers.map((x) => x.obis), [null, null, null, null]);
});

test('the clock: the notification\'s, else the clock register, else a bare date-time; deviation and daylight saving', () => {
  const dt = (y: number, mo: number, d: number, h: number, mi: number, s: number, dev: number, status: number) =>
    [y >> 8, y & 0xff, mo, d, 0xff, h, mi, s, 0xff, (dev >> 8) & 0xff, dev & 0xff, status];
  const clock = struct(obis(0, 0, 1, 0, 0), [0x09, 12, ...dt(2024, 7, 1, 12, 0, 0, 0x8000, 0x80)]);
  assert.is(read(array(clock)).time, Date.UTC(2024, 6, 1, 10) / 1000, 'unspecified deviation, summer: CEST');
  assert.is(read(array(clock), 1234).time, 1234, 'the notification\'s own date-time first');
  const bare = read(struct([0x09, 12, ...dt(2024, 1, 1, 12, 0, 0, 0x8000, 0x00)]));
  assert.is(bare.time, Date.UTC(2024, 0, 1, 11) / 1000);
  const b = Uint8Array.from(dt(2021, 9, 27, 9, 47, 15, -120 & 0xffff, 0x80));
  assert.is(dateTime(b, 0), Date.UTC(2021, 8, 27, 7, 47, 15) / 1000, 'a whole offset with the daylight bit');
  const n = Uint8Array.from(dt(2016, 9, 8, 19, 13, 25, -60 & 0xffff, 0x80));
  assert.is(dateTime(n, 0), Date.UTC(2016, 8, 8, 17, 13, 25) / 1000, 'the normal offset with the daylight bit');
  for (const bad of [dt(2023, 2, 29, 0, 0, 0, 0, 0), dt(2023, 13, 1, 0, 0, 0, 0, 0), dt(0xffff, 1, 1, 0, 0, 0, 0, 0), dt(2023, 1, 1, 24, 0, 0, 0, 0)]) {
    assert.ok(Number.isNaN(dateTime(Uint8Array.from(bad), 0)), JSON.stringify(bad));
  }
  assert.is(dateTime(Uint8Array.from(dt(2024, 2, 29, 0, 0, 0, 0, 0)), 0), Date.UTC(2024, 1, 29) / 1000);
});

test('malformed bodies are refused with the reason, never half-read', () => {
  const cases: Array<[number[], RegExp]> = [
    [[0x02, 0x02, 0x06, 0x00], /doubleLongUnsigned at byte 2 runs past the end/],
    [[0x02, 0x01, 0x0a, 0x05, 0x41], /visibleString at byte 2 runs past the end/],
    [[0x02, 0x02, 0x11, 0x01], /the data ends where an item was expected/],
    [[0x11, 0x01, 0x11, 0x02], /2 byte\(s\) left after the notification body/],
    [[0x13, 0x00], /compactArray at byte 0 is not a data type a meter pushes here/],
    [[0x02, 0x84, 1, 2, 3, 4], /bad element count of the structure at byte 0/],
    [Array(10).fill([0x02, 0x01]).flat().concat([0x11, 0]), /nests deeper than 7 levels/],
  ];
  for (const [body, why] of cases) {
    const r = read(body);
    assert.is(r.values, undefined, JSON.stringify(body));
    assert.match(r.error, why);
  }
});

test.run();
