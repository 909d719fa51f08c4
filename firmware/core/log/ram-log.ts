// A RecordLog kept in RAM: for tests and for a host agent started without a data directory.
// It loses everything on restart; the flash log (flash-log.ts) is what a meter uses.

import type { CborValue } from '../cbor.js';
import type { LogEntry, LogStats, RecordLog } from './record-log.js';

export class RamLog implements RecordLog {
  #entries: LogEntry[] = [];
  #next = 1;
  #acked = 0;
  #dropped = 0;
  readonly #capacity: number;

  constructor(capacityRecords = 100_000) {
    this.#capacity = capacityRecords;
  }

  appendReading(t: number, channel: number, value: number): number {
    this.#makeRoom();
    const seq = this.#next++;
    this.#entries.push({ kind: 1, seq, t, channel, value });
    return seq;
  }

  appendEvent(t: number, event: string, data?: { [key: string]: CborValue }): number {
    this.#makeRoom();
    const seq = this.#next++;
    this.#entries.push(data ? { kind: 2, seq, t, event, data } : { kind: 2, seq, t, event });
    return seq;
  }

  #makeRoom(): void {
    if (this.#entries.length < this.#capacity) return;
    const i = this.#entries.findIndex((e) => e.kind === 1);
    if (i < 0) return;
    const seq = this.#entries[i].seq;
    this.#entries[i] = { kind: 7, seq, last: seq, reason: 'full' };
    this.#dropped++;
  }

  read(after: number, max: number): LogEntry[] {
    const out: LogEntry[] = [];
    for (const e of this.#entries) {
      if (e.seq <= after) continue;
      const prev = out[out.length - 1];
      if (e.kind === 7 && prev && prev.kind === 7 && prev.last + 1 === e.seq) {
        out[out.length - 1] = { ...prev, last: e.last };
        continue;
      }
      if (out.length >= max) break;
      out.push(e);
    }
    return out;
  }

  ack(seq: number): void {
    if (seq <= this.#acked) return;
    this.#acked = Math.min(seq, this.#next - 1);
    this.#entries = this.#entries.filter((e) => (e.kind === 7 ? e.last : e.seq) > this.#acked);
  }

  stats(): LogStats {
    return {
      capacityBytes: this.#capacity * 16,
      usedBytes: this.#entries.length * 16,
      buffered: this.#entries.length,
      oldestSeq: this.#entries.length ? this.#entries[0].seq : 0,
      newestSeq: this.#next - 1,
      ackedSeq: this.#acked,
      dropped: this.#dropped,
    };
  }
}
