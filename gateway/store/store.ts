// What the gateway keeps durably: the device registry, each device's records, counters and replay
// window, and the downlinks a device has not yet acknowledged. Methods are async so that a
// PostgreSQL implementation (issue 10) fits the same interface; sqlite.ts is the one-site default.

import type { TextMap } from '../../firmware/core/wire/bodies.js';

/** Registry states kept in the store. `seen` (Hello received, not paired) lives only in the Hello table. */
export type DeviceState = 'paired' | 'revoked';

/** Labels are key → value; selectors are `key=value` or `key` (ARCHITECTURE.md: groups are label selectors). */
export type Labels = { [key: string]: string };

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
  state: string;
  reason?: string;
  at: number;
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
}

export interface FrameCommit {
  deviceId: string;
  /** The session key the frame opened with: the commit fails if the device was revoked or re-paired meanwhile. */
  ks: Uint8Array;
  counter: number;
  now: number;
  records?: StoredRecord[];
  /** A down-ack: downlinks last sent with a counter ≤ this are acknowledged. */
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
  /** Reserves a new counter for a resend of a kept downlink and records when it was sent. */
  resendDownlink(id: number, now: number): Promise<PendingDownlink | undefined>;
  /** Forgets kept downlinks of a device (optionally only of one body type). */
  dropDownlinks(deviceId: string, type?: number): Promise<number>;
  countPendingDownlinks(): Promise<number>;

  /** Records from seq `from` (including a gap that covers it), in seq order. */
  readRecords(deviceId: string, from: number, limit: number): Promise<StoredRecord[]>;

  close(): Promise<void>;
}
