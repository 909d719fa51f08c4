// Fuzzing the meter parser (firmware/core/meter/meter.ts) with mutated captures of every format, from a
// seed so that any failure replays. Used by dlms-fuzz.test.ts (20,000 iterations) and `npm run bench`
// (1,000,000: scripts/bench/dlms.ts). It throws FuzzFailure (naming seed and iteration) when an
// invariant breaks:
// - nothing but MeterError comes out of parseCapture, and nothing at all escapes push()/end();
// - no framing holds more than its capacity;
// - every accepted reading is well formed: ascending unique channels 1–22 with safe integer values, an
//   integer clock if any;
// - an unmutated capture parses exactly as it did alone;
// - a capture whose every byte a check covers (HDLC FCS, the M-Bus checksum, a GCM tag) with one
//   flipped bit is never accepted with values other than the original's.
// The corpus: the 27 captures in test/fixtures/dlms with their keys, the LLC and APDU ones in HDLC
// frames, and frames made from them: HDLC segments, block transfers, M-Bus segments, ciphered in all three
// security modes.

import { MeterError } from '../../firmware/core/meter/error.js';
import { MAX_CHANNEL } from '../../firmware/core/wire/constants.js';
import { MeterParser, parseCapture } from '../../firmware/core/meter/meter.js';
import type { MeterReading } from '../../firmware/core/meter/reading.js';
import { mulberry32 } from '../../firmware/core/prng.js';
import { DLMS_FIXTURES } from '../core/support/dlms-fixtures.js';
import { cat, fixtureBytes, fixtureKeys, gbtBlocks, glo, hdlcFrame, hdlcSegments, mbusFrames } from '../core/support/dlms-build.js';
import { FuzzFailure as Failure, mutate, MUTATIONS, streamRound, type Grammar } from './fuzz-mutate.js';

class FuzzFailure extends Failure {
  constructor(message: string, seed: number, iteration: number, input?: Uint8Array) {
    super(message, seed, iteration, input, 'fuzzDlms');
  }
}

interface Keys { key?: Uint8Array; authKey?: Uint8Array }

export interface Capture {
  name: string;
  bytes: Uint8Array;
  keys: Keys;
  /** Every byte is covered by an integrity check (so one flipped bit must never change the values). */
  checked: boolean;
}

const KEY = Uint8Array.from({ length: 16 }, (_, i) => 0x10 + i);
const AUTH = Uint8Array.from({ length: 16 }, (_, i) => 0xa0 + i);
const TITLE = Uint8Array.of(0x46, 0x55, 0x5a, 1, 2, 3, 4, 5);

/** The corpus (see above). */
export function captures(): Capture[] {
  const out: Capture[] = [];
  for (const name of Object.keys(DLMS_FIXTURES)) {
    const bytes = fixtureBytes(name);
    const keys = fixtureKeys(name);
    if (name.startsWith('dlms_llc_apdu_plain/')) {
      const llc = bytes[0] === 0xe6 ? bytes : cat(Uint8Array.of(0xe6, 0xe7, 0x00), bytes);
      out.push({ name: `${name} in an HDLC frame`, bytes: hdlcFrame(llc), keys, checked: true });
      continue;
    }
    // The Smarty envelope has no check of its own beyond the tag; the Salzburg capture cannot be opened.
    out.push({ name, bytes, keys, checked: !name.includes('NO-KEY') });
  }
  const aidon = fixtureBytes('hdlc_dlms_plain/esphome-dlms_parser__aidon__se-list-3ph-doc-example.hex');
  const info = aidon.subarray(9, aidon.length - 3);
  const apdu = fixtureBytes('dlms_llc_apdu_plain/nooxnet-smart-meter-mbus-dlms__kaifa-salzburg-netz__apdu-decrypted-real.hex');
  out.push({ name: 'Aidon list in 4 HDLC segments', bytes: cat(...hdlcSegments(info, 150)), keys: {}, checked: true });
  out.push({
    name: 'Salzburg APDU in block transfer over HDLC', checked: true, keys: {},
    bytes: cat(...gbtBlocks(apdu, 90).map((b, i) => hdlcFrame(i === 0 ? cat(Uint8Array.of(0xe6, 0xe7, 0), b) : b))),
  });
  out.push({ name: 'Salzburg APDU in M-Bus segments', bytes: cat(...mbusFrames(apdu, 70)), keys: {}, checked: true });
  for (const sc of [0x30, 0x20, 0x10]) {
    const ciphered = glo(apdu, { key: KEY, authKey: AUTH, title: TITLE, counter: 77 + sc, sc });
    out.push({ name: `Salzburg APDU ciphered (SC ${sc.toString(16)}) in M-Bus`, bytes: cat(...mbusFrames(ciphered, 200)), keys: { key: KEY, authKey: AUTH }, checked: true });
  }
  return out;
}

/** Binary meter frames: their framing bytes, and (when a check covers the capture) all of it. */
function grammar(c: Capture): Grammar {
  return {
    special: [0x7e, 0xa0, 0xa8, 0x68, 0x16, 0xdb, 0x08, 0xe6, 0xe7, 0x0f, 0xe0, 0x02, 0x09, 0x06, 0x12, 0x00, 0xff, 0x2f, 0x21],
    covered: (b) => (c.checked && b.length > 0 ? [0, b.length - 1] : undefined),
    framing: [0x7e, 0x68, 0x16, 0xdb],
    start: 0x7e,
  };
}

export interface DlmsFuzzStats {
  iterations: number;
  seed: number;
  bytes: number;
  accepted: number;
  /** Refusals by layer, from parseCapture and the long-lived stream. */
  refused: Record<string, number>;
  acceptedChanged: number;
  /** Of those, from a capture whose every byte is checked: must stay 0 for one flipped bit. */
  acceptedChangedChecked: number;
  maxBuffered: number;
  capacity: number;
  seconds: number;
}

function sameValues(a: MeterReading[], b: MeterReading[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (JSON.stringify(a[i].values) !== JSON.stringify(b[i].values) || a[i].time !== b[i].time) return false;
  return true;
}

function wellFormed(r: MeterReading): string | undefined {
  if (r.time !== undefined && !Number.isSafeInteger(r.time)) return `time ${r.time}`;
  let last = 0;
  for (const [c, v] of r.values) {
    if (!Number.isInteger(c) || c <= last || c > MAX_CHANNEL) return `channel ${c} after ${last}`;
    if (!Number.isSafeInteger(v)) return `value ${v} on channel ${c}`;
    last = c;
  }
  return undefined;
}

export function fuzzDlms(options: { iterations: number; seed: number }): DlmsFuzzStats {
  const { iterations, seed } = options;
  const corpus = captures();
  const rnd = mulberry32(seed);
  const int = (n: number) => Math.floor(rnd() * n);
  const started = Date.now();
  const alone = corpus.map((c) => parseCapture(c.bytes, c.keys).readings);
  const stats: DlmsFuzzStats = {
    iterations, seed, bytes: 0, accepted: 0, refused: {}, acceptedChanged: 0, acceptedChangedChecked: 0, maxBuffered: 0, capacity: 0, seconds: 0,
  };
  const refused = (e: MeterError) => {
    stats.refused[e.layer] = (stats.refused[e.layer] ?? 0) + 1;
  };

  // One long-lived parser sees everything, as a UART would; it must keep resynchronising. Its keys are
  // the current capture's.
  let keys: Keys = {};
  let version = 0;
  let iteration = 0;
  let problem: string | undefined;
  const stream = new MeterParser({
    type: 'auto', keys: () => keys, keysVersion: () => version,
    onReading(r) {
      const bad = wellFormed(r);
      if (bad && !problem) problem = `the stream accepted a malformed reading: ${bad}`;
    },
    onError(e) {
      if (!(e instanceof MeterError)) problem ??= `odd error ${String(e)}`;
      else refused(e);
    },
  });
  stats.capacity = stream.capacity;

  for (iteration = 0; iteration < iterations; iteration++) {
    const k = int(corpus.length);
    const c = corpus[k];
    const kind = MUTATIONS[int(MUTATIONS.length)];
    const input = mutate(kind, c.bytes, corpus[int(corpus.length)].bytes, rnd, grammar(c));
    stats.bytes += input.length;
    problem = undefined;

    // 1. A fresh parse of the whole capture: refusals are MeterErrors, nothing is thrown.
    let got: { readings: MeterReading[]; errors: MeterError[] };
    try {
      got = parseCapture(input, { ...c.keys, registers: int(8) === 0 });
    } catch (e) {
      throw new FuzzFailure(`parseCapture threw ${String(e)}`, seed, iteration, input);
    }
    for (const e of got.errors) {
      if (!(e instanceof MeterError)) throw new FuzzFailure(`parseCapture reported ${String(e)}`, seed, iteration, input);
      refused(e);
    }
    for (const r of got.readings) {
      const bad = wellFormed(r);
      if (bad) throw new FuzzFailure(`parseCapture accepted a malformed reading: ${bad}`, seed, iteration, input);
    }
    if (got.readings.length) {
      stats.accepted += got.readings.length;
      if (kind === 'none' && !sameValues(got.readings, alone[k])) {
        throw new FuzzFailure(`${c.name} parsed differently in the fuzzer`, seed, iteration, input);
      }
      // A splice can leave another capture whole: that parse is right. Count only results no capture gives.
      const known = (r: MeterReading) => alone.some((a) => a.some((x) => JSON.stringify(x.values) === JSON.stringify(r.values)));
      if (kind !== 'none' && got.readings.some((r) => !known(r))) {
        stats.acceptedChanged++;
        if (kind === 'flip1' && c.checked) stats.acceptedChangedChecked++;
      }
      if (kind === 'flip1' && c.checked) {
        for (const r of got.readings) {
          if (!alone[k].some((a) => JSON.stringify(a.values) === JSON.stringify(r.values))) {
            throw new FuzzFailure(`a one-bit error in ${c.name} was accepted with other values`, seed, iteration, input);
          }
        }
      }
    }

    // 2. The long-lived stream, with the input between noise, in random chunks; nothing may escape.
    if (keys !== c.keys) {
      keys = c.keys;
      version++;
    }
    streamRound({ feed: (d) => feed(stream, d), end: () => stream.end(), reset: () => stream.reset() }, input, grammar(c).special, int,
      (why) => new FuzzFailure(why, seed, iteration, input));
    if (problem) throw new FuzzFailure(problem, seed, iteration, input);
  }
  stats.seconds = (Date.now() - started) / 1000;
  return stats;

  function feed(p: MeterParser, data: Uint8Array): void {
    const maxChunk = [1, 3, 16, 64, 512, 4096][int(6)];
    for (let i = 0; i < data.length; ) {
      const n = 1 + int(maxChunk);
      p.push(data.subarray(i, i + n));
      if (p.buffered > p.capacity) throw new FuzzFailure(`a framing holds ${p.buffered} > ${p.capacity}`, seed, iteration, data);
      if (p.buffered > stats.maxBuffered) stats.maxBuffered = p.buffered;
      i += n;
    }
  }
}

/** Messages per second through the parser for each kind of capture, whole-buffer and byte at a time. */
export function dlmsParseRate(options: { seconds?: number } = {}): Array<{ capture: string; bytes: number; wholePerSecond: number; bytewisePerSecond: number }> {
  const budget = ((options.seconds ?? 1) * 1000) / 2;
  const kinds: Array<[string, string]> = [
    ['HDLC, plain (Aidon list 2, NO)', 'hdlc_dlms_plain/robinsmidsrod-ams-han-decoder__aidon-6525__list2-3ph.hex'],
    ['HDLC, values only (Kaifa list 3, NO)', 'dlms_llc_apdu_plain/amshan__kaifa-ma304h3e__no-list3-3ph-llc.hex'],
    ['HDLC, ciphered (Kamstrup Omnipower, DK)', 'hdlc_dlms_encrypted/esphome-dlms_parser__kamstrup-omnipower__ggc-list-encrypted.hex'],
    ['HDLC, block transfer, ciphered (Landis+Gyr E450)', 'hdlc_dlms_encrypted/esphome-dlms_parser__landis-gyr-e450-a__gbt-3-frames-encrypted.hex'],
    ['M-Bus, 2 frames, encrypted (Kaifa, AT)', 'mbus_dlms_encrypted/esphome-dlms_parser__kaifa-ma309-evn__netz-noe-doc-example-2-frames.hex'],
    ['Smarty envelope (LU)', 'smarty_p1_encrypted/dsmr_parser__SYNTHETIC-sagemcom-t210-d-r__p1-encrypted-regenerated.hex'],
  ];
  const corpus = captures();
  const out = [];
  for (const [label, name] of kinds) {
    const c = corpus.find((x) => x.name.startsWith(name))!;
    let count = 0;
    const parser = new MeterParser({ ...c.keys, type: 'auto', onReading: () => count++ });
    const singles = Array.from(c.bytes, (b) => Uint8Array.of(b));
    const run = (bytewise: boolean) => {
      count = 0;
      const t0 = Date.now();
      while (Date.now() - t0 < budget) {
        if (bytewise) for (const one of singles) parser.push(one);
        else parser.push(c.bytes);
      }
      return Math.round((count * 1000) / (Date.now() - t0));
    };
    out.push({ capture: label, bytes: c.bytes.length, wholePerSecond: run(false), bytewisePerSecond: run(true) });
  }
  return out;
}
