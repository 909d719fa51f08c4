// Body 5, paired. The first frame of a session completes a pending pairing (see frames.ts and
// pairing.ts); from an already paired device it refreshes its firmware version and model (a meter
// restarted into a new image says `paired` on every connection). Every `paired` is answered with a
// `time` body: the device says it again every 30 s until it hears one.

import { Body, type Paired } from '../../firmware/core/wire/bodies.js';
import type { UplinkHandler } from './handler.js';

export const paired: UplinkHandler<Paired> = {
  async apply(frame, b, gw) {
    await frame.commit({ info: { firmware: b.firmware, model: b.model } });
    await gw.downlink.send(frame.device, { type: Body.time, time: Math.floor(gw.now() / 1000) });
  },
};
