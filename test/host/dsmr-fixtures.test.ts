// Every telegram in test/fixtures/dsmr (copied from shared/fixtures/dsmr, see its SOURCES.md), parsed
// whole, byte at a time and in random chunks, against values read off each telegram by hand.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  crc16arc,
  parseTelegram,
  TelegramError,
  TelegramParser,
  type TelegramResult,
} from '../../firmware/core/meter/dsmr.js';
import { mulberry32 as rng } from '../../firmware/core/prng.js';

const DIR = join(fileURLToPath(import.meta.url), '..', '..', 'fixtures', 'dsmr');

interface Accepted {
  crc: 'ok' | 'none';
  /** The meter clock as UTC (the telegram's local time with W = +01:00, S = +02:00), or null. */
  time: string | null;
  /** channel → value in WIRE.md units, every channel the telegram must yield and no other. */
  values: Record<number, number>;
  obis: number;
  header: string;
}
interface Refused {
  error: 'crc' | 'too-long' | 'malformed' | 'truncated';
  /** For CRC refusals: the CRC the telegram states and the one computed. */
  expected?: number;
  actual?: number;
  /** What the telegram yields once its CRC is corrected (spec examples whose printed CRC is wrong). */
  corrected?: Omit<Accepted, 'crc' | 'obis' | 'header'>;
}

// Channels: 1/2 energy in/out Wh, 3/4 power in/out W, 5–7 voltage mV, 8–10 current mA, 11 gas dm³, 12 tariff.
const EXPECTED: Record<string, Accepted | Refused> = {
  'arduino-dsmr__nl-dsmr4.0__kaifa.txt': {
    crc: 'ok', header: 'KFM5KAIFA-METER', time: '2015-01-17T17:59:16Z', obis: 26,
    values: { 1: 671578 + 842472, 2: 0, 3: 333, 4: 0, 8: 1000, 11: 473789, 12: 1 },
  },
  'athombv__be-emucs2.1.1__spec-example__bad-crc.txt': {
    error: 'crc', expected: 0x1234, actual: 0x74e0,
    corrected: {
      time: '2020-05-12T11:54:09Z',
      values: { 1: 34 + 15758, 2: 0 + 11, 3: 0, 4: 0, 5: 234700, 6: 234700, 7: 234700, 8: 0, 9: 0, 10: 0, 11: 112384, 12: 1 },
    },
  },
  'athombv__lu-smarty__spec-example__bad-crc.txt': {
    error: 'crc', expected: 0x8b52, actual: 0x6da1,
    corrected: {
      // Two gas meters (M-Bus 1 and 4): the lowest channel is reported.
      time: '2020-07-06T08:41:57Z',
      values: { 1: 25653, 2: 40, 3: 5, 4: 0, 5: 233000, 6: 0, 7: 1000, 8: 0, 9: 0, 10: 0, 11: 6 },
    },
  },
  'athombv__nl-dsmr2.2__kamstrup__no-crc.txt': {
    crc: 'none', header: 'KMP5 ZABF001587315111', time: null, obis: 16,
    values: { 1: 185000 + 84000, 2: 13000 + 19000, 3: 980, 4: 0, 11: 124477, 12: 1 },
  },
  'athombv__nl-dsmr4.0__landisgyr-e350.txt': {
    // The meter's clock was never set; reported as it says.
    crc: 'ok', header: 'XMX5LGBBFFB231216240', time: '2000-01-01T00:00:00Z', obis: 19,
    values: { 1: 1990002, 2: 0, 3: 0, 4: 0, 12: 1 },
  },
  'athombv__nl-dsmr4.2__kaifa.txt': {
    crc: 'ok', header: 'KFM5KAIFA-METER', time: '2018-03-06T11:30:56Z', obis: 33,
    values: { 1: 4726494 + 4844281, 2: 3284320 + 7764691, 3: 0, 4: 1869, 8: 3000, 9: 3000, 10: 2000, 11: 5359919, 12: 2 },
  },
  'athombv__nl-dsmr5.0__iskra-am550.txt': {
    crc: 'ok', header: 'ISK5\\2M550T-1011', time: '2018-11-06T13:04:29Z', obis: 35,
    values: {
      1: 3808351 + 2948827, 2: 1285951 + 2876514, 3: 0, 4: 498, 5: 236000, 6: 232600, 7: 235100,
      8: 2000, 9: 0, 10: 0, 11: 1569646, 12: 2,
    },
  },
  'esphome-p1reader__se-han__landisgyr-e360.txt': {
    crc: 'ok', header: 'ELL5\\253833635_A', time: '2021-02-17T17:40:19Z', obis: 27,
    values: { 1: 6678394, 2: 0, 3: 1727, 4: 0, 5: 240300, 6: 240100, 7: 241300, 8: 4200, 9: 1600, 10: 1700 },
  },
  'lvzon__nl-dsmr3.0__spec-example__no-crc.txt': {
    // 0-1:24.3.0 with its value (00000.000) on the same line.
    crc: 'none', header: 'ISk5\\2MT382-1000', time: null, obis: 16,
    values: { 1: 12345678 * 2, 2: 12345678 * 2, 3: 1190, 4: 0, 11: 0, 12: 2 },
  },
  'lvzon__nl-dsmr4.0__spec-example__bad-crc.txt': {
    error: 'crc', expected: 0x522b, actual: 0x6412,
    corrected: {
      time: '2010-12-09T10:30:20Z',
      values: { 1: 123456789 * 2, 2: 123456789 * 2, 3: 1193, 4: 0, 11: 12785123, 12: 2 },
    },
  },
  'lvzon__nl-dsmr5.0__spec-example__bad-crc.txt': {
    error: 'crc', expected: 0xef2f, actual: 0xe47c,
    corrected: {
      time: '2010-12-09T10:30:20Z',
      values: {
        1: 123456789 * 2, 2: 123456789 * 2, 3: 1193, 4: 0, 5: 220100, 6: 220200, 7: 220300,
        8: 1000, 9: 2000, 10: 3000, 11: 12785123, 12: 2,
      },
    },
  },
  'meterlogger__lu-smarty__sagemcom.txt': {
    // Smarty: totals in 1.8.0 / 2.8.0, no tariff indicator.
    crc: 'ok', header: 'Lux5\\253663629_D', time: '2026-04-03T15:54:31Z', obis: 52,
    values: {
      1: 273764, 2: 112743030, 3: 0, 4: 897, 5: 231000, 6: 229000, 7: 230000, 8: 1000, 9: 1000, 10: 1000, 11: 14239771,
    },
  },
  'ndokter__at-energienetze-steiermark__sagemcom-t210-d-r.txt': {
    // Wh and W registers; 1.8.0 (= 1.8.1 + 1.8.2) is the total.
    crc: 'ok', header: 'EST5\\253710000_A', time: '2022-10-06T13:50:14Z', obis: 18,
    values: { 1: 6545766, 2: 58, 3: 286, 4: 0 },
  },
  'ndokter__be-emucs1.7.1__fluvius-sagemcom-1.txt': {
    // Gas on 0-1:24.2.3; the water meter (type 007) on channel 2 is not gas.
    crc: 'ok', header: 'FLU5\\253769484_A', time: '2020-05-12T11:54:09Z', obis: 36,
    values: { 1: 34 + 15758, 2: 0 + 11, 3: 0, 4: 0, 5: 234700, 6: 234700, 7: 234700, 8: 0, 9: 0, 10: 0, 11: 112384, 12: 1 },
  },
  'ndokter__be-emucs1.7.1__fluvius-sagemcom-2.txt': {
    crc: 'ok', header: 'FLU5\\253769484_A', time: '2023-11-02T11:15:48Z', obis: 36,
    values: {
      1: 301548 + 270014, 2: 5 + 0, 3: 338, 4: 0, 5: 232900, 6: 228100, 7: 228100, 8: 270, 9: 880, 10: 520, 11: 92287, 12: 1,
    },
  },
  'ndokter__hu-eon__sagemcom.txt': {
    // 1.8.0 given beside four tariff registers: 1.8.0 is the total.
    crc: 'ok', header: 'SAG5SAG-METER', time: '2023-07-24T13:07:30Z', obis: 45,
    values: { 1: 173640, 2: 627177, 3: 0, 4: 2601, 5: 240400, 6: 239100, 7: 241200, 8: 3000, 9: 4000, 10: 3000, 12: 1 },
  },
  'ndokter__ie__iskra-ie5__header-contains-0x02.txt': {
    // The header's 7th byte is 0x02. The clock says S in February; read with the CET assumption.
    crc: 'ok', header: 'ISk5\x02MIE5T-200', time: '2023-02-02T11:27:47Z', obis: 25,
    values: {
      1: 10181 + 10182, 2: 10281 + 10282, 3: 170, 4: 270, 5: 242500, 6: 241700, 7: 243300, 8: 0, 9: 0, 10: 0, 12: 1,
    },
  },
  'ndokter__nl-dsmr2.2__iskra-mt382__no-crc.txt': {
    crc: 'none', header: 'ISk5\\2MT382-1004', time: null, obis: 16,
    values: { 1: 1001 + 1001, 2: 1001 + 1001, 3: 1010, 4: 0, 11: 1001, 12: 1 },
  },
  'ndokter__nl-dsmr3.0__iskra-mt382__no-crc.txt': {
    crc: 'none', header: 'ISk5\\2MT382-1000', time: null, obis: 16,
    values: { 1: 12345678 * 2, 2: 12345678 * 2, 3: 1190, 4: 0, 11: 1001, 12: 2 },
  },
  'ndokter__nl-dsmr4.2__kaifa.txt': {
    crc: 'ok', header: 'KFM5KAIFA-METER', time: '2016-11-13T19:57:57Z', obis: 33,
    values: { 1: 1581123 + 1435706, 2: 0, 3: 2027, 4: 0, 8: 0, 9: 6000, 10: 2000, 11: 981443, 12: 2 },
  },
  'ndokter__nl-dsmr5.0__iskra-am550-two-mbus.txt': {
    // M-Bus 1 is an empty gas slot (no unit); the gas meter is on M-Bus 2.
    crc: 'ok', header: 'ISK5\\2M550T-1012', time: '2020-04-26T20:33:25Z', obis: 38,
    values: {
      1: 2130115 + 245467, 2: 0, 3: 111, 4: 0, 5: 229900, 6: 229200, 7: 222900, 8: 0, 9: 0, 10: 1000, 11: 246138, 12: 1,
    },
  },
  'ndokter__nl-dsmr5.0__iskra-mt382.txt': {
    crc: 'ok', header: 'ISk5\\2MT382-1000', time: '2017-01-02T18:20:02Z', obis: 37,
    values: { 1: 4426 + 2399, 2: 2444, 3: 244, 4: 0, 5: 230000, 6: 230000, 7: 229000, 8: 480, 9: 440, 10: 860, 11: 107, 12: 2 },
  },
  'ndokter__nl-dsmr5.0__nwa-warmtelink-heat__crc-3-hex-digits.txt': {
    // A heat meter (device type 4, GJ): nothing maps onto a v1 channel.
    crc: 'ok', header: 'NWA-WARMTELINK', time: '2026-02-15T19:05:23Z', obis: 8, values: {},
  },
  'wassasin__be-emucs1.7.1__fluvius-1ph.txt': {
    crc: 'ok', header: 'FLU5\\253770234_A', time: '2023-02-11T10:15:41Z', obis: 25,
    values: { 1: 1114057 + 997282, 2: 407 + 281, 3: 31, 4: 0, 5: 236400, 8: 1380, 11: 555937, 12: 2 },
  },
  'wassasin__nl-dsmr4.2__kaifa.txt': {
    crc: 'ok', header: 'KFM5KAIFA-METER', time: '2022-09-01T13:22:01Z', obis: 33,
    values: { 1: 6285065 + 6758327, 2: 0, 3: 335, 4: 0, 8: 1000, 9: 0, 10: 0, 11: 4836851, 12: 2 },
  },
  'wassasin__nl-dsmr5.0__iskra-am550e.txt': {
    crc: 'ok', header: 'ISK5\\2M550E-1012', time: '2019-03-20T17:14:03Z', obis: 23,
    values: { 1: 576239 + 465162, 2: 0, 3: 193, 4: 0, 5: 236100, 8: 1000, 11: 304089, 12: 2 },
  },
  'wassasin__nl-dsmr5.0__mcs-anonymised.txt': {
    // Clock 000000000000W is no date; M-Bus device type "()" and a unitless reading: no gas.
    crc: 'ok', header: 'MCS50000000000000', time: null, obis: 35,
    values: { 1: 1000 + 2000, 2: 3000 + 4000, 3: 96, 4: 0, 5: 232400, 6: 231400, 7: 232500, 8: 0, 9: 0, 10: 0, 12: 2 },
  },
  'wassasin__nl-dsmr5.0__oversized-garbage__bad-crc.txt': {
    // Six '/' inside it restart the telegram (each earlier start is cut short); the last start runs to
    // "!67B1", but over its 786 bytes the CRC is 0x55BD. (Over all 2477 bytes from the first '/' it is 0x8C6B.)
    error: 'crc', expected: 0x67b1, actual: 0x55bd,
  },
  'wassasin__nl-dsmr5.0__sagemcom-t211.txt': {
    crc: 'ok', header: 'Ene5\\T211 ESMR 5.0', time: '2023-11-24T20:56:58Z', obis: 32,
    values: { 1: 341156 + 265076, 2: 469838 + 945206, 3: 499, 4: 0, 5: 233000, 6: 233000, 7: 233000, 8: 0, 9: 0, 10: 1000, 12: 2 },
  },
};

interface ManifestEntry {
  file: string;
  crc_status: 'valid' | 'invalid' | 'no-crc';
  crc_in_telegram: string | null;
  crc_computed: string;
  bytes: number;
}
const manifest: ManifestEntry[] = JSON.parse(readFileSync(join(DIR, 'manifest.json'), 'utf8'));

function read(file: string): Uint8Array {
  return new Uint8Array(readFileSync(join(DIR, file)));
}

function asObject(values: Array<[number, number]>): Record<number, number> {
  const out: Record<number, number> = {};
  for (const [c, v] of values) out[c] = v;
  return out;
}

function iso(t: number | undefined): string | null {
  return t === undefined ? null : new Date(t * 1000).toISOString().replace('.000Z', 'Z');
}


/** Feeds `bytes` in chunks whose sizes `next()` picks; returns every result and error, in order. */
function stream(bytes: Uint8Array, next: () => number): Array<TelegramResult | TelegramError> {
  const events: Array<TelegramResult | TelegramError> = [];
  const p = new TelegramParser({ onTelegram: (r) => events.push(r), onError: (e) => events.push(e) });
  for (let i = 0; i < bytes.length; ) {
    const n = Math.max(1, next());
    p.push(bytes.subarray(i, i + n));
    assert.ok(p.buffered <= p.capacity);
    i += n;
  }
  p.end();
  return events;
}

test('the fixture collection, the manifest and this table name the same 29 telegrams', () => {
  const files = readdirSync(DIR).filter((f) => f.endsWith('.txt')).sort();
  assert.is(files.length, 29);
  assert.equal(manifest.map((m) => m.file).sort(), files);
  assert.equal(Object.keys(EXPECTED).sort(), files);
  for (const m of manifest) assert.is(read(m.file).length, m.bytes, m.file);
});

test('each file is accepted or refused as its name and the manifest say', () => {
  for (const m of manifest) {
    const e = EXPECTED[m.file];
    if (m.crc_status === 'valid') {
      assert.ok('crc' in e && e.crc === 'ok', m.file);
      assert.not.match(m.file, /bad-crc|no-crc/);
    } else if (m.crc_status === 'no-crc') {
      assert.ok('crc' in e && e.crc === 'none', m.file);
      assert.match(m.file, /__no-crc/);
    } else {
      assert.ok('error' in e && e.error === 'crc', m.file);
      assert.match(m.file, /__bad-crc/);
      assert.is(e.expected, parseInt(m.crc_in_telegram!, 16), m.file);
    }
  }
});

test('whole-file parsing gives the values read off each telegram', () => {
  for (const [file, e] of Object.entries(EXPECTED)) {
    const bytes = read(file);
    if ('crc' in e) {
      const r = parseTelegram(bytes);
      assert.is(r.crc, e.crc, file);
      assert.is(r.header, e.header, file);
      assert.is(iso(r.time), e.time, file);
      assert.equal(asObject(r.values), e.values, file);
      assert.is(r.obis, e.obis, file);
      // Ascending channels, each once, all safe integers.
      for (let i = 1; i < r.values.length; i++) assert.ok(r.values[i][0] > r.values[i - 1][0], file);
      for (const [, v] of r.values) assert.ok(Number.isSafeInteger(v), file);
    } else {
      try {
        parseTelegram(bytes);
        assert.unreachable(`${file} was accepted`);
      } catch (err) {
        assert.instance(err, TelegramError, file);
        const te = err as TelegramError;
        assert.is(te.reason, e.error, file);
        if (e.expected !== undefined) assert.is(te.expected, e.expected, file);
        if (e.actual !== undefined) assert.is(te.actual, e.actual, file);
      }
    }
  }
});

test('the valid CRCs agree with the manifest and with an independent bitwise CRC', () => {
  const bitwise = (b: Uint8Array, start: number, end: number) => {
    let c = 0;
    for (let i = start; i < end; i++) {
      c ^= b[i];
      for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xa001 : c >>> 1;
    }
    return c;
  };
  for (const m of manifest) {
    const b = read(m.file);
    const start = b.indexOf(0x2f);
    const end = b.indexOf(0x21) + 1;
    assert.is(crc16arc(b, start, end), parseInt(m.crc_computed, 16), m.file);
    assert.is(bitwise(b, start, end), crc16arc(b, start, end), m.file);
  }
});

test('spec examples whose printed CRC is wrong yield the expected values once the CRC is corrected', () => {
  for (const [file, e] of Object.entries(EXPECTED)) {
    if (!('error' in e) || !e.corrected) continue;
    const b = read(file);
    const bang = b.indexOf(0x21);
    const crc = crc16arc(b, b.indexOf(0x2f), bang + 1).toString(16).toUpperCase().padStart(4, '0');
    const fixed = new Uint8Array(b);
    for (let i = 0; i < 4; i++) fixed[bang + 1 + i] = crc.charCodeAt(i);
    const r = parseTelegram(fixed);
    assert.is(r.crc, 'ok', file);
    assert.is(iso(r.time), e.corrected.time, file);
    assert.equal(asObject(r.values), e.corrected.values, file);
  }
});

test('byte-at-a-time and random chunk sizes give exactly what whole-file parsing gives', () => {
  for (const file of Object.keys(EXPECTED)) {
    const bytes = read(file);
    let whole: TelegramResult | TelegramError;
    try {
      whole = parseTelegram(bytes);
    } catch (err) {
      whole = err as TelegramError;
    }
    const runs: Array<[string, () => number]> = [['byte at a time', () => 1]];
    for (let seed = 1; seed <= 20; seed++) {
      const r = rng(seed * 7919 + file.length);
      const max = [2, 7, 64, 300][seed % 4];
      runs.push([`chunks ≤ ${max}, seed ${seed}`, () => 1 + Math.floor(r() * max)]);
    }
    for (const [how, next] of runs) {
      const events = stream(bytes, next);
      // A stream reports every telegram start; the last event is the one that reached the end.
      const last = events[events.length - 1];
      if (whole instanceof TelegramError) {
        assert.instance(last, TelegramError, `${file}, ${how}`);
        assert.is((last as TelegramError).reason, whole.reason, `${file}, ${how}`);
        assert.is((last as TelegramError).message, whole.message, `${file}, ${how}`);
        assert.ok(events.every((ev) => ev instanceof TelegramError), `${file}, ${how}`);
      } else {
        assert.equal(events, [whole], `${file}, ${how}`);
      }
    }
  }
});

test('the oversized garbage file: every cut-short start is reported, then the CRC mismatch', () => {
  const events = stream(read('wassasin__nl-dsmr5.0__oversized-garbage__bad-crc.txt'), () => 1);
  assert.equal(
    events.map((e) => (e as TelegramError).reason),
    ['truncated', 'truncated', 'truncated', 'truncated', 'truncated', 'truncated', 'crc'],
  );
});

test('all 29 telegrams back to back in one stream, with line noise between them', () => {
  const files = Object.keys(EXPECTED).sort();
  const parts: Uint8Array[] = [];
  for (const f of files) {
    parts.push(new Uint8Array([0x00, 0x0d, 0x0a, 0xff, 0x21, 0x7e]));
    parts.push(read(f));
  }
  let total = 0;
  for (const p of parts) total += p.length;
  const all = new Uint8Array(total);
  let o = 0;
  for (const p of parts) {
    all.set(p, o);
    o += p.length;
  }
  const accepted: TelegramResult[] = [];
  const refused: TelegramError[] = [];
  const parser = new TelegramParser({ onTelegram: (r) => accepted.push(r), onError: (e) => refused.push(e) });
  const r = rng(42);
  for (let i = 0; i < all.length; ) {
    const n = 1 + Math.floor(r() * 100);
    parser.push(all.subarray(i, i + n));
    i += n;
  }
  // One parser sees them all, so after the first telegram with a CRC the no-CRC ones count as damaged.
  const firstCrc = files.findIndex((f) => 'crc' in EXPECTED[f] && (EXPECTED[f] as Accepted).crc === 'ok');
  const expectAccepted = files.filter((f, i) => 'crc' in EXPECTED[f] && ((EXPECTED[f] as Accepted).crc === 'ok' || i < firstCrc));
  assert.equal(accepted.map((a) => a.header), expectAccepted.map((f) => (EXPECTED[f] as Accepted).header));
  assert.is(accepted.length + refused.filter((e) => e.reason !== 'truncated').length, 29);
});

test.run();
