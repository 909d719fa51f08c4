// guest-publication-v1: a guest module a gateway holds and serves by CID.

import { toHex } from '../../../firmware/core/bytes.js';
import { parseGuest } from '../protocols.js';
import { blockOf, type ProtocolHandler } from './handler.js';

export const guest: ProtocolHandler = {
  async apply(core, _hooks, m) {
    const g = parseGuest(m.payload);
    if (typeof g === 'string') return 'payload';
    if (!core.ids.bound(m.kid, g.gateway)) return 'untrusted';
    core.guestCids.set(toHex(g.guest), g.size);
    await core.ctx.store.blocks.put(blockOf(core, m, 'guest'));
    return 'accepted';
  },
};
