// Sharing consent: a device's sharing policy, signed by a gateway of the operator holding its pairing.
// Version 2 (sharing-consent-v2) names other operators by key; version 1 named them by name, which
// version 2 gives no meaning to: read, not acted on (the device's gateway signs a version 2 one).

import { policyOf } from '../../privacy/consent.js';
import type { PrivacyPolicy } from '../../privacy/policy.js';
import { cidText } from '../cid.js';
import { MAX_CLOCK_AHEAD_MS } from '../core.js';
import { parseConsent, parseConsentV2 } from '../protocols.js';
import { blockOf, type ProtocolHandler } from './handler.js';

export const consentV1: ProtocolHandler = {
  async apply(_core, _hooks, m) {
    return typeof parseConsent(m.payload) === 'string' ? 'payload' : 'obsolete';
  },
};

export const consent: ProtocolHandler = {
  async apply(core, hooks, m, from) {
    const c = parseConsentV2(m.payload);
    if (typeof c === 'string') return 'payload';
    if (c.hlc[0] > core.ctx.now() + MAX_CLOCK_AHEAD_MS) return 'future';
    if (!core.ids.bound(m.kid, c.gateway)) return 'untrusted';
    if (!core.crdt.counts(m.kid, c.gateway, c.hlc)) return 'superseded';
    // Judged by the device's current pairing: not known yet, it waits for one.
    const st = core.crdt.state(c.device);
    if (!st) return hooks.awaitPairing(c.device, m, from);
    if (core.ids.operatorOf(m.kid) !== st.operator) return 'foreign';
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
