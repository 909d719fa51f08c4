// The SerialPort port over a pseudo-terminal's master (host/console/pty.ts): the host agent's console
// line, as a UART is the meter's.

import type { SerialPort } from '../../firmware/core/ports.js';
import type { Pty } from '../console/pty.js';

export class PtySerialPort implements SerialPort {
  readonly #pty: Pty;
  constructor(pty: Pty) {
    this.#pty = pty;
  }
  get path(): string {
    return this.#pty.path;
  }
  onReadable(callback: (bytes: Uint8Array) => void): void {
    this.#pty.onData(callback);
  }
  write(bytes: Uint8Array): void {
    this.#pty.write(bytes);
  }
}
