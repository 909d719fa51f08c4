// Body 1, readings: records at consecutive seqs from field 1, stored with the frame's counter, then acked.

import { MAX_COUNTER } from '../../firmware/core/wire/frame.js';
import type { Readings } from '../../firmware/core/wire/bodies.js';
import { storeRecords } from '../records.js';
import type { StoredRecord } from '../store/store.js';
import { receiptSeconds, type UplinkHandler } from './handler.js';
import { RecordKind } from '../../firmware/core/wire/constants.js';

export const readings: UplinkHandler<Readings> = {
  check(b) {
    if (b.first < 1) return 'readings: seqs start at 1';
    if (b.first + b.records.length - 1 > MAX_COUNTER) return 'readings: seq beyond 2^53-1';
    return undefined;
  },
  async apply(frame, b, gw) {
    const now = receiptSeconds(frame);
    const records: StoredRecord[] = b.records.map(([t, channel, value], i) => ({
      kind: RecordKind.reading, seq: b.first + i, t: t === 0 ? now : t, gatewayTimed: t === 0, channel, value,
    }));
    await storeRecords(frame, records, gw);
  },
};
