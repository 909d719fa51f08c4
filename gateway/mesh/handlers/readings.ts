// meter-readings-v1: a device's records as its gateway accepted them, hash-chained through prev. Only
// the gateways of the operator holding the device's pairing write its history (device-registry-v2
// "History"): a readings message from any other is refused as foreign.

import { cidText } from '../cid.js';
import { parseReadings } from '../protocols.js';
import { blockOf, judgeHistory, type ProtocolHandler } from './handler.js';

export const readings: ProtocolHandler = {
  async apply(core, hooks, m, from) {
    const r = parseReadings(m.payload);
    if (typeof r === 'string') return 'payload';
    const refused = judgeHistory(core, hooks, m, from, r.device, r.gateway);
    if (refused) return refused;
    if (!(await core.mayKeep(r.device, { kind: 'readings' }))) return 'private';
    const blocks = core.ctx.store.blocks;
    await blocks.appendChain({ deviceId: r.device, prev: r.prev, block: blockOf(core, m, 'readings', r.device) });
    core.ctx.events.emit('mesh-message', { protocol: 'readings', deviceId: r.device, cid: cidText(m.cid), from: from.peer });
    // Walk back to the parents this gateway does not hold yet.
    for (const p of r.prev) {
      if (!(await blocks.has(p))) hooks.fetchAncestor(p, from.peer);
    }
    return 'accepted';
  },
};
