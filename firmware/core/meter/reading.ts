// What the meter parsers (meter.ts) hand on: one reading per message the meter pushed, whatever its
// format, with the WIRE.md channel values and, on request, every register the message held.

/**
 * How the message reached us: a P1 text telegram (`dsmr`), one inside a bare ciphered envelope
 * (`smarty`), or the framing around a DLMS APDU.
 */
export type MeterFormat = 'dsmr' | 'smarty' | 'hdlc' | 'mbus' | 'envelope' | 'llc' | 'apdu';

/** DLMS security applied to the message (its security control byte). */
export type Security = 'none' | 'authenticated' | 'encrypted' | 'encrypted+authenticated';

/** One value of the message as the meter sent it, for people and tests (`gridlet meter parse`). */
export interface Register {
  /** The OBIS code `A-B:C.D.E.F`, or null for a value the meter sent without one. */
  obis: string | null;
  /** The A-XDR type (`doubleLongUnsigned`, `octetString`, …) or, in a text telegram, `text`. */
  type: string;
  /** The value in the unit below (scaler applied), text, an ISO 8601 date-time, a boolean or null. */
  value: number | string | boolean | null;
  /** Integers as sent, before the scaler. */
  raw?: number;
  /** The value is raw × 10^scaler; null when neither the meter nor what is known of it says. */
  scaler?: number | null;
  unit?: string | null;
  /** Where the scaler and unit came from: the message, what is known of this meter's list, or the OBIS code. */
  scalerFrom?: 'meter' | 'list' | 'obis';
  /** The WIRE.md channel this value fed. */
  channel?: number;
}

export interface MeterReading {
  format: MeterFormat;
  /** The meter's clock in unix seconds, when the message carried a valid one. */
  time?: number;
  /** [channel, value] pairs in WIRE.md units, ascending channel, each channel at most once. */
  values: Array<[number, number]>;
  /** P1 text telegrams: the identification line and whether a CRC covered it. */
  header?: string;
  crc?: 'ok' | 'none';
  /** DLMS: the security the message came under, and from whom. */
  security?: Security;
  /** The sender's system title (8 bytes, hex), when the message was ciphered. */
  systemTitle?: string;
  /** The ciphering invocation counter. */
  frameCounter?: number;
  /** The data-notification's long-invoke-id-and-priority. */
  invokeId?: number;
  /** The meter's list identifier (`AIDON_V0001`, `KFM_001`, `Kamstrup_V0001`), when it sent one. */
  listId?: string;
  /** Transport frames the message came in. */
  frames?: number;
  /** Every value, when the parser was asked for them. */
  registers?: Register[];
}
