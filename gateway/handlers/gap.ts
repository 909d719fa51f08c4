// Body 7, gap: seqs first..last were lost on the device; they let the ack pass.

import type { Gap } from '../../firmware/core/wire/bodies.js';
import { storeRecords } from '../records.js';
import { receiptSeconds, type UplinkHandler } from './handler.js';
import { RecordKind } from '../../firmware/core/wire/constants.js';

export const gap: UplinkHandler<Gap> = {
  check(b) {
    if (b.first < 1) return 'gap: seqs start at 1';
    if (b.last < b.first) return 'gap: last is below first';
    return undefined;
  },
  async apply(frame, b, gw) {
    await storeRecords(frame, [{ kind: RecordKind.gap, seq: b.first, last: b.last, t: receiptSeconds(frame), reason: b.reason }], gw);
  },
};
