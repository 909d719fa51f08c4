// The meter's serial port as a MeterSource: bytes from a UART through the core's meter parser for
// the meter's type (DSMR/P1 text, Smarty, DLMS over HDLC or M-Bus; firmware/core/meter/meter.ts), with
// its keys from the KeyValue store (firmware/core/meter/keys.ts). Messages that fail a check are
// counted and dropped (the next one comes in 1–10 s).
//
// The UART's settings come with the type: `meterLine(type)` (115200 8N1 for dsmr and smarty, 2400 8E1
// for dlms and mbus).

import { lineSettings, type LineSettings, type MeterType } from '../core/meter/meter.js';
import { SerialMeter, type SerialMeterOptions } from '../core/meter/source.js';
import type { SerialPort } from '../core/ports.js';

export class P1Meter extends SerialMeter {
  /** A DSMR P1 port unless told otherwise. */
  constructor(port: SerialPort, options: Partial<SerialMeterOptions> = {}) {
    super(port, { ...options, type: options.type ?? 'dsmr' });
  }
}

/** The UART settings for a meter type, as UartPort takes them. */
export function meterLine(type: MeterType): { baud: number; dataBits: 7 | 8; parity: LineSettings['parity'] } {
  const l = lineSettings(type);
  return { baud: l.baud, dataBits: l.dataBits, parity: l.parity };
}
