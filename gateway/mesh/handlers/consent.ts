// sharing-consent-v1: a device's sharing policy, signed by its gateway (or its operator's).

import { policyOf } from '../../privacy/consent.js';
import type { PrivacyPolicy } from '../../privacy/policy.js';
import { cidText } from '../cid.js';
import { MAX_CLOCK_AHEAD_MS } from '../core.js';
import { parseConsent } from '../protocols.js';
import { blockOf, type ProtocolHandler } from './handler.js';

export const consent: ProtocolHandler = {
  async apply(core, hooks, m, from) {
    const c = parseConsent(m.payload);
    if (typeof c === 'string') return 'payload';
    if (c.hlc[0] > core.ctx.now() + MAX_CLOCK_AHEAD_MS) return 'future';
    if (!core.crdt.bound(m.kid, c.gateway)) return 'untrusted';
    // Judged by the device's current pairing: not known yet, the message comes again with a later summary.
    const st = core.crdt.state(c.device);
    if (!st) return 'untrusted';
    if (c.gateway !== st.gateway && core.crdt.identity(m.kid)?.operator !== core.deviceOperator(c.device)) return 'unauthorized';
    let policy: PrivacyPolicy;
    try {
      policy = policyOf(c);
    } catch {
      return 'payload';
    }
    core.clock.observe(c.hlc);
    await core.ctx.store.blocks.put(blockOf(core, m, 'consent', c.device));
    if (core.consents.add(c.device, { cid: m.cid, hlc: c.hlc, gateway: c.gateway, policy })) {
      core.ledger.changed([c.device]);
      core.ctx.events.emit('consent', { deviceId: c.device, cid: cidText(m.cid), from: from.peer });
      await hooks.consentChanged(c.device);
    }
    return 'accepted';
  },
};
