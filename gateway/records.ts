// Records (WIRE.md "Records and acks"): storing the records a frame carries together with its
// counter, acking the contiguous prefix, and the JSON shape operators read them in.

import { base64, cborToJson } from './json.js';
import type { AcceptedFrame, HandlerContext } from './handlers/handler.js';
import type { GatewayEvents, RecordsEvent } from './events.js';
import type { MeshRecord } from './mesh/protocols.js';
import type { StoredRecord } from './store/store.js';
import type { CborValue } from '../firmware/core/cbor.js';
import { Body } from '../firmware/core/wire/bodies.js';
import { RecordKind } from '../firmware/core/wire/constants.js';

/** `[seq, t, channel, value] | [seq, t, "event", kind, data] | [seq, t, "gap", last, reason]` (ARCHITECTURE.md). */
export type RecordJson =
  | [seq: number, t: number, channel: number, value: number]
  | [seq: number, t: number, 'event', kind: string, data: unknown]
  | [seq: number, t: number, 'gap', last: number, reason: string];

/** A stored record as the mesh and the 'records' event carry it: event data is the CBOR map stored. */
export function toMeshRecord(r: StoredRecord): MeshRecord {
  switch (r.kind) {
    case RecordKind.reading:
      return [r.seq, r.t, r.channel, r.value];
    case RecordKind.event:
      return [r.seq, r.t, 'event', r.event, (r.data ?? {}) as { [k: string]: CborValue }];
    default:
      return [r.seq, r.t, 'gap', r.last, r.reason];
  }
}

export function recordJson(r: StoredRecord): RecordJson {
  switch (r.kind) {
    case RecordKind.reading:
      return [r.seq, r.t, r.channel, r.value];
    case RecordKind.event:
      return [r.seq, r.t, 'event', r.event, cborToJson(r.data ?? {})];
    default:
      return [r.seq, r.t, 'gap', r.last, r.reason];
  }
}

/** A demand-response event record as the API and the live stream show it (WIRE.md `dr`: `{"event", "phase"}`). */
export interface DrRecordJson {
  seq: number;
  t: number;
  /** The DR event's id, when the device gave it as text. */
  event?: string;
  /** `start`, `end` or `missed`, when the device gave it as text. */
  phase?: string;
}

/**
 * A `dr` event record's JSON: seq and t from the gateway's record, and only the two text fields the
 * device reports. The device's data never supplies the record's seq, its time or its device.
 */
export function drRecordJson(seq: number, t: number, data: unknown): DrRecordJson {
  const d = data !== null && typeof data === 'object' && !Array.isArray(data) ? (data as { event?: unknown; phase?: unknown }) : {};
  const out: DrRecordJson = { seq, t };
  if (typeof d.event === 'string') out.event = d.event.slice(0, 200);
  if (typeof d.phase === 'string') out.phase = d.phase.slice(0, 40);
  return out;
}

/** Event data is a CBOR map; JSON cannot carry every CBOR value, so bytes become base64 text. */
/**
 * Stores a frame's records in the same transaction as its counter, then acks the contiguous prefix
 * (the ack's downlink counter is reserved in that transaction too).
 */
export async function storeRecords(frame: AcceptedFrame, records: StoredRecord[], gw: HandlerContext): Promise<void> {
  const r = await frame.commit({ records, allocateDown: true });
  const device = frame.device;
  for (const rec of r.added) gw.metrics.recordsAdded(rec.kind);
  gw.downlink.sendWithCounter(device, r.downCounter!, { type: Body.ack, seq: r.ackedSeq });
  gw.metrics.ackLatency.observe(Math.max(0, gw.now() - frame.receivedAt) / 1000);
  if (r.added.length > 0) emitRecords(gw.events, device.id, r.added.map(toMeshRecord));
  if (gw.events.listens('ack')) gw.events.emit('ack', { deviceId: device.id, seq: r.ackedSeq });
  if (records.some((x) => x.kind !== RecordKind.gap && x.gatewayTimed)) await gw.timeSync(device);
}

// The 'records' event drives the work that follows a commit (the mesh signs and keeps one readings
// message per frame; the dashboard shows the records). It is emitted after the ack, from a queue drained
// a few devices per turn of the event loop, so that work never holds up frames and acks waiting for I/O;
// while a device's event waits, later frames of the same device join it as further frames of one event,
// so the mesh can sign them one message each and keep them in one transaction. A crash loses only queued
// events: the records are committed, and the mesh carries the ones no message covers at restart
// (BlockStore.uncovered).
const EMIT_PER_TURN = 32;

export type { RecordsEvent };

const queues = new WeakMap<GatewayEvents, { pending: Map<string, MeshRecord[][]>; scheduled: boolean }>();

/** Queues a frame's records for the device's next 'records' event (exported for tests). */
export function emitRecords(events: GatewayEvents, deviceId: string, records: MeshRecord[]): void {
  let q = queues.get(events);
  if (!q) queues.set(events, (q = { pending: new Map(), scheduled: false }));
  const waiting = q.pending.get(deviceId);
  if (waiting) {
    waiting.push(records);
    return;
  }
  q.pending.set(deviceId, [records]);
  if (!q.scheduled) {
    q.scheduled = true;
    setImmediate(() => drain(events, q!));
  }
}

function drain(events: GatewayEvents, q: { pending: Map<string, MeshRecord[][]>; scheduled: boolean }): void {
  let n = 0;
  for (const [deviceId, frames] of q.pending) {
    if (n++ >= EMIT_PER_TURN) break;
    q.pending.delete(deviceId);
    const e: RecordsEvent = { deviceId, records: frames.length === 1 ? frames[0] : frames.flat(), frames };
    events.emit('records', e);
  }
  if (q.pending.size) setImmediate(() => drain(events, q));
  else q.scheduled = false;
}
