// Body 2, event: one record in the device's sequence (WIRE.md "Event kinds").

import type { EventBody } from '../../firmware/core/wire/bodies.js';
import { storeRecords } from '../records.js';
import { receiptSeconds, type UplinkHandler } from './handler.js';
import { RecordKind } from '../../firmware/core/wire/constants.js';

export const event: UplinkHandler<EventBody> = {
  check(b) {
    if (b.seq < 1) return 'event: seqs start at 1';
    if (b.kind.length === 0 || b.kind.length > 200) return 'event: kind must be 1..200 characters';
    return undefined;
  },
  async apply(frame, b, gw) {
    const rec = {
      kind: RecordKind.event, seq: b.seq, t: b.t === 0 ? receiptSeconds(frame) : b.t, gatewayTimed: b.t === 0, event: b.kind,
      ...(b.data === undefined ? {} : { data: b.data }),
    };
    await storeRecords(frame, [rec], gw);
    if (b.kind === 'firmware') await gw.firmware?.onEvent(frame.device.id, b.data);
  },
};
