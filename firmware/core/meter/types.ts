// The meter types gridlet reads and what each means on the wire: serial settings, the framings its
// meters use, and any key every meter of the type shares (meter.ts has the table with examples).

export type MeterType = 'dsmr' | 'smarty' | 'dlms' | 'mbus' | 'auto';
export const METER_TYPES: readonly MeterType[] = ['dsmr', 'smarty', 'dlms', 'mbus', 'auto'];

/** A framing a meter may use on its port. */
export type Framing = 'text' | 'envelope' | 'hdlc' | 'mbus';

export interface LineSettings {
  baud: number;
  dataBits: 7 | 8;
  parity: 'none' | 'even';
  stopBits: 1;
}

export interface TypeInfo {
  line: LineSettings;
  framings: readonly Framing[];
  /** The authentication key every meter of this type uses, when it is not per meter. */
  authKey?: readonly number[];
}

/** Luxembourg's Smarty authenticates with a published, fixed key (its AAD is 30 ‖ this). */
const SMARTY_AUTH_KEY = [0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff];

const P1_LINE: LineSettings = { baud: 115200, dataBits: 8, parity: 'none', stopBits: 1 };
const HAN_LINE: LineSettings = { baud: 2400, dataBits: 8, parity: 'even', stopBits: 1 };

export const TYPES: { readonly [t in MeterType]: TypeInfo } = {
  dsmr: { line: P1_LINE, framings: ['text'] },
  smarty: { line: P1_LINE, framings: ['envelope', 'text'], authKey: SMARTY_AUTH_KEY },
  dlms: { line: HAN_LINE, framings: ['hdlc', 'mbus'] },
  mbus: { line: HAN_LINE, framings: ['mbus', 'hdlc'] },
  auto: { line: P1_LINE, framings: ['text', 'envelope', 'hdlc', 'mbus'] },
};

export function isMeterType(t: string): t is MeterType {
  return (METER_TYPES as readonly string[]).indexOf(t) >= 0;
}

/** The serial settings a meter of this type sends with. */
export function lineSettings(type: MeterType): LineSettings {
  return TYPES[type].line;
}

/** Whether this type's meters can cipher their frames (and so may need keys). */
export function usesKeys(type: MeterType): boolean {
  return type !== 'dsmr';
}
