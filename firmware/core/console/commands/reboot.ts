// `reboot`: restarts the device once the reply has gone out.

import { always, type Command } from './command.js';

export const reboot: Command = {
  name: 'reboot',
  help: [['reboot', 'restarts the meter', true]],
  tech: always,
  run(s, args, _rest, r) {
    if (args.length) {
      r.err('usage', 'reboot takes no arguments');
      return;
    }
    if (!s.host.reboot()) {
      r.err('internal', 'this platform cannot reboot from the console');
      return;
    }
    r.data('rebooting', { rebooting: true });
    r.ok();
  },
};
