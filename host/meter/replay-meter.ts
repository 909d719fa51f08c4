// `--meter replay:FILE`: replays a recorded sequence of readings deterministically.
// The file is JSON lines, one reading instant per line:
//   {"t": 1700000000, "values": [[1, 1234567], [3, 560]]}
// `t` is unix seconds (0 = the meter had no clock); values are WIRE.md channels in integer units.
// Lines are replayed in order, one per interval, and each exactly once even across crashes: before a
// line is handed to the agent, its index and the log's newest seq are saved; on restart, a log whose
// newest seq moved past the saved one shows that the line was appended, so replay continues after it.

import { readFileSync } from 'node:fs';
import type { KeyValue, MeterSource } from '../../firmware/core/ports.js';

export interface ReplayLine {
  t: number;
  values: [number, number][];
}

export class ReplayError extends Error {}

export function parseReplayFile(path: string): ReplayLine[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ReplayError(`cannot read replay file ${path}: ${(e as Error).message}`);
  }
  const out: ReplayLine[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (!line || line.startsWith('#')) continue;
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch {
      throw new ReplayError(`${path}:${i + 1}: not JSON`);
    }
    const o = v as { t?: unknown; values?: unknown };
    if (typeof o.t !== 'number' || !Number.isSafeInteger(o.t) || o.t < 0)
      throw new ReplayError(`${path}:${i + 1}: "t" must be unix seconds (an integer ≥ 0)`);
    if (!Array.isArray(o.values) || !o.values.every((p) => Array.isArray(p) && p.length === 2 &&
        Number.isSafeInteger(p[0]) && p[0] >= 0 && Number.isSafeInteger(p[1])))
      throw new ReplayError(`${path}:${i + 1}: "values" must be [[channel, integer value], …]`);
    out.push({ t: o.t, values: o.values as [number, number][] });
  }
  return out;
}

const K_POS = 'meter.replay';

export class ReplayMeter implements MeterSource {
  #timer: NodeJS.Timeout | undefined;
  #pos = 0;
  readonly lines: ReplayLine[];
  onDone?: () => void;

  /** `newestSeq` reads the record log's newest seq (to learn whether the last line was appended). */
  constructor(readonly path: string, readonly kv: KeyValue, readonly newestSeq: () => number, readonly intervalMs = 1000) {
    this.lines = parseReplayFile(path);
    const saved = kv.get(K_POS);
    if (saved) {
      const [line, seqBefore] = new TextDecoder().decode(saved).split(' ').map(Number);
      if (Number.isSafeInteger(line) && Number.isSafeInteger(seqBefore))
        this.#pos = newestSeq() > seqBefore ? line + 1 : line;
    }
  }

  get position(): number {
    return this.#pos;
  }

  start(onReading: (t: number, values: ReadonlyArray<readonly [number, number]>) => void): void {
    const step = () => {
      if (this.#pos >= this.lines.length) {
        this.stop();
        this.onDone?.();
        return;
      }
      const line = this.lines[this.#pos];
      this.kv.set(K_POS, new TextEncoder().encode(`${this.#pos} ${this.newestSeq()}`));
      // t is passed as recorded (0 stays 0: "the meter had no clock"), so a replay is deterministic.
      onReading(line.t * 1000, line.values);
      this.#pos++;
    };
    step();
    this.#timer = setInterval(step, this.intervalMs);
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
