// Payload shapes of the gridlet protocols (docs/protocols/*.md): builders and validators. A validator
// returns the reason a payload is refused, or the typed view of it.

import { Tagged, type CborValue } from '../../firmware/core/cbor.js';
import { base32, concat, equal } from '../../firmware/core/bytes.js';
import { sha256 } from '../../firmware/core/crypto.js';
import { isDeviceId } from '../../firmware/core/wire/topics.js';
import { compareCid, link, linkCid } from './cid.js';
import type { Payload } from './message.js';

const MAX_SAFE = Number.MAX_SAFE_INTEGER;

function uint(v: CborValue): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= MAX_SAFE;
}
function int(v: CborValue): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v);
}
function textMap(v: CborValue): v is { [k: string]: CborValue } {
  return v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Map) && !(v instanceof Uint8Array) && !(v instanceof Tagged);
}
function exactKeys(p: Payload, keys: string[]): string | undefined {
  const have = Object.keys(p).sort();
  const want = [...keys].sort();
  if (have.length !== want.length || have.some((k, i) => k !== want[i])) return `payload keys must be exactly ${want.join(', ')}; got ${have.join(', ')}`;
  return undefined;
}

// ------------------------------------------------------------------ meter readings v1

/** A record as it travels in a readings message (the API shape, ARCHITECTURE.md). */
export type MeshRecord =
  | [seq: number, t: number, channel: number, value: number]
  | [seq: number, t: number, 'event', kind: string, data: { [k: string]: CborValue }]
  | [seq: number, t: number, 'gap', last: number, reason: string];

export interface Readings {
  device: string;
  gateway: string;
  first: number;
  last: number;
  records: MeshRecord[];
  /** Parent CIDs (binary), bytewise sorted; empty for `prev: null`. */
  prev: Uint8Array[];
}

/** The last seq a record covers. */
export function recordLast(r: MeshRecord): number {
  return r[2] === 'gap' ? (r[3] as number) : r[0];
}

/** `xs` itself when already in order (a chain's one parent, a frame's records), else a sorted copy. */
function inOrder<T>(xs: T[], cmp: (a: T, b: T) => number): T[] {
  for (let i = 1; i < xs.length; i++) if (cmp(xs[i - 1], xs[i]) > 0) return [...xs].sort(cmp);
  return xs;
}

export function prevValue(prev: Uint8Array[]): CborValue {
  if (prev.length === 0) return null;
  if (prev.length === 1) return link(prev[0]);
  return inOrder(prev, compareCid).map(link);
}

export function readingsPayload(r: Omit<Readings, 'first' | 'last'>): Payload {
  const records = inOrder(r.records, (a, b) => a[0] - b[0]);
  let last = -Infinity;
  for (const x of records) last = Math.max(last, recordLast(x));
  return {
    device: r.device, gateway: r.gateway, first: records[0][0], last,
    records: records as CborValue[], prev: prevValue(r.prev),
  };
}

export function parseReadings(p: Payload): Readings | string {
  const keys = exactKeys(p, ['device', 'gateway', 'first', 'last', 'records', 'prev']);
  if (keys) return keys;
  if (typeof p.device !== 'string' || !isDeviceId(p.device)) return 'device must be a device id';
  if (typeof p.gateway !== 'string' || !isDeviceId(p.gateway)) return 'gateway must be a gateway id';
  if (!uint(p.first) || !uint(p.last)) return 'first and last must be unsigned integers';
  if (!Array.isArray(p.records) || p.records.length === 0) return 'records must be a non-empty array';
  let covered = 0;
  for (let i = 0; i < p.records.length; i++) {
    const r = p.records[i];
    if (!Array.isArray(r) || !uint(r[0]) || r[0] < 1 || !uint(r[1])) return `record ${i} must start with seq ≥ 1 and t`;
    if (r.length === 4 && uint(r[2]) && int(r[3])) {
      // a reading
    } else if (r.length === 5 && r[2] === 'event' && typeof r[3] === 'string' && textMap(r[4])) {
      // an event
    } else if (r.length === 5 && r[2] === 'gap' && uint(r[3]) && r[3] >= r[0] && typeof r[4] === 'string') {
      // a gap
    } else return `record ${i} is not [seq, t, channel, value], [seq, t, "event", kind, data] or [seq, t, "gap", last, reason]`;
    if (r[0] <= covered) return `record ${i} (seq ${r[0]}) is not after the seqs before it`;
    covered = recordLast(r as MeshRecord);
  }
  if ((p.records[0] as number[])[0] !== p.first) return 'first must be the seq of the first record';
  if (covered !== p.last) return 'last must be the highest seq the records cover';
  let prev: Uint8Array[];
  if (p.prev === null) prev = [];
  else if (p.prev instanceof Tagged) {
    const c = linkCid(p.prev);
    if (!c) return 'prev must link a CID';
    prev = [c];
  } else if (Array.isArray(p.prev) && p.prev.length >= 2) {
    prev = [];
    for (const x of p.prev) {
      const c = linkCid(x);
      if (!c) return 'prev must link CIDs';
      if (prev.length && compareCid(prev[prev.length - 1], c) >= 0) return 'prev links must be sorted and distinct';
      prev.push(c);
    }
  } else return 'prev must be null, a link, or an array of two or more links';
  return { device: p.device, gateway: p.gateway, first: p.first, last: p.last, records: p.records as MeshRecord[], prev };
}

// ------------------------------------------------------------------ device registry v1

export type Hlc = [ms: number, n: number];

export function compareHlc(a: Hlc, b: Hlc): number {
  return a[0] !== b[0] ? a[0] - b[0] : a[1] - b[1];
}

export interface Pairing {
  op: 'pair';
  device: string;
  key: Uint8Array;
  gateway: string;
  model: string;
  firmware: string;
  hlc: Hlc;
}
export interface Revocation {
  op: 'revoke';
  device: string;
  pairing: Uint8Array;
  gateway: string;
  hlc: Hlc;
}
export type RegistryEntry = Pairing | Revocation;

export function registryPayload(e: RegistryEntry): Payload {
  if (e.op === 'pair') {
    return { op: 'pair', device: e.device, key: e.key, gateway: e.gateway, model: e.model, firmware: e.firmware, hlc: [...e.hlc] };
  }
  return { op: 'revoke', device: e.device, pairing: link(e.pairing), gateway: e.gateway, hlc: [...e.hlc] };
}

function parseHlc(v: CborValue): Hlc | undefined {
  return Array.isArray(v) && v.length === 2 && uint(v[0]) && uint(v[1]) ? [v[0], v[1]] : undefined;
}

export function parseRegistry(p: Payload): RegistryEntry | string {
  if (p.op === 'pair') {
    const keys = exactKeys(p, ['op', 'device', 'key', 'gateway', 'model', 'firmware', 'hlc']);
    if (keys) return keys;
    if (typeof p.device !== 'string' || !isDeviceId(p.device)) return 'device must be a device id';
    if (!(p.key instanceof Uint8Array) || p.key.length !== 32) return 'key must be 32 bytes';
    if (base32(sha256(p.key).subarray(0, 10)) !== p.device) return 'key does not hash to the device id';
    if (typeof p.gateway !== 'string' || !isDeviceId(p.gateway)) return 'gateway must be a gateway id';
    if (typeof p.model !== 'string' || typeof p.firmware !== 'string') return 'model and firmware must be text';
    const hlc = parseHlc(p.hlc);
    if (!hlc) return 'hlc must be [ms, n]';
    return { op: 'pair', device: p.device, key: p.key, gateway: p.gateway, model: p.model, firmware: p.firmware, hlc };
  }
  if (p.op === 'revoke') {
    const keys = exactKeys(p, ['op', 'device', 'pairing', 'gateway', 'hlc']);
    if (keys) return keys;
    if (typeof p.device !== 'string' || !isDeviceId(p.device)) return 'device must be a device id';
    const pairing = linkCid(p.pairing);
    if (!pairing) return 'pairing must link a CID';
    if (typeof p.gateway !== 'string' || !isDeviceId(p.gateway)) return 'gateway must be a gateway id';
    const hlc = parseHlc(p.hlc);
    if (!hlc) return 'hlc must be [ms, n]';
    return { op: 'revoke', device: p.device, pairing, gateway: p.gateway, hlc };
  }
  return 'op must be "pair" or "revoke"';
}

/** A hybrid logical clock (Kulkarni et al.): later than everything it issued or received. */
export class HybridClock {
  #last: Hlc = [0, 0];
  constructor(readonly physical: () => number) {}
  now(): Hlc {
    const pt = this.physical();
    this.#last = pt > this.#last[0] ? [pt, 0] : [this.#last[0], this.#last[1] + 1];
    return [...this.#last];
  }
  observe(stamp: Hlc): void {
    if (compareHlc(stamp, this.#last) > 0) this.#last = [...stamp];
  }
}

// ------------------------------------------------------------------ gateway identity v1

const B58 = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz';

export function base58btc(bytes: Uint8Array): string {
  let n = 0n;
  for (const b of bytes) n = (n << 8n) | BigInt(b);
  let s = '';
  while (n > 0n) {
    s = B58[Number(n % 58n)] + s;
    n /= 58n;
  }
  for (const b of bytes) {
    if (b !== 0) break;
    s = '1' + s;
  }
  return s;
}

/** The libp2p peer id of an Ed25519 public key: identity multihash of its protobuf form, base58btc. */
export function peerIdOf(ed25519: Uint8Array): string {
  return base58btc(concat(new Uint8Array([0x00, 0x24, 0x08, 0x01, 0x12, 0x20]), ed25519));
}

export interface Identity {
  gateway: string;
  x25519: Uint8Array;
  ed25519: Uint8Array;
  operator: string;
  peer: string;
  t: number;
}

export function identityPayload(i: Identity): Payload {
  return { gateway: i.gateway, x25519: i.x25519, ed25519: i.ed25519, operator: i.operator, peer: i.peer, t: i.t };
}

export function parseIdentity(p: Payload, kid: Uint8Array): Identity | string {
  const keys = exactKeys(p, ['gateway', 'x25519', 'ed25519', 'operator', 'peer', 't']);
  if (keys) return keys;
  if (!(p.x25519 instanceof Uint8Array) || p.x25519.length !== 32) return 'x25519 must be 32 bytes';
  if (!(p.ed25519 instanceof Uint8Array) || p.ed25519.length !== 32) return 'ed25519 must be 32 bytes';
  if (!equal(p.ed25519, kid)) return 'the signer is not the ed25519 key the message binds';
  if (typeof p.gateway !== 'string' || base32(sha256(p.x25519).subarray(0, 10)) !== p.gateway) return 'gateway does not hash from x25519';
  if (typeof p.operator !== 'string' || p.operator.length === 0 || p.operator.length > 200) return 'operator must be 1-200 characters';
  if (p.peer !== peerIdOf(p.ed25519)) return 'peer is not the peer id of the ed25519 key';
  if (!uint(p.t)) return 't must be unix milliseconds';
  return { gateway: p.gateway, x25519: p.x25519, ed25519: p.ed25519, operator: p.operator, peer: p.peer, t: p.t };
}

// ------------------------------------------------------------------ gateway identity v2

/** A gateway's enrolled identity (gateway-identity-v2): its names, its operator's key and the proofs. */
export interface IdentityV2 {
  gateway: string;
  x25519: Uint8Array;
  ed25519: Uint8Array;
  peer: string;
  /** Unix ms the message was issued. */
  t: number;
  /** The operator's Ed25519 public key, and its id (operator.ts operatorId). */
  operator: Uint8Array;
  operatorId: string;
  /** The operator's name as it calls itself. */
  name: string;
  /** Unix ms the operator signed the enrollment. */
  enrolled: number;
  /** The operator's signature over the enrollment (operator.ts enrollmentBytes). */
  enrollment: Uint8Array;
  /** The gateway's XEdDSA signature with its X25519 key (operator.ts possessionBytes). */
  possession: Uint8Array;
}

export function identityV2Payload(i: Omit<IdentityV2, 'operatorId'>): Payload {
  return {
    gateway: i.gateway, x25519: i.x25519, ed25519: i.ed25519, peer: i.peer, t: i.t,
    operator: i.operator, name: i.name, enrolled: i.enrolled, enrollment: i.enrollment, possession: i.possession,
  };
}

/** The payload's shape and the names derived from its keys; the two signatures are checked by operator.ts. */
export function parseIdentityV2(p: Payload, kid: Uint8Array): IdentityV2 | string {
  const keys = exactKeys(p, ['gateway', 'x25519', 'ed25519', 'peer', 't', 'operator', 'name', 'enrolled', 'enrollment', 'possession']);
  if (keys) return keys;
  for (const k of ['x25519', 'ed25519', 'operator'] as const) if (!(p[k] instanceof Uint8Array) || p[k].length !== 32) return `${k} must be 32 bytes`;
  for (const k of ['enrollment', 'possession'] as const) if (!(p[k] instanceof Uint8Array) || p[k].length !== 64) return `${k} must be a 64-byte signature`;
  const x25519 = p.x25519 as Uint8Array;
  const ed25519 = p.ed25519 as Uint8Array;
  const operator = p.operator as Uint8Array;
  if (!equal(ed25519, kid)) return 'the signer is not the ed25519 key the message binds';
  if (typeof p.gateway !== 'string' || base32(sha256(x25519).subarray(0, 10)) !== p.gateway) return 'gateway does not hash from x25519';
  if (p.peer !== peerIdOf(ed25519)) return 'peer is not the peer id of the ed25519 key';
  if (typeof p.name !== 'string' || !/^[A-Za-z0-9._-]{1,64}$/.test(p.name)) return 'name must be 1-64 characters A-Z a-z 0-9 . _ -';
  if (!uint(p.t) || !uint(p.enrolled)) return 't and enrolled must be unix milliseconds';
  return {
    gateway: p.gateway, x25519, ed25519, peer: p.peer, t: p.t, operator, operatorId: 'op' + base32(operator), name: p.name,
    enrolled: p.enrolled, enrollment: p.enrollment as Uint8Array, possession: p.possession as Uint8Array,
  };
}

// ------------------------------------------------------------------ guest publication v1

export interface GuestPublication {
  /** Binary CID of the .wasm bytes. */
  guest: Uint8Array;
  name: string;
  size: number;
  manifest: { [k: string]: CborValue };
  gateway: string;
}

export function guestPayload(g: GuestPublication): Payload {
  return { guest: link(g.guest), name: g.name, size: g.size, manifest: g.manifest, gateway: g.gateway };
}

export function parseGuest(p: Payload): GuestPublication | string {
  const keys = exactKeys(p, ['guest', 'name', 'size', 'manifest', 'gateway']);
  if (keys) return keys;
  const guest = linkCid(p.guest);
  if (!guest) return 'guest must link the CID of the .wasm bytes';
  if (typeof p.name !== 'string' || p.name.length === 0) return 'name must be text';
  if (!uint(p.size)) return 'size must be an unsigned integer';
  if (!textMap(p.manifest)) return 'manifest must be a map with text keys';
  if (typeof p.gateway !== 'string' || !isDeviceId(p.gateway)) return 'gateway must be a gateway id';
  return { guest, name: p.name, size: p.size, manifest: p.manifest, gateway: p.gateway };
}

// ------------------------------------------------------------------ retention tombstone v1

export interface Tombstone {
  device: string;
  gateway: string;
  /** Binary CIDs of the removed readings messages, bytewise sorted. */
  removed: Uint8Array[];
  from: number;
  through: number;
  /** Unix ms. */
  at: number;
  reason: string;
  /** The signer's previous tombstone for the device. */
  prev: Uint8Array | null;
}

export function tombstonePayload(t: Tombstone): Payload {
  const removed = [...t.removed].sort(compareCid);
  return {
    device: t.device, gateway: t.gateway, removed: removed.map(link), from: t.from, through: t.through, at: t.at,
    reason: t.reason, prev: t.prev ? link(t.prev) : null,
  };
}

export function parseTombstone(p: Payload): Tombstone | string {
  const keys = exactKeys(p, ['device', 'gateway', 'removed', 'from', 'through', 'at', 'reason', 'prev']);
  if (keys) return keys;
  if (typeof p.device !== 'string' || !isDeviceId(p.device)) return 'device must be a device id';
  if (typeof p.gateway !== 'string' || !isDeviceId(p.gateway)) return 'gateway must be a gateway id';
  if (!Array.isArray(p.removed)) return 'removed must be an array of links';
  const removed: Uint8Array[] = [];
  for (const x of p.removed) {
    const c = linkCid(x);
    if (!c) return 'removed must link CIDs';
    if (removed.length && compareCid(removed[removed.length - 1], c) >= 0) return 'removed links must be sorted and distinct';
    removed.push(c);
  }
  if (!uint(p.from) || !uint(p.through) || p.from > p.through) return 'from and through must be unsigned integers, from ≤ through';
  if (!uint(p.at)) return 'at must be unix milliseconds';
  if (typeof p.reason !== 'string' || p.reason.length === 0 || p.reason.length > 200) return 'reason must be 1-200 characters';
  let prev: Uint8Array | null = null;
  if (p.prev !== null) {
    prev = linkCid(p.prev) ?? null;
    if (!prev) return 'prev must be null or link a CID';
  }
  return { device: p.device, gateway: p.gateway, removed, from: p.from, through: p.through, at: p.at, reason: p.reason, prev };
}

// ------------------------------------------------------------------ meter aggregates v1

export type AggregateMethod = 'last' | 'mean';
export type AggregateValue = [channel: number, method: AggregateMethod, value: number, count: number];

export interface Aggregate {
  device: string;
  gateway: string;
  resolution: 900 | 86400;
  /** Window start, unix seconds. */
  start: number;
  /** The channels the message was built for; null = every channel. */
  channels: number[] | null;
  values: AggregateValue[];
  /** Readings messages (binary CIDs) whose readings went in, bytewise sorted. */
  sources: Uint8Array[];
  prev: Uint8Array | null;
}

export const RESOLUTIONS = [900, 86400] as const;

/** How a channel is summarised (meter-aggregates-v1.md): instantaneous quantities by mean, the rest by last. */
export function methodOf(channel: number): AggregateMethod {
  return channel >= 3 && channel <= 10 ? 'mean' : 'last';
}

export function aggregatePayload(a: Aggregate): Payload {
  return {
    device: a.device, gateway: a.gateway, resolution: a.resolution, start: a.start,
    channels: a.channels ? [...a.channels] : null,
    values: a.values.map((v) => [...v]) as CborValue[],
    sources: [...a.sources].sort(compareCid).map(link),
    prev: a.prev ? link(a.prev) : null,
  };
}

export function parseAggregate(p: Payload): Aggregate | string {
  const keys = exactKeys(p, ['device', 'gateway', 'resolution', 'start', 'channels', 'values', 'sources', 'prev']);
  if (keys) return keys;
  if (typeof p.device !== 'string' || !isDeviceId(p.device)) return 'device must be a device id';
  if (typeof p.gateway !== 'string' || !isDeviceId(p.gateway)) return 'gateway must be a gateway id';
  if (p.resolution !== 900 && p.resolution !== 86400) return 'resolution must be 900 or 86400';
  if (!uint(p.start) || p.start % p.resolution !== 0) return 'start must be unix seconds, a multiple of resolution';
  let channels: number[] | null = null;
  if (p.channels !== null) {
    if (!Array.isArray(p.channels) || p.channels.length === 0 || !p.channels.every((c) => uint(c))) return 'channels must be null or channel numbers';
    channels = p.channels as number[];
    for (let i = 1; i < channels.length; i++) if (channels[i] <= channels[i - 1]) return 'channels must be increasing';
  }
  if (!Array.isArray(p.values) || p.values.length === 0) return 'values must be a non-empty array';
  let last = -1;
  for (let i = 0; i < p.values.length; i++) {
    const v = p.values[i];
    if (!Array.isArray(v) || v.length !== 4 || !uint(v[0]) || !int(v[2]) || !uint(v[3]) || v[3] < 1) return `value ${i} is not [channel, method, value, count]`;
    if (v[1] !== methodOf(v[0] as number)) return `value ${i}: channel ${v[0]} is summarised by "${methodOf(v[0] as number)}"`;
    if ((v[0] as number) <= last) return 'values must be in increasing channel order, one per channel';
    if (channels && !channels.includes(v[0] as number)) return `value ${i}: channel ${v[0]} is not among channels`;
    last = v[0] as number;
  }
  if (!Array.isArray(p.sources) || p.sources.length === 0) return 'sources must be a non-empty array of links';
  const sources: Uint8Array[] = [];
  for (const x of p.sources) {
    const c = linkCid(x);
    if (!c) return 'sources must link CIDs';
    if (sources.length && compareCid(sources[sources.length - 1], c) >= 0) return 'sources must be sorted and distinct';
    sources.push(c);
  }
  let prev: Uint8Array | null = null;
  if (p.prev !== null) {
    prev = linkCid(p.prev) ?? null;
    if (!prev) return 'prev must be null or a link';
  }
  return { device: p.device, gateway: p.gateway, resolution: p.resolution, start: p.start, channels, values: p.values as AggregateValue[], sources, prev };
}

// ------------------------------------------------------------------ sharing consent v1

export interface ConsentShare {
  level: 'none' | 'daily' | '15min' | 'full';
  purposes: string[];
  channels?: number[];
}

export interface Consent {
  device: string;
  gateway: string;
  policy: { operator: ConsentShare; peers: { [operator: string]: ConsentShare }; mesh: ConsentShare };
  /** Seconds; null = until removed by hand. */
  retention: number | null;
  hlc: Hlc;
}

const CONSENT_LEVELS = ['none', 'daily', '15min', 'full'];
const CONSENT_PURPOSES = ['billing', 'grid-operations', 'research'];

function sharePayload(s: ConsentShare): CborValue {
  const o: { [k: string]: CborValue } = { level: s.level, purposes: [...s.purposes] };
  if (s.channels) o.channels = [...s.channels];
  return o;
}

function parseShareValue(v: CborValue, where: string): ConsentShare | string {
  if (!textMap(v)) return `${where} must be a share map`;
  for (const k of Object.keys(v)) if (!['level', 'purposes', 'channels'].includes(k)) return `${where}: unknown key ${k}`;
  if (typeof v.level !== 'string' || !CONSENT_LEVELS.includes(v.level)) return `${where}.level must be one of ${CONSENT_LEVELS.join(', ')}`;
  if (!Array.isArray(v.purposes) || v.purposes.some((p) => typeof p !== 'string' || !CONSENT_PURPOSES.includes(p)) ||
      new Set(v.purposes).size !== v.purposes.length) return `${where}.purposes must be distinct purposes`;
  const s: ConsentShare = { level: v.level as ConsentShare['level'], purposes: v.purposes as string[] };
  if (v.channels !== undefined) {
    if (!Array.isArray(v.channels) || !v.channels.every((c) => uint(c) && (c as number) <= 65535)) return `${where}.channels must be channel numbers`;
    const c = v.channels as number[];
    for (let i = 1; i < c.length; i++) if (c[i] <= c[i - 1]) return `${where}.channels must be increasing`;
    s.channels = c;
  }
  return s;
}

export function consentPayload(c: Consent): Payload {
  const peers: { [k: string]: CborValue } = {};
  for (const [k, s] of Object.entries(c.policy.peers)) peers[k] = sharePayload(s);
  return {
    device: c.device, gateway: c.gateway,
    policy: { operator: sharePayload(c.policy.operator), peers, mesh: sharePayload(c.policy.mesh) },
    retention: c.retention, hlc: [...c.hlc],
  };
}

/** sharing-consent-v2: the payload of v1, with every key of `policy.peers` an operator id. */
export function parseConsentV2(p: Payload): Consent | string {
  const c = parseConsent(p);
  if (typeof c === 'string') return c;
  for (const k of Object.keys(c.policy.peers)) if (!/^op[a-z2-7]{52}$/.test(k)) return `policy.peers key "${k.slice(0, 60)}" is not an operator id`;
  return c;
}

export function parseConsent(p: Payload): Consent | string {
  const keys = exactKeys(p, ['device', 'gateway', 'policy', 'retention', 'hlc']);
  if (keys) return keys;
  if (typeof p.device !== 'string' || !isDeviceId(p.device)) return 'device must be a device id';
  if (typeof p.gateway !== 'string' || !isDeviceId(p.gateway)) return 'gateway must be a gateway id';
  if (p.retention !== null && !uint(p.retention)) return 'retention must be seconds or null';
  const hlc = parseHlc(p.hlc);
  if (!hlc) return 'hlc must be [ms, n]';
  if (!textMap(p.policy)) return 'policy must be a map';
  const pk = exactKeys(p.policy, ['operator', 'peers', 'mesh']);
  if (pk) return `policy: ${pk}`;
  const operator = parseShareValue(p.policy.operator, 'policy.operator');
  if (typeof operator === 'string') return operator;
  const mesh = parseShareValue(p.policy.mesh, 'policy.mesh');
  if (typeof mesh === 'string') return mesh;
  if (!textMap(p.policy.peers)) return 'policy.peers must be a map of operator name to share';
  const peers: { [k: string]: ConsentShare } = {};
  for (const [k, v] of Object.entries(p.policy.peers)) {
    if (k.length === 0 || k.length > 200) return 'policy.peers keys must be operator names';
    const s = parseShareValue(v, `policy.peers.${k}`);
    if (typeof s === 'string') return s;
    peers[k] = s;
  }
  return { device: p.device, gateway: p.gateway, policy: { operator, peers, mesh }, retention: p.retention, hlc };
}
