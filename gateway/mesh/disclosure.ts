// What of a meter goes to which gateway (MESH.md "Operators and privacy", "Trust, version 2";
// gateway/privacy): readings messages, signed aggregates or nothing, as each device's sharing policy
// says. This gateway sends its devices' blocks only to admitted peers whose operator (by key) the policy
// lets have them — never to a topic anyone can join —, serves a block only to such a peer, signs a
// consent message (sharing-consent-v2) when a policy changes, and deletes what a changed consent no
// longer lets it keep.

import { equal, toHex } from '../../firmware/core/bytes.js';
import { RESIGN_HORIZON_S } from '../privacy/aggregate.js';
import { audienceShare, consentOf, mayHave, policyOf, samePolicy, selectionsFor, type BlockView } from '../privacy/consent.js';
import { DEFAULT_POLICY, type PrivacyPolicy } from '../privacy/policy.js';
import type { Disclosure as DisclosureRecord } from '../store/store.js';
import { cidText } from './cid.js';
import type { MeshCore, Received } from './core.js';
import { decodeMessage, type GridMessage } from './message.js';
import { protocolOf, type ProtocolName } from './pcid.js';
import { aggregatePayload, consentPayload, parseAggregate, parseConsentV2, parseReadings, type Aggregate } from './protocols.js';

/** At startup, at most this many readings messages per device are read back for windows left unsigned. */
const RECOVERY_WALK = 5000;

export interface DisclosureDeps {
  /** Runs per-device work in arrival order (mesh.ts). */
  serial(deviceId: string, f: () => Promise<void>): Promise<void>;
  /** Judges and keeps one of this gateway's own messages (mesh.ts). */
  apply(m: GridMessage, protocol: ProtocolName): Promise<Received>;
}

export class Disclosure {
  readonly #core: MeshCore;
  readonly #d: DisclosureDeps;
  #off?: () => void;

  constructor(core: MeshCore, deps: DisclosureDeps) {
    this.#core = core;
    this.#d = deps;
  }

  /** Consents for this gateway's devices, aggregates of windows left unsigned by a restart, and policy changes from now on. */
  async start(): Promise<void> {
    const core = this.#core;
    const privacy = core.ctx.privacy;
    this.#off = privacy.onChange((ids) => void this.policyChanged(ids).catch((e: Error) =>
      core.ctx.log.error({ err: e.message }, 'mesh: sharing consent not signed')));
    await this.policyChanged('all');
    const blocks = core.ctx.store.blocks;
    for (const d of await core.ctx.store.listDevices()) {
      const resolutions = d.state === 'paired' ? [...new Set(selectionsFor(await core.localPolicy(d.id)).map((s) => s.resolution))] : [];
      if (resolutions.length === 0) continue;
      // Walk back from the chain's heads through the messages no aggregate names yet, down to the newest
      // signed window (bounded: older unsigned windows stay raw).
      const named = new Set<string>();
      for (const b of await blocks.list('aggregate', d.id)) {
        const a = parseAggregate(decodeMessage(b.bytes).payload);
        if (typeof a !== 'string' && b.receivedAt >= core.ctx.now() - 2 * RESIGN_HORIZON_S * 1000) for (const c of a.sources) named.add(toHex(c));
      }
      const cutoff = core.aggregator.newestSigned(d.id) ?? -1;
      const queue = await blocks.heads(d.id);
      const seen = new Set<string>();
      while (queue.length && seen.size < RECOVERY_WALK) {
        const cid = queue.shift()!;
        if (seen.has(toHex(cid)) || named.has(toHex(cid))) continue;
        seen.add(toHex(cid));
        const bytes = await blocks.get(cid);
        if (!bytes) continue;
        const m = decodeMessage(bytes);
        const r = parseReadings(m.payload);
        if (typeof r === 'string') continue;
        if (equal(m.kid, core.signer.publicKey)) core.aggregator.noteReadings(d.id, m.cid, r.records, resolutions);
        if (r.records.every((x) => x[1] < cutoff)) continue;
        queue.push(...r.prev);
      }
    }
  }

  stop(): void {
    this.#off?.();
  }

  /** A device's policy changed here: a new consent message, signed and announced to everyone. */
  async policyChanged(ids: string[] | 'all'): Promise<void> {
    const core = this.#core;
    core.ledger.changed(ids);
    const list = ids === 'all' ? (await core.ctx.store.listDevices()).filter((d) => d.state === 'paired').map((d) => d.id) : ids;
    await Promise.all(list.map((id) => this.#d.serial(id, () => this.checkConsent(id))));
  }

  /** Signs a consent message when the device's policy here differs from the one the mesh holds. */
  async checkConsent(deviceId: string): Promise<void> {
    const core = this.#core;
    if (!(await core.isLocal(deviceId))) return;
    const st = core.crdt.state(deviceId);
    if (st && st.gateway !== core.gatewayId) return;
    const policy = await core.localPolicy(deviceId);
    const held = core.consents.get(deviceId);
    if (held ? samePolicy(held.policy, policy) : samePolicy(policy, DEFAULT_POLICY)) return;
    const m = core.sign('consent2', consentPayload({ device: deviceId, gateway: core.gatewayId, ...consentOf(policy), hlc: core.clock.now() }));
    const r = await this.#d.apply(m, 'consent2');
    if (r !== 'accepted') return void core.ctx.log.warn({ device: deviceId, result: r }, 'mesh: own sharing consent not kept');
    core.broadcast([m.bytes]);
  }

  /** Loads a kept consent message (it was checked when it was kept; one of version 1 means nothing now). */
  addConsent(m: GridMessage): void {
    if (protocolOf(m.pcid) !== 'consent2') return;
    const c = parseConsentV2(m.payload);
    if (typeof c === 'string') return;
    try {
      this.#core.consents.add(c.device, { cid: m.cid, hlc: c.hlc, gateway: c.gateway, policy: policyOf(c) });
      this.#core.clock.observe(c.hlc);
    } catch {
      // a policy this version cannot read: ignored
    }
  }

  /** A consent changed what this gateway may keep of another operator's device: what it may not keep goes. */
  async consentChanged(deviceId: string): Promise<void> {
    const core = this.#core;
    const devOp = core.deviceOperator(deviceId);
    if (devOp === core.operator) return;
    const share = audienceShare(core.consents.policy(deviceId), devOp, core.operator);
    const blocks = core.ctx.store.blocks;
    const drop: Uint8Array[] = [];
    if (!mayHave(share, { kind: 'readings' })) for (const b of await blocks.list('readings', deviceId)) drop.push(b.cid);
    for (const b of await blocks.list('aggregate', deviceId)) {
      const a = parseAggregate(decodeMessage(b.bytes).payload);
      if (typeof a === 'string' || mayHave(share, { kind: 'aggregate', resolution: a.resolution, channels: a.channels })) continue;
      drop.push(b.cid);
      core.aggregator.chains.forget(deviceId, a);
    }
    if (drop.length === 0) return;
    const n = await blocks.delete(drop);
    core.ctx.log.info({ device: deviceId, deleted: n, level: share.level }, 'mesh: sharing consent withdrawn; blocks this gateway may no longer keep deleted');
    core.ctx.events.emit('consent-deleted', { deviceId, deleted: n });
  }

  /**
   * Sends messages about one of this gateway's devices to every admitted peer whose operator may have
   * them: its own operator's gateways, and the others as far as the device's policy says, each
   * disclosure to another operator recorded in the audit log.
   */
  async disclose(deviceId: string, ms: GridMessage[], view: BlockView, seqs?: [number, number][], known?: PrivacyPolicy): Promise<void> {
    const core = this.#core;
    const peers = core.node?.admittedPeers() ?? [];
    if (peers.length === 0 || core.closed) return;
    const bytes = ms.map((m) => m.bytes);
    let policy: PrivacyPolicy | undefined = known && core.resolvePolicy(known);
    const out: DisclosureRecord[] = [];
    for (const peer of peers) {
      const op = core.peerOperator(peer);
      if (!op) continue;
      if (op === core.operator) {
        core.send(peer, { blocks: bytes });
        continue;
      }
      policy ??= await core.localPolicy(deviceId);
      const share = audienceShare(policy, core.operator, op);
      if (!mayHave(share, view)) continue;
      core.send(peer, { blocks: bytes });
      for (const [i, m] of ms.entries()) {
        out.push({
          audience: peer, operator: op, deviceId, cid: cidText(m.cid), kind: view.kind, seq: seqs?.[i], level: levelOf(view),
          purposes: share.purposes, via: 'announce',
        });
      }
    }
    if (out.length) await core.ctx.privacy.recordDisclosure(out);
  }

  /** Signs, keeps and announces one of this gateway's aggregates (the aggregator's publish). */
  async publishAggregate(a: Aggregate): Promise<GridMessage> {
    const core = this.#core;
    const m = core.sign('aggregates', aggregatePayload({ ...a, gateway: core.gatewayId }));
    await core.ctx.store.blocks.put({ cid: m.cid, bytes: m.bytes, kind: 'aggregate', deviceId: a.device, receivedAt: core.ctx.now() });
    core.ctx.events.emit('mesh-message', { protocol: 'aggregates', deviceId: a.device, cid: cidText(m.cid) });
    await this.disclose(a.device, [m], { kind: 'aggregate', resolution: a.resolution, channels: a.channels });
    return m;
  }

  /** What a peer asking for a block gets: the bytes, or 'refused' when its operator may not have them. */
  async serve(bytes: Uint8Array, peer: string): Promise<Uint8Array | 'refused'> {
    const core = this.#core;
    let m: GridMessage;
    try {
      m = decodeMessage(bytes);
    } catch {
      return bytes;
    }
    const about = viewOf(m);
    if (!about) return bytes;
    const op = core.peerOperator(peer);
    if (!op) return 'refused';
    const devOp = core.deviceOperator(about.device);
    if (op === devOp) return bytes;
    const share = audienceShare(await core.policyFor(about.device), devOp, op);
    if (!mayHave(share, about.view)) return 'refused';
    await core.ctx.privacy.recordDisclosure({
      audience: peer, operator: op, deviceId: about.device, cid: cidText(m.cid), kind: about.view.kind,
      seq: about.seq, level: levelOf(about.view), purposes: share.purposes, via: 'serve',
    });
    return bytes;
  }

  /** May gateways of `operator` (id) have this chain head (summaries)? */
  async mayAnnounce(operator: string, device: string, view: BlockView, cache: Map<string, { policy: PrivacyPolicy; operator: string }>): Promise<boolean> {
    const core = this.#core;
    let p = cache.get(device);
    if (!p) cache.set(device, (p = { policy: await core.policyFor(device), operator: core.deviceOperator(device) }));
    return operator === p.operator || mayHave(audienceShare(p.policy, p.operator, operator), view);
  }
}

/** What a readings or aggregates message is about, for sharing decisions; undefined for other protocols. */
function viewOf(m: GridMessage): { device: string; view: BlockView; seq?: [number, number] } | undefined {
  const protocol = protocolOf(m.pcid);
  if (protocol === 'readings') {
    const r = parseReadings(m.payload);
    return typeof r === 'string' ? undefined : { device: r.device, view: { kind: 'readings' }, seq: [r.first, r.last] };
  }
  if (protocol === 'aggregates') {
    const a = parseAggregate(m.payload);
    return typeof a === 'string' ? undefined : { device: a.device, view: { kind: 'aggregate', resolution: a.resolution, channels: a.channels } };
  }
  return undefined;
}

export function levelOf(v: BlockView): 'full' | '15min' | 'daily' {
  return v.kind === 'readings' ? 'full' : v.resolution === 900 ? '15min' : 'daily';
}
