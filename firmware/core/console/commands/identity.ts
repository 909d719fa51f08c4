// `id`: the device id and the pair code on the label (WIRE.md "Identity and the pair secret").

import { never, type Command } from './command.js';

export const id: Command = {
  name: 'id',
  help: [['id', 'device id and pair code', false]],
  tech: never,
  run(s, args, _rest, r) {
    if (args.length) {
      r.err('usage', 'id takes no arguments');
      return;
    }
    const i = s.host.identity();
    if (r.json) r.data('', { id: i.deviceId, code: i.pairCode, model: i.model, firmware: i.firmware });
    else {
      r.data(`id    ${i.deviceId}`, null);
      r.data(`code  ${i.pairCode}`, null);
    }
    r.ok();
  },
};
