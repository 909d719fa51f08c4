// Body 5, paired. The first frame of a session completes a pending pairing (see frames.ts and
// pairing.ts); from an already paired device it only refreshes its firmware version and model.

import type { Paired } from '../../firmware/core/wire/bodies.js';
import type { UplinkHandler } from './handler.js';

export const paired: UplinkHandler<Paired> = {
  async apply(frame, b) {
    await frame.commit({ info: { firmware: b.firmware, model: b.model } });
  },
};
