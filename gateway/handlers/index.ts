// The uplink dispatch table: WIRE.md body type → handler.

import { Body } from '../../firmware/core/wire/bodies.js';
import type { UplinkHandler } from './handler.js';
import { readings } from './readings.js';
import { event } from './event.js';
import { status } from './status.js';
import { job } from './job.js';
import { paired } from './paired.js';
import { guestAck } from './guest-ack.js';
import { gap } from './gap.js';
import { downAck } from './down-ack.js';
import { fwStatus } from './fw-status.js';

export const uplinkHandlers: { [type: number]: UplinkHandler<never> } = {
  [Body.readings]: readings,
  [Body.event]: event,
  [Body.status]: status,
  [Body.job]: job,
  [Body.paired]: paired,
  [Body.guestAck]: guestAck,
  [Body.gap]: gap,
  [Body.downAck]: downAck,
  [Body.fwStatus]: fwStatus,
};
