// The one error type of the meter parsers: it names the layer that refused the input, so that a
// technician reading `HDLC FCS mismatch in frame 2` or `GCM tag does not match: wrong key?` knows
// where to look.

/** Where in the stack a frame was refused. */
export type MeterLayer =
  | 'detect' // no framing recognised in the input
  | 'hdlc' // IEC 62056-46 frames: flags, format, HCS/FCS, segments
  | 'mbus' // EN 13757-2 long frames: checksum, segments
  | 'envelope' // a bare ciphered APDU on the line (Luxembourg Smarty)
  | 'llc' // the LLC header before a DLMS APDU
  | 'gbt' // general block transfer
  | 'gcm' // general global ciphering: keys, tags
  | 'apdu' // the DLMS APDU (data-notification)
  | 'axdr' // the A-XDR encoded data
  | 'cosem' // COSEM objects: OBIS codes, values, scalers
  | 'dsmr'; // a P1 text telegram (its own reasons: crc, too-long, malformed, truncated)

export class MeterError extends Error {
  readonly layer: MeterLayer;
  /** A short machine-readable reason within the layer, e.g. `fcs`, `no-key`, `tag`. */
  readonly reason: string;
  /** The frame of the stream it concerns, counting from 1, where the layer counts frames. */
  readonly frame?: number;
  constructor(layer: MeterLayer, reason: string, message: string, frame?: number) {
    super(message);
    this.layer = layer;
    this.reason = reason;
    if (frame !== undefined) this.frame = frame;
  }
}
// On a meter Error.prototype is frozen, so `this.name = …` in the constructor would throw there.
Object.defineProperty(MeterError.prototype, 'name', { value: 'MeterError' });

/** Bytes as spaced upper-case hex, for messages (at most `max` bytes, then an ellipsis). */
export function hexBytes(b: Uint8Array, start: number, end: number, max = 16): string {
  let s = '';
  const stop = end - start > max ? start + max : end;
  for (let i = start; i < stop; i++) s += (i > start ? ' ' : '') + (b[i] < 16 ? '0' : '') + b[i].toString(16).toUpperCase();
  return stop < end ? s + ' …' : s;
}

/** Bytes as unspaced lower-case hex (system titles). */
export function hexString(b: Uint8Array, start: number, end: number): string {
  let s = '';
  for (let i = start; i < end; i++) s += (b[i] < 16 ? '0' : '') + b[i].toString(16);
  return s;
}

/** One byte as 0xNN. */
export function hex2(n: number): string {
  return '0x' + (n < 16 ? '0' : '') + n.toString(16).toUpperCase();
}
