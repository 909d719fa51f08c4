// The mutations the parser fuzzers (dsmr-fuzz.ts, dlms-fuzz.ts) apply to real inputs, from a seed so
// that a failure replays. Each grammar gives its own special bytes (inserted often, so that insertions
// hit the interesting paths) and says which bytes its integrity check covers (`flip1` flips one bit
// there: a check worth its name catches every such flip).

export class FuzzFailure extends Error {
  constructor(message: string, readonly seed: number, readonly iteration: number, readonly input?: Uint8Array, fuzzer = 'fuzzDsmr') {
    super(`${message} (seed ${seed}, iteration ${iteration}; replay with ${fuzzer}({ seed: ${seed}, iterations: ${iteration + 1} }))`);
    this.name = 'FuzzFailure';
  }
}

export type Mutation = 'none' | 'bitflip' | 'flip1' | 'insert' | 'delete' | 'truncate' | 'repeat' | 'splice' | 'random' | 'combo';
export const MUTATIONS: Mutation[] = ['none', 'bitflip', 'flip1', 'insert', 'delete', 'truncate', 'repeat', 'splice', 'random', 'combo'];

export interface Grammar {
  /** Bytes that matter to the grammar. */
  special: readonly number[];
  /** The bytes [start, end] (inclusive) the integrity check covers, or undefined when none. */
  covered(b: Uint8Array): [number, number] | undefined;
  /** Bytes `repeat` leaves out of the slice it repeats (those that start or end a message). */
  framing: readonly number[];
  /** What `random` starts its bytes with half of the time. */
  start: number;
}

export function mutate(kind: Mutation, base: Uint8Array, other: Uint8Array, rnd: () => number, g: Grammar): Uint8Array {
  const int = (n: number) => Math.floor(rnd() * n);
  const byte = () => (rnd() < 0.6 ? g.special[int(g.special.length)] : int(256));
  switch (kind) {
    case 'none':
      return base;
    case 'flip1': {
      // One bit inside the bytes the integrity check covers.
      const range = g.covered(base);
      if (!range) return base;
      const out = base.slice();
      const i = range[0] + int(range[1] - range[0] + 1);
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
      // Repeats a slice of the body (without the bytes that frame a message) to push past the size caps.
      if (base.length < 10) return base;
      const a = 1 + int(base.length - 8);
      const b = Math.min(base.length, a + 1 + int(600));
      let slice = base.slice(a, b).filter((x) => g.framing.indexOf(x) < 0);
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
      if (out.length > 0 && rnd() < 0.5) out[0] = g.start;
      return out;
    }
    case 'combo': {
      let out = base;
      for (let n = 2 + int(3); n > 0; n--) {
        const k = MUTATIONS[1 + int(MUTATIONS.length - 3)]; // not none, random or combo
        out = mutate(k, out, other, rnd, g);
      }
      return out;
    }
  }
}

/**
 * One round of a long-lived stream parser: sometimes line noise of the grammar's bytes first, then the
 * input, and now and then the end of the input or a reset. Anything thrown is a failure named by `fail`.
 */
export function streamRound(
  stream: { feed(data: Uint8Array): void; end(): void; reset(): void },
  input: Uint8Array, special: readonly number[], int: (n: number) => number, fail: (why: string) => Error,
): void {
  try {
    if (int(4) === 0) {
      const noise = new Uint8Array(int(40));
      for (let i = 0; i < noise.length; i++) noise[i] = special[int(special.length)];
      stream.feed(noise);
    }
    stream.feed(input);
    if (int(50) === 0) stream.end();
    if (int(200) === 0) stream.reset();
  } catch (e) {
    if (e instanceof FuzzFailure) throw e;
    throw fail(`push() threw ${String(e)}`);
  }
}
