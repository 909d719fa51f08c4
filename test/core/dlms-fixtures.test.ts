// Every capture in test/fixtures/dlms (copied from shared fixtures; sources, licenses and the values
// each source states in its SOURCES.md and expected.json) decoded to what its source states, in
// WIRE.md units: whole, byte at a time and frame by frame with line noise between. Runs inside XS too
// (`npm run test:xs`), from the generated support/dlms-fixtures.ts.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseTelegram } from '../../firmware/core/meter/dsmr.js';
import { MeterError } from '../../firmware/core/meter/error.js';
import { MeterParser, parseCapture } from '../../firmware/core/meter/meter.js';
import type { MeterReading } from '../../firmware/core/meter/reading.js';
import { DLMS_FIXTURES } from './support/dlms-fixtures.js';
import { cat, fixtureBytes, fixtureFrames, fixtureKeys, latin1Bytes } from './support/dlms-build.js';

interface Expected {
  format: MeterReading['format'];
  /** Every channel the message must yield, and no other (WIRE.md units). */
  channels: { [channel: number]: number };
  /** The meter clock as UTC; null when the message has none. */
  time: string | null;
  /** Registers by OBIS code (null: a value sent without one, by its order), as the source states them. */
  registers?: Array<[string | null, number | string]>;
  security?: MeterReading['security'];
  systemTitle?: string;
  frameCounter?: number;
  invokeId?: number;
  listId?: string;
  frames?: number;
}

interface Refused {
  error: [string, string];
  /** A message naming where it failed. */
  message: RegExp;
}

const utc = (iso: string) => Date.parse(iso) / 1000;

// Channels: 1/2 energy Wh, 3/4 power W, 5–7 voltage mV, 8–10 current mA, 12 tariff, 13/14 reactive
// energy varh, 15/16 reactive power var, 17–19 / 20–22 power per phase imported / exported W.
// Local times the sources state without an offset are Central European (CET, CEST in summer).
const EXPECTED: { [file: string]: Expected | Refused } = {
  // toreamun/amshan tests (assert_obis_element by list index; Aidon values with their scaler applied).
  'dlms_llc_apdu_plain/amshan__aidon__no-list1-llc.hex': {
    format: 'llc', time: null, channels: { 3: 280 }, registers: [['1-0:1.7.0.255', 280]], invokeId: 0x40000000,
  },
  'dlms_llc_apdu_plain/amshan__aidon__no-list2-3ph-llc.hex': {
    format: 'llc', time: null, listId: 'AIDON_V0001',
    channels: { 3: 280, 4: 0, 15: 0, 16: 128, 8: 1300, 10: 900, 5: 227400, 6: 230100, 7: 230800 },
    registers: [
      ['1-1:0.2.129.255', 'AIDON_V0001'], ['0-0:96.1.0.255', '7359992892587665'], ['0-0:96.1.7.255', '6525'],
      ['1-0:1.7.0.255', 280], ['1-0:4.7.0.255', 128], ['1-0:31.7.0.255', 1.3], ['1-0:71.7.0.255', 0.9],
      ['1-0:32.7.0.255', 227.4], ['1-0:52.7.0.255', 230.1], ['1-0:72.7.0.255', 230.8],
    ],
  },
  'dlms_llc_apdu_plain/amshan__aidon__no-list3-3ph-llc.hex': {
    format: 'llc', time: '2020-01-21T16:00:00Z', listId: 'AIDON_V0001',
    channels: {
      3: 280, 4: 0, 15: 0, 16: 128, 8: 1300, 10: 900, 5: 227600, 6: 230300, 7: 230900,
      1: 22721380, 2: 0, 13: 582430, 14: 1708430,
    },
    registers: [['1-0:1.8.0.255', 22721380], ['1-0:3.8.0.255', 582430], ['1-0:4.8.0.255', 1708430], ['1-0:32.7.0.255', 227.6]],
  },
  // Kaifa's Norwegian lists carry no OBIS codes: by position (amshan's list orders), A in mA, V in dV.
  'dlms_llc_apdu_plain/amshan__kaifa__no-list1-llc.hex': {
    format: 'llc', time: '2019-02-04T22:52:22Z', channels: { 3: 5852 },
  },
  'dlms_llc_apdu_plain/amshan__kaifa-ma304h3e__no-list2-3ph-llc.hex': {
    format: 'llc', time: '2020-01-25T12:09:30Z', listId: 'KFM_001',
    channels: { 3: 9745, 4: 0, 15: 0, 16: 435, 8: 33813, 9: 28103, 10: 18178, 5: 216800, 6: 0, 7: 218800 },
    registers: [['1-1:0.2.129.255', 'KFM_001'], ['0-0:96.1.0.255', '6970631402614476'], ['0-0:96.1.7.255', 'MA304H3E']],
  },
  'dlms_llc_apdu_plain/amshan__kaifa-ma304h3e__no-list3-3ph-llc.hex': {
    format: 'llc', time: '2020-01-25T13:00:10Z', listId: 'KFM_001',
    channels: {
      3: 4904, 4: 0, 15: 0, 16: 377, 8: 14571, 9: 15643, 10: 9525, 5: 219300, 6: 0, 7: 220500,
      1: 79591144, 2: 0, 13: 889389, 14: 3210932,
    },
    registers: [['0-0:1.0.0.255', '2020-01-25T14:00:10']],
  },
  'dlms_llc_apdu_plain/amshan__kaifa-ma304h4__se-list-3ph-llc.hex': {
    format: 'llc', time: '2021-09-22T16:35:30Z', listId: 'KFM_001',
    channels: {
      3: 2816, 4: 0, 15: 0, 16: 66, 8: 6781, 9: 790, 10: 6125, 5: 232200, 6: 230000, 7: 228900,
      1: 4786979, 2: 0, 13: 26228, 14: 578528,
    },
    registers: [['1-0:0.2.129.255', 'KFM_001'], ['0-0:96.1.0.255', '7340734073407340'], ['0-0:96.1.7.255', 'MA304H4']],
  },
  // Kamstrup: flat OBIS/value pairs with no scalers; A in 1/100, energy in 10 Wh (amshan's scaling).
  'dlms_llc_apdu_plain/amshan__kamstrup-6861111__no-list1-1ph-real-sample-llc.hex': {
    format: 'llc', time: '2022-01-17T11:44:40Z', listId: 'Kamstrup_V0001', invokeId: 0,
    channels: { 3: 1896, 4: 0, 15: 0, 16: 493, 8: 8960, 5: 225000 },
    registers: [[null, 'Kamstrup_V0001'], ['1-1:0.0.5.255', '5705705705705702'], ['1-1:96.1.1.255', '6861111BN242101040'], ['1-1:31.7.0.255', 8.96]],
  },
  'dlms_llc_apdu_plain/amshan__kamstrup-6861111__no-list2-1ph-real-sample-llc.hex': {
    format: 'llc', time: '2021-11-23T23:00:25Z', listId: 'Kamstrup_V0001',
    channels: { 3: 10050, 4: 0, 15: 0, 16: 279, 8: 45120, 5: 223000, 1: 77452500, 2: 0, 13: 137310, 14: 11415870 },
    registers: [['0-1:1.0.0.255', '2021-11-24T00:00:25'], ['1-1:1.8.0.255', 77452500]],
  },
  // nooxnet/smart-meter-mbus-dlms tests: the invoke id and the date-time (epoch in Austrian time).
  'dlms_llc_apdu_plain/nooxnet-smart-meter-mbus-dlms__kaifa-salzburg-netz__apdu-decrypted-real.hex': {
    format: 'apdu', time: '2022-11-12T15:54:00Z', invokeId: 1571480,
    channels: { 1: 1327456, 2: 0, 3: 714, 4: 0, 5: 229200, 6: 231600, 7: 231400, 8: 1650, 9: 1730, 10: 370, 13: 4818, 14: 376416 },
    registers: [['0-0:96.1.0.255', '1KFM0200234804'], ['1-0:31.7.0.255', 1.65]],
  },
  'dlms_llc_apdu_plain/nooxnet-smart-meter-mbus-dlms__salzburg-netz__apdu-doc-example.hex': {
    format: 'apdu', time: '2016-09-08T17:13:25Z', invokeId: 21817, channels: { 1: 0, 13: 0 },
  },
  // esphome-libs/dlms_parser expected values (Kamstrup: raw, so scaled here as above).
  'hdlc_dlms_encrypted/esphome-dlms_parser__kamstrup-omnipower__ggc-list-encrypted.hex': {
    format: 'hdlc', time: '2026-03-12T14:24:30Z', listId: 'Kamstrup_V0001',
    security: 'encrypted+authenticated', systemTitle: '4b414d4501349083', frameCounter: 0x010f60a4,
    channels: {
      1: 63074980, 2: 0, 13: 3263600, 14: 21240570, 3: 1083, 4: 0, 15: 0, 16: 718, 5: 222000, 6: 221000, 7: 227000,
      8: 570, 9: 2280, 10: 3330, 17: 36, 18: 424, 19: 623, 20: 0, 21: 0, 22: 0,
    },
    registers: [[null, 'Kamstrup_V0001'], ['0-1:1.0.0.255', '2026-03-12T15:24:30'], ['1-1:21.8.0.255', 12116440], ['1-1:0.0.1.255', 12343400]],
  },
  'hdlc_dlms_encrypted/esphome-dlms_parser__landis-gyr-e450-a__gbt-3-frames-encrypted.hex': {
    format: 'hdlc', time: '2022-02-21T16:37:30Z', frames: 3,
    security: 'encrypted+authenticated', systemTitle: '4c475a677370b177', frameCounter: 0x00177bca,
    channels: { 1: 4408736, 2: 0, 3: 2893, 4: 0, 13: 1591784, 14: 1401005, 15: 1735, 16: 0 },
    registers: [['1-0:1.8.1.255', 3593919], ['1-0:1.8.2.255', 814817], ['1-0:4.8.2.255', 528522]],
  },
  // robinsmidsrod/ams-han-decoder .jsonl outputs.
  'hdlc_dlms_plain/robinsmidsrod-ams-han-decoder__aidon-6515__list2-1ph-doc-example.hex': {
    format: 'hdlc', time: null, listId: 'AIDON_V0001',
    channels: { 3: 1362, 4: 0, 15: 996, 16: 0, 8: 9300, 5: 250000 },
    registers: [['0-0:96.1.0.255', '7359992890941742'], ['0-0:96.1.7.255', '6515']],
  },
  'hdlc_dlms_plain/robinsmidsrod-ams-han-decoder__aidon-6525__list1-3ph.hex': {
    format: 'hdlc', time: null, channels: { 3: 1696 },
  },
  'hdlc_dlms_plain/robinsmidsrod-ams-han-decoder__aidon-6525__list2-3ph.hex': {
    format: 'hdlc', time: null, listId: 'AIDON_V0001',
    channels: { 3: 2077, 4: 0, 15: 0, 16: 86, 8: 4600, 10: 6100, 5: 237600, 6: 235900, 7: 236500 },
    registers: [['0-0:96.1.0.255', '7359992899161110']],
  },
  'hdlc_dlms_plain/robinsmidsrod-ams-han-decoder__aidon-6525__list3-3ph-hourly.hex': {
    // The meter states 18:00:00 with deviation +60 minutes (UTC = local + deviation).
    format: 'hdlc', time: '2019-06-12T19:00:00Z', listId: 'AIDON_V0001',
    channels: {
      3: 2204, 4: 0, 15: 0, 16: 135, 8: 4800, 10: 6900, 5: 237700, 6: 236400, 7: 236800,
      1: 21882340, 2: 0, 13: 333500, 14: 725400,
    },
  },
  'hdlc_dlms_plain/robinsmidsrod-ams-han-decoder__aidon-6525__list2-3ph-BAD-FCS-corrupted.hex': {
    error: ['hdlc', 'fcs'], message: /^HDLC FCS mismatch in frame 1: frame says DF 7E, computed 46 D7$/,
  },
  'hdlc_dlms_plain/robinsmidsrod-ams-han-decoder__kaifa-ma304h3e__list1.hex': {
    format: 'hdlc', time: '2017-02-03T14:46:14Z', channels: { 3: 229 },
  },
  'hdlc_dlms_plain/robinsmidsrod-ams-han-decoder__kaifa-ma304h3e__list2-3ph.hex': {
    format: 'hdlc', time: '2017-02-03T14:46:20Z', listId: 'KFM_001',
    channels: { 3: 228, 4: 0, 15: 0, 16: 5, 8: 954, 9: 45, 10: 932, 5: 239200, 6: 0, 7: 238000 },
    registers: [['0-0:96.1.0.255', '6970631400000066'], ['1-0:31.7.0.255', 0.954]],
  },
  'hdlc_dlms_plain/robinsmidsrod-ams-han-decoder__kaifa-ma304t4__list1.hex': {
    format: 'hdlc', time: '2017-01-18T13:17:54Z', channels: { 3: 446 },
  },
  'hdlc_dlms_plain/robinsmidsrod-ams-han-decoder__kaifa-ma304t4__list2-3ph.hex': {
    format: 'hdlc', time: '2017-01-18T13:18:00Z', listId: 'KFM_001',
    channels: { 3: 446, 4: 0, 15: 0, 16: 5, 8: 1616, 9: 914, 10: 950, 5: 138700, 6: 137800, 7: 137700 },
  },
  'hdlc_dlms_plain/esphome-dlms_parser__aidon__se-list-3ph-doc-example.hex': {
    format: 'hdlc', time: '2019-12-16T06:59:40Z',
    channels: {
      1: 10049926, 2: 8, 3: 1122, 4: 0, 5: 230700, 6: 249900, 7: 230800, 8: 0, 9: 7500, 10: 0, 13: 6614347, 14: 5,
      15: 1507, 16: 0, 17: 0, 18: 1122, 19: 0, 20: 0, 21: 0, 22: 0,
    },
    registers: [['1-0:43.7.0.255', 1506], ['1-0:23.7.0.255', 0], ['1-0:64.7.0.255', 0]],
  },
  // No values stated by the source: these are from SOURCES.md's independent decode.
  'hdlc_dlms_plain/csstenersen-node-red-ams-decoder__aidon-6515__list2-1ph.hex': {
    format: 'hdlc', time: null, listId: 'AIDON_V0001',
    channels: { 3: 0, 4: 1146, 15: 0, 16: 226, 8: -5100, 5: 243500 },
    registers: [['0-0:96.1.0.255', '7359992905602019']],
  },
  'mbus_dlms_encrypted/esphome-dlms_parser__kaifa-ma309-evn__netz-noe-doc-example-2-frames.hex': {
    format: 'mbus', time: '2021-09-27T07:47:15Z', frames: 2, security: 'encrypted', systemTitle: '4b464d6750000009', frameCounter: 35,
    channels: { 1: 12937, 2: 0, 3: 0, 4: 0, 5: 233700, 6: 0, 7: 0, 8: 0, 9: 0, 10: 0 },
    registers: [['1-0:13.7.0.255', 1], [null, '2021-09-27T09:47:15+02:00'], [null, '181220000009']],
  },
  'mbus_dlms_encrypted/esphome-dlms_parser__salzburg-netz__doc-example-NO-KEY.hex': {
    error: ['gcm', 'no-key'], message: /^frame 1 is encrypted \(system title 454c536570000001 \(ELS\), frame counter 21535\) but no meter key is set/,
  },
  'smarty_p1_encrypted/dsmr_parser__SYNTHETIC-sagemcom-t210-d-r__p1-encrypted-regenerated.hex': {
    format: 'smarty', time: '2022-10-06T13:50:14Z', security: 'encrypted+authenticated', systemTitle: '53595354454d4944', frameCounter: 0x10000001,
    channels: { 1: 6545766, 2: 58, 3: 286, 4: 0 },
  },
};

// The telegram dsmr_parser's test encrypts (test/example_telegrams.py TELEGRAM_SAGEMCOM_T210_D_R).
const SMARTY_PLAINTEXT = [
  '/EST5\\253710000_A', '', '1-3:0.2.8(50)', '0-0:1.0.0(221006155014S)', '1-0:1.8.0(006545766*Wh)', '1-0:1.8.1(005017120*Wh)',
  '1-0:1.8.2(001528646*Wh)', '1-0:1.7.0(000000286*W)', '1-0:2.8.0(000000058*Wh)', '1-0:2.8.1(000000000*Wh)',
  '1-0:2.8.2(000000058*Wh)', '1-0:2.7.0(000000000*W)', '1-0:3.8.0(000000747*varh)', '1-0:3.8.1(000000000*varh)',
  '1-0:3.8.2(000000747*varh)', '1-0:3.7.0(000000000*var)', '1-0:4.8.0(003897726*varh)', '1-0:4.8.1(002692848*varh)',
  '1-0:4.8.2(001204878*varh)', '1-0:4.7.0(000000166*var)', '!7EF9', '',
].join('\r\n');

function check(file: string, e: Expected, r: MeterReading, how: string): void {
  const at = `${file} (${how})`;
  assert.is(r.format, e.format, at);
  const channels: { [c: number]: number } = {};
  for (const [c, v] of r.values) channels[c] = v;
  assert.equal(channels, e.channels, at);
  for (let i = 1; i < r.values.length; i++) assert.ok(r.values[i][0] > r.values[i - 1][0], `${at}: channels ascending`);
  assert.is(r.time ?? null, e.time === null ? null : utc(e.time), `${at}: time`);
  if (e.security) assert.is(r.security, e.security, at);
  if (e.systemTitle) assert.is(r.systemTitle, e.systemTitle, at);
  if (e.frameCounter !== undefined) assert.is(r.frameCounter, e.frameCounter, at);
  if (e.invokeId !== undefined) assert.is(r.invokeId, e.invokeId, at);
  if (e.listId) assert.is(r.listId, e.listId, at);
  if (e.frames) assert.is(r.frames, e.frames, at);
}

function checkRegisters(file: string, e: Expected, r: MeterReading): void {
  if (!e.registers) return;
  const regs = r.registers ?? [];
  let bare = 0;
  const bareValues = regs.filter((x) => x.obis === null);
  for (const [obis, value] of e.registers) {
    const found = obis === null ? bareValues[bare++] : regs.find((x) => x.obis === obis);
    assert.ok(found, `${file}: register ${obis ?? 'without OBIS'}`);
    assert.is(found!.value, value, `${file}: register ${obis}`);
  }
}

function keysOf(file: string) {
  return fixtureKeys(file);
}

test('the fixture collection is all here', () => {
  assert.equal(Object.keys(DLMS_FIXTURES).sort(), Object.keys(EXPECTED).sort());
  assert.is(Object.keys(EXPECTED).length, 27);
});

test('each capture, whole: the values its source states', () => {
  for (const [file, e] of Object.entries(EXPECTED)) {
    const got = parseCapture(fixtureBytes(file), { ...keysOf(file), registers: true });
    if ('error' in e) {
      assert.equal(got.readings, [], file);
      assert.is(got.errors.length, 1, file);
      const err = got.errors[0];
      assert.instance(err, MeterError);
      assert.equal([err.layer, err.reason], e.error, file);
      assert.match(err.message, e.message, file);
      continue;
    }
    assert.equal(got.errors.map((x) => x.message), [], file);
    assert.is(got.readings.length, 1, file);
    check(file, e, got.readings[0], 'whole');
    checkRegisters(file, e, got.readings[0]);
  }
});

test('framed captures byte at a time and frame by frame between line noise parse the same', () => {
  for (const [file, e] of Object.entries(EXPECTED)) {
    const frames = fixtureFrames(file);
    if ('error' in e || file.startsWith('dlms_llc_apdu_plain/')) continue;
    const readings: MeterReading[] = [];
    const errors: MeterError[] = [];
    const p = new MeterParser({ ...keysOf(file), onReading: (r) => readings.push(r), onError: (x) => errors.push(x) });
    for (const b of cat(...frames)) p.push(Uint8Array.of(b));
    // Then again in frames, with idle bytes and a CR LF between, as a UART may deliver them.
    for (const f of frames) {
      p.push(Uint8Array.of(0x00, 0x0d, 0x0a, 0xff));
      p.push(f);
    }
    p.end();
    assert.equal(errors.map((x) => x.message), [], file);
    assert.is(readings.length, 2, file);
    check(file, e as Expected, readings[0], 'byte at a time');
    check(file, e as Expected, readings[1], 'frame by frame');
  }
});

test('Smarty: the envelope opens to the telegram its source encrypted, parsed by the P1 parser', () => {
  const file = 'smarty_p1_encrypted/dsmr_parser__SYNTHETIC-sagemcom-t210-d-r__p1-encrypted-regenerated.hex';
  const r = parseCapture(fixtureBytes(file), keysOf(file)).readings[0];
  const text = parseTelegram(latin1Bytes(SMARTY_PLAINTEXT));
  assert.is(r.header, text.header);
  assert.is(r.crc, 'ok');
  assert.equal(r.values, text.values);
  assert.is(text.obis, 18); // the 18 objects dsmr_parser's test expects
});

test('a wrong key is refused at the layer that can tell: the tag, or the decrypted bytes when there is no tag', () => {
  const wrong = { key: new Uint8Array(16).fill(0x42), authKey: new Uint8Array(16).fill(0x43) };
  const kamstrup = 'hdlc_dlms_encrypted/esphome-dlms_parser__kamstrup-omnipower__ggc-list-encrypted.hex';
  const a = parseCapture(fixtureBytes(kamstrup), wrong);
  assert.equal(a.readings, []);
  assert.equal(a.errors.map((x) => [x.layer, x.reason]), [['gcm', 'tag']]);
  assert.match(a.errors[0].message, /^GCM tag does not match: wrong key\? \(frame 1, system title 4b414d4501349083 \(KAM\), frame counter 17784996\)$/);
  // Right key, wrong authentication key: the tag still fails.
  const b = parseCapture(fixtureBytes(kamstrup), { key: fixtureKeys(kamstrup).key, authKey: wrong.authKey });
  assert.equal(b.errors.map((x) => x.reason), ['tag']);
  const evn = 'mbus_dlms_encrypted/esphome-dlms_parser__kaifa-ma309-evn__netz-noe-doc-example-2-frames.hex';
  const c = parseCapture(fixtureBytes(evn), wrong);
  assert.equal(c.readings, []);
  assert.equal(c.errors.map((x) => [x.layer, x.reason]), [['gcm', 'garbage']]);
  assert.match(c.errors[0].message, /wrong key\? \(this meter does not authenticate its frames/);
  // No authentication key where the meter authenticates.
  const d = parseCapture(fixtureBytes(kamstrup), { key: fixtureKeys(kamstrup).key });
  assert.equal(d.errors.map((x) => x.reason), ['no-auth-key']);
  assert.match(d.errors[0].message, /config set meter\.auth_key/);
});

test.run();
