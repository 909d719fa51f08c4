// Verifying a device's history from any gateway (`gridlet verify`): walk its readings chain from the
// heads through `prev`, check every message's CID, encoding, pCID, signature and signer binding, and
// report coverage, holes, what the meter declared lost, branches and merges.

import { toHex } from '../../firmware/core/bytes.js';
import { cidOf, cidText, parseCidText } from './cid.js';
import { MessageError, openMessage } from './message.js';
import { protocols } from './pcid.js';
import { parseIdentity, parseReadings, recordLast, type Identity } from './protocols.js';

export type Range = [first: number, last: number];

export interface HistoryReport {
  device: string;
  messages: number;
  heads: string[];
  /** Gateways whose signatures the history carries. */
  signers: { gateway: string; operator: string }[];
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
  problems: string[];
}

export interface HistorySource {
  heads(deviceId: string): Promise<string[]>;
  block(cid: string): Promise<Uint8Array | undefined>;
  /** CIDs of the gateway identity messages the source knows. */
  identities(): Promise<string[]>;
  ackedSeq(deviceId: string): Promise<number>;
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
  const keys = new Map<string, Identity>();
  for (const c of await src.identities()) {
    const bytes = await src.block(c);
    if (!bytes) {
      problems.push(`identity message ${c} is not served`);
      continue;
    }
    try {
      const m = openMessage(bytes);
      if (cidText(cidOf(bytes)) !== c) throw new MessageError('malformed', 'its bytes do not hash to its CID');
      if (toHex(m.pcid) !== toHex(p.identity.pcid)) throw new MessageError('pcid', 'not a gateway identity message');
      const i = parseIdentity(m.payload, m.kid);
      if (typeof i === 'string') throw new MessageError('payload', i);
      keys.set(toHex(m.kid), i);
    } catch (e) {
      problems.push(`identity message ${c}: ${(e as Error).message}`);
    }
  }

  const heads = await src.heads(deviceId);
  const seen = new Set<string>();
  const children = new Map<string, string[]>();
  const merges: string[] = [];
  const covered: Range[] = [];
  const lost: Range[] = [];
  const signers = new Map<string, { gateway: string; operator: string }>();
  const queue = [...heads];
  while (queue.length && seen.size < maxMessages) {
    const c = queue.shift()!;
    if (seen.has(c)) continue;
    seen.add(c);
    const cid = parseCidText(c);
    const bytes = cid && (await src.block(c));
    if (!bytes) {
      problems.push(`message ${c} is named but not served (a hole in the chain)`);
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
    if (!id || id.gateway !== r.gateway) problems.push(`message ${c} names gateway ${r.gateway} but its key is bound to ${id ? id.gateway : 'no gateway identity'}`);
    else signers.set(id.gateway, { gateway: id.gateway, operator: id.operator });
    for (const rec of r.records) {
      covered.push([rec[0], recordLast(rec)]);
      if (rec[2] === 'gap') lost.push([rec[0], rec[3] as number]);
    }
    if (r.prev.length > 1) merges.push(c);
    for (const parent of r.prev) {
      const t = cidText(parent);
      const list = children.get(t) ?? [];
      list.push(c);
      children.set(t, list);
      queue.push(t);
    }
  }
  if (queue.length) problems.push(`stopped after ${maxMessages} messages`);

  const cov = merge(covered);
  const holes: Range[] = [];
  let next = 1;
  for (const [a, b] of cov) {
    if (a > next) holes.push([next, a - 1]);
    next = Math.max(next, b + 1);
  }
  const ackedSeq = await src.ackedSeq(deviceId);
  for (const [a, b] of holes) problems.push(`seqs ${a}-${b} are carried by no message`);
  if (ackedSeq >= next) problems.push(`acked seqs ${next}-${ackedSeq} are carried by no message`);
  const branches = [...children.entries()].filter(([, c]) => c.length > 1).map(([at, c]) => ({ at, children: c.sort() }));
  return {
    device: deviceId, messages: seen.size, heads, signers: [...signers.values()], covered: cov, holes,
    declaredLost: merge(lost), branches, merges, ackedSeq, problems,
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
  };
}
