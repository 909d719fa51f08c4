// The Logger port on the meter: lines to the technician's console UART, and to xsbug's trace while
// a debugger is attached (instrumented builds).

import { utf8Encode } from '../core/bytes.js';
import type { Logger, SerialPort } from '../core/ports.js';

const LEVELS = { debug: 0, info: 1, warn: 2, error: 3 } as const;

export class ConsoleLogger implements Logger {
  constructor(readonly console: SerialPort | undefined, readonly minimum: keyof typeof LEVELS = 'info') {}

  log(level: 'debug' | 'info' | 'warn' | 'error', message: string): void {
    if (LEVELS[level] < LEVELS[this.minimum]) return;
    const line = `${level === 'info' ? '' : level + ': '}${message}`;
    this.console?.write(utf8Encode(line + '\r\n'));
    trace(line + '\n');
  }
}
