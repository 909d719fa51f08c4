// What a VEN keeps across restarts, per VTN, in <data dir>/openadr/<key>.json (written whole, through a
// temporary file and a rename): its VEN and resource ids, its webhook subscription, and for each event
// what was sent to which meters (so that a change, a cancellation or an event that disappeared while the
// gateway was down reaches the meters) and the report being built.

import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Track } from './reports.js';

export interface SentDr {
  start: number;
  duration: number;
  level: number;
  limit?: number;
  window?: number;
  modification: number;
  devices: string[];
}

export interface ReportState {
  /** The VTN's id of the report once posted. */
  id?: string;
  /** The body last accepted by the VTN (JSON), so that an unchanged report is not sent again. */
  posted?: string;
  /** Unix ms of the last post or put. */
  at?: number;
  /** Intervals reported, and values among them still missing. */
  intervals?: number;
  missing?: number;
  /** Meters whose sharing policy keeps them out of the report. */
  withheld?: string[];
  tracks: { [deviceId: string]: Track };
  /** Nothing more will change (every value known, or too late for more). */
  done?: boolean;
  /** The VTN no longer takes it (the event is gone). */
  closed?: boolean;
}

export interface EventState {
  key: string;
  /** The VTN's event id (absent only for 3.0.1 events without one). */
  id?: string;
  programID: string;
  name?: string;
  /** The last version of the event that matched the schema. */
  object: { [k: string]: unknown };
  /** JSON of `object`, to tell a changed event. */
  hash: string;
  /** Unix s standing for "now" (0001-01-01) when this version was first seen. */
  mappedAtS: number;
  /** Unix ms the event was first seen, and this version of it. */
  firstSeen: number;
  changedAt: number;
  devices: string[];
  unmatched: string[];
  notes: string[];
  /** Why gridlet cannot act on this version (a level out of range, no start …). */
  error?: string;
  sent: { [drId: string]: SentDr };
  tariffs?: { sig: string; devices: string[] };
  /** Unix ms it disappeared from the VTN (its dr-events were cancelled). */
  gone?: number;
  report?: ReportState;
}

export interface VenState {
  v: 1;
  url: string;
  clientId: string;
  venName: string;
  venId?: string;
  /** Device id → the VTN's resource id. */
  resources: { [deviceId: string]: string };
  webhook?: {
    /** The bearer token the VTN sends with notifications (made here, given in the subscription). */
    token: string;
    callbackUrl?: string;
    /** programID (3.0.1) or '*' (3.1.0) → subscription id. */
    subscriptions: { [program: string]: string };
  };
  events: { [key: string]: EventState };
}

/** A short, stable name for a VTN link: its state file, its webhook path. */
export function linkKey(url: string, clientId: string): string {
  return 'v' + createHash('sha256').update(`${url}\n${clientId}`).digest('hex').slice(0, 10);
}

export function stateFile(dataDir: string, key: string): string {
  return join(dataDir, 'openadr', `${key}.json`);
}

export function loadState(file: string, fresh: () => VenState): VenState {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return fresh();
  }
  try {
    const s = JSON.parse(text) as VenState;
    if (s.v === 1 && typeof s.events === 'object' && typeof s.resources === 'object') return s;
  } catch {
    // a damaged file: started over (resources and the VEN are found again by name)
  }
  renameSync(file, `${file}.damaged-${Date.now()}`);
  return fresh();
}

export function saveState(file: string, s: VenState): void {
  mkdirSync(join(file, '..'), { recursive: true, mode: 0o700 });
  const tmp = `${file}.tmp`;
  writeFileSync(tmp, JSON.stringify(s), { mode: 0o600 });
  renameSync(tmp, file);
}
