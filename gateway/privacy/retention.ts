// Retention: raw records are kept only as long as the device's sharing policy says
// (`retentionDays`). A run, hourly by default and on demand (POST /api/privacy/retention/run), deletes
// for each device of this gateway the records whose seqs are all older than that, and the raw readings
// messages whose records all are, and signs a tombstone (docs/protocols/retention-tombstone-v1.md) kept
// in the block store and announced, so that `gridlet verify` still verifies what remains.
//
// Heads are not touched: a removed message that was a head stays one by CID, later messages name it as
// their prev, and the tombstone says where it went. Aggregates and other non-raw messages are kept.
// The CIDs a tombstone names are noted in the block store, so that the mesh never takes them back.
//
// Replicas sharing a store take turns: a pass runs under the store's retention lock, and one that another
// replica's pass already covered (at or after its time; a scheduled one: within the interval) is skipped.

import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { toHex } from '../../firmware/core/bytes.js';
import { cidText } from '../mesh/cid.js';
import { decodeMessage, encodeMessage, type GridMessage, type Signer } from '../mesh/message.js';
import { protocols } from '../mesh/pcid.js';
import { parseReadings, parseTombstone, tombstonePayload, type Tombstone } from '../mesh/protocols.js';
import type { Store } from '../store/store.js';
import type { PrivacyService } from './service.js';

export const DEFAULT_RETENTION_INTERVAL_MS = 3_600_000;
/** CIDs one tombstone names at most (about 40 bytes each: a tombstone stays far below 1 MiB). */
export const MAX_REMOVED = 10_000;
const DAY_MS = 86_400_000;

export interface RetentionDeps {
  store: Store;
  privacy: PrivacyService;
  gatewayId: string;
  /** The gateway's mesh signer (its identity's Ed25519 key). */
  signer: Signer;
  log: Logger;
  /** Unix ms. */
  now(): number;
  /** Sends a signed tombstone to the mesh (best effort). */
  announce?(bytes: Uint8Array): Promise<void>;
  /** CIDs per tombstone (default MAX_REMOVED). */
  maxRemoved?: number;
}

export interface DeviceRetention {
  deviceId: string;
  retentionDays: number;
  /** Every record with a seq up to this one is gone. */
  through: number;
  recordsDeleted: number;
  blocksDeleted: number;
  /** Text CID of the (last) tombstone signed for this run. */
  tombstone: string;
}

export interface RetentionReport {
  at: number;
  devices: DeviceRetention[];
}

/** The signer's latest tombstone for a device among those kept, with its CID. */
async function latestTombstone(store: Store, deviceId: string, gatewayId: string): Promise<{ cid: Uint8Array; t: Tombstone } | undefined> {
  let best: { cid: Uint8Array; t: Tombstone } | undefined;
  for (const b of await store.blocks.list('tombstone', deviceId)) {
    const t = parseTombstone(decodeMessage(b.bytes).payload);
    if (typeof t === 'string' || t.gateway !== gatewayId) continue;
    if (!best || t.through > best.t.through || (t.through === best.t.through && t.at > best.t.at)) best = { cid: b.cid, t };
  }
  return best;
}

export class Retention {
  readonly #d: RetentionDeps;
  /** Each device's latest tombstone of this gateway, read from the block store once per device. */
  readonly #latest = new Map<string, { cid: Uint8Array; t: Tombstone } | null>();
  /** Names this process's passes in the store's retention mark. */
  readonly #by = randomUUID();
  #intervalMs = DEFAULT_RETENTION_INTERVAL_MS;
  #timer?: NodeJS.Timeout;
  #running?: Promise<RetentionReport>;

  constructor(d: RetentionDeps) {
    this.#d = d;
  }

  /** Runs every `intervalMs` (unref'd) until close(). */
  start(intervalMs = DEFAULT_RETENTION_INTERVAL_MS): void {
    this.#intervalMs = intervalMs;
    this.#timer = setInterval(() => {
      this.#pass(true).catch((e: Error) => this.#d.log.error({ err: e.message }, 'privacy: retention run failed'));
    }, intervalMs);
    this.#timer.unref();
  }

  close(): void {
    clearInterval(this.#timer);
  }

  /** One run over every device this gateway stores; runs asked for while one is going join it. */
  run(): Promise<RetentionReport> {
    return this.#pass(false);
  }

  #pass(scheduled: boolean): Promise<RetentionReport> {
    const at = this.#d.now();
    this.#running ??= this.#d.store.privacy.retentionPass(async (last) => {
      if (last && last.by !== this.#by) {
        // Another replica ran the latest pass: its tombstones are newer than those this process remembers.
        this.#latest.clear();
        if (last.at >= at - (scheduled ? this.#intervalMs : 0)) {
          this.#d.log.debug({ at, covered: last.at }, 'privacy: retention pass skipped; another replica\'s pass covered it');
          return { result: { at, devices: [] } };
        }
      }
      return { result: await this.#run(at), mark: { at, by: this.#by } };
    }).finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  async #run(at: number): Promise<RetentionReport> {
    const devices: DeviceRetention[] = [];
    for (const d of await this.#d.store.listDevices()) {
      try {
        const r = await this.device(d.id, at);
        if (r) devices.push(r);
      } catch (e) {
        this.#d.log.error({ device: d.id, err: (e as Error).message }, 'privacy: retention failed for a device');
      }
    }
    if (devices.length) {
      this.#d.log.info({ devices: devices.length, records: devices.reduce((n, x) => n + x.recordsDeleted, 0),
        blocks: devices.reduce((n, x) => n + x.blocksDeleted, 0) }, 'privacy: retention removed expired data');
    }
    return { at, devices };
  }

  /** Applies retention to one device at time `at`; undefined when nothing was old enough. */
  async device(deviceId: string, at: number): Promise<DeviceRetention | undefined> {
    const { store } = this.#d;
    const policy = await this.#d.privacy.effectivePolicy(deviceId);
    if (policy.retentionDays === null) return undefined;
    const cutoff = at - policy.retentionDays * DAY_MS;
    // Record times are unix seconds (WIRE.md).
    const expired = await store.expiredThrough(deviceId, Math.floor(cutoff / 1000));
    if (!this.#latest.has(deviceId)) this.#latest.set(deviceId, (await latestTombstone(store, deviceId, this.#d.gatewayId)) ?? null);
    const prior = this.#latest.get(deviceId) ?? undefined;
    const through = Math.max(expired ?? 0, prior?.t.through ?? 0);
    if (through === 0) return undefined;

    // The raw readings messages of the device whose records all are at or below `through`. Only
    // messages kept before the cutoff are candidates (records can only be older than their message
    // when they arrived late): a late backlog's message goes once it, too, is that old.
    const removed: Uint8Array[] = [];
    let from = prior ? prior.t.through + 1 : 1;
    for (const b of await store.blocks.list('readings', deviceId, cutoff)) {
      let r;
      try {
        r = parseReadings(decodeMessage(b.bytes).payload);
      } catch {
        continue;
      }
      if (typeof r === 'string' || r.device !== deviceId || r.last > through) continue;
      removed.push(b.cid);
      from = Math.min(from, r.first);
    }
    if (removed.length === 0 && through <= (prior?.t.through ?? 0)) return undefined;
    // One tombstone names at most MAX_REMOVED messages (a message is at most 1 MiB); more take a chain of them.
    let last = prior;
    let blocksDeleted = 0;
    let recordsDeleted = 0;
    const per = this.#d.maxRemoved ?? MAX_REMOVED;
    for (let i = 0; i === 0 || i < removed.length; i += per) {
      const batch = removed.slice(i, i + per);
      const t: Tombstone = {
        device: deviceId, gateway: this.#d.gatewayId, removed: batch, from: Math.max(1, Math.min(from, through)), through, at,
        reason: 'retention', prev: last?.cid ?? null,
      };
      const m: GridMessage = encodeMessage(protocols().tombstone.pcid, tombstonePayload(t), this.#d.signer);
      // The tombstone is kept before anything goes: a crash in between leaves a promise the next run keeps.
      // Its CIDs are noted before it is kept, so every kept tombstone's are (the mesh never takes them back).
      await store.blocks.noteRemoved(deviceId, this.#d.gatewayId, batch);
      await store.blocks.put({ cid: m.cid, bytes: m.bytes, kind: 'tombstone', deviceId, receivedAt: at });
      last = { cid: m.cid, t };
      this.#latest.set(deviceId, last);
      blocksDeleted += await store.blocks.delete(batch);
      if (i === 0) recordsDeleted = await store.deleteRecordsThrough(deviceId, through);
      await this.#d.announce?.(m.bytes).catch((e: Error) => this.#d.log.warn({ err: e.message }, 'privacy: tombstone not announced'));
    }
    const m = { cid: last!.cid };
    return { deviceId, retentionDays: policy.retentionDays, through, recordsDeleted, blocksDeleted, tombstone: cidText(m.cid) };
  }
}

/**
 * A tombstone received from a peer (already signature-checked; `bound` says whether its signer is
 * bound to the gateway it names): kept, and the readings messages it names that the same gateway
 * signed are deleted here too (a peer never re-serves a block its owner removed).
 */
export async function applyTombstone(
  store: Store, m: GridMessage, bound: (kid: Uint8Array, gateway: string) => boolean, now: number,
): Promise<'accepted' | 'payload' | 'untrusted'> {
  const t = parseTombstone(m.payload);
  if (typeof t === 'string') return 'payload';
  if (!bound(m.kid, t.gateway)) return 'untrusted';
  // Noted first (every kept tombstone's CIDs are): from now on the mesh neither asks peers for them nor keeps them again.
  await store.blocks.noteRemoved(t.device, t.gateway, t.removed);
  await store.blocks.put({ cid: m.cid, bytes: m.bytes, kind: 'tombstone', deviceId: t.device, receivedAt: now });
  const drop: Uint8Array[] = [];
  for (const cid of t.removed) {
    const bytes = await store.blocks.get(cid);
    if (!bytes) continue;
    try {
      const r = parseReadings(decodeMessage(bytes).payload);
      if (typeof r !== 'string' && r.gateway === t.gateway && r.device === t.device) drop.push(cid);
    } catch {
      // not a readings message: not the tombstone's to remove
    }
  }
  await store.blocks.delete(drop);
  return 'accepted';
}

/** Hex CIDs named as removed by the tombstones kept for a device. */
export async function removedCids(store: Store, deviceId: string): Promise<Set<string>> {
  const out = new Set<string>();
  for (const b of await store.blocks.list('tombstone', deviceId)) {
    const t = parseTombstone(decodeMessage(b.bytes).payload);
    if (typeof t !== 'string') for (const c of t.removed) out.add(toHex(c));
  }
  return out;
}
