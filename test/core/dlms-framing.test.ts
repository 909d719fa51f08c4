// The transport layers under DLMS (firmware/core/meter/hdlc.ts, mbus.ts, envelope.ts, dlms.ts): what a
// meter's line does to frames — noise, lost bytes, frames split in segments and blocks — and how each
// is reported. Frames are built from the real fixture payloads (support/dlms-build.ts). Runs in XS too.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fromHex } from '../../firmware/core/bytes.js';
import { MeterError } from '../../firmware/core/meter/error.js';
import { fcs16, HdlcFramer } from '../../firmware/core/meter/hdlc.js';
import { detectFormat, MeterParser, parseCapture, type MeterType } from '../../firmware/core/meter/meter.js';
import type { MeterReading } from '../../firmware/core/meter/reading.js';
import { cat, fixtureBytes, fixtureFrames, fixtureKeys, gbtBlocks, glo, hdlcFrame, hdlcSegments, latin1Bytes, mbusFrames } from './support/dlms-build.js';

const AIDON_SE = 'hdlc_dlms_plain/esphome-dlms_parser__aidon__se-list-3ph-doc-example.hex';
const AIDON_LIST2 = 'hdlc_dlms_plain/robinsmidsrod-ams-han-decoder__aidon-6525__list2-3ph.hex';
const KAIFA_LIST2 = 'hdlc_dlms_plain/robinsmidsrod-ams-han-decoder__kaifa-ma304h3e__list2-3ph.hex';
const SALZBURG = 'dlms_llc_apdu_plain/nooxnet-smart-meter-mbus-dlms__kaifa-salzburg-netz__apdu-decrypted-real.hex';
const SMARTY = 'smarty_p1_encrypted/dsmr_parser__SYNTHETIC-sagemcom-t210-d-r__p1-encrypted-regenerated.hex';

function collect(type: MeterType = 'auto', keys: { key?: Uint8Array; authKey?: Uint8Array } = {}) {
  const readings: MeterReading[] = [];
  const errors: MeterError[] = [];
  const p = new MeterParser({ type, ...keys, onReading: (r) => readings.push(r), onError: (e) => errors.push(e) });
  return { p, readings, errors };
}

/** The information field of a one-frame HDLC capture (LLC header and APDU). */
function info(name: string): Uint8Array {
  const f = fixtureFrames(name)[0];
  return f.subarray(9, f.length - 3); // 7E, format(2), dst, src(2), control, HCS(2) … FCS(2), 7E
}

const values = (r: MeterReading) => JSON.stringify(r.values);
const reference = (name: string) => values(parseCapture(fixtureBytes(name), fixtureKeys(name)).readings[0]);

test('FCS-16 (CRC-16/X.25): check value, and every fixture frame ends with its own', () => {
  assert.is(fcs16(latin1Bytes('123456789')), 0x906e);
  const f = fixtureFrames(AIDON_LIST2)[0];
  const fcs = fcs16(f, 1, f.length - 3);
  assert.equal([f[f.length - 3], f[f.length - 2]], [fcs & 0xff, fcs >> 8]);
});

test('HDLC: frames back to back, sharing a flag, and between noise that contains 0x7E', () => {
  const a = fixtureFrames(AIDON_LIST2)[0];
  const k = fixtureFrames(KAIFA_LIST2)[0];
  const c = collect('dlms');
  const noise = Uint8Array.of(0x7e, 0xa0, 0x00, 0x7e, 0x7e, 0x41, 0x7e, 0xa8, 0x23, 0x41, 0x83, 0x13, 0x00, 0x00, 0x55);
  // k's opening flag dropped: a's closing flag opens it.
  c.p.push(cat(noise, a, k.subarray(1), noise, a, noise));
  c.p.end();
  assert.equal(c.errors.map((e) => e.message), []);
  assert.equal(c.readings.map(values), [reference(AIDON_LIST2), reference(KAIFA_LIST2), reference(AIDON_LIST2)]);
});

test('HDLC: a frame that lost a byte on the line is reported and costs only itself', () => {
  const a = fixtureFrames(AIDON_LIST2)[0];
  const k = fixtureFrames(KAIFA_LIST2)[0];
  const damaged = cat(a.subarray(0, 100), a.subarray(101));
  const c = collect('dlms');
  c.p.push(cat(damaged, k));
  assert.equal(c.readings.map(values), [reference(KAIFA_LIST2)]);
  assert.is(c.errors.length, 1);
  assert.equal([c.errors[0].layer, c.errors[0].reason, c.errors[0].frame], ['hdlc', 'fcs', 1]);
  assert.match(c.errors[0].message, /^HDLC FCS mismatch in frame 1: frame says [0-9A-F]{2} [0-9A-F]{2}, computed [0-9A-F]{2} [0-9A-F]{2}$/);
  // A frame one byte short is read on into the next one's flag: reported as such, and the next parses.
  const c2 = collect('dlms');
  c2.p.push(cat(a.subarray(0, a.length - 2), Uint8Array.of(0x7e), k));
  assert.equal(c2.readings.map(values), [reference(KAIFA_LIST2)]);
  assert.equal(c2.errors.map((e) => e.layer), ['hdlc']);
});

test('HDLC: a message in segments (the S bit) is joined; the framer never holds more than its capacity', () => {
  const message = info(AIDON_SE);
  const frames = hdlcSegments(message, 100);
  assert.is(frames.length, Math.ceil(message.length / 100));
  const c = collect('dlms');
  for (const f of frames) for (const b of f) c.p.push(Uint8Array.of(b));
  assert.equal(c.errors, []);
  assert.equal(c.readings.map(values), [reference(AIDON_SE)]);
  assert.is(c.readings[0].frames, frames.length);

  let max = 0;
  const framer = new HdlcFramer({ maxBytes: 64, onFrame: () => {} });
  for (const b of cat(...frames, fixtureBytes(AIDON_SE))) {
    framer.push(Uint8Array.of(b));
    max = Math.max(max, framer.buffered);
  }
  assert.ok(max <= framer.capacity, `${max} > ${framer.capacity}`);
});

test('HDLC: a frame cut off by the end of the input, and one with no closing flag, are named', () => {
  const a = fixtureFrames(AIDON_LIST2)[0];
  const cut = parseCapture(a.subarray(0, 150));
  assert.equal(cut.errors.map((e) => [e.layer, e.reason]), [['hdlc', 'truncated']]);
  assert.match(cut.errors[0].message, /^input ended inside HDLC frame 1 \(\d+ of its 267 bytes\)$/);
  const open = cat(a.subarray(0, a.length - 1), Uint8Array.of(0x00));
  const noFlag = parseCapture(open);
  assert.equal(noFlag.errors.map((e) => e.reason), ['flag']);
  assert.match(noFlag.errors[0].message, /is not followed by a closing flag \(0x7E\) but by 0x00/);
});

test('block transfer: an APDU in blocks over several frames is joined; a missing block loses the message, not the next', () => {
  const apdu = info(AIDON_SE).subarray(3); // without the LLC header
  const blocks = gbtBlocks(apdu, 120);
  const frames = blocks.map((b, i) => hdlcFrame(i === 0 ? cat(Uint8Array.of(0xe6, 0xe7, 0x00), b) : b));
  const c = collect('dlms');
  c.p.push(cat(...frames));
  assert.equal(c.errors, []);
  assert.equal(c.readings.map(values), [reference(AIDON_SE)]);
  assert.is(c.readings[0].frames, blocks.length);
  const gap = collect('dlms');
  gap.p.push(cat(frames[0], ...frames.slice(2), ...frames));
  assert.equal(gap.errors.map((e) => [e.layer, e.reason]), [['gbt', 'sequence']]);
  assert.match(gap.errors[0].message, /^block 3 of a block transfer arrived \(frame 2\) where block 2 was expected: the message is lost$/);
  assert.equal(gap.readings.map(values), [reference(AIDON_SE)]);
});

test('M-Bus: an APDU over several long frames (CI segments) is joined; out-of-order and non-DLMS frames are named', () => {
  const apdu = fixtureBytes(SALZBURG);
  const frames = mbusFrames(apdu, 100);
  assert.is(frames.length, 4);
  const c = collect('mbus');
  for (const f of frames) c.p.push(f);
  assert.equal(c.errors, []);
  assert.equal(c.readings.map(values), [reference(SALZBURG)]);
  assert.is(c.readings[0].format, 'mbus');
  assert.is(c.readings[0].frames, 4);

  const swapped = collect('mbus');
  swapped.p.push(cat(frames[0], frames[2], frames[1], frames[3], ...frames));
  assert.equal(swapped.errors.map((e) => [e.layer, e.reason]), [['mbus', 'segment']], 'one error per message lost');
  assert.match(swapped.errors[0].message, /^M-Bus frame 2 is segment 2 of a message whose segment 1 was expected: the message is lost$/);
  assert.equal(swapped.readings.map(values), [reference(SALZBURG)]);

  // A plain M-Bus meter's variable data (CI 0x72) is not DLMS.
  const plain = mbusFrames(apdu.subarray(0, 40), 100)[0];
  plain[6] = 0x72;
  let sum = 0;
  for (let i = 4; i < plain.length - 2; i++) sum = (sum + plain[i]) & 0xff;
  plain[plain.length - 2] = sum;
  const p = parseCapture(plain);
  assert.equal(p.errors.map((e) => e.message), ['M-Bus frame 1 carries CI 0x72, not DLMS/COSEM (CI 0x00–0x1F): is this a plain M-Bus meter (EN 13757-3)?']);
  plain[plain.length - 2] ^= 0xff;
  assert.match(parseCapture(plain).errors[0].message, /^M-Bus checksum mismatch in frame 1: frame says 0x[0-9A-F]{2}, computed 0x[0-9A-F]{2}$/);
});

test('ciphering: authenticated and encrypted, encrypted only, authenticated only, each with its keys', () => {
  const plain = fixtureBytes(SALZBURG);
  const key = fromHex('000102030405060708090a0b0c0d0e0f');
  const authKey = fromHex('d0d1d2d3d4d5d6d7d8d9dadbdcdddedf');
  const title = latin1Bytes('KFM\x01\x02\x03\x04\x05');
  for (const sc of [0x30, 0x20, 0x10]) {
    const apdu = glo(plain, { key, authKey, title, counter: 0x1234 + sc, sc });
    const r = parseCapture(cat(...mbusFrames(apdu, 200)), { key, authKey });
    assert.equal(r.errors.map((e) => e.message), [], `SC ${sc}`);
    assert.equal(r.readings.map(values), [reference(SALZBURG)], `SC ${sc}`);
    assert.is(r.readings[0].security, sc === 0x30 ? 'encrypted+authenticated' : sc === 0x20 ? 'encrypted' : 'authenticated');
    assert.is(r.readings[0].systemTitle, '4b464d0102030405');
    assert.is(r.readings[0].frameCounter, 0x1234 + sc);
  }
  // Authenticated only: changing one byte of the clear text fails the tag.
  const auth = glo(plain, { key, authKey, title, counter: 1, sc: 0x10 });
  auth[40] ^= 1;
  assert.equal(parseCapture(cat(...mbusFrames(auth, 200)), { key, authKey }).errors.map((e) => e.reason), ['tag']);
  // Compression and other suites are not read.
  const compressed = glo(plain, { key, authKey, title, counter: 1, sc: 0x30 });
  compressed[13] = 0xb0;
  assert.match(parseCapture(cat(...mbusFrames(compressed, 200)), { key, authKey }).errors[0].message, /security control 0xB0: only suite 0 \(AES-GCM-128\) without compression/);
});

test('keys are asked for when a frame needs them: a key set later applies from the next frame, no restart', () => {
  const name = 'hdlc_dlms_encrypted/esphome-dlms_parser__kamstrup-omnipower__ggc-list-encrypted.hex';
  const frame = fixtureBytes(name);
  let keys: { key?: Uint8Array; authKey?: Uint8Array } | undefined;
  let asked = 0;
  let version = 0;
  const readings: MeterReading[] = [];
  const errors: MeterError[] = [];
  const p = new MeterParser({
    type: 'dlms', keys: () => (asked++, keys), keysVersion: () => version,
    onReading: (r) => readings.push(r), onError: (e) => errors.push(e),
  });
  p.push(frame);
  assert.equal(errors.map((e) => e.reason), ['no-key']);
  keys = fixtureKeys(name); // set, but nobody said so: the frame that fails asks again
  p.push(frame);
  p.push(frame);
  assert.is(readings.length, 2);
  const before = asked;
  p.push(frame);
  assert.is(asked, before, 'keys that work are not asked for again');
  assert.is(readings.length, 3);
  // Set anew (the console and the config body bump the version): applies from the next frame.
  keys = { key: new Uint8Array(16), authKey: new Uint8Array(16) };
  version++;
  p.push(frame);
  assert.equal(errors.map((e) => e.reason), ['no-key', 'tag']);
  assert.is(readings.length, 3);
});

test('Smarty: ciphered envelopes among line noise, a damaged one reported, the next one read', () => {
  const name = SMARTY;
  const frame = fixtureBytes(name);
  const damaged = frame.slice();
  damaged[300] ^= 0x10;
  const c = collect('smarty', fixtureKeys(name));
  c.p.push(cat(latin1Bytes('\r\n'), damaged, Uint8Array.of(0xdb, 0x08, 0x00), frame, latin1Bytes('\r\n')));
  c.p.end();
  assert.equal(c.errors.map((e) => [e.layer, e.reason]), [['gcm', 'tag']]);
  assert.is(c.readings.length, 1);
  assert.is(c.readings[0].format, 'smarty');
  assert.is(c.readings[0].header, 'EST5\\253710000_A');
  // A Smarty meter that sends its telegram in clear is read as a P1 telegram.
  const text = latin1Bytes('/X5\r\n\r\n1-0:1.7.0(00.123*kW)\r\n!');
  const clear = collect('smarty');
  clear.p.push(text);
  clear.p.push(latin1Bytes('\r\n'));
  clear.p.end();
  assert.equal(clear.readings.map((r) => [r.format, values(r)]), [['dsmr', '[[3,123]]']]);
});

test('the first bytes of a capture say what it is; nothing recognisable is named as such', () => {
  assert.is(detectFormat(latin1Bytes('\r\n/ISK5\\2M550T\r\n')), 'dsmr');
  assert.is(detectFormat(fixtureBytes(AIDON_LIST2)), 'hdlc');
  assert.is(detectFormat(fixtureBytes('mbus_dlms_encrypted/esphome-dlms_parser__salzburg-netz__doc-example-NO-KEY.hex')), 'mbus');
  assert.is(detectFormat(fixtureBytes(SMARTY)), 'envelope');
  assert.is(detectFormat(fixtureBytes('dlms_llc_apdu_plain/amshan__aidon__no-list1-llc.hex')), 'llc');
  assert.is(detectFormat(fixtureBytes(SALZBURG)), 'apdu');
  assert.is(detectFormat(latin1Bytes('hello')), undefined);
  const none = parseCapture(latin1Bytes('hello, this is not a meter\r\n'));
  assert.equal(none.errors.map((e) => [e.layer, e.message]), [['detect', 'no meter frame found in 28 bytes (looked for P1 text telegrams, ciphered envelopes (0xDB), HDLC frames, M-Bus long frames)']]);
});

test('a framing recognised by mistake in noise is let go after 8 KiB without frames', () => {
  const c = collect('dlms');
  // An HDLC header with a good HCS, then nothing HDLC: the M-Bus frames that follow are still read.
  const header = hdlcFrame(new Uint8Array(100)).subarray(0, 12);
  c.p.push(header);
  const frames = mbusFrames(fixtureBytes(SALZBURG), 200);
  for (let i = 0; i < 40; i++) for (const f of frames) c.p.push(f);
  assert.ok(c.readings.length >= 5, `${c.readings.length} readings`);
  assert.is(c.readings[c.readings.length - 1].format, 'mbus');
});

test.run();
