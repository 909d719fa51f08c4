// `readings [n]`: the last n channel values the meter delivered.

import { channelName, channelUnit } from '../../wire/constants.js';
import { isoTime } from '../text.js';
import { count, never, type Command } from './command.js';
import { READINGS_KEPT } from '../readings-ring.js';

export const readings: Command = {
  name: 'readings',
  help: [['readings [n]', `the last n readings (default 5, at most ${READINGS_KEPT})`, false]],
  tech: never,
  run(s, args, _rest, r) {
    const n = count(args[0], READINGS_KEPT);
    if (args.length > 1 || Number.isNaN(n)) {
      r.err('usage', `readings [n], n from 1 to ${READINGS_KEPT}`);
      return;
    }
    const list = s.host.readings(n ?? 5);
    if (!list.length && !r.json) r.data('(no readings yet)', null);
    for (const x of list) {
      const unit = channelUnit(x.channel);
      if (r.json) r.data('', { seq: x.seq, t: x.t, channel: x.channel, name: channelName(x.channel), value: x.value, unit });
      else r.data(`seq ${x.seq}  ${isoTime(x.t)}  ${channelName(x.channel)}  ${x.value}${unit ? ' ' + unit : ''}`, null);
    }
    r.ok();
  },
};
