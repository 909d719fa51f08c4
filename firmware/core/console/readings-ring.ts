// The last readings the meter delivered, for `readings [n]`: a fixed ring of typed arrays, so keeping
// them allocates nothing per reading.

import type { ConsoleReading } from './console-host.js';

export const READINGS_KEPT = 64;

export class ReadingsRing {
  #seq = new Float64Array(READINGS_KEPT);
  #t = new Float64Array(READINGS_KEPT);
  #value = new Float64Array(READINGS_KEPT);
  #channel = new Uint8Array(READINGS_KEPT);
  #next = 0;
  #count = 0;

  push(seq: number, t: number, channel: number, value: number): void {
    const i = this.#next;
    this.#seq[i] = seq;
    this.#t[i] = t;
    this.#channel[i] = channel;
    this.#value[i] = value;
    this.#next = (i + 1) % READINGS_KEPT;
    if (this.#count < READINGS_KEPT) this.#count++;
  }

  /**
   * Takes the Agent's `reading` notification (AgentOptions.onEvent: `{seq, t, values}` where `seq` is
   * the last reading's seq and the values got consecutive seqs before it).
   */
  onAgentEvent(name: string, detail: unknown): void {
    if (name !== 'reading' || !detail || typeof detail !== 'object') return;
    const d = detail as { seq?: unknown; t?: unknown; values?: unknown };
    if (typeof d.seq !== 'number' || typeof d.t !== 'number' || !Array.isArray(d.values)) return;
    const first = d.seq - d.values.length + 1;
    for (let i = 0; i < d.values.length; i++) {
      const v = d.values[i] as readonly [number, number];
      this.push(first + i, d.t, v[0], v[1]);
    }
  }

  get size(): number {
    return this.#count;
  }

  /** The last `n`, oldest first. */
  last(n: number): ConsoleReading[] {
    const k = Math.min(n, this.#count);
    const out: ConsoleReading[] = [];
    for (let j = k; j > 0; j--) {
      const i = (this.#next - j + READINGS_KEPT) % READINGS_KEPT;
      out.push({ seq: this.#seq[i], t: this.#t[i], channel: this.#channel[i], value: this.#value[i] });
    }
    return out;
  }
}
