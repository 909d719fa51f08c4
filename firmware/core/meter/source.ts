// A MeterSource over a serial line (the SerialPort port): the meter's bytes through the parser its
// type calls for (meter.ts), with the keys from the KeyValue port (keys.ts). The firmware's P1 port and
// the host agent's serial meters are this, each over its own SerialPort.
//
// Readings carry the meter's own clock when it is a P1 telegram's and plausible (after 2020); a DLMS
// meter's clock is not used (several send a deviation of the wrong sign, and they push in real time),
// so its readings take the agent's clock.

import type { KeyValue, Logger, MeterSource, SerialPort } from '../ports.js';
import type { MeterError } from './error.js';
import { loadMeterKeys, meterKeysVersion } from './keys.js';
import { MeterParser, type MeterType } from './meter.js';
import type { MeterReading } from './reading.js';

/** 2020-01-01: a meter clock before it was never set. */
const PLAUSIBLE_AFTER = 1_577_836_800;

export interface SerialMeterOptions {
  type: MeterType;
  /** Where the meter keys are (keys.ts); without it, `key` and `authKey`. */
  kv?: KeyValue;
  key?: Uint8Array;
  authKey?: Uint8Array;
  logger?: Logger;
  /** Seconds east of UTC for meter clocks that do not say. Default CET/CEST. */
  zone?: { winter: number; summer: number };
}

export class SerialMeter implements MeterSource {
  readonly type: MeterType;
  /** Messages read, and refused by reason (`crc`, `fcs`, `tag`, `no-key`, …). */
  readings = 0;
  errors: { [reason: string]: number } = {};
  lastError = '';
  readonly #port: SerialPort;
  readonly #o: SerialMeterOptions;
  #parser: MeterParser | undefined;
  #running = false;
  #lastKind = '';
  #repeats = 0;

  constructor(port: SerialPort, options: SerialMeterOptions) {
    this.#port = port;
    this.#o = options;
    this.type = options.type;
  }

  /** The framing recognised on the line, once one is (`text`, `envelope`, `hdlc`, `mbus`). */
  get framing(): string | undefined {
    return this.#parser?.framing;
  }

  start(onReading: (t: number, values: ReadonlyArray<readonly [number, number]>) => void): void {
    const o = this.#o;
    const kv = o.kv;
    this.#running = true;
    this.#parser = new MeterParser({
      type: o.type,
      key: o.key,
      authKey: o.authKey,
      keys: kv ? () => loadMeterKeys(kv) : undefined,
      keysVersion: meterKeysVersion,
      zone: o.zone,
      onReading: (r: MeterReading) => {
        if (!this.#running || r.values.length === 0) return;
        this.readings++;
        this.#lastKind = '';
        const text = r.format === 'dsmr' || r.format === 'smarty';
        onReading(text && r.time !== undefined && r.time > PLAUSIBLE_AFTER ? r.time * 1000 : NaN, r.values);
      },
      onError: (e: MeterError) => {
        this.errors[e.reason] = (this.errors[e.reason] ?? 0) + 1;
        this.lastError = e.message;
        // A meter without its key fails every frame: the first of a kind is logged, then every 100th.
        const kind = `${e.layer}:${e.reason}`;
        if (kind !== this.#lastKind) {
          this.#lastKind = kind;
          this.#repeats = 0;
          o.logger?.log('warn', `meter message refused: ${e.message}`);
        } else if (++this.#repeats % 100 === 0) {
          o.logger?.log('warn', `meter message refused (${this.#repeats} more like it): ${e.message}`);
        }
      },
    });
    this.#port.onReadable((bytes) => {
      if (this.#running) this.#parser?.push(bytes);
    });
  }

  /** The line was interrupted (a port reopened): frames in progress are forgotten. */
  lineReset(): void {
    this.#parser?.reset();
  }

  stop(): void {
    this.#running = false;
  }
}
