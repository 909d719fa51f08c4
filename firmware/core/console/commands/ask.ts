// `ask <question>`: forwards the question to the gateway as an `llm.generate` job (WIRE.md body 4) and
// streams the answer as its job-result chunks arrive.

import { AskRefusal } from '../console-host.js';
import { never, type Command } from './command.js';

/** Without a chunk for this long the answer is given up (and the job cancelled). */
export const ASK_TIMEOUT_MS = 60_000;
export const MAX_QUESTION = 240;

export const ask: Command = {
  name: 'ask',
  help: [['ask <question>', 'asks the gateway\'s language model; the answer streams in (Ctrl-C stops it)', false]],
  tech: never,
  run(s, _args, rest, r) {
    const question = rest.trim();
    if (!question) {
      r.err('usage', 'ask <question>');
      return;
    }
    let job = -1;
    const stream = s.stream(() => {
      if (job >= 0) s.host.cancelAsk(job);
    }, ASK_TIMEOUT_MS);
    job = s.host.ask(question, {
      chunk: (text) => stream.chunk(text),
      end: (error) => {
        if (error === undefined) stream.ok();
        else stream.err('internal', `the gateway could not answer: ${error}`);
      },
    });
    if (job === AskRefusal.offline) stream.err('offline', 'no gateway link is up; `link` shows why');
    else if (job === AskRefusal.busy) stream.err('busy', 'too many questions waiting for an answer');
    else if (job < 0) stream.err('internal', 'ask is not available in this firmware build');
  },
};
