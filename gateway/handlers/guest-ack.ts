// Body 6, guest-ack: the device's answer to a guest offer or removal (GUESTS.md).

import { base32 } from '../../firmware/core/bytes.js';
import type { GuestAck } from '../../firmware/core/wire/bodies.js';
import type { UplinkHandler } from './handler.js';

const STATES = new Set(['running', 'rejected', 'removed']);

export const guestAck: UplinkHandler<GuestAck> = {
  check(b) {
    return STATES.has(b.state) ? undefined : `guest-ack: unknown state "${b.state.slice(0, 40)}"`;
  },
  async apply(frame, b, gw) {
    const cid = 'b' + base32(b.cid);
    const state = { state: b.state, at: frame.receivedAt, ...(b.reason === undefined ? {} : { reason: b.reason }) };
    await frame.commit({ guest: { cid, state } });
    gw.events.emit('guest-ack', { deviceId: frame.device.id, cid, ...state });
  },
};
