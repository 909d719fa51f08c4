// The device registry: pairings and revocations, merged as a CRDT (device-registry.ts). Version 2
// (device-registry-v2) and version 1 messages carry the same payloads; both are merged by version 2's
// rules. Every message is kept (the registry is the set of them); what does not count is said: a
// pairing by another operator's gateway while one stands is a conflict, a revocation its signer may
// not make is unauthorized.

import { MAX_CLOCK_AHEAD_MS } from '../core.js';
import { parseRegistry } from '../protocols.js';
import { blockOf, type ProtocolHandler } from './handler.js';

export const registry: ProtocolHandler = {
  async apply(core, hooks, m) {
    const e = parseRegistry(m.payload);
    if (typeof e === 'string') return 'payload';
    if (e.hlc[0] > core.ctx.now() + MAX_CLOCK_AHEAD_MS) return 'future';
    if (!core.ids.bound(m.kid, e.gateway)) return 'untrusted';
    if (!core.crdt.counts(m.kid, e.gateway, e.hlc)) return 'superseded';
    core.clock.observe(e.hlc);
    await core.ctx.store.blocks.put(blockOf(core, m, 'registry', e.device));
    // The device's operator (whose gateways may have all of it) may change with its pairing.
    core.ledger.changed([e.device]);
    if (e.op === 'pair') core.crdt.addPairing({ cid: m.cid, kid: m.kid, entry: e });
    else core.crdt.addRevocation({ cid: m.cid, kid: m.kid, entry: e });
    await hooks.registryChanged(e.device);
    if (e.op === 'pair') return core.crdt.isConflict(m.cid) ? 'conflict' : 'accepted';
    const target = core.crdt.pairing(e.pairing);
    if (target && !core.crdt.mayRevoke(m.kid, target)) return 'unauthorized';
    return 'accepted';
  },
};
