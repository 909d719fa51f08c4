// A MeterSource reading a DSMR / e-MUCS P1 port: bytes from a UART through the core's streaming
// telegram parser. Telegrams that fail their CRC are counted and dropped (the next one comes in
// 1–10 s); readings carry the meter's own clock when it gave a valid one.

import { TelegramParser, type TelegramError } from '../core/meter/dsmr.js';
import type { MeterSource, SerialPort } from '../core/ports.js';

export class P1Meter implements MeterSource {
  telegrams = 0;
  errors = 0;
  lastError = '';
  #port: SerialPort;
  #running = false;
  #parser: TelegramParser | undefined;

  constructor(port: SerialPort) {
    this.#port = port;
  }

  start(onReading: (t: number, values: ReadonlyArray<readonly [number, number]>) => void): void {
    this.#running = true;
    this.#parser = new TelegramParser({
      onTelegram: (r) => {
        if (!this.#running || !r.values.length) return;
        this.telegrams++;
        onReading(r.time !== undefined ? r.time * 1000 : NaN, r.values);
      },
      onError: (e: TelegramError) => {
        this.errors++;
        this.lastError = e.message;
      },
    });
    this.#port.onReadable((bytes) => this.#parser?.push(bytes));
  }

  stop(): void {
    this.#running = false;
  }
}
