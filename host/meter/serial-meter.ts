// `--meter TYPE:/dev/ttyUSB0`: a meter's customer port on a real serial line (or a pseudo-terminal),
// read with the `serialport` package and parsed by the firmware core's meter parser for its type
// (firmware/core/meter/meter.ts), with the meter keys from the agent's KeyValue store (`config set
// meter.key …` on the console, or PUT /api/devices/:id/config). The port is reopened when it
// disappears (the cable unplugged) and comes back.
//
//   dsmr:PATH    115200 8N1 (DSMR 4/5, e-MUCS, Swedish text HAN); dsmr:PATH@9600 is 9600 7E1 (DSMR 2.2/3.0)
//   smarty:PATH  115200 8N1 (Luxembourg Smarty: AES-128-GCM around the P1 telegram)
//   dlms:PATH    2400 8E1 (Norwegian, Swedish and Danish HAN: DLMS in HDLC frames)
//   mbus:PATH    2400 8E1 (Austrian customer interfaces: DLMS in M-Bus long frames)
// Any of them takes @BAUD and @BAUD-8N1 / -7E1 / -8E1 / -8O1 to override the line settings.

import { SerialPort as NodeSerialPort } from 'serialport';
import type { KeyValue, Logger, MeterSource, SerialPort } from '../../firmware/core/ports.js';
import { lineSettings, type MeterType } from '../../firmware/core/meter/meter.js';
import { SerialMeter } from '../../firmware/core/meter/source.js';

export type SerialMeterType = Exclude<MeterType, 'auto'>;
export const SERIAL_METER_TYPES: readonly SerialMeterType[] = ['dsmr', 'smarty', 'dlms', 'mbus'];

export interface SerialLineOptions {
  type: SerialMeterType;
  path: string;
  baudRate: number;
  dataBits: 7 | 8;
  parity: 'none' | 'even' | 'odd';
}

const PARITY = { N: 'none', E: 'even', O: 'odd' } as const;

/** Parses the part after `TYPE:`: `PATH`, `PATH@BAUD`, `PATH@BAUD-8E1`. */
export function parseSerialMeterSpec(type: SerialMeterType, spec: string): SerialLineOptions {
  const m = /^(.+?)(?:@(\d+)(?:-([78])([NEO])1)?)?$/i.exec(spec);
  if (!m || !m[1]) throw new Error(`--meter ${type}:${spec}: expected ${type}:/dev/ttyUSB0[@BAUD[-8N1|-7E1|-8E1]]`);
  const line = lineSettings(type);
  const baudRate = m[2] ? Number(m[2]) : line.baud;
  // DSMR 2.2/3.0 meters send 9600 7E1: `dsmr:PATH@9600` means that.
  const legacy = type === 'dsmr' && baudRate === 9600 && !m[3];
  return {
    type,
    path: m[1],
    baudRate,
    dataBits: m[3] ? (Number(m[3]) as 7 | 8) : legacy ? 7 : line.dataBits,
    parity: m[4] ? PARITY[m[4].toUpperCase() as 'N' | 'E' | 'O'] : legacy ? 'even' : line.parity,
  };
}

/** The core's SerialPort port, fed by whatever `serialport` instance is open now. */
class LinePort implements SerialPort {
  #onBytes: ((bytes: Uint8Array) => void) | undefined;
  onReadable(callback: (bytes: Uint8Array) => void): void {
    this.#onBytes = callback;
  }
  write(): void {
    // A meter's customer port is receive-only.
  }
  deliver(bytes: Uint8Array): void {
    this.#onBytes?.(bytes);
  }
}

export class SerialLineMeter implements MeterSource {
  readonly meter: SerialMeter;
  #line = new LinePort();
  #port: NodeSerialPort | undefined;
  #retry: NodeJS.Timeout | undefined;
  #stopped = false;
  #portError = '';

  constructor(readonly options: SerialLineOptions, kv?: KeyValue, readonly logger?: Logger) {
    this.meter = new SerialMeter(this.#line, { type: options.type, kv, logger });
  }

  /** Messages read. */
  get readings(): number {
    return this.meter.readings;
  }

  /** Messages refused, by reason (`crc`, `fcs`, `tag`, `no-key`, …). */
  get errors(): { [reason: string]: number } {
    return this.meter.errors;
  }

  get lastError(): string {
    return this.#portError || this.meter.lastError;
  }

  start(onReading: (t: number, values: ReadonlyArray<readonly [number, number]>) => void): void {
    this.#stopped = false;
    this.meter.start(onReading);
    this.#open();
  }

  #open(): void {
    if (this.#stopped) return;
    const o = this.options;
    const settings = `${o.baudRate} ${o.dataBits}${o.parity[0].toUpperCase()}1`;
    const port = new NodeSerialPort({ path: o.path, baudRate: o.baudRate, dataBits: o.dataBits, parity: o.parity, stopBits: 1, autoOpen: false });
    this.#port = port;
    port.open((err) => {
      if (err) {
        this.#portError = `cannot open ${o.path}: ${err.message}`;
        this.logger?.log('warn', `${o.type} meter port: ${this.#portError}; retrying in 2 s`);
        this.#retry = setTimeout(() => this.#open(), 2000);
        return;
      }
      this.#portError = '';
      this.logger?.log('info', `${o.type} meter port ${o.path} open at ${settings}`);
    });
    port.on('data', (chunk: Buffer) => this.#line.deliver(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.length)));
    port.on('close', () => {
      if (this.#stopped) return;
      this.logger?.log('warn', `${o.type} meter port ${o.path} closed; reopening`);
      this.meter.lineReset();
      this.#retry = setTimeout(() => this.#open(), 1000);
    });
    port.on('error', (e) => {
      this.#portError = e.message;
    });
  }

  stop(): void {
    this.#stopped = true;
    this.meter.stop();
    if (this.#retry) clearTimeout(this.#retry);
    const p = this.#port;
    this.#port = undefined;
    if (p?.isOpen) p.close(() => {});
  }
}
