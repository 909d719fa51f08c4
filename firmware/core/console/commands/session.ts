// `help` and `json on|off`: the session itself.

import { never, type Command } from './command.js';

export const help: Command = {
  name: 'help',
  help: [['help', 'the command list', false]],
  tech: never,
  run(s, _args, _rest, r) {
    const lines = s.help();
    let width = 0;
    for (const [usage] of lines) if (usage.length > width) width = usage.length;
    for (const [usage, summary, tech] of lines) {
      if (r.json) r.data('', { command: usage, summary, tech });
      else r.data(`${usage.padEnd(width)}  ${summary}${tech ? ' (tech)' : ''}`, null);
    }
    if (!r.json) r.data('(tech) commands need `auth <pin>` first', null);
    r.ok();
  },
};

export const json: Command = {
  name: 'json',
  help: [['json on|off', 'one JSON object per line, no prompt (for scripts)', false]],
  tech: never,
  run(s, args, _rest, r) {
    if (args.length !== 1 || (args[0] !== 'on' && args[0] !== 'off')) {
      r.err('usage', 'json on|off');
      return;
    }
    s.setJson(args[0] === 'on');
    r.ok();
  },
};
