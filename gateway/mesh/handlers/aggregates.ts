// meter-aggregates-v1: a device's 15-minute and daily figures, chained per (resolution, channels).
// Like readings, only the gateways of the operator holding the device's pairing sign them.

import { equal } from '../../../firmware/core/bytes.js';
import { cidText } from '../cid.js';
import { parseAggregate } from '../protocols.js';
import { blockOf, judgeHistory, type ProtocolHandler } from './handler.js';

export const aggregates: ProtocolHandler = {
  async apply(core, hooks, m, from) {
    const a = parseAggregate(m.payload);
    if (typeof a === 'string') return 'payload';
    const refused = judgeHistory(core, hooks, m, from, a.device, a.gateway);
    if (refused) return refused;
    if (!(await core.mayKeep(a.device, { kind: 'aggregate', resolution: a.resolution, channels: a.channels }))) return 'private';
    const blocks = core.ctx.store.blocks;
    await blocks.put(blockOf(core, m, 'aggregate', a.device));
    core.aggregator.chains.add(m.cid, a, equal(m.kid, core.signer.publicKey));
    core.ctx.events.emit('mesh-message', { protocol: 'aggregates', deviceId: a.device, cid: cidText(m.cid), from: from.peer });
    if (a.prev && !(await blocks.has(a.prev))) hooks.fetchAncestor(a.prev, from.peer);
    return 'accepted';
  },
};
