// Rows of the store's tables and what they mean, shared by the SQLite and PostgreSQL stores: both keep
// the same columns, and differ only in how a boolean comes back (SQLite 0/1, PostgreSQL true/false).

import { decode } from '../../firmware/core/cbor.js';
import type { TextMap } from '../../firmware/core/wire/bodies.js';
import { parsePolicy, type PrivacyPolicy } from '../privacy/policy.js';
import type {
  AuditEntry, BlockKind, DeviceRow, DeviceState, GuestModule, GuestState, PendingDownlink, StoredBlock, StoredRecord,
} from './store.js';
import { RecordKind } from '../../firmware/core/wire/constants.js';
import { keep, same } from '../slab.js';

/** A byte string as the drivers take it, without copying. */
export function blob(b: Uint8Array): Buffer {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

export interface DeviceSqlRow {
  id: string; state: string; public_key: Buffer; ks: Buffer; gateway_id: string; model: string; firmware: string;
  capabilities: string; labels: string; first_seen: number; paired_at: number; revoked_at: number | null;
  last_seen: number | null; up_highest: number; up_bits_lo: number; up_bits_hi: number; down_counter: number;
  acked_seq: number; status: string | null; guests: string;
}

/**
 * A device row as the store hands it out, its two keys copied out of the driver's Buffers (none of
 * them is kept) into one allocation of their own.
 */
export function toDevice(r: DeviceSqlRow): DeviceRow {
  const pk = r.public_key.byteLength;
  const keys = new Uint8Array(pk + r.ks.byteLength);
  keys.set(r.public_key);
  keys.set(r.ks, pk);
  return deviceRow(r, keys.subarray(0, pk), keys.subarray(pk));
}

/** toDevice for a row held for as long as the gateway runs (a store's cache): its keys go into a slab (slab.ts). */
export function keptDevice(r: DeviceSqlRow): DeviceRow {
  const [publicKey, ks] = keep(r.public_key, r.ks);
  return deviceRow(r, publicKey, ks);
}

/**
 * A device's capabilities or labels, read from their JSON text: one frozen value for each text many
 * devices share (the rows are read, never changed in place). Texts over 512 characters are parsed
 * for the row alone.
 */
function shared<T>(text: string): T {
  if (text.length > 512) return JSON.parse(text);
  let v = sharedValues.get(text);
  if (v === undefined) {
    if (sharedValues.size >= 1024) sharedValues.clear();
    v = Object.freeze(JSON.parse(text)) as object;
    sharedValues.set(text, v);
  }
  return v as T;
}
const sharedValues = new Map<string, object>();
const NO_GUESTS: DeviceRow['guests'] = Object.freeze({});

function deviceRow(r: DeviceSqlRow, publicKey: Uint8Array, ks: Uint8Array): DeviceRow {
  return {
    id: r.id,
    state: same(r.state) as DeviceState,
    publicKey,
    ks,
    gatewayId: same(r.gateway_id),
    model: same(r.model),
    firmware: same(r.firmware),
    capabilities: shared(r.capabilities),
    labels: shared(r.labels),
    firstSeen: r.first_seen,
    pairedAt: r.paired_at,
    revokedAt: r.revoked_at,
    lastSeen: r.last_seen,
    upHighest: r.up_highest,
    upBits: [r.up_bits_lo, r.up_bits_hi],
    downCounter: r.down_counter,
    ackedSeq: r.acked_seq,
    status: r.status ? JSON.parse(r.status) : null,
    guests: r.guests === '{}' ? NO_GUESTS : JSON.parse(r.guests),
  };
}

export interface RecordSqlRow {
  seq: number; last: number; kind: number; t: number; gateway_timed: number | boolean; channel: number | null;
  value: number | null; event: string | null; data: Buffer | null; reason: string | null;
}

export function toRecord(r: RecordSqlRow): StoredRecord {
  const gatewayTimed = r.gateway_timed === true || r.gateway_timed === 1;
  switch (r.kind) {
    case RecordKind.reading:
      return { kind: RecordKind.reading, seq: r.seq, t: r.t, gatewayTimed, channel: r.channel!, value: r.value! };
    case RecordKind.event: {
      const rec: StoredRecord = { kind: RecordKind.event, seq: r.seq, t: r.t, gatewayTimed, event: r.event! };
      if (r.data) rec.data = decode(new Uint8Array(r.data), { maxDepth: 16 }) as TextMap;
      return rec;
    }
    default:
      return { kind: RecordKind.gap, seq: r.seq, last: r.last, t: r.t, reason: r.reason ?? '' };
  }
}

export interface DownlinkSqlRow { id: number; device_id: string; type: number; body: Buffer; counter: number; sent_at: number }

export function toDownlink(r: DownlinkSqlRow): PendingDownlink {
  return { id: r.id, deviceId: r.device_id, type: r.type, body: new Uint8Array(r.body), counter: r.counter, sentAt: r.sent_at };
}

export interface BlockRow { cid: Buffer; bytes: Buffer; kind: string; device_id: string | null; received_at: number }

export function toBlock(r: BlockRow): StoredBlock {
  return { cid: new Uint8Array(r.cid), bytes: new Uint8Array(r.bytes), kind: r.kind as BlockKind, deviceId: r.device_id, receivedAt: r.received_at };
}

export interface ModuleRow {
  cid: string; name: string; version: string; size: number; instrumented: number | boolean; manifest: string; added_at: number;
}

export function toModule(r: ModuleRow): GuestModule {
  return {
    cid: r.cid, name: r.name, version: r.version, size: r.size, instrumented: r.instrumented === true || r.instrumented === 1,
    manifest: JSON.parse(r.manifest), addedAt: r.added_at,
  };
}

export const MAX_GUESTS_PER_DEVICE = 64;
export type GuestMap = { [cid: string]: GuestState };

/** Keeps a device's guests map within MAX_GUESTS_PER_DEVICE: pending deployments and removals stay, settled ones go oldest first. */
export function pruneGuests(guests: GuestMap): void {
  const keys = Object.keys(guests);
  if (keys.length <= MAX_GUESTS_PER_DEVICE) return;
  const settled = keys.filter((k) => guests[k].state !== 'deploying' && guests[k].state !== 'removing')
    .sort((a, b) => guests[a].at - guests[b].at);
  for (const k of settled.slice(0, keys.length - MAX_GUESTS_PER_DEVICE)) delete guests[k];
}

/** Marks a guest deploying on a device (GuestStore.deploying), in the device's guests map. */
export function markDeploying(guests: GuestMap, cid: string, name: string, at: number): void {
  guests[cid] = { state: 'deploying', at, name, deployedAt: at };
}

/** Marks every guest of that name removing (GuestStore.removing); returns their CIDs. */
export function markRemoving(guests: GuestMap, name: string, at: number): string[] {
  const cids: string[] = [];
  for (const [cid, g] of Object.entries(guests)) {
    if (g.name !== name) continue;
    guests[cid] = { state: 'removing', at, name, deployedAt: g.deployedAt };
    cids.push(cid);
  }
  return cids;
}

export interface AuditRow {
  id: number; at: number; audience: string; operator: string | null; device_id: string; cid: string | null; kind: string;
  seq: number | null; last: number | null; level: string; purposes: string; via: string;
}

export function toAuditEntry(r: AuditRow): AuditEntry {
  const e: AuditEntry = {
    id: r.id, at: r.at, audience: r.audience, deviceId: r.device_id, kind: r.kind, level: r.level as AuditEntry['level'],
    purposes: JSON.parse(r.purposes), via: r.via as AuditEntry['via'],
  };
  if (r.operator !== null) e.operator = r.operator;
  if (r.cid !== null) e.cid = r.cid;
  if (r.seq !== null) e.seq = [r.seq, r.last ?? r.seq];
  return e;
}

/** A stored policy, checked again as it is read (a store written by hand must not loosen a policy). */
export function readPolicy(text: string, where: string): PrivacyPolicy {
  try {
    return parsePolicy(JSON.parse(text));
  } catch (e) {
    throw new Error(`the stored privacy policy of ${where} is not valid: ${(e as Error).message}`);
  }
}

export interface QuotaSqlRow { used: number }

/** A quota take from the row its statement returned: none when refused, and then `used` reads the count. */
export async function quotaTake(taken: QuotaSqlRow | undefined, used: () => Promise<number>): Promise<{ granted: boolean; used: number }> {
  return taken ? { granted: true, used: taken.used } : { granted: false, used: await used() };
}
