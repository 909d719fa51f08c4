// Verifying a device's history from any gateway (`gridlet verify`): walk its readings chain from the
// heads through `prev`, check every message's CID, encoding, pCID, signature and signer binding, and
// report coverage, holes, what the meter declared lost, branches and merges. The signers' identities
// are checked whole (gateway-identity-v2: the operator's signature and the proof of the X25519 key),
// the device's registry messages are merged again here (device-registry-v2), and coverage counts only
// from gateways of the operators that held the device's pairing ("History").

import { toHex } from '../../firmware/core/bytes.js';
import { cidOf, cidText, parseCidText } from './cid.js';
import { MessageError, openMessage } from './message.js';
import { protocolOf, protocols } from './pcid.js';
import { parseAggregate, parseIdentityV2, parseReadings, parseRegistry, parseTombstone, recordLast, type Aggregate, type IdentityV2 } from './protocols.js';
import { IdentityBook } from './identities.js';
import { DeviceRegistryCrdt } from './device-registry.js';
import { checkSources } from '../privacy/aggregate.js';

export type Range = [first: number, last: number];

export interface HistoryReport {
  device: string;
  messages: number;
  heads: string[];
  /** Gateways whose signatures the history carries (operator: its id; name: what it calls itself). */
  signers: { gateway: string; operator: string; name: string }[];
  /**
   * Operators whose pairing of the device was current at some time: the only ones whose messages count
   * (empty when the source says nothing of the device's registry or gateway: then every signer counts).
   */
  holders: { operator: string; name: string | null }[];
  /** Messages signed by gateways of other operators: walked, their records not counted. */
  foreign: string[];
  covered: Range[];
  /** Seqs below the highest covered that no message carries. */
  holes: Range[];
  /** Seqs the meter declared lost (gap records). */
  declaredLost: Range[];
  /** Messages with two or more children: where the history forked. */
  branches: { at: string; children: string[] }[];
  /** Messages with two or more parents. */
  merges: string[];
  /** The serving gateway's acked seq for the device (0 when it does not hold the pairing). */
  ackedSeq: number;
  /** Seqs removed by retention, as signed tombstones that name missing messages of the chain say. */
  removed: Range[];
  /** The tombstones that stood in for missing messages. */
  tombstones: { cid: string; gateway: string; from: number; through: number; removed: number; reason: string }[];
  problems: string[];
}

export interface HistorySource {
  heads(deviceId: string): Promise<string[]>;
  block(cid: string): Promise<Uint8Array | undefined>;
  /** CIDs of the gateway identity messages the source knows. */
  identities(): Promise<string[]>;
  ackedSeq(deviceId: string): Promise<number>;
  /** CIDs of the retention tombstones the source keeps for the device (retention-tombstone-v1). */
  tombstones?(deviceId: string): Promise<string[]>;
  /** The device's gateway in the registry, when the source knows it. */
  gateway?(deviceId: string): Promise<string | undefined>;
  /** Heads of the device's aggregate chains the source holds (meter-aggregates-v1). */
  aggregates?(deviceId: string): Promise<string[]>;
  /** CIDs of the device's registry messages the source holds (device-registry-v2). */
  registry?(deviceId: string): Promise<string[]>;
}

/** The identities a source serves, each checked whole (gateway-identity-v2); what does not hold is a problem. */
async function identitiesOf(src: HistorySource, problems: string[]): Promise<{ keys: Map<string, IdentityV2>; book: IdentityBook }> {
  const p = protocols();
  const keys = new Map<string, IdentityV2>();
  const book = new IdentityBook({ id: '', name: '' }, 'any');
  for (const c of await src.identities()) {
    const bytes = await src.block(c);
    if (!bytes) {
      problems.push(`identity message ${c} is not served`);
      continue;
    }
    try {
      const m = openMessage(bytes);
      if (cidText(cidOf(bytes)) !== c) throw new MessageError('malformed', 'its bytes do not hash to its CID');
      if (toHex(m.pcid) !== toHex(p.identity2.pcid)) throw new MessageError('pcid', 'not a gateway identity message of version 2');
      const i = parseIdentityV2(m.payload, m.kid);
      if (typeof i === 'string') throw new MessageError('payload', i);
      const refused = book.add({ cid: cidOf(bytes), kid: m.kid, entry: i });
      if (refused === 'enrollment') throw new Error('its operator\'s signature over the enrollment does not verify');
      if (refused === 'squat') throw new Error(`it does not prove it holds the X25519 key of gateway ${i.gateway}`);
      keys.set(toHex(m.kid), i);
    } catch (e) {
      problems.push(`identity message ${c}: ${(e as Error).message}`);
    }
  }
  return { keys, book };
}

/** The operators that held the device's pairing, from its registry messages merged again (undefined: none served). */
async function holdersOf(deviceId: string, src: HistorySource, book: IdentityBook, problems: string[]): Promise<Set<string> | undefined> {
  const cids = (await src.registry?.(deviceId)) ?? [];
  if (cids.length === 0) return undefined;
  const crdt = new DeviceRegistryCrdt(book);
  for (const c of cids) {
    const bytes = await src.block(c);
    try {
      if (!bytes) throw new Error('not served');
      const m = openMessage(bytes);
      const name = protocolOf(m.pcid);
      if (cidText(cidOf(bytes)) !== c || (name !== 'registry' && name !== 'registry2')) throw new Error('not a device registry message');
      const e = parseRegistry(m.payload);
      if (typeof e === 'string') throw new Error(e);
      if (e.device !== deviceId) throw new Error(`it is about device ${e.device}`);
      if (e.op === 'pair') crdt.addPairing({ cid: m.cid, kid: m.kid, entry: e });
      else crdt.addRevocation({ cid: m.cid, kid: m.kid, entry: e });
    } catch (err) {
      problems.push(`registry message ${c}: ${(err as Error).message}`);
    }
  }
  return crdt.holders(deviceId);
}

function merge(ranges: Range[]): Range[] {
  const s = [...ranges].sort((a, b) => a[0] - b[0]);
  const out: Range[] = [];
  for (const r of s) {
    const last = out[out.length - 1];
    if (last && r[0] <= last[1] + 1) last[1] = Math.max(last[1], r[1]);
    else out.push([r[0], r[1]]);
  }
  return out;
}

export async function verifyHistory(deviceId: string, src: HistorySource, maxMessages = 1_000_000): Promise<HistoryReport> {
  const p = protocols();
  const problems: string[] = [];
  const { keys, book } = await identitiesOf(src, problems);

  // Tombstones: a missing message counts as removed when one that verifies, signed by the device's
  // gateway or by the gateway of the message naming it, names it.
  const removedBy = new Map<string, { cid: string; gateway: string; from: number; through: number; removed: number; reason: string }>();
  const tombstonePrev = new Map<string, string | null>();
  const tombstoneInfo = new Map<string, HistoryReport['tombstones'][number]>();
  for (const c of (await src.tombstones?.(deviceId)) ?? []) {
    const bytes = await src.block(c);
    if (!bytes) {
      problems.push(`tombstone ${c} is not served`);
      continue;
    }
    try {
      const m = openMessage(bytes);
      if (cidText(cidOf(bytes)) !== c) throw new MessageError('malformed', 'its bytes do not hash to its CID');
      if (toHex(m.pcid) !== toHex(p.tombstone.pcid)) throw new MessageError('pcid', 'not a retention tombstone');
      const t = parseTombstone(m.payload);
      if (typeof t === 'string') throw new MessageError('payload', t);
      if (t.device !== deviceId) throw new MessageError('payload', `it is about device ${t.device}`);
      const id = keys.get(toHex(m.kid));
      if (!id || id.gateway !== t.gateway) throw new MessageError('signature', `it names gateway ${t.gateway} but its key is bound to ${id ? id.gateway : 'no gateway identity'}`);
      const info = { cid: c, gateway: t.gateway, from: t.from, through: t.through, removed: t.removed.length, reason: t.reason };
      tombstonePrev.set(c, t.prev ? cidText(t.prev) : null);
      tombstoneInfo.set(c, info);
      for (const r of t.removed) {
        const k = cidText(r);
        const had = removedBy.get(k);
        if (!had || had.through < info.through) removedBy.set(k, info);
      }
    } catch (e) {
      problems.push(`tombstone ${c}: ${(e as Error).message}`);
    }
  }
  const deviceGateway = await src.gateway?.(deviceId);
  // Who wrote the device's history: the operators of its pairings that were current (else, from a
  // source that serves no registry, the operator of its gateway's identity).
  let holders = await holdersOf(deviceId, src, book, problems);
  if (!holders && deviceGateway !== undefined) {
    const g = [...keys.values()].find((i) => i.gateway === deviceGateway);
    holders = new Set(g ? [g.operatorId] : []);
  }
  const foreign: string[] = [];
  type TombstoneInfo = HistoryReport['tombstones'][number];
  const usedTombstones = new Map<string, TombstoneInfo>();
  /** Gateways of the held messages that name a CID as their prev. */
  const namedBy = new Map<string, Set<string>>();

  const heads = await src.heads(deviceId);
  const seen = new Set<string>();
  const children = new Map<string, string[]>();
  const merges: string[] = [];
  const covered: Range[] = [];
  const lost: Range[] = [];
  const signers = new Map<string, { gateway: string; operator: string; name: string }>();
  const queue = [...heads];
  while (queue.length && seen.size < maxMessages) {
    const c = queue.shift()!;
    if (seen.has(c)) continue;
    seen.add(c);
    const cid = parseCidText(c);
    const bytes = cid && (await src.block(c));
    if (!bytes) {
      const t = removedBy.get(c);
      if (t && (t.gateway === deviceGateway || namedBy.get(c)?.has(t.gateway))) usedTombstones.set(t.cid, t);
      else if (t) problems.push(`message ${c} is removed by tombstone ${t.cid} of gateway ${t.gateway}, which is neither the device's gateway nor the writer of the message naming it`);
      else problems.push(`message ${c} is named but not served (a hole in the chain)`);
      continue;
    }
    let m;
    try {
      m = openMessage(bytes);
    } catch (e) {
      problems.push(`message ${c}: ${(e as Error).message}`);
      continue;
    }
    if (toHex(cidOf(bytes)) !== toHex(cid!)) {
      problems.push(`message ${c}: its bytes hash to ${cidText(cidOf(bytes))}, not to the CID that names it`);
      continue;
    }
    if (toHex(m.pcid) !== toHex(p.readings.pcid)) {
      problems.push(`message ${c}: its pCID ${cidText(m.pcid)} is not meter readings v1 (${p.readings.text})`);
      continue;
    }
    const r = parseReadings(m.payload);
    if (typeof r === 'string') {
      problems.push(`message ${c}: ${r}`);
      continue;
    }
    if (r.device !== deviceId) problems.push(`message ${c} is about device ${r.device}, not ${deviceId}`);
    const id = keys.get(toHex(m.kid));
    let counts = false;
    if (!id || id.gateway !== r.gateway) problems.push(`message ${c} names gateway ${r.gateway} but its key is bound to ${id ? id.gateway : 'no gateway identity'}`);
    else if (holders && !holders.has(id.operatorId)) {
      foreign.push(c);
      problems.push(`message ${c} is signed by gateway ${id.gateway} of operator ${id.operatorId} ("${id.name}"), which never held the device's pairing: its records are not counted`);
    } else {
      counts = true;
      signers.set(id.gateway, { gateway: id.gateway, operator: id.operatorId, name: id.name });
    }
    if (counts) {
      for (const rec of r.records) {
        covered.push([rec[0], recordLast(rec)]);
        if (rec[2] === 'gap') lost.push([rec[0], rec[3] as number]);
      }
    }
    if (r.prev.length > 1) merges.push(c);
    for (const parent of r.prev) {
      const t = cidText(parent);
      const by = namedBy.get(t) ?? new Set<string>();
      by.add(r.gateway);
      namedBy.set(t, by);
      const list = children.get(t) ?? [];
      list.push(c);
      children.set(t, list);
      queue.push(t);
    }
  }
  if (queue.length) problems.push(`stopped after ${maxMessages} messages`);

  // A tombstone in use vouches for its signer's earlier tombstones of the device (its prev chain).
  for (const start of [...usedTombstones.values()]) {
    let prev = tombstonePrev.get(start.cid);
    while (prev) {
      const info = tombstoneInfo.get(prev);
      if (!info) {
        problems.push(`tombstone ${prev}, named by tombstone ${start.cid}, is not served`);
        break;
      }
      if (usedTombstones.has(prev)) break;
      usedTombstones.set(prev, info);
      prev = tombstonePrev.get(prev);
    }
  }
  const cov = merge(covered);
  const removed = merge([...usedTombstones.values()].map((t): Range => [t.from, t.through]));
  const holes: Range[] = [];
  let next = 1;
  for (const [a, b] of merge([...cov, ...removed])) {
    if (a > next) holes.push([next, a - 1]);
    next = Math.max(next, b + 1);
  }
  const ackedSeq = await src.ackedSeq(deviceId);
  for (const [a, b] of holes) problems.push(`seqs ${a}-${b} are carried by no message`);
  if (ackedSeq >= next) problems.push(`acked seqs ${next}-${ackedSeq} are carried by no message`);
  const branches = [...children.entries()].filter(([, c]) => c.length > 1).map(([at, c]) => ({ at, children: c.sort() }));
  return {
    device: deviceId, messages: seen.size, heads, signers: [...signers.values()], covered: cov, holes, foreign,
    holders: [...(holders ?? [])].map((o) => ({ operator: o, name: book.nameOf(o) ?? null })),
    declaredLost: merge(lost), branches, merges, ackedSeq, removed, tombstones: [...usedTombstones.values()], problems,
  };
}

/** A HistorySource over a gateway's HTTP API. */
export function httpSource(base: string, token?: string): HistorySource {
  const root = base.endsWith('/') ? base : base + '/';
  const headers: { [k: string]: string } = token ? { authorization: `Bearer ${token}` } : {};
  const get = async (path: string): Promise<Response> => {
    try {
      return await fetch(new URL(path, root), { headers, signal: AbortSignal.timeout(15_000) });
    } catch (e) {
      const cause = (e as { cause?: { code?: string } }).cause?.code ?? (e as Error).name;
      throw new Error(`cannot reach the gateway at ${base} (${cause}); is \`gridlet gateway\` running there? (--gateway URL)`);
    }
  };
  return {
    async heads(id) {
      const r = await get(`api/mesh/heads/${id}`);
      if (r.status === 404) return [];
      if (!r.ok) throw new Error(`GET /api/mesh/heads/${id} answered ${r.status}`);
      const j = (await r.json()) as { cid: string; heads?: string[] };
      return j.heads ?? [j.cid];
    },
    async block(cid) {
      const r = await get(`api/mesh/blocks/${cid}`);
      if (r.status === 404) return undefined;
      if (!r.ok) throw new Error(`GET /api/mesh/blocks/${cid} answered ${r.status}`);
      return new Uint8Array(await r.arrayBuffer());
    },
    async identities() {
      const r = await get('api/mesh');
      if (!r.ok) throw new Error(`GET /api/mesh answered ${r.status}`);
      return ((await r.json()) as { gateways: { cid: string }[] }).gateways.map((g) => g.cid);
    },
    async ackedSeq(id) {
      const r = await get(`api/devices/${id}`);
      if (!r.ok) return 0;
      const d = (await r.json()) as { ackedSeq?: number };
      return d.ackedSeq ?? 0;
    },
    async aggregates(id) {
      const r = await get(`api/mesh/heads/${id}`);
      if (r.status === 404) return [];
      if (!r.ok) throw new Error(`GET /api/mesh/heads/${id} answered ${r.status}`);
      return ((await r.json()) as { aggregates?: string[] }).aggregates ?? [];
    },
    async tombstones(id) {
      const r = await get(`api/privacy/tombstones/${id}`);
      if (r.status === 404) return [];
      if (!r.ok) throw new Error(`GET /api/privacy/tombstones/${id} answered ${r.status}`);
      return ((await r.json()) as { tombstones: string[] }).tombstones;
    },
    async gateway(id) {
      const r = await get(`api/devices/${id}`);
      if (!r.ok) return undefined;
      return ((await r.json()) as { gateway?: string }).gateway;
    },
    async registry(id) {
      const r = await get(`api/mesh/devices/${id}`);
      if (r.status === 404) return [];
      if (!r.ok) throw new Error(`GET /api/mesh/devices/${id} answered ${r.status}`);
      return ((await r.json()) as { registry?: string[] }).registry ?? [];
    },
  };
}

export interface AggregatesReport {
  device: string;
  messages: number;
  /** One per (resolution, channels): its head, how many messages and windows it holds. */
  chains: { resolution: number; channels: number[] | null; head: string; messages: number; windows: number }[];
  signers: { gateway: string; operator: string; name: string }[];
  /** Messages whose values were recomputed from their sources (the source served them all). */
  sourcesChecked: number;
  /** Messages whose sources the source did not serve (another operator's gateway may not see them). */
  sourcesWithheld: number;
  problems: string[];
}

/**
 * Verifies a device's aggregate chains (meter-aggregates-v1) from their heads through `prev`: every
 * message's CID, pCID, signature and signer binding, one signer and one selection per chain, and, where
 * the source serves the readings messages an aggregate names, its values recomputed from them.
 */
export async function verifyAggregates(deviceId: string, src: HistorySource, maxMessages = 1_000_000): Promise<AggregatesReport> {
  const p = protocols();
  const problems: string[] = [];
  const { keys, book } = await identitiesOf(src, problems);
  const holders = await holdersOf(deviceId, src, book, problems);
  const signers = new Map<string, { gateway: string; operator: string; name: string }>();
  const chains: AggregatesReport['chains'] = [];
  let messages = 0;
  let sourcesChecked = 0;
  let sourcesWithheld = 0;
  for (const head of (await src.aggregates?.(deviceId)) ?? []) {
    const chain = { resolution: 0, channels: null as number[] | null, head, messages: 0, windows: 0 };
    const windows = new Set<number>();
    let signer: string | undefined;
    for (let c: string | undefined = head; c && messages < maxMessages;) {
      const bytes = await src.block(c);
      if (!bytes) {
        problems.push(`aggregate ${c} is named but not served (a hole in the chain)`);
        break;
      }
      let a: Aggregate | string;
      let kid: Uint8Array;
      try {
        const m = openMessage(bytes);
        if (cidText(cidOf(bytes)) !== c) throw new Error('its bytes do not hash to its CID');
        if (toHex(m.pcid) !== toHex(p.aggregates.pcid)) throw new Error(`its pCID ${cidText(m.pcid)} is not meter aggregates v1`);
        a = parseAggregate(m.payload);
        kid = m.kid;
      } catch (e) {
        problems.push(`aggregate ${c}: ${(e as Error).message}`);
        break;
      }
      if (typeof a === 'string') {
        problems.push(`aggregate ${c}: ${a}`);
        break;
      }
      messages++;
      chain.messages++;
      if (chain.messages === 1) Object.assign(chain, { resolution: a.resolution, channels: a.channels });
      else if (chain.resolution !== a.resolution || JSON.stringify(chain.channels) !== JSON.stringify(a.channels)) {
        problems.push(`aggregate ${c} is in the chain of ${head} but has another resolution or channels`);
      }
      if (a.device !== deviceId) problems.push(`aggregate ${c} is about device ${a.device}, not ${deviceId}`);
      const id = keys.get(toHex(kid));
      if (!id || id.gateway !== a.gateway) problems.push(`aggregate ${c} names gateway ${a.gateway} but its key is bound to ${id ? id.gateway : 'no gateway identity'}`);
      else if (holders && !holders.has(id.operatorId)) problems.push(`aggregate ${c} is signed by gateway ${id.gateway} of operator ${id.operatorId}, which never held the device's pairing`);
      else signers.set(id.gateway, { gateway: id.gateway, operator: id.operatorId, name: id.name });
      if (signer !== undefined && signer !== a.gateway) problems.push(`aggregate ${c}: a chain has one signer, but it names ${a.gateway} after ${signer}`);
      signer = a.gateway;
      windows.add(a.start);
      const sources = await Promise.all(a.sources.map((s) => src.block(cidText(s)).catch(() => undefined)));
      if (sources.every((s) => s !== undefined)) {
        sourcesChecked++;
        for (const x of checkSources(a, sources)) problems.push(`aggregate ${c}: ${x}`);
      } else sourcesWithheld++;
      c = a.prev ? cidText(a.prev) : undefined;
    }
    chain.windows = windows.size;
    chains.push(chain);
  }
  return { device: deviceId, messages, chains, signers: [...signers.values()], sourcesChecked, sourcesWithheld, problems };
}
