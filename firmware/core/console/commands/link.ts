// `link`: each uplink with its state and last error.

import { LinkState } from '../../ports.js';
import { stripControl } from '../text.js';
import { never, type Command } from './command.js';

const STATE_NAMES = ['down', 'connecting', 'up'];

export const link: Command = {
  name: 'link',
  help: [['link', 'each uplink with its state and last error', false]],
  tech: never,
  run(s, args, _rest, r) {
    if (args.length) {
      r.err('usage', 'link takes no arguments');
      return;
    }
    for (const l of s.host.links()) {
      const state = STATE_NAMES[l.state] ?? String(l.state);
      const error = stripControl(l.lastError);
      if (r.json) r.data('', { name: l.name, state, active: l.active, last_error: error, drops: l.drops });
      else {
        const extra = (l.active ? '  (carrying frames)' : '') + (error && l.state !== LinkState.up ? `  last error: ${error}` : '');
        r.data(`${l.name}  ${state}${extra}`, null);
      }
    }
    r.ok();
  },
};
