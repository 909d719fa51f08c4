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
import { mulberry32 } from '../../host/sim/prng.js';

/** The fuzzer's generator (mulberry32, host/sim/prng.ts). */
export const prng = mulberry32;

export const FIXTURE_DIR = join(fileURLToPath(import.meta.url), '..', '..', 'fixtures', 'dsmr');

export function loadFixtureTelegrams(dir = FIXTURE_DIR): Array<{ file: string; bytes: Uint8Array }> {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.txt'))
    .sort()
    .map((file) => ({ file, bytes: new Uint8Array(readFileSync(join(dir, file))) }));
}

export class FuzzFailure extends Error {
  constructor(message: string, readonly seed: number, readonly iteration: number, readonly input?: Uint8Array) {
    super(`${message} (seed ${seed}, iteration ${iteration}; replay with fuzzDsmr({ seed: ${seed}, iterations: ${iteration + 1} }))`);
    this.name = 'FuzzFailure';
  }
}

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


// Bytes that matter to the grammar, so insertions hit the interesting paths often.
const SPECIAL = [0x2f, 0x21, 0x28, 0x29, 0x2a, 0x2e, 0x2d, 0x3a, 0x0d, 0x0a, 0x30, 0x31, 0x39, 0x41, 0x66, 0x53, 0x57, 0x00, 0xff];

type Mutation = 'none' | 'bitflip' | 'flip1' | 'insert' | 'delete' | 'truncate' | 'repeat' | 'splice' | 'random' | 'combo';
const MUTATIONS: Mutation[] = ['none', 'bitflip', 'flip1', 'insert', 'delete', 'truncate', 'repeat', 'splice', 'random', 'combo'];

function mutate(kind: Mutation, base: Uint8Array, other: Uint8Array, rnd: () => number): Uint8Array {
  const int = (n: number) => Math.floor(rnd() * n);
  const byte = () => (rnd() < 0.6 ? SPECIAL[int(SPECIAL.length)] : int(256));
  switch (kind) {
    case 'none':
      return base;
    case 'flip1': {
      // One bit inside the CRC-covered bytes ('/' … '!').
      const out = base.slice();
      const start = out.indexOf(0x2f);
      const end = out.indexOf(0x21);
      if (start < 0 || end < start) return base;
      const i = start + int(end - start + 1);
      out[i] ^= 1 << int(8);
      return out;
    }
    case 'bitflip': {
      const out = base.slice();
      for (let n = 1 + int(4); n > 0; n--) out[int(out.length)] ^= 1 << int(8);
      return out;
    }
    case 'insert': {
      const at = int(base.length + 1);
      const n = 1 + int(rnd() < 0.9 ? 8 : 3000);
      const out = new Uint8Array(base.length + n);
      out.set(base.subarray(0, at));
      for (let i = 0; i < n; i++) out[at + i] = byte();
      out.set(base.subarray(at), at + n);
      return out;
    }
    case 'delete': {
      const at = int(base.length);
      const n = 1 + int(rnd() < 0.8 ? 4 : 200);
      const out = new Uint8Array(base.length - Math.min(n, base.length - at));
      out.set(base.subarray(0, at));
      out.set(base.subarray(at + n), at);
      return out;
    }
    case 'truncate':
      return base.slice(0, int(base.length + 1));
    case 'repeat': {
      // Repeats a slice of the body (without '/' or '!') to push telegrams past the size cap.
      if (base.length < 10) return base;
      const a = 1 + int(base.length - 8);
      const b = Math.min(base.length, a + 1 + int(600));
      let slice = base.slice(a, b).filter((x) => x !== 0x2f && x !== 0x21);
      if (slice.length === 0) slice = new Uint8Array([0x30]);
      const times = 1 + int(8);
      const out = new Uint8Array(base.length + slice.length * times);
      out.set(base.subarray(0, a));
      for (let k = 0; k < times; k++) out.set(slice, a + k * slice.length);
      out.set(base.subarray(a), a + slice.length * times);
      return out;
    }
    case 'splice': {
      const a = int(base.length + 1);
      const b = int(other.length + 1);
      const out = new Uint8Array(a + other.length - b);
      out.set(base.subarray(0, a));
      out.set(other.subarray(b), a);
      return out;
    }
    case 'random': {
      const out = new Uint8Array(int(2600));
      for (let i = 0; i < out.length; i++) out[i] = byte();
      if (out.length > 0 && rnd() < 0.5) out[0] = 0x2f;
      return out;
    }
    case 'combo': {
      let out = base;
      for (let n = 2 + int(3); n > 0; n--) {
        const k = MUTATIONS[1 + int(MUTATIONS.length - 3)]; // not none, random or combo
        out = mutate(k, out, other, rnd);
      }
      return out;
    }
  }
}

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
    const input = mutate(kind, base, telegrams[int(telegrams.length)].bytes, rnd);
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
    try {
      if (int(4) === 0) {
        const noise = new Uint8Array(int(40));
        for (let i = 0; i < noise.length; i++) noise[i] = SPECIAL[int(SPECIAL.length)];
        feed(stream, noise);
      }
      feed(stream, input);
      if (int(50) === 0) stream.end();
      if (int(200) === 0) stream.reset();
    } catch (e) {
      if (e instanceof FuzzFailure) throw e;
      throw new FuzzFailure(`push() threw ${String(e)}`, seed, iteration, input);
    }
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
