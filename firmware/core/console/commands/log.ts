// `log [n]`: the last n log lines (guest log lines among them, so control characters are removed).

import { stripControl } from '../text.js';
import { count, never, type Command } from './command.js';
import { LOG_LINES_KEPT } from '../log-ring.js';

function stamp(ms: number): string {
  const s = (ms / 1000).toFixed(3);
  return '[' + (s.length < 10 ? '          '.slice(s.length) + s : s) + ']';
}

export const log: Command = {
  name: 'log',
  help: [['log [n]', `the last n log lines (default 10, at most ${LOG_LINES_KEPT})`, false]],
  tech: never,
  run(s, args, _rest, r) {
    const n = count(args[0], LOG_LINES_KEPT);
    if (args.length > 1 || Number.isNaN(n)) {
      r.err('usage', `log [n], n from 1 to ${LOG_LINES_KEPT}`);
      return;
    }
    const lines = s.host.logLines(n ?? 10);
    if (!lines.length && !r.json) r.data('(no log lines yet)', null);
    for (const l of lines) {
      const message = stripControl(l.message);
      if (r.json) r.data('', { ms: l.ms, level: l.level, message });
      else r.data(`${stamp(l.ms)} ${l.level.padEnd(5)} ${message}`, null);
    }
    r.ok();
  },
};
