// Body 3, status: the device's health, kept as the latest status of the device.

import { base32 } from '../../firmware/core/bytes.js';
import type { Status } from '../../firmware/core/wire/bodies.js';
import type { UplinkHandler } from './handler.js';

export const status: UplinkHandler<Status> = {
  async apply(frame, b, gw) {
    const s = {
      t: b.t, uptime: b.uptime, buffered: b.buffered, dropped: b.dropped, heap: b.heap, link: b.link,
      guests: b.guests.map(([name, cid, state]) => [name, 'b' + base32(cid), state] as [string, string, string]),
      receivedAt: frame.receivedAt,
    };
    await frame.commit({ status: s });
    gw.events.emit('status', { deviceId: frame.device.id, status: s });
    if (b.t === 0) await gw.timeSync(frame.device);
  },
};
