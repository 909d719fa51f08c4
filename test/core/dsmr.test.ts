// The DSMR P1 telegram parser on its own: no files, so that it also runs inside XS.
// The fixture collection is exercised by test/host/dsmr-fixtures.test.ts, the fuzzer by dsmr-fuzz.test.ts.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  crc16arc,
  parseClock,
  parseTelegram,
  scaleDecimal,
  TelegramError,
  TelegramParser,
  type TelegramResult,
} from '../../firmware/core/meter/dsmr.js';

function bytes(text: string): Uint8Array {
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i) & 0xff;
  return out;
}

function lines(...l: string[]): string {
  return l.join('\r\n') + '\r\n';
}

function hex4(n: number): string {
  const s = n.toString(16).toUpperCase();
  return '0000'.slice(s.length) + s;
}

/** Appends the CRC (4 hex digits) and CR LF to text that ends in "!". */
function seal(text: string): string {
  return text + hex4(crc16arc(bytes(text))) + '\r\n';
}

// matthijskooijman/arduino-dsmr examples/parse/parse.ino (examples: "do whatever they want with them"),
// a DSMR 4.0 Kaifa telegram with its published CRC 6F4A.
const KAIFA = lines(
  '/KFM5KAIFA-METER',
  '',
  '1-3:0.2.8(40)',
  '0-0:1.0.0(150117185916W)',
  '0-0:96.1.1(0000000000000000000000000000000000)',
  '1-0:1.8.1(000671.578*kWh)',
  '1-0:1.8.2(000842.472*kWh)',
  '1-0:2.8.1(000000.000*kWh)',
  '1-0:2.8.2(000000.000*kWh)',
  '0-0:96.14.0(0001)',
  '1-0:1.7.0(00.333*kW)',
  '1-0:2.7.0(00.000*kW)',
  '0-0:17.0.0(999.9*kW)',
  '0-0:96.3.10(1)',
  '0-0:96.7.21(00008)',
  '0-0:96.7.9(00007)',
  '1-0:99.97.0(1)(0-0:96.7.19)(000101000001W)(2147483647*s)',
  '1-0:32.32.0(00000)',
  '1-0:32.36.0(00000)',
  '0-0:96.13.1()',
  '0-0:96.13.0()',
  '1-0:31.7.0(001*A)',
  '1-0:21.7.0(00.332*kW)',
  '1-0:22.7.0(00.000*kW)',
  '0-1:24.1.0(003)',
  '0-1:96.1.0(0000000000000000000000000000000000)',
  '0-1:24.2.1(150117180000W)(00473.789*m3)',
  '0-1:24.4.0(1)',
  '!6F4A',
);
const KAIFA_VALUES: Array<[number, number]> = [
  [1, 671578 + 842472], [2, 0], [3, 333], [4, 0], [8, 1000], [11, 473789], [12, 1],
];
const KAIFA_TIME = Date.UTC(2015, 0, 17, 17, 59, 16) / 1000; // 18:59:16 CET

// Written for this test in the DSMR 2.2 shape: no CRC, gas reading on the line after 0-1:24.3.0.
const DSMR22 = lines(
  '/ISk5\\2MT382-1004',
  '',
  '0-0:96.1.1(00000000000000)',
  '1-0:1.8.1(00123.456*kWh)',
  '1-0:1.8.2(00001.001*kWh)',
  '1-0:2.8.1(00000.000*kWh)',
  '1-0:2.8.2(00000.009*kWh)',
  '0-0:96.14.0(0002)',
  '1-0:1.7.0(0001.01*kW)',
  '1-0:2.7.0(0000.00*kW)',
  '0-1:24.1.0(3)',
  '0-1:24.3.0(161107190000)(00)(60)(1)(0-1:24.2.1)(m3)',
  '(00042.017)',
  '0-1:24.4.0(1)',
  '!',
);

function collect(parser?: { maxBytes?: number }) {
  const results: TelegramResult[] = [];
  const errors: TelegramError[] = [];
  const p = new TelegramParser({
    maxBytes: parser?.maxBytes,
    onTelegram: (r) => results.push(r),
    onError: (e) => errors.push(e),
  });
  return { p, results, errors };
}

test('CRC-16/ARC: check value, empty input, a published telegram CRC', () => {
  assert.is(crc16arc(bytes('123456789')), 0xbb3d);
  assert.is(crc16arc(bytes('')), 0);
  assert.is(crc16arc(bytes('A')), 0x30c0);
  const t = bytes(KAIFA);
  assert.is(crc16arc(t, 0, KAIFA.indexOf('!') + 1), 0x6f4a);
  // Incremental use gives the same value as one pass.
  const mid = 100;
  assert.is(crc16arc(t, mid, KAIFA.indexOf('!') + 1, crc16arc(t, 0, mid)), 0x6f4a);
});

test('decimal scaling is exact, integer-only, and strict about its text', () => {
  const s = (text: string, exp: number) => scaleDecimal(bytes(text), 0, text.length, exp);
  assert.is(s('000123.456', 3), 123456);
  assert.is(s('000671.578', 3), 671578);
  assert.is(s('0.48', 3), 480);
  assert.is(s('0230.0', 3), 230000);
  assert.is(s('001', 3), 1000);
  assert.is(s('0', 3), 0);
  assert.is(s('006545766', 0), 6545766);
  assert.is(s('-063', 3), -63000);
  assert.is(s('-0.000', 3), 0);
  assert.is(Object.is(s('-0.000', 3), -0), false);
  // 0.1 + 0.2 style traps: these would be off by one through a float.
  assert.is(s('000004.355', 3), 4355);
  assert.is(s('1.005', 3), 1005);
  assert.is(s('9007199254.740', 3), 9007199254740);
  assert.is(s('999999999999.999', 3), 999999999999999);
  // Finer than the unit: round half to even (WIRE.md's rule for milli-units).
  assert.is(s('12.3456', 3), 12346);
  assert.is(s('12.3454', 3), 12345);
  assert.is(s('0.0005', 3), 0);
  assert.is(s('0.0015', 3), 2);
  assert.is(s('0.0025', 3), 2);
  assert.is(s('0.00250001', 3), 3);
  assert.is(s('00000000.0000', 3), 0);
  assert.is(s('2.5', 0), 2);
  assert.is(s('3.5', 0), 4);
  // Too many significant digits to stay exact, or not a decimal at all.
  assert.ok(Number.isNaN(s('9999999999999.999', 3)));
  assert.ok(Number.isNaN(s('1234567890123456', 0)));
  assert.is(s('0000000000000000000001.000', 3), 1000);
  for (const bad of ['', '-', '.', '.5', '5.', '1.2.3', '1e3', '+1', ' 1', '1 ', '0x10', '1,5', '--1', '١']) {
    assert.ok(Number.isNaN(s(bad, 3)), JSON.stringify(bad));
  }
});

test('meter clock YYMMDDhhmmssX to unix seconds, W = UTC+1, S = UTC+2', () => {
  const c = (text: string) => parseClock(bytes(text), 0, text.length);
  assert.is(c('150117185916W'), Date.UTC(2015, 0, 17, 17, 59, 16) / 1000);
  assert.is(c('200512135409S'), Date.UTC(2020, 4, 12, 11, 54, 9) / 1000);
  assert.is(c('000101010000W'), Date.UTC(2000, 0, 1, 0, 0, 0) / 1000);
  assert.is(c('240229235959W'), Date.UTC(2024, 1, 29, 22, 59, 59) / 1000);
  assert.is(c('991231235959W'), Date.UTC(2099, 11, 31, 22, 59, 59) / 1000);
  assert.is(parseClock(bytes('230202132747S'), 0, 13, 0, 3600), Date.UTC(2023, 1, 2, 12, 27, 47) / 1000);
  for (const bad of ['000000000000W', '230229120000W', '231301120000W', '230101240000W', '230101126000W',
    '230101120060W', '230101120000X', '230101120000', '2301011200000W', '632525252525W', '2301a1120000W']) {
    assert.ok(Number.isNaN(c(bad)), bad);
  }
});

test('a DSMR 4.0 telegram parses to the WIRE.md channels', () => {
  const r = parseTelegram(bytes(KAIFA));
  assert.is(r.header, 'KFM5KAIFA-METER');
  assert.is(r.crc, 'ok');
  assert.is(r.time, KAIFA_TIME);
  assert.equal(r.values, KAIFA_VALUES);
  assert.is(r.obis, 26);
});

test('a DSMR 2.2 telegram without CRC is accepted, gas taken from the line after 0-1:24.3.0', () => {
  const r = parseTelegram(bytes(DSMR22));
  assert.is(r.crc, 'none');
  assert.is(r.header, 'ISk5\\2MT382-1004');
  assert.is(r.time, undefined);
  assert.equal(r.values, [[1, 124457], [2, 9], [3, 1010], [4, 0], [11, 42017], [12, 2]]);
  assert.is(r.obis, 11);
  // DSMR 3.0 puts the value on the same line.
  const v3 = DSMR22.replace('(m3)\r\n(00042.017)', '(m3)(00042.017)');
  assert.equal(parseTelegram(bytes(v3)).values, r.values);
});

test('byte-at-a-time, every split point and whole-buffer parsing agree', () => {
  const whole = parseTelegram(bytes(KAIFA));
  const one = collect();
  for (const b of bytes(KAIFA)) one.p.push(new Uint8Array([b]));
  assert.equal(one.results, [whole]);
  assert.is(one.errors.length, 0);
  const t = bytes(KAIFA);
  for (let cut = 0; cut <= t.length; cut++) {
    const c = collect();
    c.p.push(t.subarray(0, cut));
    c.p.push(t.subarray(cut));
    assert.equal(c.results, [whole], `split at ${cut}`);
  }
  // ArrayBuffer chunks, as an ECMA-419 serial read() returns them.
  const ab = collect();
  ab.p.push(t.slice().buffer);
  assert.equal(ab.results, [whole]);
});

test('CRC digits: lower case, and fewer than 4 (the line end closes them)', () => {
  const body = KAIFA.slice(0, KAIFA.indexOf('!') + 1);
  assert.is(parseTelegram(bytes(body + '6f4a\r\n')).crc, 'ok');
  // Find a variant whose CRC has a leading zero, then write it with 3 and with 1 digits.
  let found = 0;
  for (let v = 0; v < 2000 && found < 2; v++) {
    const text = body.replace('00.333*kW', `${String(v).padStart(5, '0').slice(0, 2)}.${String(v).padStart(5, '0').slice(2)}*kW`);
    const crc = crc16arc(bytes(text));
    if (crc < 0x1000) {
      const r = parseTelegram(bytes(text + crc.toString(16).toUpperCase() + '\r\n'));
      assert.is(r.crc, 'ok');
      found++;
    }
  }
  assert.is(found, 2);
  assert.is(parseTelegram(bytes(seal('/X\r\n\r\n!'))).crc, 'ok');
});

test('a CRC mismatch is refused with both values', () => {
  const bad = KAIFA.replace('!6F4A', '!6F4B');
  try {
    parseTelegram(bytes(bad));
    assert.unreachable('accepted');
  } catch (e) {
    assert.instance(e, TelegramError);
    const err = e as TelegramError;
    assert.is(err.reason, 'crc');
    assert.is(err.expected, 0x6f4b);
    assert.is(err.actual, 0x6f4a);
    assert.is(err.message, 'CRC mismatch: telegram says 0x6F4B, computed 0x6F4A');
  }
  // One changed digit in the data, CRC as before.
  const flipped = KAIFA.replace('000671.578', '000671.579');
  assert.throws(() => parseTelegram(bytes(flipped)), (e: TelegramError) => e.reason === 'crc');
});

test('garbage before, between and after telegrams is skipped', () => {
  const c = collect();
  const noise = new Uint8Array(300);
  for (let i = 0; i < noise.length; i++) noise[i] = (i * 131 + 7) & 0xff;
  for (let i = 0; i < noise.length; i++) if (noise[i] === 0x2f) noise[i] = 0; // no '/'
  c.p.push(noise);
  c.p.push(bytes(KAIFA));
  c.p.push(bytes('\r\n\0\0\xff!!1234\r\n'));
  c.p.push(noise);
  c.p.push(bytes(KAIFA));
  c.p.push(bytes('\r\n'));
  assert.is(c.errors.length, 0);
  assert.is(c.results.length, 2);
  assert.equal(c.results[1].values, KAIFA_VALUES);
});

test('a "/" before the "!" cuts the telegram short; the new one parses', () => {
  const c = collect();
  c.p.push(bytes(KAIFA.slice(0, 300)));
  c.p.push(bytes(KAIFA));
  assert.equal(c.errors.map((e) => e.reason), ['truncated']);
  assert.equal(c.results.map((r) => r.values), [KAIFA_VALUES]);
});

test('an overlong telegram is refused, memory stays within the cap, and the next one parses', () => {
  const c = collect({ maxBytes: 256 });
  assert.is(c.p.capacity, 256);
  const t = bytes(KAIFA);
  for (let i = 0; i < t.length; i++) {
    c.p.push(t.subarray(i, i + 1));
    assert.ok(c.p.buffered <= 256);
  }
  assert.equal(c.errors.map((e) => e.reason), ['too-long']);
  c.p.push(bytes(seal('/SHORT5\r\n\r\n1-0:1.7.0(01.500*kW)\r\n!')));
  assert.equal(c.results.map((r) => r.values), [[[3, 1500]]]);

  // The default cap is 2048 bytes from '/' to '!': a 2048-byte telegram passes, 2049 does not.
  const head = '/BIG5\r\n\r\n';
  const filler = (n: number) => {
    let s = '';
    while (s.length < n) s += '0-0:96.13.0(' + '3'.repeat(Math.min(200, n - s.length - 15)) + ')\r\n';
    return s;
  };
  const exact = head + filler(2048 - head.length - 1) + '!';
  assert.is(exact.length, 2048);
  assert.is(parseTelegram(bytes(seal(exact))).crc, 'ok');
  const over = head + filler(2049 - head.length - 1) + '!';
  assert.is(over.length, 2049);
  assert.throws(() => parseTelegram(bytes(seal(over))), (e: TelegramError) => e.reason === 'too-long');
  assert.is(parseTelegram(bytes(seal(over)), { maxBytes: 4096 }).crc, 'ok');
});

test('lines that are not OBIS lines make the telegram malformed, naming the line', () => {
  const cases = [
    '1-0:1.8.1(000671.578*kWh',
    '1-0:1.8.1',
    'This message overflows because it is too large',
    '1-0:1.8.1(000671.578*kWh)x',
    '1-0:1.8.1(00(0671.578*kWh)',
    '1-0:1.8(000671.578*kWh)',
    '1-0:1.8.1000(000671.578*kWh)',
    '1-0:1.8.1(0006,1.578*kWh)', // a mapped value that is not a number
    '0-0:96.14.0(A1)',
    '0-1:24.1.0(gas)',
  ];
  for (const line of cases) {
    const text = seal(`/X5\r\n\r\n1-0:1.7.0(01.000*kW)\r\n${line}\r\n!`);
    try {
      parseTelegram(bytes(text));
      assert.unreachable(line);
    } catch (e) {
      const err = e as TelegramError;
      assert.is(err.reason, 'malformed', line);
      assert.is(err.line, line);
    }
  }
  // The '!' must begin its own line; the identification line must end before it.
  for (const text of ['/X5\r\n\r\n1-0:1.7.0(01.000*kW)!', '/X5!']) {
    assert.throws(() => parseTelegram(bytes(seal(text))), (e: TelegramError) => e.reason === 'malformed', text);
  }
  // A bad character where the CRC digits belong.
  assert.throws(() => parseTelegram(bytes('/X5\r\n\r\n!12G4\r\n')), (e: TelegramError) => e.reason === 'malformed');
});

test('OBIS codes and units that no channel means are ignored, never guessed', () => {
  const r = parseTelegram(bytes(seal(lines(
    '/X5',
    '',
    '1-0:1.8.0(000025.653*kWh)',
    '1-0:3.8.0(000000.835*kvarh)',
    '1-0:1.7.0(00.005)', // no unit
    '1-0:2.7.0(00.010*kVA)', // not kW
    '1-0:32.7.0(233.0*V)',
    '1-0:52.7.0(233*kV)',
    '1-0:31.7.0(1500*mA)',
    '1-1:31.4.0(100*A)(-063*A)',
    '1-0:1.8.0*12(000020.000*kWh)', // billing period 12: not the current value
    '9-9:9.9.9(whatever)',
    '0-1:24.1.0(004)',
    '0-1:24.2.1(260215200523W)(240.860*GJ)',
    '!',
  ).trimEnd())));
  assert.equal(r.values, [[1, 25653], [5, 233000]]);
  assert.is(r.obis, 12);
});

test('Wh and W registers (AT) and totals: 1.8.0 wins over the tariff sum, which is used without it', () => {
  const at = parseTelegram(bytes(seal(lines('/EST5\\253710000_A', '', '1-0:1.8.0(006545766*Wh)', '1-0:1.8.1(005017120*Wh)',
    '1-0:1.8.2(001528646*Wh)', '1-0:1.7.0(000000286*W)', '1-0:2.8.1(000000000*Wh)', '1-0:2.8.2(000000058*Wh)', '!').trimEnd())));
  assert.equal(at.values, [[1, 6545766], [2, 58], [3, 286]]);
  const four = parseTelegram(bytes(seal(lines('/HU5', '', '1-0:1.8.1(000047.719*kWh)', '1-0:1.8.2(000125.921*kWh)',
    '1-0:1.8.3(000000.001*kWh)', '1-0:1.8.4(000001.000*kWh)', '!').trimEnd())));
  assert.equal(four.values, [[1, 47719 + 125921 + 1 + 1000]]);
  // A register given twice counts once (the later line).
  const twice = parseTelegram(bytes(seal(lines('/NL5', '', '1-0:1.8.1(000001.000*kWh)', '1-0:1.8.1(000002.000*kWh)',
    '1-0:1.8.2(000003.000*kWh)', '!').trimEnd())));
  assert.equal(twice.values, [[1, 5000]]);
});

test('gas comes from the lowest M-Bus channel whose device type is 3 and whose unit is m3', () => {
  const r = parseTelegram(bytes(seal(lines(
    '/FLU5\\253769484_A',
    '',
    '0-0:96.1.4(50217)',
    '0-1:24.1.0(007)',
    '0-1:24.2.1(200512134558S)(00872.234*m3)', // water
    '0-2:24.1.0(003)',
    '0-2:24.2.1(700101010000W)(00000000)', // empty slot, no unit
    '0-3:24.2.3(200512134558S)(00112.384*m3)', // BE form; type given after the value
    '0-3:24.1.0(003)',
    '0-4:24.1.0(003)',
    '0-4:24.2.1(200512134558S)(00999.999*m3)',
    '!',
  ).trimEnd())));
  assert.equal(r.values, [[11, 112384]]);
  // No device type line: not known to be gas.
  const untyped = parseTelegram(bytes(seal('/X5\r\n\r\n0-1:24.2.1(200512134558S)(00112.384*m3)\r\n!')));
  assert.equal(untyped.values, []);
});

test('a missing CRC is refused where the meter is known to send one', () => {
  const v50 = lines('/ISK5\\2M550T-1012', '', '1-3:0.2.8(50)', '1-0:1.7.0(00.111*kW)', '!');
  assert.throws(() => parseTelegram(bytes(v50)), (e: TelegramError) => e.reason === 'crc' && e.expected === undefined);
  const be = lines('/FLU5\\253769484_A', '', '0-0:96.1.4(50217)', '1-0:1.7.0(00.111*kW)', '!');
  assert.throws(() => parseTelegram(bytes(be)), (e: TelegramError) => e.reason === 'crc');
  // After one telegram with a CRC, a telegram without is damage (e.g. a CR turned into '!').
  const c = collect();
  c.p.push(bytes(KAIFA));
  c.p.push(bytes(DSMR22));
  assert.is(c.results.length, 1);
  assert.equal(c.errors.map((e) => e.reason), ['crc']);
  c.p.reset();
  c.p.push(bytes(DSMR22));
  assert.is(c.results.length, 2);
});

test('input that ends inside a telegram is truncated; no "/" at all too', () => {
  const t = bytes(KAIFA);
  for (const cut of [1, 50, KAIFA.indexOf('!'), KAIFA.indexOf('!') + 1, KAIFA.indexOf('!') + 3]) {
    assert.throws(() => parseTelegram(t.subarray(0, cut)), (e: TelegramError) => e.reason === 'truncated', `cut ${cut}`);
  }
  assert.throws(() => parseTelegram(bytes('no telegram here\r\n')), (e: TelegramError) => e.reason === 'truncated');
  const c = collect();
  c.p.push(t.subarray(0, 100));
  assert.is(c.p.buffered, 100);
  c.p.end();
  assert.is(c.p.buffered, 0);
  assert.equal(c.errors.map((e) => e.reason), ['truncated']);
});

test('LF-only line ends are tolerated when the CRC covers them', () => {
  const lf = seal(KAIFA.slice(0, KAIFA.indexOf('!') + 1).split('\r\n').join('\n'));
  const r = parseTelegram(bytes(lf));
  assert.equal(r.values, KAIFA_VALUES);
  assert.is(r.time, KAIFA_TIME);
});

test('a callback that throws leaves the parser ready for the next telegram', () => {
  let calls = 0;
  const p = new TelegramParser({
    onTelegram() {
      calls++;
      if (calls === 1) throw new Error('consumer failed');
    },
  });
  assert.throws(() => p.push(bytes(KAIFA)), /consumer failed/);
  assert.is(p.buffered, 0);
  p.push(bytes(KAIFA));
  assert.is(calls, 2);
});

test.run();
