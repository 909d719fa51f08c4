// Gateway identities. Version 2 (gateway-identity-v2): a gateway's names bound by its operator's
// signature and its own proof that it holds its X25519 key; kept only for trusted operators
// (identities.ts). Version 1 names an operator but proves nothing: read, never trusted.

import { cidText } from '../cid.js';
import { MAX_CLOCK_AHEAD_MS } from '../core.js';
import { parseIdentity, parseIdentityV2 } from '../protocols.js';
import { blockOf, type ProtocolHandler } from './handler.js';

export const identityV1: ProtocolHandler = {
  async apply(core, _hooks, m, from) {
    const i = parseIdentity(m.payload, m.kid);
    if (typeof i === 'string') return 'payload';
    core.ctx.log.debug({ gateway: i.gateway, peer: from.peer }, 'mesh: a version-1 gateway identity binds nothing; the gateway must be enrolled by its operator');
    return 'unenrolled';
  },
};

export const identity: ProtocolHandler = {
  async apply(core, _hooks, m, from) {
    const i = parseIdentityV2(m.payload, m.kid);
    if (typeof i === 'string') return 'payload';
    const ahead = core.ctx.now() + MAX_CLOCK_AHEAD_MS;
    if (i.t > ahead || i.enrolled > ahead) return 'future';
    const refused = core.ids.add({ cid: m.cid, kid: m.kid, entry: i });
    if (refused) {
      core.ctx.log.info({ gateway: i.gateway, operator: i.operatorId, peer: from.peer, cid: cidText(m.cid), reason: refused }, 'mesh: gateway identity refused');
      return refused;
    }
    await core.ctx.store.blocks.put(blockOf(core, m, 'identity'));
    return 'accepted';
  },
};
