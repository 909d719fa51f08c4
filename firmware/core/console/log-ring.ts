// The last log lines, for `log [n]`: a Logger that keeps a bounded ring of lines (each cut to a bounded
// length, control characters removed) and passes every line on to the platform's logger.

import type { Clock, Logger } from '../ports.js';
import type { ConsoleLogLine } from './console-host.js';
import { stripControl } from './text.js';

export const LOG_LINES_KEPT = 64;
export const LOG_LINE_CHARS = 160;

type Level = 'debug' | 'info' | 'warn' | 'error';

export class LogRing implements Logger {
  #ms = new Float64Array(LOG_LINES_KEPT);
  #level: Level[] = [];
  #message: string[] = [];
  #next = 0;
  #count = 0;
  #clock: Clock;
  #next_: Logger | undefined;
  #minLevel: number;

  /** `next` receives every line too; `minLevel` is the least level kept in the ring. */
  constructor(clock: Clock, next?: Logger, minLevel: Level = 'info') {
    this.#clock = clock;
    this.#next_ = next;
    this.#minLevel = LEVELS.indexOf(minLevel);
  }

  log(level: Level, message: string): void {
    if (LEVELS.indexOf(level) >= this.#minLevel) {
      const i = this.#next;
      this.#ms[i] = this.#clock.monotonic();
      this.#level[i] = level;
      const m = stripControl(message);
      this.#message[i] = m.length > LOG_LINE_CHARS ? m.slice(0, LOG_LINE_CHARS - 1) + '…' : m;
      this.#next = (i + 1) % LOG_LINES_KEPT;
      if (this.#count < LOG_LINES_KEPT) this.#count++;
    }
    this.#next_?.log(level, message);
  }

  /** The last `n`, oldest first. */
  last(n: number): ConsoleLogLine[] {
    const k = Math.min(n, this.#count);
    const out: ConsoleLogLine[] = [];
    for (let j = k; j > 0; j--) {
      const i = (this.#next - j + LOG_LINES_KEPT) % LOG_LINES_KEPT;
      out.push({ ms: this.#ms[i], level: this.#level[i], message: this.#message[i] });
    }
    return out;
  }
}

const LEVELS: readonly Level[] = ['debug', 'info', 'warn', 'error'];
