// Body 8, down-ack: the counter of a downlink the device has acted on or stored. It acknowledges that
// body only: a device acks each kept body by its own counter, and a body lost on the way (an offer,
// a config) is not covered by a later one that arrived, so it stays kept and is resent. Forgotten in
// the same transaction as the frame's counter.

import type { DownAck } from '../../firmware/core/wire/bodies.js';
import type { UplinkHandler } from './handler.js';

export const downAck: UplinkHandler<DownAck> = {
  async apply(frame, b) {
    // A counter we never used acknowledges nothing.
    if (b.counter > frame.device.downCounter) {
      await frame.commit();
      return;
    }
    await frame.commit({ downAck: b.counter });
  },
};
