// Body 9, fw-status: a device's firmware progress, its request for the next chunks, or an outcome
// (WIRE.md "Firmware updates"). It also tells the gateway which version the device runs now.

import type { FwStatus } from '../../firmware/core/wire/bodies.js';
import type { UplinkHandler } from './handler.js';

export const fwStatus: UplinkHandler<FwStatus> = {
  check(b) {
    if (b.state.length === 0 || b.state.length > 20) return 'fw-status: state must be 1..20 characters';
    if (b.version.length > 20) return 'fw-status: version must be at most 20 characters';
    if (b.want > 64) return 'fw-status: at most 64 chunks at once';
    return undefined;
  },
  async apply(frame, b, gw) {
    const known = frame.device.firmware === b.version || b.version === '';
    await frame.commit(known ? {} : { info: { firmware: b.version, model: frame.device.model } });
    await gw.firmware?.onStatus(frame.device, b);
  },
};
