// Fuzzing the DSMR telegram parser with mutated fixture telegrams, from a seed so that any failure
// replays. Used by dsmr-fuzz.test.ts (~20,000 iterations) and callable by a benchmark:
//   import { fuzzDsmr } from './test/host/dsmr-fuzz.js';
//   const stats = fuzzDsmr({ iterations: 1_000_000, seed: 1 });
// It throws FuzzFailure (naming seed and iteration) when an invariant breaks:
// - nothing but TelegramError escapes parseTelegram, and nothing at all escapes push()/end();
// - the parser's buffer never holds more than its capacity;
// - every accepted telegram is well formed: crc 'ok' | 'none', ascending unique channels 1–12 with safe
//   integer values, an integer clock if any;
// - an unmutated telegram parses exactly as it did alone, whatever the chunking and the noise around it;
// - a CRC-protected telegram with one flipped bit, fed to a parser that has seen that meter's CRCs, is
//   never accepted with values other than the original's (CRC-16 catches every single-bit error).
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseTelegram, TelegramError, TelegramParser, type TelegramResult } from '../../firmware/core/meter/dsmr.js';
import { mulberry32 } from '../../firmware/core/prng.js';
import { FuzzFailure, mutate, MUTATIONS, streamRound, type Grammar } from './fuzz-mutate.js';

/** The fuzzer's generator (mulberry32, firmware/core/prng.ts). */
export const prng = mulberry32;

export const FIXTURE_DIR = join(fileURLToPath(import.meta.url), '..', '..', 'fixtures', 'dsmr');

export function loadFixtureTelegrams(dir = FIXTURE_DIR): Array<{ file: string; bytes: Uint8Array }> {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.txt'))
    .sort()
    .map((file) => ({ file, bytes: new Uint8Array(readFileSync(join(dir, file))) }));
}

export { FuzzFailure } from './fuzz-mutate.js';

export interface FuzzStats {
  iterations: number;
  seed: number;
  bytes: number;
  accepted: number;
  /** Refusals by reason, from both the streaming parser and parseTelegram. */
  refused: Record<'crc' | 'too-long' | 'malformed' | 'truncated', number>;
  /** Mutated telegrams that parseTelegram accepted with values that no unmutated fixture gives. */
  acceptedChanged: number;
  /** Of those, how many had a CRC (a CRC-16 collision or a mutation outside the covered bytes). */
  acceptedChangedWithCrc: number;
  maxBuffered: number;
  capacity: number;
  seconds: number;
}


/** P1 text: its special bytes, and the CRC covering '/' … '!'. */
const P1: Grammar = {
  special: [0x2f, 0x21, 0x28, 0x29, 0x2a, 0x2e, 0x2d, 0x3a, 0x0d, 0x0a, 0x30, 0x31, 0x39, 0x41, 0x66, 0x53, 0x57, 0x00, 0xff],
  covered(b) {
    const start = b.indexOf(0x2f);
    const end = b.indexOf(0x21);
    return start < 0 || end < start ? undefined : [start, end];
  },
  framing: [0x2f, 0x21],
  start: 0x2f,
};
const SPECIAL = P1.special;

function sameValues(a: TelegramResult, b: TelegramResult): boolean {
  if (a.values.length !== b.values.length || a.time !== b.time) return false;
  for (let i = 0; i < a.values.length; i++) {
    if (a.values[i][0] !== b.values[i][0] || a.values[i][1] !== b.values[i][1]) return false;
  }
  return true;
}

function wellFormed(r: TelegramResult): string | undefined {
  if (r.crc !== 'ok' && r.crc !== 'none') return `crc ${String(r.crc)}`;
  if (typeof r.header !== 'string') return 'header not a string';
  if (!Number.isInteger(r.obis) || r.obis < 0) return `obis ${r.obis}`;
  if (r.time !== undefined && !Number.isSafeInteger(r.time)) return `time ${r.time}`;
  let last = 0;
  for (const [c, v] of r.values) {
    if (!Number.isInteger(c) || c <= last || c > 12) return `channel ${c} after ${last}`;
    if (!Number.isSafeInteger(v)) return `value ${v} on channel ${c}`;
    last = c;
  }
  return undefined;
}

export function fuzzDsmr(options: {
  iterations: number;
  seed: number;
  telegrams?: Array<{ file: string; bytes: Uint8Array }>;
  maxBytes?: number;
}): FuzzStats {
  const { iterations, seed } = options;
  const telegrams = options.telegrams ?? loadFixtureTelegrams();
  const rnd = prng(seed);
  const int = (n: number) => Math.floor(rnd() * n);
  const started = Date.now();

  // What each fixture gives alone (or how it is refused).
  const alone = telegrams.map(({ bytes }) => {
    try {
      return parseTelegram(bytes, { maxBytes: options.maxBytes });
    } catch (e) {
      if (!(e instanceof TelegramError)) throw e;
      return e;
    }
  });

  const stats: FuzzStats = {
    iterations,
    seed,
    bytes: 0,
    accepted: 0,
    refused: { crc: 0, 'too-long': 0, malformed: 0, truncated: 0 },
    acceptedChanged: 0,
    acceptedChangedWithCrc: 0,
    maxBuffered: 0,
    capacity: 0,
    seconds: 0,
  };

  let iteration = 0;
  let problem: string | undefined;
  const results: TelegramResult[] = [];
  const errors: TelegramError[] = [];
  const onTelegram = (r: TelegramResult) => {
    const bad = wellFormed(r);
    if (bad && !problem) problem = `accepted a malformed result: ${bad}`;
    results.push(r);
  };
  const onError = (e: TelegramError) => {
    if (!(e instanceof TelegramError) || !(e.reason in stats.refused)) problem ??= `odd error ${String(e)}`;
    errors.push(e);
  };
  // One long-lived parser sees everything, as a UART would; it must keep resynchronising.
  const stream = new TelegramParser({ maxBytes: options.maxBytes, onTelegram, onError });
  stats.capacity = stream.capacity;

  const feed = (parser: TelegramParser, input: Uint8Array) => {
    const maxChunk = [1, 3, 16, 64, 512, 4096][int(6)];
    for (let i = 0; i < input.length; ) {
      const n = 1 + int(maxChunk);
      parser.push(input.subarray(i, i + n));
      if (parser.buffered > parser.capacity) throw new FuzzFailure(`buffer holds ${parser.buffered} > ${parser.capacity}`, seed, iteration, input);
      if (parser.buffered > stats.maxBuffered) stats.maxBuffered = parser.buffered;
      i += n;
    }
  };

  for (iteration = 0; iteration < iterations; iteration++) {
    const k = int(telegrams.length);
    const base = telegrams[k].bytes;
    const kind = MUTATIONS[int(MUTATIONS.length)];
    const input = mutate(kind, base, telegrams[int(telegrams.length)].bytes, rnd, P1);
    stats.bytes += input.length;
    problem = undefined;

    // 1. parseTelegram: only TelegramError may escape.
    let whole: TelegramResult | undefined;
    try {
      whole = parseTelegram(input, { maxBytes: options.maxBytes });
    } catch (e) {
      if (!(e instanceof TelegramError)) throw new FuzzFailure(`parseTelegram threw ${String(e)}`, seed, iteration, input);
      stats.refused[e.reason]++;
    }
    if (whole) {
      stats.accepted++;
      const bad = wellFormed(whole);
      if (bad) throw new FuzzFailure(`parseTelegram accepted a malformed result: ${bad}`, seed, iteration, input);
      const original = alone[k];
      if (kind === 'none' && (original instanceof TelegramError || !sameValues(whole, original))) {
        throw new FuzzFailure(`${telegrams[k].file} parsed differently in the fuzzer`, seed, iteration, input);
      }
      // A splice can leave another fixture whole: that parse is right. Count only results no fixture gives.
      if (kind !== 'none' && !alone.some((o) => !(o instanceof TelegramError) && sameValues(whole!, o))) {
        stats.acceptedChanged++;
        if (whole.crc === 'ok') stats.acceptedChangedWithCrc++;
      }
    }

    // 2. The long-lived stream, with the input between noise; nothing may escape push().
    results.length = 0;
    errors.length = 0;
    streamRound({ feed: (d) => feed(stream, d), end: () => stream.end(), reset: () => stream.reset() }, input, SPECIAL, int,
      (why) => new FuzzFailure(why, seed, iteration, input));
    if (problem) throw new FuzzFailure(problem, seed, iteration, input);

    // 3. One flipped bit in a CRC-protected telegram, on a parser that has seen this meter's CRCs.
    const original = alone[k];
    if (kind === 'flip1' && !(original instanceof TelegramError) && original.crc === 'ok') {
      const primed = new TelegramParser({ maxBytes: options.maxBytes, onTelegram, onError });
      results.length = 0;
      primed.push(base);
      results.length = 0;
      feed(primed, input);
      primed.end();
      for (const r of results) {
        if (!sameValues(r, original)) throw new FuzzFailure(`a one-bit error in ${telegrams[k].file} was accepted`, seed, iteration, input);
      }
      if (problem) throw new FuzzFailure(problem, seed, iteration, input);
    }
  }
  stats.seconds = (Date.now() - started) / 1000;
  return stats;
}

/** Telegrams per second through the parser, whole-buffer pushes and byte-at-a-time pushes. */
export function parseRate(options: { seconds?: number } = {}): { wholePerSecond: number; bytewisePerSecond: number; bytesPerTelegram: number } {
  const telegrams = loadFixtureTelegrams().filter(({ bytes }) => {
    try {
      return parseTelegram(bytes).crc === 'ok';
    } catch {
      return false;
    }
  });
  const budget = (options.seconds ?? 1) * 1000;
  let count = 0;
  const parser = new TelegramParser({ onTelegram: () => count++ });
  const singles = telegrams.map(({ bytes }) => Array.from(bytes, (b) => new Uint8Array([b])));
  const run = (bytewise: boolean) => {
    count = 0;
    const t0 = Date.now();
    let rounds = 0;
    while (Date.now() - t0 < budget) {
      for (let k = 0; k < telegrams.length; k++) {
        if (bytewise) for (const one of singles[k]) parser.push(one);
        else parser.push(telegrams[k].bytes);
      }
      rounds++;
    }
    return (count * 1000) / (Date.now() - t0);
  };
  const wholePerSecond = run(false);
  const bytewisePerSecond = run(true);
  let total = 0;
  for (const t of telegrams) total += t.bytes.length;
  return { wholePerSecond, bytewisePerSecond, bytesPerTelegram: total / telegrams.length };
}
