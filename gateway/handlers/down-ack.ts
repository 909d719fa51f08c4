// Body 8, down-ack: the highest downlink counter the device has acted on; kept downlinks it covers
// are forgotten in the same transaction as the frame's counter.

import type { DownAck } from '../../firmware/core/wire/bodies.js';
import type { UplinkHandler } from './handler.js';

export const downAck: UplinkHandler<DownAck> = {
  async apply(frame, b) {
    // A counter we never used acknowledges nothing more than everything we did send.
    await frame.commit({ downAck: Math.min(b.counter, frame.device.downCounter) });
  },
};
