// `buffer`: the flash log's stats (WIRE.md "Records and acks").

import { never, type Command } from './command.js';

export const buffer: Command = {
  name: 'buffer',
  help: [['buffer', 'flash log: capacity, used, oldest/newest seq, acked seq, dropped', false]],
  tech: never,
  run(s, args, _rest, r) {
    if (args.length) {
      r.err('usage', 'buffer takes no arguments');
      return;
    }
    const b = s.host.buffer();
    if (r.json) {
      r.data('', {
        capacity_bytes: b.capacityBytes, used_bytes: b.usedBytes, buffered: b.buffered, oldest_seq: b.oldestSeq,
        newest_seq: b.newestSeq, acked_seq: b.ackedSeq, dropped: b.dropped,
      });
    } else {
      r.data(`capacity  ${b.capacityBytes} bytes`, null);
      r.data(`used      ${b.usedBytes} bytes`, null);
      r.data(`buffered  ${b.buffered} records`, null);
      r.data(`oldest    seq ${b.oldestSeq}`, null);
      r.data(`newest    seq ${b.newestSeq}`, null);
      r.data(`acked     seq ${b.ackedSeq}`, null);
      r.data(`dropped   ${b.dropped} readings`, null);
    }
    r.ok();
  },
};
