// One parser for every meter gridlet reads, chosen by the meter's type (ARCHITECTURE.md "Meter inputs"):
//
//   type    line          framings tried                       meters
//   dsmr    115200 8N1    P1 text                              NL, BE, SE text HAN (9600 7E1: DSMR 2.2/3)
//   smarty  115200 8N1    ciphered envelope, P1 text           LU Smarty (AES-128-GCM around the text)
//   dlms    2400 8E1      HDLC, M-Bus                          NO, SE, DK HAN (Aidon, Kaifa, Kamstrup, L+G)
//   mbus    2400 8E1      M-Bus, HDLC                          AT customer interfaces (EVN, Salzburg, …)
//   auto    —             all four                             `gridlet meter parse`
//
// Framing is detected from the stream: every framing of the type is fed the bytes in step, one byte
// at a time, until one of them holds a frame whose header checks out (HCS, `68 L L 68`, a ciphered
// envelope's header) or a whole telegram. The earliest header wins, so the ciphered APDU inside an
// HDLC frame is not taken for a bare envelope. From then on only that framing is fed, a whole chunk at
// a time, and every error it reports is passed on. Until then a framing's complaints are line noise and
// only the last is kept, to be reported if the input ends with nothing recognised. A lock that brings
// nothing for 8 KiB of input is released, so a false start in noise cannot shut the meter out.

import { DlmsDecoder, type CipherContext, type DlmsKeys } from './dlms.js';
import { TelegramError, TelegramParser, type TelegramResult } from './dsmr.js';
import { EnvelopeFramer } from './envelope.js';
import { MeterError } from './error.js';
import { HdlcFramer } from './hdlc.js';
import { MbusFramer } from './mbus.js';
import type { MeterFormat, MeterReading, Register } from './reading.js';
import { TYPES, type Framing, type MeterType } from './types.js';

export { isMeterType, lineSettings, METER_TYPES, usesKeys, type Framing, type LineSettings, type MeterType } from './types.js';

export interface MeterParserOptions {
  /** Default `auto`. */
  type?: MeterType;
  onReading: (reading: MeterReading) => void;
  onError?: (error: MeterError) => void;
  /** The meter's keys, asked when a ciphered frame needs them (dlms.ts); or give `key`/`authKey`. */
  keys?: () => DlmsKeys | undefined;
  /** Changes when the keys are set anew (keys.ts `meterKeysVersion`), so that they apply from the next frame. */
  keysVersion?: () => number;
  key?: Uint8Array;
  authKey?: Uint8Array;
  /** Every register of each DLMS message into `reading.registers` (allocates; people and tests). */
  registers?: boolean;
  /** Seconds east of UTC for meter clocks that do not say. Default CET/CEST. */
  zone?: { winter: number; summer: number };
  /** Most bytes of a binary frame and of a DLMS message. Default 2048. */
  maxBytes?: number;
  /** Most bytes of a P1 text telegram. Default 4096 (Belgian telegrams with a long message exceed 2 KiB). */
  maxTelegramBytes?: number;
}

const NONE = -1;
/** Bytes without a frame from the locked framing after which the lock is released. */
const UNLOCK_BYTES = 8192;

interface Candidate {
  framing: Framing;
  push(bytes: Uint8Array): void;
  pushByte(b: number): void;
  /** Bytes of an unfinished frame held, and the most it may hold. */
  buffered(): number;
  capacity: number;
  /** Frames whose header checked out so far (0 for text telegrams, which lock by their outcome). */
  headers(): number;
  end(): void;
  reset(): void;
}

export class MeterParser {
  readonly type: MeterType;
  /** Messages delivered, and refused (by any layer). */
  readings = 0;
  errors = 0;
  lastError = '';
  readonly #o: MeterParserOptions;
  readonly #candidates: Candidate[] = [];
  readonly #decoder: DlmsDecoder;
  /** A telegram that came out of a ciphered envelope is read by its own parser. */
  #inner: TelegramParser | undefined;
  #context: CipherContext | undefined;
  #locked = NONE;
  /** The candidate whose callback is running. */
  #current = NONE;
  #quiet = 0;
  #pending: MeterError | undefined;
  #seen = 0;

  constructor(options: MeterParserOptions) {
    this.type = options.type ?? 'auto';
    this.#o = options;
    const info = TYPES[this.type];
    this.#decoder = new DlmsDecoder({
      onReading: (r) => this.#gate(r, undefined),
      onError: (e) => this.#gate(undefined, e),
      keys: keyProvider(this.type, options),
      keysVersion: options.keysVersion,
      onTelegram: (b, s, e, context) => this.#telegram(b, s, e, context),
      registers: options.registers,
      zone: options.zone,
      maxBytes: options.maxBytes,
    });
    const max = options.maxBytes ?? 2048;
    for (const framing of info.framings) this.#candidates.push(this.#candidate(framing, max));
  }

  /** Bytes the framings hold of unfinished frames (each within its own capacity). */
  get buffered(): number {
    let n = 0;
    for (const c of this.#candidates) n = Math.max(n, c.buffered());
    return n;
  }

  /** The most bytes any one framing holds of an unfinished frame. */
  get capacity(): number {
    let n = 0;
    for (const c of this.#candidates) n = Math.max(n, c.capacity);
    return n;
  }

  /** The framing the stream was recognised as, or undefined while still looking. */
  get framing(): Framing | undefined {
    return this.#locked === NONE ? undefined : this.#candidates[this.#locked].framing;
  }

  /** Feeds bytes as they arrive; readings and errors go to the callbacks, in stream order. */
  push(bytes: Uint8Array | ArrayBuffer): void {
    const data = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
    this.#seen += data.length;
    const locked = this.#locked;
    if (locked !== NONE) {
      this.#feed(locked, data);
      this.#quiet += data.length;
      if (this.#quiet > UNLOCK_BYTES) this.#unlock();
      return;
    }
    // In step, byte by byte, until a framing recognises a header.
    const cs = this.#candidates;
    for (let k = 0; k < data.length; k++) {
      const b = data[k];
      for (let i = 0; i < cs.length; i++) {
        const c = cs[i];
        const before = c.headers();
        this.#current = i;
        try {
          c.pushByte(b);
        } finally {
          this.#current = NONE;
        }
        if (this.#locked === NONE && c.headers() > before) this.#locked = i;
        if (this.#locked !== NONE) {
          // The others are done; the rest of the chunk goes to the one recognised.
          if (k + 1 < data.length) this.#feed(this.#locked, data.subarray(k + 1));
          return;
        }
      }
    }
  }

  /** The input has ended: a frame still open is reported, and so is input in which nothing was recognised. */
  end(): void {
    const locked = this.#locked;
    for (let i = 0; i < this.#candidates.length; i++) {
      if (locked === NONE || locked === i) {
        this.#current = i;
        this.#candidates[i].end();
      }
    }
    this.#current = NONE;
    if (this.#locked === NONE && this.#seen > 0) {
      const p = this.#pending;
      this.#deliverError(p ?? new MeterError('detect', 'none', `no meter frame found in ${this.#seen} bytes (looked for ${TYPES[this.type].framings.map(framingName).join(', ')})`));
    }
    this.#pending = undefined;
    this.#seen = 0;
  }

  /** Forgets frames in progress and the framing recognised (the port was reopened). */
  reset(): void {
    for (const c of this.#candidates) c.reset();
    this.#decoder.reset();
    this.#locked = NONE;
    this.#quiet = 0;
    this.#pending = undefined;
    this.#seen = 0;
  }

  #feed(i: number, data: Uint8Array): void {
    this.#current = i;
    try {
      this.#candidates[i].push(data);
    } finally {
      this.#current = NONE;
    }
  }

  #unlock(): void {
    this.#locked = NONE;
    this.#quiet = 0;
    for (const c of this.#candidates) c.reset();
    this.#decoder.reset();
  }

  #candidate(framing: Framing, max: number): Candidate {
    const d = this.#decoder;
    const onError = (e: MeterError) => this.#gate(undefined, e);
    switch (framing) {
      case 'hdlc':
        return framer(framing, new HdlcFramer({ onFrame: (f) => d.hdlc(f), onError, maxBytes: Math.min(max, 2047) }));
      case 'mbus':
        return framer(framing, new MbusFramer({ onFrame: (f) => d.mbus(f), onError }));
      case 'envelope':
        return framer(framing, new EnvelopeFramer({ onFrame: (f) => d.envelope(f), onError, maxBytes: max }));
      default: {
        const p = new TelegramParser({
          maxBytes: this.#o.maxTelegramBytes ?? 4096,
          zone: this.#o.zone,
          keepText: this.#o.registers,
          onTelegram: (r) => this.#gate(telegramReading(r, 'dsmr', undefined), undefined),
          onError: (e) => this.#textError(e),
        });
        const one = new Uint8Array(1);
        return {
          framing, headers: () => 0, push: (b) => p.push(b), end: () => p.end(), reset: () => p.reset(),
          buffered: () => p.buffered, capacity: p.capacity,
          pushByte(b) {
            one[0] = b;
            p.push(one);
          },
        };
      }
    }
  }

  /** Readings and errors from the candidate whose callback is running: the first one locks. */
  #gate(reading: MeterReading | undefined, error: MeterError | undefined): void {
    const i = this.#current;
    if (i !== NONE) {
      if (this.#locked === NONE) this.#locked = i;
      else if (this.#locked !== i) return;
      this.#quiet = 0;
    }
    if (reading) {
      this.readings++;
      this.#o.onReading(reading);
    } else if (error) this.#deliverError(error);
  }

  /** A text telegram's complaint locks only when it is about a whole telegram (its CRC). */
  #textError(e: TelegramError): void {
    const error = new MeterError('dsmr', e.reason, e.message);
    if (this.#locked === NONE && e.reason !== 'crc') {
      this.#pending = error;
      return;
    }
    this.#gate(undefined, error);
  }

  /** A telegram that came out of a ciphered frame (Smarty). */
  #telegram(b: Uint8Array, s: number, e: number, context: CipherContext): void {
    this.#context = context;
    const inner = this.#inner ?? (this.#inner = new TelegramParser({
      maxBytes: this.#o.maxTelegramBytes ?? 4096,
      zone: this.#o.zone,
      keepText: this.#o.registers,
      onTelegram: (r) => {
        const c = this.#context!;
        this.#gate(telegramReading(r, c.format === 'envelope' ? 'smarty' : c.format, c), undefined);
      },
      onError: (err) => this.#gate(undefined, new MeterError('dsmr', err.reason, `the decrypted telegram is refused: ${err.message}`)),
    }));
    inner.push(b.subarray(s, e));
    inner.end();
  }

  #deliverError(e: MeterError): void {
    this.errors++;
    this.lastError = e.message;
    this.#o.onError?.(e);
  }
}

function framer(framing: Framing, f: HdlcFramer | MbusFramer | EnvelopeFramer): Candidate {
  return {
    framing, headers: () => f.frames, push: (b) => f.push(b), pushByte: (b) => f.pushByte(b), end: () => f.end(), reset: () => f.reset(),
    buffered: () => f.buffered, capacity: f.capacity,
  };
}

function framingName(f: Framing): string {
  return f === 'text' ? 'P1 text telegrams' : f === 'envelope' ? 'ciphered envelopes (0xDB)' : f === 'hdlc' ? 'HDLC frames' : 'M-Bus long frames';
}

function telegramReading(r: TelegramResult, format: MeterFormat, c: CipherContext | undefined): MeterReading {
  const out: MeterReading = { format, values: r.values, header: r.header, crc: r.crc };
  if (r.time !== undefined) out.time = r.time;
  if (r.text !== undefined) out.registers = telegramRegisters(r.text);
  if (c) {
    out.security = c.security;
    out.systemTitle = c.systemTitle;
    out.frameCounter = c.frameCounter;
    out.frames = c.frames;
  }
  return out;
}

/** The OBIS lines of a P1 telegram as registers: the last group's number and unit, or its text. */
function telegramRegisters(text: string): Register[] {
  const out: Register[] = [];
  for (const line of text.split(/\r?\n/)) {
    const m = /^(\d{1,3}-\d{1,3}:\d{1,3}\.\d{1,3}\.\d{1,3}(?:[*&]\d{1,3})?)((?:\([^()]*\))+)$/.exec(line);
    if (!m) continue;
    const groups = m[2].slice(1, -1).split(')(');
    const last = groups[groups.length - 1];
    const n = /^(-?\d+(?:\.\d+)?)\*(.+)$/.exec(last);
    out.push(n ? { obis: m[1], type: 'text', value: Number(n[1]), unit: n[2] } : { obis: m[1], type: 'text', value: last });
  }
  return out;
}

/** Builds the parser for a meter's configuration (the firmware and the host agent both use this). */
export function createMeterParser(options: MeterParserOptions): MeterParser {
  return new MeterParser(options);
}

/**
 * What the first bytes of a capture say it is, where they say it unambiguously: a P1 telegram (`/`),
 * an HDLC frame (7E A?), an M-Bus long frame (68 L L 68), a ciphered envelope (DB 08), an LLC PDU
 * (E6 E7 00) or a bare APDU (0F, E0). Undefined otherwise.
 */
export function detectFormat(b: Uint8Array): MeterFormat | undefined {
  const i = skipNoise(b);
  const n = b.length - i;
  if (n < 2) return undefined;
  const x = b[i], y = b[i + 1];
  if (x === 0x2f) return 'dsmr';
  if (x === 0x7e && (y & 0xf0) === 0xa0) return 'hdlc';
  if (x === 0x68 && n >= 4 && b[i + 1] === b[i + 2] && b[i + 3] === 0x68) return 'mbus';
  if (x === 0xdb && y === 0x08) return 'envelope';
  if (x === 0xe6 && (y === 0xe7 || y === 0xe6) && n >= 3 && b[i + 2] === 0) return 'llc';
  if (x === 0x0f || x === 0xe0) return 'apdu';
  return undefined;
}

/**
 * Parses a whole capture (a file): framed input through the streaming parser, an LLC PDU or a bare
 * APDU directly. Returns every reading and every error, in order.
 */
export function parseCapture(bytes: Uint8Array, options: Omit<MeterParserOptions, 'onReading' | 'onError'> = {}):
  { readings: MeterReading[]; errors: MeterError[]; format: MeterFormat | undefined } {
  const readings: MeterReading[] = [];
  const errors: MeterError[] = [];
  const format = detectFormat(bytes);
  if (format === 'llc' || format === 'apdu') {
    const d = new DlmsDecoder({
      onReading: (r) => readings.push(r),
      onError: (e) => errors.push(e),
      keys: keyProvider(options.type ?? 'auto', options),
      registers: options.registers,
      zone: options.zone,
      maxBytes: options.maxBytes,
    });
    const i = skipNoise(bytes);
    if (format === 'llc') d.llcPdu(bytes, i);
    else d.apdu(bytes, i);
    return { readings, errors, format };
  }
  const p = new MeterParser({ ...options, onReading: (r) => readings.push(r), onError: (e) => errors.push(e) });
  p.push(bytes);
  p.end();
  return { readings, errors, format };
}

/** Line ends and idle bytes before a capture's first frame (at most 64). */
function skipNoise(b: Uint8Array): number {
  let i = 0;
  while (i < b.length && i < 64 && (b[i] === 0x0d || b[i] === 0x0a || b[i] === 0x00 || b[i] === 0xff)) i++;
  return i;
}

/** The keys as given (a provider, or fixed keys), with the type's own authentication key when it has one. */
function keyProvider(type: MeterType, o: Pick<MeterParserOptions, 'keys' | 'key' | 'authKey'>): () => DlmsKeys | undefined {
  const fixedAuth = TYPES[type].authKey;
  if (o.keys) {
    const keys = o.keys;
    return () => {
      const k = keys();
      return fixedAuth && k && !k.authKey ? { key: k.key, authKey: Uint8Array.from(fixedAuth) } : k;
    };
  }
  const k: DlmsKeys = { key: o.key, authKey: o.authKey ?? (fixedAuth ? Uint8Array.from(fixedAuth) : undefined) };
  return () => k;
}
