// device-registry-v1: pairings and revocations, merged as a CRDT (device-registry.ts).

import { MAX_CLOCK_AHEAD_MS } from '../core.js';
import { parseRegistry } from '../protocols.js';
import { blockOf, type ProtocolHandler } from './handler.js';

export const registry: ProtocolHandler = {
  async apply(core, hooks, m) {
    const e = parseRegistry(m.payload);
    if (typeof e === 'string') return 'payload';
    if (e.hlc[0] > core.ctx.now() + MAX_CLOCK_AHEAD_MS) return 'future';
    if (!core.crdt.bound(m.kid, e.gateway)) return 'untrusted';
    core.clock.observe(e.hlc);
    await core.ctx.store.blocks.put(blockOf(core, m, 'registry', e.device));
    // The device's operator (whose gateways may have all of it) may change with its pairing.
    core.ledger.changed([e.device]);
    if (e.op === 'pair') core.crdt.addPairing({ cid: m.cid, kid: m.kid, entry: e });
    else core.crdt.addRevocation({ cid: m.cid, kid: m.kid, entry: e });
    await hooks.registryChanged(e.device);
    return 'accepted';
  },
};
