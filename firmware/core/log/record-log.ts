// The record log's contract: what the agent needs from its store-and-forward buffer.
// Readings, events and gaps share one per-device sequence (WIRE.md "Records and acks").

import type { CborValue } from '../cbor.js';


export type LogEntry =
  | { kind: 1; seq: number; t: number; channel: number; value: number }
  | { kind: 2; seq: number; t: number; event: string; data?: { [key: string]: CborValue } }
  /** seqs `seq`..`last` were lost before any ack covered them (`reason` "full" when dropped for space). */
  | { kind: 7; seq: number; last: number; reason: string };

export interface LogStats {
  /** Bytes the log can hold. */
  capacityBytes: number;
  /** Bytes in use by records not yet trimmed. */
  usedBytes: number;
  /** Records stored and not yet covered by an ack. */
  buffered: number;
  /** Oldest seq still stored (0 if none). */
  oldestSeq: number;
  /** Newest seq assigned (0 if none). */
  newestSeq: number;
  /** Highest seq covered by an ack. */
  ackedSeq: number;
  /** Readings dropped because the log was full, ever. */
  dropped: number;
  /**
   * Events dropped, ever: only when unacked events alone crowd the log (a block's worth of them in the
   * oldest block), never to make room for readings. Optional so simple logs need not track it.
   */
  droppedEvents?: number;
}

export interface RecordLog {
  /** Appends a reading durably; returns its seq. `t` is unix seconds (0 = no valid clock). */
  appendReading(t: number, channel: number, value: number): number;
  /** Appends an event durably; returns its seq. Events are never dropped to make room. */
  appendEvent(t: number, event: string, data?: { [key: string]: CborValue }): number;
  /**
   * Entries with seq > `after`, oldest first, at most `max` of them. A range of seqs the log dropped
   * comes back as one gap entry, so the reader can tell the gateway they are gone.
   */
  read(after: number, max: number): LogEntry[];
  /** The gateway holds everything up to `seq` (or it was declared lost): those records may be trimmed. */
  ack(seq: number): void;
  stats(): LogStats;
}

/**
 * A record log that also takes one meter telegram's readings in a single durable write. On flash this
 * is the compact path: the readings share one timestamp, one channel list and one checksum (FlashLog:
 * about 3 bytes per reading instead of about 8 when each reading is appended alone).
 */
export interface BatchRecordLog extends RecordLog {
  /**
   * Appends readings taken at `t` as consecutive seqs, durably; returns the first seq. `readings` are
   * [channel, value] pairs, as MeterSource delivers them.
   */
  appendReadings(t: number, readings: ReadonlyArray<readonly [number, number]>): number;
}
