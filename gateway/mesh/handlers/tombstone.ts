// retention-tombstone-v1: kept, and the removed messages its signer wrote are dropped here too
// (privacy/retention.ts).

import { applyTombstone } from '../../privacy/retention.js';
import type { ProtocolHandler } from './handler.js';

export const tombstone: ProtocolHandler = {
  apply(core, _hooks, m) {
    return applyTombstone(core.ctx.store, m, (kid, gateway) => core.ids.bound(kid, gateway), core.ctx.now());
  },
};
