// `--meter dsmr:/dev/ttyUSB0`: a smart meter's P1 port on a real serial line (or a pseudo-terminal),
// read with the `serialport` package and parsed byte by byte by the firmware core's TelegramParser.
// Settings: `dsmr:PATH` is 115200 8N1 (DSMR 4/5, e-MUCS, HAN); `dsmr:PATH@9600` or `dsmr:PATH@9600-7E1`
// for DSMR 2.2/3.0 meters (9600 baud, 7 data bits, even parity). The port is reopened when it
// disappears (the P1 cable unplugged) and comes back.

import { SerialPort } from 'serialport';
import type { Logger, MeterSource } from '../../firmware/core/ports.js';
import { TelegramParser, type TelegramError, type TelegramResult } from '../../firmware/core/meter/dsmr.js';

export interface DsmrSerialOptions {
  path: string;
  baudRate: number;
  dataBits: 7 | 8;
  parity: 'none' | 'even';
}

/** Parses `PATH`, `PATH@9600`, `PATH@9600-7E1`, `PATH@115200-8N1`. */
export function parseDsmrSpec(spec: string): DsmrSerialOptions {
  const m = /^(.+?)(?:@(\d+)(?:-([78])([NE])1)?)?$/i.exec(spec);
  if (!m || !m[1]) throw new Error(`--meter dsmr:${spec}: expected dsmr:/dev/ttyUSB0[@BAUD[-8N1|-7E1]]`);
  const baudRate = m[2] ? Number(m[2]) : 115200;
  const legacy = baudRate === 9600 && !m[3];
  return {
    path: m[1],
    baudRate,
    dataBits: m[3] ? (Number(m[3]) as 7 | 8) : legacy ? 7 : 8,
    parity: m[4] ? (m[4].toUpperCase() === 'E' ? 'even' : 'none') : legacy ? 'even' : 'none',
  };
}

export class DsmrSerialMeter implements MeterSource {
  #port: SerialPort | undefined;
  #parser: TelegramParser | undefined;
  #retry: NodeJS.Timeout | undefined;
  #stopped = false;
  telegrams = 0;
  errors: { [reason: string]: number } = {};
  lastError = '';

  constructor(readonly options: DsmrSerialOptions, readonly logger?: Logger) {}

  start(onReading: (t: number, values: ReadonlyArray<readonly [number, number]>) => void): void {
    this.#stopped = false;
    this.#parser = new TelegramParser({
      // The P1 cap: Belgian e-MUCS telegrams with 13 months of peaks and a long text message exceed 2 KiB.
      maxBytes: 4096,
      onTelegram: (r: TelegramResult) => {
        this.telegrams++;
        // The meter's own clock is used when it has a plausible one (after 2020); else the agent's.
        const t = r.time !== undefined && r.time > 1_577_836_800 ? r.time * 1000 : NaN;
        onReading(t, r.values);
      },
      onError: (e: TelegramError) => {
        this.errors[e.reason] = (this.errors[e.reason] ?? 0) + 1;
        this.lastError = e.message;
        this.logger?.log('warn', `P1 telegram refused: ${e.message}`);
      },
    });
    this.#open();
  }

  #open(): void {
    if (this.#stopped) return;
    const o = this.options;
    const port = new SerialPort({ path: o.path, baudRate: o.baudRate, dataBits: o.dataBits, parity: o.parity, stopBits: 1, autoOpen: false });
    this.#port = port;
    port.open((err) => {
      if (err) {
        this.lastError = `cannot open ${o.path}: ${err.message}`;
        this.logger?.log('warn', `P1 port: ${this.lastError}; retrying in 2 s`);
        this.#retry = setTimeout(() => this.#open(), 2000);
        return;
      }
      this.logger?.log('info', `P1 port ${o.path} open at ${o.baudRate} ${o.dataBits}${o.parity === 'even' ? 'E' : 'N'}1`);
    });
    port.on('data', (chunk: Buffer) => this.#parser?.push(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.length)));
    port.on('close', () => {
      if (this.#stopped) return;
      this.logger?.log('warn', `P1 port ${o.path} closed; reopening`);
      this.#parser?.reset();
      this.#retry = setTimeout(() => this.#open(), 1000);
    });
    port.on('error', (e) => {
      this.lastError = e.message;
    });
  }

  stop(): void {
    this.#stopped = true;
    if (this.#retry) clearTimeout(this.#retry);
    const p = this.#port;
    this.#port = undefined;
    if (p?.isOpen) p.close(() => {});
  }
}
