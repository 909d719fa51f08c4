// DLMS/COSEM as meters push it (IEC 62056-5-3 data-notification), above the framing:
//
//   HDLC information fields (segments joined) | M-Bus data (segments by CI) | a bare ciphered APDU
//     → LLC header `E6 E7 00` (only before the first APDU of a frame; later GBT blocks come without)
//     → general-block-transfer 0xE0: blocks 1…n joined until the last-block bit
//     → general-glo-ciphering 0xDB: AES-128-GCM with the meter's keys (aes-gcm.ts)
//     → data-notification 0x0F: invoke id, optional date-time, the body (cosem.ts)
//
// Ciphering (security control byte, suite 0): 0x30 encrypted and authenticated — AAD = SC ‖ AK, a
// 12-byte tag that must match; 0x20 encrypted only, as Austrian operators send it — no tag, so a wrong
// key shows only as decrypted bytes that are not an APDU; 0x10 authenticated only. IV = system title ‖
// frame counter. A decrypted APDU that begins with `/` is a P1 text telegram (Luxembourg's Smarty) and
// goes to `onTelegram`.
//
// Keys are asked of `keys()` when the first ciphered frame arrives, when `keysVersion()` says they were
// set anew, and when a frame fails for want of the right key: a key set on the console or by the
// gateway applies to the next frame without a restart, and a frame that failed is tried once more if
// the key changed meanwhile.
//
// Buffers: segments, blocks and plaintext each get one buffer of `maxBytes`, allocated the first time
// a meter needs it; a frame that is a whole message is read where the framer holds it.

import { AesGcm } from '../aes-gcm.js';
import { CosemReader, dateTime } from './cosem.js';
import { MeterError, hex2, hexBytes, hexString, type MeterLayer } from './error.js';
import type { EnvelopeFrame } from './envelope.js';
import type { HdlcFrame } from './hdlc.js';
import type { MbusFrame } from './mbus.js';
import type { MeterFormat, MeterReading, Register, Security } from './reading.js';

export const Apdu = { dataNotification: 0x0f, generalGloCiphering: 0xdb, generalBlockTransfer: 0xe0 } as const;

export interface DlmsKeys {
  /** The encryption key (EK, "GUEK"): 16 bytes. */
  key?: Uint8Array;
  /** The authentication key (AK, "GAK"): 16 bytes, needed when the meter authenticates. */
  authKey?: Uint8Array;
}

/** Where a decrypted P1 telegram came from, for its reading. */
export interface CipherContext {
  format: MeterFormat;
  security: Security;
  systemTitle: string;
  frameCounter: number;
  frames: number;
}

export interface DlmsDecoderOptions {
  onReading: (reading: MeterReading) => void;
  onError: (error: MeterError) => void;
  /** The meter's keys, asked when needed (see above). */
  keys?: () => DlmsKeys | undefined;
  /** A number that changes when the keys are set anew: they are asked for again before the next frame. */
  keysVersion?: () => number;
  /** A decrypted APDU that is a P1 text telegram: bytes[start, end). */
  onTelegram?: (bytes: Uint8Array, start: number, end: number, context: CipherContext) => void;
  /** Collect every register of each message into `reading.registers` (people and tests; allocates). */
  registers?: boolean;
  /** Seconds east of UTC for date-times that give no deviation. Default CET/CEST. */
  zone?: { winter: number; summer: number };
  /** Most bytes of a message joined from segments or blocks, and of a decrypted APDU. Default 2048. */
  maxBytes?: number;
}

export class DlmsDecoder {
  readonly #o: DlmsDecoderOptions;
  readonly #max: number;
  readonly #cosem: CosemReader;
  readonly #time = new Float64Array(1);
  // Segments (HDLC S bit, M-Bus CI), blocks (GBT), plaintext (GGC): allocated on first use.
  #seg: Uint8Array | undefined;
  #segLen = 0;
  #segFrames = 0;
  #segNext = 0;
  #gbt: Uint8Array | undefined;
  #gbtLen = 0;
  #gbtNext = 1;
  #gbtFrames = 0;
  /** A transfer (or a segmented M-Bus message) lost a piece: its remaining pieces pass silently. */
  #gbtBroken = false;
  #segBroken = false;
  #plain: Uint8Array | undefined;
  // Keys.
  #keysAsked = false;
  #keysVersion = 0;
  #key: Uint8Array | undefined;
  #authKey: Uint8Array | undefined;
  #gcm: AesGcm | undefined;
  readonly #iv = new Uint8Array(12);
  readonly #aad = new Uint8Array(17);
  // The message in progress.
  #format: MeterFormat = 'apdu';
  #frame = 0;
  #frames = 1;
  #security: Security = 'none';
  #title = '';
  #counter = -1;
  readonly #lastTitle = new Uint8Array(8);
  /** Where #length() stopped. */
  #at = 0;
  #lastTitleText = '';

  constructor(options: DlmsDecoderOptions) {
    this.#o = options;
    this.#max = options.maxBytes ?? 2048;
    this.#cosem = new CosemReader({ zone: options.zone });
  }

  /** An HDLC frame from hdlc.ts. */
  hdlc(f: HdlcFrame): void {
    this.#frame = f.number;
    if (f.segmented || this.#segLen > 0) {
      if (this.#segLen === 0) this.#segFrames = 0;
      if (!this.#append(f.bytes, f.infoStart, f.infoEnd, 'hdlc')) return;
      this.#segFrames++;
      if (f.segmented) return;
      const n = this.#segLen;
      this.#segLen = 0;
      this.#message('hdlc', this.#segFrames, this.#seg!, 0, n);
      return;
    }
    this.#message('hdlc', 1, f.bytes, f.infoStart, f.infoEnd);
  }

  /** An M-Bus long frame from mbus.ts: CI 0x00–0x1F is DLMS, the low nibble the segment, 0x10 the last. */
  mbus(f: MbusFrame): void {
    this.#frame = f.number;
    const ci = f.ci;
    if (ci > 0x1f) {
      this.#segLen = 0;
      this.#fail('mbus', 'ci', `M-Bus frame ${f.number} carries CI ${hex2(ci)}, not DLMS/COSEM (CI 0x00–0x1F): is this a plain M-Bus meter (EN 13757-3)?`);
      return;
    }
    // Source and destination TSAP come before every segment.
    if (f.dataEnd - f.dataStart < 3) {
      this.#segLen = 0;
      this.#fail('mbus', 'short', `M-Bus frame ${f.number} is too short for a DLMS segment (${f.dataEnd - f.dataStart} data bytes)`);
      return;
    }
    const seq = ci & 0x0f;
    const last = (ci & 0x10) !== 0;
    const s = f.dataStart + 2;
    if (seq === 0) {
      if (this.#segLen > 0) this.#fail('mbus', 'segment', `M-Bus frame ${f.number} starts a new message before the last one's final segment: that message is lost`);
      this.#segLen = 0;
      this.#segFrames = 0;
      this.#segNext = 1;
      this.#segBroken = false;
      if (last) {
        this.#message('mbus', 1, f.bytes, s, f.dataEnd);
        return;
      }
    } else if (this.#segLen === 0 || seq !== this.#segNext) {
      const was = this.#segLen > 0;
      this.#segLen = 0;
      if (this.#segBroken) return;
      this.#segBroken = true;
      this.#fail('mbus', 'segment', `M-Bus frame ${f.number} is segment ${seq} of a message ${was ? `whose segment ${this.#segNext} was expected` : 'whose first segment was not seen'}: the message is lost`);
      return;
    }
    if (!this.#append(f.bytes, s, f.dataEnd, 'mbus')) return;
    this.#segFrames++;
    this.#segNext = seq + 1;
    if (!last) return;
    const n = this.#segLen;
    this.#segLen = 0;
    this.#message('mbus', this.#segFrames, this.#seg!, 0, n);
  }

  /** A bare ciphered APDU from envelope.ts. False when its tag failed (its bytes are searched again). */
  envelope(f: EnvelopeFrame): boolean {
    this.#begin('envelope', f.number, 1);
    return this.#ciphered(f.bytes, 0, f.end, 0, false) !== TAG_FAILED;
  }

  /** An LLC PDU (`E6 E7 00` + APDU) with no framing around it (captures, tests). */
  llcPdu(bytes: Uint8Array, start = 0, end = bytes.length): void {
    this.#frame = 1;
    this.#message('llc', 1, bytes, start, end);
  }

  /** A bare APDU (captures, tests). */
  apdu(bytes: Uint8Array, start = 0, end = bytes.length): void {
    this.#begin('apdu', 1, 1);
    this.#apdu(bytes, start, end, 0);
  }

  /** Forgets partial messages (the line was interrupted). */
  reset(): void {
    this.#segLen = 0;
    this.#gbtLen = 0;
    this.#gbtNext = 1;
  }

  #begin(format: MeterFormat, frame: number, frames: number): void {
    this.#format = format;
    this.#frame = frame;
    this.#frames = frames;
    this.#security = 'none';
    this.#title = '';
    this.#counter = -1;
  }

  #append(bytes: Uint8Array, start: number, end: number, layer: MeterLayer): boolean {
    const seg = this.#seg ?? (this.#seg = new Uint8Array(this.#max));
    const n = end - start;
    if (this.#segLen + n > seg.length) {
      this.#segLen = 0;
      this.#fail(layer, 'too-long', `a segmented message is longer than ${seg.length} bytes (frame ${this.#frame}): it is dropped`);
      return false;
    }
    seg.set(bytes.subarray(start, end), this.#segLen);
    this.#segLen += n;
    return true;
  }

  /** A transport message: LLC header (when there is one), then the APDU. */
  #message(format: MeterFormat, frames: number, b: Uint8Array, s: number, e: number): void {
    this.#begin(format, this.#frame, frames);
    if (e - s >= 3 && b[s] === 0xe6 && (b[s + 1] === 0xe7 || b[s + 1] === 0xe6) && b[s + 2] === 0x00) s += 3;
    else if (format === 'llc' || !isApduTag(b[s])) {
      this.#fail('llc', 'header', `${format === 'llc' ? 'the LLC PDU' : `the ${format === 'hdlc' ? 'information field' : 'data'} of frame ${this.#frame}`} starts with ${hexBytes(b, s, e, 3)}, not the LLC header E6 E7 00 or a DLMS APDU`);
      return;
    }
    this.#apdu(b, s, e, 0);
  }

  #apdu(b: Uint8Array, s: number, e: number, depth: number): void {
    if (s >= e) {
      this.#fail('apdu', 'empty', `frame ${this.#frame} carries no APDU`);
      return;
    }
    switch (b[s]) {
      case Apdu.dataNotification:
        this.#notification(b, s, e);
        return;
      case Apdu.generalGloCiphering:
        if (depth > 1) {
          this.#fail('gcm', 'nested', `frame ${this.#frame}: a ciphered APDU inside a ciphered APDU`);
          return;
        }
        this.#ciphered(b, s + 1, e, depth, false);
        return;
      case Apdu.generalBlockTransfer:
        if (depth > 1) {
          this.#fail('gbt', 'nested', `frame ${this.#frame}: a block transfer inside a block transfer`);
          return;
        }
        this.#block(b, s, e, depth);
        return;
      default:
        this.#fail('apdu', 'tag', `frame ${this.#frame} carries APDU ${hex2(b[s])}, not one a meter pushes (data-notification 0x0F, general-glo-ciphering 0xDB, general-block-transfer 0xE0)`);
    }
  }

  /** General block transfer: `E0 | control | block number(2) | acknowledged(2) | length | data`. */
  #block(b: Uint8Array, s: number, e: number, depth: number): void {
    if (e - s < 7) {
      this.#fail('gbt', 'short', `the block transfer in frame ${this.#frame} is cut short`);
      return;
    }
    const control = b[s + 1];
    const number = (b[s + 2] << 8) | b[s + 3];
    const n = this.#length(b, s + 6, e);
    const p = this.#at;
    if (n < 0 || p + n !== e) {
      this.#gbtLen = 0;
      this.#gbtNext = 1;
      this.#fail('gbt', 'length', `block ${number} of the block transfer in frame ${this.#frame} says ${n < 0 ? 'an unreadable length' : `${n} bytes`} but carries ${e - p}`);
      return;
    }
    if (number === 1) {
      this.#gbtLen = 0;
      this.#gbtFrames = 0;
      this.#gbtBroken = false;
    } else if (number !== this.#gbtNext || this.#gbtLen === 0) {
      const expected = this.#gbtNext;
      this.#gbtLen = 0;
      this.#gbtNext = 1;
      if (this.#gbtBroken) return;
      this.#gbtBroken = true;
      this.#fail('gbt', 'sequence', `block ${number} of a block transfer arrived (frame ${this.#frame}) where block ${expected} was expected: the message is lost`);
      return;
    }
    const gbt = this.#gbt ?? (this.#gbt = new Uint8Array(this.#max));
    if (this.#gbtLen + n > gbt.length) {
      this.#gbtLen = 0;
      this.#gbtNext = 1;
      this.#fail('gbt', 'too-long', `a block transfer is longer than ${gbt.length} bytes (frame ${this.#frame}): it is dropped`);
      return;
    }
    gbt.set(b.subarray(p, e), this.#gbtLen);
    this.#gbtLen += n;
    this.#gbtFrames += this.#frames;
    this.#gbtNext = number + 1;
    if ((control & 0x80) === 0) return;
    const len = this.#gbtLen;
    this.#gbtLen = 0;
    this.#gbtNext = 1;
    this.#frames = this.#gbtFrames;
    this.#apdu(gbt, 0, len, depth + 1);
  }

  /**
   * General-glo-ciphering after its 0xDB tag: `08 | system title | length | SC | FC(4) | text | tag`.
   * Returns OK, TAG_FAILED (the integrity check failed) or REFUSED (anything else).
   */
  #ciphered(b: Uint8Array, s: number, e: number, depth: number, retry: boolean): number {
    const frame = this.#frame;
    if (e - s < 15 || b[s] !== 8) {
      this.#fail('gcm', 'header', `the ciphered APDU in frame ${frame} does not start with an 8-byte system title`);
      return REFUSED;
    }
    const title = s + 1;
    const n = this.#length(b, s + 9, e);
    const p = this.#at;
    if (n < 5 || p + n !== e) {
      this.#fail('gcm', 'length', `the ciphered APDU in frame ${frame} says ${n < 0 ? 'an unreadable length' : `${n} bytes`} but carries ${e - p}`);
      return REFUSED;
    }
    const sc = b[p];
    const fc = ((b[p + 1] << 24) | (b[p + 2] << 16) | (b[p + 3] << 8) | b[p + 4]) >>> 0;
    if ((sc & 0x0f) !== 0 || (sc & 0x80) !== 0) {
      this.#fail('gcm', 'suite', `frame ${frame} (${this.#who(b, title, fc)}) uses security control ${hex2(sc)}: only suite 0 (AES-GCM-128) without compression is supported`);
      return REFUSED;
    }
    const auth = (sc & 0x10) !== 0;
    const enc = (sc & 0x20) !== 0;
    const tagLength = auth ? 12 : 0;
    const textStart = p + 5;
    const textEnd = e - tagLength;
    if (textEnd < textStart) {
      this.#fail('gcm', 'length', `the ciphered APDU in frame ${frame} (${this.#who(b, title, fc)}) is too short for its tag`);
      return REFUSED;
    }
    this.#security = auth && enc ? 'encrypted+authenticated' : enc ? 'encrypted' : auth ? 'authenticated' : 'none';
    this.#title = this.#titleText(b, title);
    this.#counter = fc;
    const len = textEnd - textStart;
    const plain = this.#plain ?? (this.#plain = new Uint8Array(this.#max));
    if (len > plain.length) {
      this.#fail('gcm', 'too-long', `the ciphered APDU in frame ${frame} (${len} bytes) is longer than ${plain.length} bytes`);
      return REFUSED;
    }
    if (auth || enc) {
      const version = this.#o.keysVersion ? this.#o.keysVersion() : 0;
      if (!this.#keysAsked || version !== this.#keysVersion) {
        this.#keysVersion = version;
        this.#loadKeys();
      }
      if (!this.#gcm) {
        if (!retry && this.#loadKeys()) return this.#ciphered(b, s, e, depth, true);
        this.#fail('gcm', 'no-key', `frame ${frame} is encrypted (${this.#who(b, title, fc)}) but no meter key is set: set the key from your network operator (console: config set meter.key <32 hex digits>)`);
        return REFUSED;
      }
      if (auth && !this.#authKey) {
        if (!retry && this.#loadKeys()) return this.#ciphered(b, s, e, depth, true);
        this.#fail('gcm', 'no-auth-key', `frame ${frame} is authenticated (${this.#who(b, title, fc)}) but no authentication key is set: config set meter.auth_key <32 hex digits>`);
        return REFUSED;
      }
      const iv = this.#iv;
      for (let i = 0; i < 8; i++) iv[i] = b[title + i];
      for (let i = 0; i < 4; i++) iv[8 + i] = b[p + 1 + i];
      const aad = this.#aad;
      aad[0] = sc;
      if (auth) aad.set(this.#authKey!, 1);
      const gcm = this.#gcm;
      let ok = true;
      if (enc && auth) ok = gcm.open(iv, aad, 0, 17, b, textStart, textEnd, b, textEnd, 12, plain, 0);
      else if (enc) gcm.decryptOnly(iv, b, textStart, textEnd, plain, 0);
      else {
        plain.set(b.subarray(textStart, textEnd), 0);
        ok = gcm.verify(iv, aad, 0, 17, plain, 0, len, b, textEnd, 12);
      }
      if (!ok) {
        if (!retry && this.#loadKeys()) return this.#ciphered(b, s, e, depth, true);
        this.#fail('gcm', 'tag', `GCM tag does not match: wrong key? (frame ${frame}, ${this.#who(b, title, fc)})`);
        return TAG_FAILED;
      }
      if (!auth && !isApduTag(plain[0]) && plain[0] !== SLASH) {
        if (!retry && this.#loadKeys()) return this.#ciphered(b, s, e, depth, true);
        this.#fail('gcm', 'garbage', `decrypted frame ${frame} (${this.#who(b, title, fc)}) does not begin with a DLMS APDU but with ${hex2(plain[0])}: wrong key? (this meter does not authenticate its frames, so a wrong key shows only here)`);
        return REFUSED;
      }
    } else {
      plain.set(b.subarray(textStart, textEnd), 0);
    }
    if (plain[0] === SLASH && this.#o.onTelegram) {
      this.#o.onTelegram(plain, 0, len, { format: this.#format, security: this.#security, systemTitle: this.#title, frameCounter: fc, frames: this.#frames });
      return OK;
    }
    this.#apdu(plain, 0, len, depth + 1);
    return OK;
  }

  /** The system title as hex, made once per title (a meter keeps its own). */
  #titleText(b: Uint8Array, s: number): string {
    const last = this.#lastTitle;
    if (this.#lastTitleText !== '') {
      let same = true;
      for (let i = 0; i < 8 && same; i++) same = last[i] === b[s + i];
      if (same) return this.#lastTitleText;
    }
    for (let i = 0; i < 8; i++) last[i] = b[s + i];
    this.#lastTitleText = hexString(b, s, s + 8);
    return this.#lastTitleText;
  }

  /** Who sent a refused frame, for its message (built only then). */
  #who(b: Uint8Array, title: number, fc: number): string {
    return `system title ${systemTitleText(b, title)}, frame counter ${fc}`;
  }

  /** A BER length at b[p] (one byte below 0x80, else 0x81/0x82 and its bytes); -1 if not. Sets #at after it. */
  #length(b: Uint8Array, p: number, e: number): number {
    let n = b[p++];
    if (n >= 0x80) {
      const k = n & 0x7f;
      if (k < 1 || k > 2 || p + k > e) {
        this.#at = p;
        return -1;
      }
      n = 0;
      for (let i = 0; i < k; i++) n = n * 256 + b[p++];
    }
    this.#at = p;
    return n;
  }

  /** Asks for the keys; true when they differ from those in use. */
  #loadKeys(): boolean {
    this.#keysAsked = true;
    const k = this.#o.keys?.();
    const key = k?.key && k.key.length === 16 ? k.key : undefined;
    const authKey = k?.authKey && k.authKey.length === 16 ? k.authKey : undefined;
    const changed = !same(key, this.#key) || !same(authKey, this.#authKey);
    if (!changed) return false;
    this.#key = key && key.slice();
    this.#authKey = authKey && authKey.slice();
    this.#gcm = key ? new AesGcm(key) : undefined;
    return true;
  }

  /** Data-notification: `0F | long-invoke-id-and-priority(4) | date-time | body`. */
  #notification(b: Uint8Array, s: number, e: number): void {
    const frame = this.#frame;
    let p = s + 5;
    if (p >= e) {
      this.#fail('apdu', 'short', `the data-notification in frame ${frame} is cut short`);
      return;
    }
    const invokeId = ((b[s + 1] << 24) | (b[s + 2] << 16) | (b[s + 3] << 8) | b[s + 4]) >>> 0;
    let time = NaN;
    // Absent (00), an octet string of 12 (0C …), or, as Kaifa sends it, typed (09 0C …).
    if (b[p] === 0x00) p += 1;
    else if (b[p] === 0x0c && p + 13 <= e) {
      time = dateTime(b, p + 1, this.#zoneWinter(), this.#zoneSummer());
      p += 13;
    } else if (b[p] === 0x09 && b[p + 1] === 0x0c && p + 14 <= e) {
      time = dateTime(b, p + 2, this.#zoneWinter(), this.#zoneSummer());
      p += 14;
    } else {
      this.#fail('apdu', 'date-time', `the data-notification in frame ${frame} has a date-time field starting ${hexBytes(b, p, e, 2)}, neither absent (00) nor 12 bytes (0C)`);
      return;
    }
    const registers: Register[] | undefined = this.#o.registers ? [] : undefined;
    const values = this.#cosem.read(b, p, e, time, this.#time, registers);
    if (!values) {
      this.#fail('axdr', 'body', `the data-notification body in frame ${frame} is malformed: ${this.#cosem.error}`);
      return;
    }
    const r: MeterReading = { format: this.#format, values, security: this.#security, invokeId, frames: this.#frames };
    const t = this.#time[0];
    if (t === t) r.time = t;
    if (this.#counter >= 0) {
      r.systemTitle = this.#title;
      r.frameCounter = this.#counter;
    }
    if (this.#cosem.listId !== undefined) r.listId = this.#cosem.listId;
    if (registers) r.registers = registers;
    this.#o.onReading(r);
  }

  #zoneWinter(): number {
    return this.#o.zone?.winter ?? 3600;
  }

  #zoneSummer(): number {
    return this.#o.zone?.summer ?? 7200;
  }

  #fail(layer: MeterLayer, reason: string, message: string): void {
    this.#o.onError(new MeterError(layer, reason, message, this.#frame));
  }
}

const OK = 0;
const TAG_FAILED = 1;
const REFUSED = 2;
const SLASH = 0x2f;

function isApduTag(t: number): boolean {
  return t === Apdu.dataNotification || t === Apdu.generalGloCiphering || t === Apdu.generalBlockTransfer;
}

function same(a: Uint8Array | undefined, b: Uint8Array | undefined): boolean {
  if (!a || !b) return a === b;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** A system title for people: hex, with the manufacturer's three letters when they are letters. */
function systemTitleText(b: Uint8Array, s: number): string {
  let ascii = '';
  for (let i = 0; i < 3; i++) {
    const c = b[s + i];
    if (c < 0x41 || c > 0x5a) return hexString(b, s, s + 8);
    ascii += String.fromCharCode(c);
  }
  return `${hexString(b, s, s + 8)} (${ascii})`;
}
