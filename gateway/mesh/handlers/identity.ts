// gateway-identity-v1: binds a gateway id, an Ed25519 key, an operator and a peer id.

import { MAX_CLOCK_AHEAD_MS } from '../core.js';
import { parseIdentity } from '../protocols.js';
import { blockOf, type ProtocolHandler } from './handler.js';

export const identity: ProtocolHandler = {
  async apply(core, _hooks, m) {
    const i = parseIdentity(m.payload, m.kid);
    if (typeof i === 'string') return 'payload';
    if (i.t > core.ctx.now() + MAX_CLOCK_AHEAD_MS) return 'future';
    if (core.crdt.addIdentity({ cid: m.cid, kid: m.kid, entry: i })) return 'conflict';
    await core.ctx.store.blocks.put(blockOf(core, m, 'identity'));
    return 'accepted';
  },
};
