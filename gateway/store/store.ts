// What the gateway keeps durably: the device registry, each device's records, counters and replay
// window, and the downlinks a device has not yet acknowledged. Methods are async so that a
// PostgreSQL implementation (issue 10) fits the same interface; sqlite.ts is the one-site default.

import type { TextMap } from '../../firmware/core/wire/bodies.js';
import type { Labels } from '../labels.js';
import type { Level, PrivacyPolicy, Purpose } from '../privacy/policy.js';
import type { FirmwareStore } from './firmware.js';

/** Registry states kept in the store. `seen` (Hello received, not paired) lives only in the Hello table. */
export type DeviceState = 'paired' | 'revoked';

export type { Labels };

export interface DeviceStatus {
  t: number;
  uptime: number;
  buffered: number;
  dropped: number;
  heap: number;
  guests: [name: string, cid: string, state: string][];
  link: string;
  receivedAt: number;
}

export interface GuestState {
  /** From guest-acks: `running`, `rejected`, `removed`; set by this gateway: `deploying`, `removing`. */
  state: string;
  reason?: string;
  at: number;
  /** Name and time (unix ms) of this gateway's deployment of the CID, when it deployed it. */
  name?: string;
  deployedAt?: number;
}

export interface DeviceRow {
  id: string;
  state: DeviceState;
  publicKey: Uint8Array;
  /** Session key of the current (or, when revoked, the last) pairing. */
  ks: Uint8Array;
  /** The gateway that paired the device. */
  gatewayId: string;
  model: string;
  firmware: string;
  capabilities: string[];
  labels: Labels;
  /** Unix ms. */
  firstSeen: number;
  pairedAt: number;
  revokedAt: number | null;
  lastSeen: number | null;
  upHighest: number;
  upBits: [number, number];
  downCounter: number;
  /** Highest seq such that every record up to it is stored or declared lost by a gap. */
  ackedSeq: number;
  status: DeviceStatus | null;
  /** Last guest-ack per cid (base32 text). */
  guests: { [cid: string]: GuestState };
}

/** A record as stored; numbers are WIRE.md body types (1 readings, 2 event, 7 gap). */
export type StoredRecord =
  | { kind: 1; seq: number; t: number; gatewayTimed: boolean; channel: number; value: number }
  | { kind: 2; seq: number; t: number; gatewayTimed: boolean; event: string; data?: TextMap }
  /** Seqs seq..last are lost; `t` is the gateway's receipt time. */
  | { kind: 7; seq: number; last: number; t: number; reason: string };

export interface PairingCommit {
  id: string;
  publicKey: Uint8Array;
  ks: Uint8Array;
  gatewayId: string;
  model: string;
  firmware: string;
  capabilities: string[];
  /** First seen (Hello) time, unix ms. */
  firstSeen: number;
  /** Counter of the `paired` frame, accepted into a fresh up window. */
  counter: number;
  now: number;
  /** Reserve downlink counter 1 in the same transaction (the device row's downCounter is then 1), for a body sent once paired. */
  reserveDown?: boolean;
}

export interface FrameCommit {
  deviceId: string;
  /** The session key the frame opened with: the commit fails if the device was revoked or re-paired meanwhile. */
  ks: Uint8Array;
  counter: number;
  now: number;
  records?: StoredRecord[];
  /** A down-ack: the downlink last sent with this counter is acknowledged (each kept body is acked by its own counter). */
  downAck?: number;
  status?: DeviceStatus;
  guest?: { cid: string; state: GuestState };
  /** Firmware version and model from a `paired` body. */
  info?: { firmware: string; model: string };
  /** Reserve a downlink counter (for the ack) in the same transaction. */
  allocateDown?: boolean;
}

export type FrameCommitResult =
  | { ok: true; added: StoredRecord[]; ackedSeq: number; downCounter?: number }
  /** `replay`: the counter was taken meanwhile; `stale`: the device is no longer paired under that Ks. */
  | { ok: false; why: 'replay' | 'stale' };

export interface PendingDownlink {
  id: number;
  deviceId: string;
  type: number;
  body: Uint8Array;
  /** Counter it was last sent with. */
  counter: number;
  /** Unix ms it was last sent. */
  sentAt: number;
}

export interface Store {
  getDevice(id: string): Promise<DeviceRow | undefined>;
  listDevices(): Promise<DeviceRow[]>;
  /** The ids of every device in the table, in no order (cheaper than listDevices where ids are enough). */
  deviceIds(): Promise<string[]>;
  countDevices(): Promise<{ [state in DeviceState]: number }>;
  /** Makes the device paired under a new session (also after a revocation); drops the old session's downlinks. */
  completePairing(p: PairingCommit): Promise<DeviceRow>;
  /** Marks a device revoked; undefined if unknown. Idempotent. */
  revoke(id: string, now: number): Promise<DeviceRow | undefined>;
  setLabels(id: string, labels: Labels): Promise<DeviceRow | undefined>;
  /** Records that the device was heard (a Hello) without any other change. */
  touch(id: string, now: number): Promise<void>;

  /** Accepts a frame's counter and applies its effects in one durable transaction. */
  commitFrame(c: FrameCommit): Promise<FrameCommitResult>;

  /** Reserves the next downlink counter (persisted before the frame is published). */
  nextDownCounter(deviceId: string): Promise<number>;
  /** Keeps a state-changing downlink and reserves the counter it is first sent with. */
  addDownlink(deviceId: string, type: number, body: Uint8Array, now: number): Promise<PendingDownlink>;
  /** Downlinks not yet covered by a down-ack, oldest first. */
  pendingDownlinks(deviceId: string): Promise<PendingDownlink[]>;
  /**
   * Reserves a new counter for a resend of a kept downlink and records when it was sent. With
   * `sentBefore`, undefined when it was last sent at or after that time (another replica resent it).
   */
  resendDownlink(id: number, now: number, sentBefore?: number): Promise<PendingDownlink | undefined>;
  /** Forgets kept downlinks of a device (optionally only of one body type). */
  dropDownlinks(deviceId: string, type?: number): Promise<number>;
  countPendingDownlinks(): Promise<number>;

  /** Records from seq `from` (including a gap that covers it), in seq order. */
  readRecords(deviceId: string, from: number, limit: number): Promise<StoredRecord[]>;

  /** The mesh's grid messages by CID and each device's chain heads (MESH.md). */
  readonly blocks: BlockStore;

  /** Guest modules by CID and deployments to devices (GUESTS.md "Deployment"). */
  readonly guests: GuestStore;

  /** Firmware releases, rollouts and each device's progress (WIRE.md "Firmware updates"). */
  readonly firmware: FirmwareStore;

  /** Sharing policies per device and per group, and the audit log of disclosures (gateway/privacy). */
  readonly privacy: PrivacyStore;

  /** Each device's offload jobs per UTC day (the queue's daily quota), counted here so that it survives restarts and replicas share it. */
  readonly quota: QuotaStore;

  /**
   * Retention: deletes the device's records (and gaps) whose seqs are all ≤ `through`, with their
   * coverage notes; returns how many rows went. The device's ackedSeq is unchanged.
   */
  deleteRecordsThrough(deviceId: string, through: number): Promise<number>;
  /**
   * Retention: the highest seq S such that every stored record of the device with seq ≤ S has its time
   * `t` before `before` (unix seconds, the records' unit); undefined when the first stored record is
   * not that old.
   */
  expiredThrough(deviceId: string, before: number): Promise<number | undefined>;

  close(): Promise<void>;
}

/** Which protocol a kept block speaks (`opaque`: a signed message of a protocol this gateway does not know). */
export type BlockKind = 'readings' | 'registry' | 'identity' | 'guest' | 'opaque'
  /** Meter aggregates v1 and sharing consent v1 (gateway/privacy). */
  | 'aggregate' | 'consent'
  /** The .wasm bytes of a guest a publication named, fetched from a peer. */
  | 'guest-wasm'
  /** A retention tombstone (docs/protocols/retention-tombstone-v1.md); deviceId is the device it is about. */
  | 'tombstone';

export interface StoredBlock {
  /** Binary CIDv1 raw sha2-256 of `bytes`. */
  cid: Uint8Array;
  bytes: Uint8Array;
  kind: BlockKind;
  /** The device a readings or registry message is about. */
  deviceId: string | null;
  receivedAt: number;
}

export interface ChainAppend {
  deviceId: string;
  block: StoredBlock;
  /** The message's parents (its `prev`). */
  prev: Uint8Array[];
  /** When given, the append happens only if the device's heads are exactly these (else false). */
  expectHeads?: Uint8Array[];
  /** Seq ranges [seq, last] of this gateway's own records the message carries. */
  covers?: [number, number][];
  /** Further messages of the same chain, each naming only the one before it, kept in the same transaction. */
  next?: { block: StoredBlock; covers?: [number, number][] }[];
}

export interface BlockStore {
  /** Keeps a block unless its CID is already kept; true when it was new. */
  put(b: StoredBlock): Promise<boolean>;
  get(cid: Uint8Array): Promise<Uint8Array | undefined>;
  has(cid: Uint8Array): Promise<boolean>;
  /**
   * Blocks of one kind (optionally of one device), oldest first; with `receivedBefore` (unix ms) only
   * those kept before then (retention; an implementation may ignore it and return more).
   */
  list(kind: BlockKind, deviceId?: string, receivedBefore?: number): Promise<StoredBlock[]>;
  /** A device's chain heads: its readings messages that no kept message names as prev. */
  heads(deviceId: string): Promise<Uint8Array[]>;
  allHeads(): Promise<{ deviceId: string; cid: Uint8Array }[]>;
  /** Keeps a readings message and moves the device's heads past its parents, in one transaction. */
  appendChain(a: ChainAppend): Promise<boolean>;
  /** This gateway's stored records of a device that no message of its own carries yet (crash recovery). */
  uncovered(deviceId: string, limit: number): Promise<StoredRecord[]>;
  /**
   * Retention: forgets kept blocks (their bytes and their own parent links). The device's heads are not
   * changed: a deleted message that is a head stays one (its CID is still what later messages name).
   * Returns how many blocks were deleted.
   */
  delete(cids: Uint8Array[]): Promise<number>;
  /** The parents (`prev`) a kept chain message was appended with. */
  parents(cid: Uint8Array): Promise<Uint8Array[]>;
  /**
   * Retention: notes that a tombstone of `gateway` names these CIDs as removed messages of the device
   * (retention-tombstone-v1 "Keeping"), so that they are not fetched or kept again. Idempotent.
   */
  noteRemoved(deviceId: string, gateway: string, cids: Uint8Array[]): Promise<void>;
  /** Who removed a CID: the device and gateway of each noted tombstone naming it (none: empty). */
  removedBy(cid: Uint8Array): Promise<{ deviceId: string; gateway: string }[]>;
}

/** A group policy: applies to devices whose labels match `selector`; higher `priority` is tried first. */
export interface GroupPolicy {
  selector: string;
  priority: number;
  policy: PrivacyPolicy;
  /** Unix ms. */
  updatedAt: number;
}

/** The `deviceId` of an audit entry about every device at once (a live event stream without a device filter). */
export const EVERY_DEVICE = '*';

/** One disclosure of a device's data (the audit log), as recorded. */
export interface Disclosure {
  /** Who got it: a mesh peer id, `http` for the operator API, or `openadr:<VTN URL>` for a VTN's report. */
  audience: string;
  /** The operator of a mesh peer (MESH.md `--operator`); absent for `http`. */
  operator?: string;
  /** The device, or EVERY_DEVICE; a device's audit entries include those about every device. */
  deviceId: string;
  /** What: the grid message's text CID when a message went out, its kind, the seq range and level. */
  cid?: string;
  kind: string;
  seq?: [number, number];
  level: Level;
  purposes: Purpose[];
  /** `openadr`: a report posted to an OpenADR VTN (gateway/openadr). */
  via: 'announce' | 'serve' | 'http' | 'openadr';
}

export interface AuditEntry extends Disclosure {
  id: number;
  /** Unix ms. */
  at: number;
}

/**
 * The privacy sub-store (`store.privacy`). Policies are stored as the JSON parsePolicy returns; the
 * store does not interpret them. A PostgreSQL implementation needs three tables: device policies
 * (device_id → policy, updated_at), group policies (selector → priority, policy, updated_at) and the
 * audit log (id serial, at, audience, operator, device_id, cid, kind, seq, last, level, purposes, via).
 */
export interface PrivacyStore {
  devicePolicy(deviceId: string): Promise<{ policy: PrivacyPolicy; updatedAt: number } | undefined>;
  setDevicePolicy(deviceId: string, policy: PrivacyPolicy, now: number): Promise<void>;
  /** True when there was one. */
  deleteDevicePolicy(deviceId: string): Promise<boolean>;
  /** Device ids that have a policy of their own. */
  devicesWithPolicy(): Promise<string[]>;
  /** All group policies, highest priority first (ties: selector order). */
  groupPolicies(): Promise<GroupPolicy[]>;
  /** Adds or replaces the policy of a selector. */
  setGroupPolicy(g: GroupPolicy): Promise<void>;
  deleteGroupPolicy(selector: string): Promise<boolean>;
  /** Appends disclosures to the audit log in one transaction. */
  addAudit(at: number, entries: Disclosure[]): Promise<void>;
  /** Newest first; `beforeId` pages further back. */
  audit(q: { deviceId?: string; limit: number; beforeId?: number }): Promise<AuditEntry[]>;
  /**
   * Retention across replicas (privacy/retention.ts): runs `pass` holding the store's retention lock, so
   * that one pass runs at a time whichever process asks, given the mark the latest completed pass left;
   * the mark `pass` returns replaces it before the lock is let go.
   */
  retentionPass<T>(pass: (last: RetentionMark | undefined) => Promise<{ result: T; mark?: RetentionMark }>): Promise<T>;
}

/** What the latest retention pass left: when it ran (its `at`, unix ms) and which process ran it. */
export interface RetentionMark {
  at: number;
  by: string;
}

/** The offload daily quota (gateway/offload/queue.ts): jobs per device per `day`, a UTC date `YYYY-MM-DD`. */
export interface QuotaStore {
  /**
   * Takes one job from the device's quota for `day` if fewer than `limit` (≥ 1) are used, in one atomic
   * step: stores of several replicas taking at once never grant more than `limit` together. `used` is
   * the count after the take (refused: the count as it is).
   */
  take(deviceId: string, day: string, limit: number): Promise<{ granted: boolean; used: number }>;
  /** Jobs the device has used on `day` (0 when none). */
  used(deviceId: string, day: string): Promise<number>;
  /** Forgets the counts of the days before `day`; returns how many rows went. */
  prune(day: string): Promise<number>;
}

/** A guest module admitted by POST /api/guests (the bytes the CID names are kept beside it). */
export interface GuestModule {
  /** Text CID, `b…`. */
  cid: string;
  name: string;
  version: string;
  size: number;
  /** The gateway added the metering calls (the module was uploaded without full coverage). */
  instrumented: boolean;
  /** The manifest as checked (GUESTS.md "Manifest"). */
  manifest: { [key: string]: unknown };
  /** Unix ms. */
  addedAt: number;
}

export interface GuestStore {
  /** Keeps a module under its CID; a later upload of the same bytes with another manifest replaces the manifest. */
  put(m: GuestModule, wasm: Uint8Array): Promise<'added' | 'updated' | 'unchanged'>;
  get(cid: string): Promise<GuestModule | undefined>;
  wasm(cid: string): Promise<Uint8Array | undefined>;
  list(): Promise<GuestModule[]>;
  /** Notes in the device's guests map that `cid` is being deployed as `name`; false if the device is unknown. */
  deploying(deviceId: string, cid: string, name: string, at: number): Promise<boolean>;
  /** Notes that the device's guests named `name` are being removed; returns their CIDs. */
  removing(deviceId: string, name: string, at: number): Promise<string[]>;
}
