// DSMR P1 text telegrams (Dutch DSMR 2.2–5.0, Belgian e-MUCS, decrypted Luxembourg Smarty, Swedish HAN
// text, and the look-alikes from AT, HU, IE) → WIRE.md "Channels (v1)" (ARCHITECTURE.md "Meter inputs").
//
// A telegram is `/ident CR LF CR LF data-lines ! CRC CR LF`. The parser is fed whatever the UART
// delivers: per byte it only stores the byte in one fixed buffer and updates the CRC; the lines are read
// once, when the telegram has ended and its CRC has matched. Decisions worth knowing:
// - CRC-16/ARC over the bytes from `/` up to and including `!`; 1–4 hex digits of either case
//   (`!B9F` is seen in the wild). A bare `!` (DSMR 2.2/3.0) is accepted as crc 'none', except when the
//   telegram declares a version that requires a CRC (1-3:0.2.8 ≥ 40, or e-MUCS 0-0:96.1.4), or when
//   this parser has already seen a CRC from the meter: then a missing CRC means damage, not an old meter.
// - A `/` always starts a telegram. One that arrives before the `!` cuts the previous telegram short
//   (reported `truncated`), so a meter that restarts mid-telegram costs one telegram, not two.
// - Longer than `maxBytes` (default 2048) from `/` to `!` → `too-long`, then nothing until the next `/`.
// - Every data line must be an OBIS line `A-B:C.D.E(…)(…)` (or, in DSMR 2.2/3.0, a `(…)` continuation
//   line); anything else makes the telegram `malformed`. OBIS codes the channels do not use are ignored.
// - Values are converted from their decimal text by an integer scaler, never through a float. A unit
//   other than the one a channel means (kvarh, GJ, no unit at all) leaves that channel out rather than
//   guessing. Decimals finer than the channel's unit round half to even, as WIRE.md rounds guest values.
// - Energy totals: 1-0:1.8.0 (2.8.0) when the meter gives one, else the sum of its tariff registers
//   1-0:1.8.1…1.8.9 (2.8.x). Gas: the lowest M-Bus channel n whose device type 0-n:24.1.0 is 3 and whose
//   reading (0-n:24.2.1, 0-n:24.2.3, or DSMR 2.2/3.0's 0-n:24.3.0 with the value possibly on the next
//   line) is in m3. Water (type 7) and heat (type 4, GJ) meters are not gas and are left out.
// - Clock: 0-0:1.0.0 `YYMMDDhhmmssX`, years 2000–2099, X = W (winter) or S (summer). The offsets default
//   to Central European Time, UTC+1 / UTC+2 (NL, BE, LU, SE, AT, HU); an Irish meter needs
//   `zone: { winter: 0, summer: 3600 }`. A clock that is not a calendar date (000000000000W) is left out;
//   a plausible but unset clock (2000-01-01) is reported as the meter says: the agent judges plausibility.

import { Channel, MAX_CHANNEL } from '../wire/constants.js';

export interface TelegramResult {
  /** The identification line after the `/` (latin1; may hold control bytes such as 0x02). */
  header: string;
  crc: 'ok' | 'none';
  /** The meter's clock in unix seconds, when it gave a valid one. */
  time?: number;
  /** [channel, value] pairs in WIRE.md units, ascending channel, each channel at most once. */
  values: Array<[number, number]>;
  /** Number of OBIS lines in the telegram (mapped or not). */
  obis: number;
  /** The telegram's text from `/` to `!` (latin1), when the parser was asked to keep it. */
  text?: string;
}

export type TelegramErrorReason = 'crc' | 'too-long' | 'malformed' | 'truncated';

export class TelegramError extends Error {
  readonly reason: TelegramErrorReason;
  /** reason 'crc': the CRC the telegram states (undefined when it states none). */
  readonly expected?: number;
  /** reason 'crc': the CRC computed over the telegram's bytes. */
  readonly actual?: number;
  /** reason 'malformed': the offending line (latin1, at most 120 characters). */
  readonly line?: string;
  constructor(reason: TelegramErrorReason, message: string, detail?: { expected?: number; actual?: number; line?: string }) {
    super(message);
    this.reason = reason;
    if (detail) {
      if (detail.expected !== undefined) this.expected = detail.expected;
      if (detail.actual !== undefined) this.actual = detail.actual;
      if (detail.line !== undefined) this.line = detail.line;
    }
  }
}
// On a meter Error.prototype is frozen, so `this.name = …` in the constructor would throw there.
Object.defineProperty(TelegramError.prototype, 'name', { value: 'TelegramError' });

export interface TelegramParserOptions {
  onTelegram?: (result: TelegramResult) => void;
  onError?: (error: TelegramError) => void;
  /** Most bytes from `/` to `!` inclusive; the parser's buffer is exactly this big. Default 2048. */
  maxBytes?: number;
  /** Seconds east of UTC for the meter's W and S clock flags. Default CET: { winter: 3600, summer: 7200 }. */
  zone?: { winter: number; summer: number };
  /** Hand the telegram's text on in the result (people and tests: `gridlet meter parse`; allocates). */
  keepText?: boolean;
}

const SLASH = 0x2f;
const BANG = 0x21;
const CR = 0x0d;
const LF = 0x0a;
const OPEN = 0x28;
const CLOSE = 0x29;
const STAR = 0x2a;
const DOT = 0x2e;
const MINUS = 0x2d;
const COLON = 0x3a;
const AMP = 0x26;

// Parser states.
const IDLE = 0; // skipping bytes until a `/`
const BODY = 1; // inside a telegram, before its `!`
const CHECK = 2; // after the `!`, reading CRC digits

// ---------------------------------------------------------------- CRC-16/ARC

const CRC_TABLE = new Uint16Array(256);
for (let n = 0; n < 256; n++) {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xa001 : c >>> 1;
  CRC_TABLE[n] = c;
}

/** CRC-16/ARC (poly 0x8005 reflected = 0xA001, init 0, no xorout): CRC("123456789") = 0xBB3D. */
export function crc16arc(bytes: Uint8Array, start = 0, end = bytes.length, crc = 0): number {
  for (let i = start; i < end; i++) crc = (crc >>> 8) ^ CRC_TABLE[(crc ^ bytes[i]) & 0xff];
  return crc;
}

function hex4(n: number): string {
  const s = n.toString(16).toUpperCase();
  return '0x' + '0000'.slice(s.length) + s;
}

// ---------------------------------------------------------------- the streaming parser

export class TelegramParser {
  /** Size of the telegram buffer; `buffered` never exceeds it. */
  readonly capacity: number;
  #buf: Uint8Array;
  #len = 0;
  #state = IDLE;
  #crc = 0;
  #digits = 0;
  #given = 0;
  #crcSeen = false;
  #onTelegram: ((result: TelegramResult) => void) | undefined;
  #onError: ((error: TelegramError) => void) | undefined;
  #reader: LineReader;
  #keepText: boolean;

  constructor(options: TelegramParserOptions = {}) {
    const max = options.maxBytes ?? 2048;
    if (!(max >= 16 && max <= 65536)) throw new RangeError(`maxBytes ${max} is outside 16…65536`);
    this.capacity = max;
    this.#buf = new Uint8Array(max);
    this.#onTelegram = options.onTelegram;
    this.#onError = options.onError;
    this.#keepText = options.keepText ?? false;
    const zone = options.zone ?? { winter: 3600, summer: 7200 };
    this.#reader = new LineReader(zone.winter, zone.summer);
  }

  /** Bytes of the current, unfinished telegram held in the buffer. */
  get buffered(): number {
    return this.#len;
  }

  /** Feeds bytes as they arrive; results and errors go to the callbacks, in stream order. */
  push(bytes: Uint8Array | ArrayBuffer): void {
    const data = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
    const n = data.length;
    let i = 0;
    while (i < n) {
      const state = this.#state;
      if (state === BODY) {
        // The common case, kept in locals: ordinary telegram bytes, stored and added to the CRC.
        const buf = this.#buf;
        const cap = buf.length;
        let len = this.#len;
        let crc = this.#crc;
        while (i < n) {
          const b = data[i];
          if (b === SLASH || b === BANG || len === cap) break;
          buf[len++] = b;
          crc = (crc >>> 8) ^ CRC_TABLE[(crc ^ b) & 0xff];
          i++;
        }
        this.#len = len;
        this.#crc = crc;
        if (i === n) return;
      } else if (state === IDLE) {
        while (i < n && data[i] !== SLASH) i++;
        if (i === n) return;
      }
      this.#step(data[i++]);
    }
  }

  /** One byte the fast paths in push() leave alone: a `/`, a `!`, a byte past the cap, a CRC digit. */
  #step(b: number): void {
    const state = this.#state;
    if (state === IDLE) {
      if (b === SLASH) this.#start();
    } else if (state === BODY) {
      if (b === SLASH) {
        this.#start();
        this.#fail(new TelegramError('truncated', 'a new telegram began before this one reached its "!"'));
        return;
      }
      const len = this.#len;
      if (len === this.#buf.length) {
        this.#state = IDLE;
        this.#len = 0;
        this.#fail(new TelegramError('too-long', `telegram longer than ${len} bytes; skipped up to the next "/"`));
        return;
      }
      this.#buf[len] = b;
      this.#len = len + 1;
      this.#crc = (this.#crc >>> 8) ^ CRC_TABLE[(this.#crc ^ b) & 0xff];
      if (b === BANG) {
        this.#state = CHECK;
        this.#digits = 0;
        this.#given = 0;
      }
    } else {
      const v = hexValue(b);
      if (v >= 0) {
        this.#given = this.#given * 16 + v;
        if (++this.#digits === 4) this.#finish();
      } else if (b === CR || b === LF) {
        this.#finish();
      } else {
        const seen = this.#digits;
        this.#state = IDLE;
        this.#len = 0;
        if (b === SLASH) this.#start();
        this.#fail(new TelegramError('malformed', `malformed CRC after "!" (byte 0x${b.toString(16)} after ${seen} digits)`, { line: '!' }));
      }
    }
  }

  /**
   * The input has ended (a file, a closed port): a telegram still open is reported `truncated`.
   * A CRC of 1–3 digits with no line end after it counts as cut off too: it may have had a 4th.
   */
  end(): void {
    if (this.#state === IDLE) return;
    this.#state = IDLE;
    this.#len = 0;
    this.#fail(new TelegramError('truncated', 'input ended inside a telegram'));
  }

  /** Forgets the telegram in progress and whether the meter has sent CRCs before. */
  reset(): void {
    this.#state = IDLE;
    this.#len = 0;
    this.#crcSeen = false;
  }

  #start(): void {
    this.#state = BODY;
    this.#buf[0] = SLASH;
    this.#len = 1;
    this.#crc = CRC_TABLE[SLASH];
  }

  #fail(error: TelegramError): void {
    if (this.#onError) this.#onError(error);
  }

  #finish(): void {
    // State first, so a callback that throws leaves the parser ready for the next telegram.
    this.#state = IDLE;
    const len = this.#len;
    this.#len = 0;
    const digits = this.#digits;
    const computed = this.#crc;
    if (digits > 0 && this.#given !== computed) {
      this.#fail(
        new TelegramError('crc', `CRC mismatch: telegram says ${hex4(this.#given)}, computed ${hex4(computed)}`, {
          expected: this.#given,
          actual: computed,
        }),
      );
      return;
    }
    const outcome = this.#reader.read(this.#buf, len, digits > 0);
    if (outcome instanceof TelegramError) {
      this.#fail(outcome);
      return;
    }
    if (digits > 0) this.#crcSeen = true;
    else if (this.#crcSeen) {
      this.#fail(
        new TelegramError('crc', 'telegram has no CRC, but this meter sent CRCs before: it was damaged in transit', {
          actual: computed,
        }),
      );
      return;
    }
    if (this.#keepText) outcome.text = latin1(this.#buf, 0, len, len);
    if (this.#onTelegram) this.#onTelegram(outcome);
  }
}

function hexValue(b: number): number {
  if (b >= 0x30 && b <= 0x39) return b - 0x30;
  if (b >= 0x41 && b <= 0x46) return b - 0x37;
  if (b >= 0x61 && b <= 0x66) return b - 0x57;
  return -1;
}

/**
 * Parses one whole telegram (garbage before its `/` is skipped). Decided by the first telegram in
 * `bytes` that reaches its end; telegrams cut short by a later `/` are passed over (a stream reports
 * them `truncated`). Throws TelegramError.
 */
export function parseTelegram(bytes: Uint8Array, options: Omit<TelegramParserOptions, 'onTelegram' | 'onError'> = {}): TelegramResult {
  let result: TelegramResult | undefined;
  let failure: TelegramError | undefined;
  let cutShort: TelegramError | undefined;
  const parser = new TelegramParser({
    maxBytes: options.maxBytes,
    zone: options.zone,
    onTelegram(r) {
      if (!result && !failure) result = r;
    },
    onError(e) {
      if (result || failure) return;
      if (e.reason === 'truncated') cutShort = e;
      else failure = e;
    },
  });
  parser.push(bytes);
  parser.end();
  if (result) return result;
  if (failure) throw failure;
  throw cutShort ?? new TelegramError('truncated', `no telegram found: no "/" in ${bytes.length} bytes`);
}

// ---------------------------------------------------------------- numbers and clock

/**
 * The decimal text in bytes[start, end) times 10^exp, as an exact integer; NaN if the text is not
 * `-?digits(.digits)?` or needs more than 15 significant digits. Digits beyond 10^-exp round half to even.
 */
export function scaleDecimal(bytes: Uint8Array, start: number, end: number, exp: number): number {
  let i = start;
  let negative = false;
  if (i < end && bytes[i] === MINUS) {
    negative = true;
    i++;
  }
  let value = 0;
  let significant = 0;
  let intDigits = 0;
  for (; i < end; i++) {
    const d = bytes[i] - 0x30;
    if (d < 0 || d > 9) break;
    if (value !== 0 || d !== 0) {
      value = value * 10 + d;
      significant++;
    }
    intDigits++;
  }
  if (intDigits === 0 || significant > 15) return NaN;
  let kept = 0;
  let roundDigit = 0;
  let sticky = false;
  if (i < end && bytes[i] === DOT) {
    i++;
    let fracDigits = 0;
    for (; i < end; i++) {
      const d = bytes[i] - 0x30;
      if (d < 0 || d > 9) break;
      fracDigits++;
      if (kept < exp) {
        if (value !== 0 || d !== 0) {
          value = value * 10 + d;
          significant++;
        }
        kept++;
      } else if (fracDigits === exp + 1) roundDigit = d;
      else if (d !== 0) sticky = true;
    }
    if (fracDigits === 0) return NaN;
  }
  if (i !== end) return NaN;
  for (; kept < exp; kept++) {
    if (value !== 0) significant++;
    value *= 10;
  }
  if (significant > 15) return NaN;
  if (roundDigit > 5 || (roundDigit === 5 && (sticky || value % 2 === 1))) value += 1;
  return negative && value !== 0 ? -value : value;
}

/** Unsigned decimal digits in bytes[start, end) (1–15 of them); -1 otherwise. */
function readDigits(bytes: Uint8Array, start: number, end: number): number {
  if (end <= start || end - start > 15) return -1;
  let value = 0;
  for (let i = start; i < end; i++) {
    const d = bytes[i] - 0x30;
    if (d < 0 || d > 9) return -1;
    value = value * 10 + d;
  }
  return value;
}

const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/** Days from 1970-01-01 to a proleptic Gregorian date (H. Hinnant's days_from_civil). */
export function daysFromCivil(y: number, m: number, d: number): number {
  if (m <= 2) y -= 1;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const doy = Math.floor((153 * (m > 2 ? m - 3 : m + 9) + 2) / 5) + d - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}

/**
 * `YYMMDDhhmmssX` in bytes[start, end) → unix seconds; NaN when it is not a real date and time.
 * X = W uses `winter` seconds east of UTC, S uses `summer`.
 */
export function parseClock(bytes: Uint8Array, start: number, end: number, winter = 3600, summer = 7200): number {
  if (end - start !== 13) return NaN;
  const flag = bytes[start + 12];
  const offset = flag === 0x57 ? winter : flag === 0x53 ? summer : NaN;
  const yy = readDigits(bytes, start, start + 2);
  const mo = readDigits(bytes, start + 2, start + 4);
  const dd = readDigits(bytes, start + 4, start + 6);
  const hh = readDigits(bytes, start + 6, start + 8);
  const mi = readDigits(bytes, start + 8, start + 10);
  const ss = readDigits(bytes, start + 10, start + 12);
  if (yy < 0 || mo < 1 || mo > 12 || dd < 1 || hh < 0 || hh > 23 || mi < 0 || mi > 59 || ss < 0 || ss > 59) return NaN;
  const year = 2000 + yy;
  const monthDays = mo === 2 && year % 4 === 0 ? 29 : DAYS_IN_MONTH[mo - 1];
  if (dd > monthDays) return NaN;
  return daysFromCivil(year, mo, dd) * 86400 + hh * 3600 + mi * 60 + ss - offset;
}

// ---------------------------------------------------------------- reading the lines

const MAX_GROUPS = 8; // groups whose bounds are kept per line; the last group is always kept too
const NONE = -1;

// What a channel measures, to check a value's unit against.
const K_ENERGY = 1;
const K_POWER = 2;
const K_VOLTAGE = 3;
const K_CURRENT = 4;
const K_GAS = 5;

/** How a unit maps onto a channel's unit: 10^exp. -1 when the unit is not the channel's. */
function unitExponent(kind: number, b: Uint8Array, s: number, e: number): number {
  const n = e - s;
  switch (kind) {
    case K_ENERGY: // kWh → Wh, Wh
      if (n === 3 && b[s] === 0x6b && b[s + 1] === 0x57 && b[s + 2] === 0x68) return 3;
      if (n === 2 && b[s] === 0x57 && b[s + 1] === 0x68) return 0;
      return -1;
    case K_POWER: // kW → W, W
      if (n === 2 && b[s] === 0x6b && b[s + 1] === 0x57) return 3;
      if (n === 1 && b[s] === 0x57) return 0;
      return -1;
    case K_VOLTAGE: // V → mV
      return n === 1 && b[s] === 0x56 ? 3 : -1;
    case K_CURRENT: // A → mA
      return n === 1 && b[s] === 0x41 ? 3 : -1;
    case K_GAS: // m3 → dm³
      return n === 2 && b[s] === 0x6d && b[s + 1] === 0x33 ? 3 : -1;
  }
  return -1;
}

/** The channel an electricity register 1-0:C.D.E maps onto by itself (0: none; energy is summed elsewhere). */
function directChannel(c: number, d: number, e: number): number {
  if (d !== 7 || e !== 0) return 0;
  switch (c) {
    case 1: return Channel.powerImported;
    case 2: return Channel.powerExported;
    case 32: return Channel.voltageL1;
    case 52: return Channel.voltageL2;
    case 72: return Channel.voltageL3;
    case 31: return Channel.currentL1;
    case 51: return Channel.currentL2;
    case 71: return Channel.currentL3;
  }
  return 0;
}

function kindOf(channel: number): number {
  if (channel <= 2) return K_ENERGY;
  if (channel <= 4) return K_POWER;
  if (channel <= 7) return K_VOLTAGE;
  if (channel <= 10) return K_CURRENT;
  return K_GAS;
}

function latin1(b: Uint8Array, s: number, e: number, max = 120): string {
  let out = '';
  const stop = Math.min(e, s + max);
  for (let i = s; i < stop; i++) out += String.fromCharCode(b[i]);
  return out;
}

/** Reads a finished telegram's lines; one per parser, its scratch space reused telegram after telegram. */
class LineReader {
  readonly winter: number;
  readonly summer: number;
  // Per-line group bounds: the first MAX_GROUPS, then the last one.
  gs = new Int32Array(MAX_GROUPS);
  ge = new Int32Array(MAX_GROUPS);
  groups = 0;
  lastS = 0;
  lastE = 0;
  // Per-telegram scratch (NaN = absent).
  channel = new Float64Array(13);
  importTariff = new Float64Array(10);
  exportTariff = new Float64Array(10);
  importTotal = NaN;
  exportTotal = NaN;
  gas = new Float64Array(10);
  deviceType = new Int32Array(10);
  pendingGas = NONE;
  time = NaN;
  version = NaN;
  belgian = false;
  obis = 0;
  // Out-parameters of the small helpers, so that reading a line allocates nothing.
  next = 0;
  badNumber = false;

  constructor(winter: number, summer: number) {
    this.winter = winter;
    this.summer = summer;
  }

  read(b: Uint8Array, len: number, hasCrc: boolean): TelegramResult | TelegramError {
    this.channel.fill(NaN);
    this.importTariff.fill(NaN);
    this.exportTariff.fill(NaN);
    this.gas.fill(NaN);
    this.deviceType.fill(NONE);
    this.importTotal = NaN;
    this.exportTotal = NaN;
    this.pendingGas = NONE;
    this.time = NaN;
    this.version = NaN;
    this.belgian = false;
    this.obis = 0;

    // b[0] is '/', b[len - 1] is '!'. The identification line ends at the first LF.
    const bang = len - 1;
    let p = 1;
    while (p < bang && b[p] !== LF) p++;
    if (p >= bang) return malformed(b, 0, bang);
    const header = latin1(b, 1, p > 1 && b[p - 1] === CR ? p - 1 : p, 256);
    p++;
    while (p < bang) {
      let q = p;
      while (q < bang && b[q] !== LF) q++;
      // The '!' must begin a line of its own.
      if (q === bang) return malformed(b, p, bang);
      const e = q > p && b[q - 1] === CR ? q - 1 : q;
      if (e > p && !this.line(b, p, e)) return malformed(b, p, e);
      p = q + 1;
    }

    if (!hasCrc && ((this.version >= 40) || this.belgian)) {
      const what = this.belgian ? 'an e-MUCS version (0-0:96.1.4)' : `DSMR ${this.version / 10}`;
      return new TelegramError('crc', `telegram has no CRC but declares ${what}, which requires one`, {
        actual: crc16arc(b, 0, len),
      });
    }
    return this.result(header, hasCrc);
  }

  result(header: string, hasCrc: boolean): TelegramResult {
    const ch = this.channel;
    ch[Channel.energyImported] = total(this.importTotal, this.importTariff);
    ch[Channel.energyExported] = total(this.exportTotal, this.exportTariff);
    for (let n = 1; n < 10; n++) {
      if (this.deviceType[n] === 3 && this.gas[n] === this.gas[n]) {
        ch[Channel.gas] = this.gas[n];
        break;
      }
    }
    const values: Array<[number, number]> = [];
    for (let c = 1; c <= 12; c++) if (ch[c] === ch[c]) values.push([c, ch[c]]);
    const out: TelegramResult = { header, crc: hasCrc ? 'ok' : 'none', values, obis: this.obis };
    if (this.time === this.time) out.time = this.time;
    return out;
  }

  /** One non-empty line in b[s, e); false if it is malformed. */
  line(b: Uint8Array, s: number, e: number): boolean {
    if (b[s] === OPEN) {
      // A continuation line: DSMR 2.2/3.0 put the gas reading of 0-n:24.3.0 on the line after it.
      if (!this.scanGroups(b, s, e)) return false;
      const n = this.pendingGas;
      this.pendingGas = NONE;
      if (n !== NONE) return this.gasValue(b, n, this.gs[0], this.ge[0], true);
      return true;
    }
    this.pendingGas = NONE;

    // A-B:C.D.E, optionally *F or &F (IEC 62056-61 billing period; only 255, "current", is used).
    const a = this.field(b, s, e, MINUS);
    if (a < 0) return false;
    const n = this.field(b, this.next, e, COLON);
    if (n < 0) return false;
    const c = this.field(b, this.next, e, DOT);
    if (c < 0) return false;
    const d = this.field(b, this.next, e, DOT);
    if (d < 0) return false;
    const at = this.next;
    let x = this.field(b, at, e, OPEN);
    let f = 255;
    if (x < 0) {
      x = this.field(b, at, e, STAR);
      if (x < 0) x = this.field(b, at, e, AMP);
      if (x < 0) return false;
      f = this.field(b, this.next, e, OPEN);
      if (f < 0) return false;
    }
    const i = this.next - 1; // at the '('
    if (!this.scanGroups(b, i, e)) return false;
    this.obis++;
    if (f !== 255) return true;
    return this.map(b, a, n, c, d, x);
  }

  map(b: Uint8Array, a: number, n: number, c: number, d: number, x: number): boolean {
    const gs = this.gs;
    const ge = this.ge;
    if (a === 1 && n === 0) {
      if (d === 8 && (c === 1 || c === 2)) {
        const v = this.measure(b, K_ENERGY);
        if (v === v) {
          if (x === 0) {
            if (c === 1) this.importTotal = v;
            else this.exportTotal = v;
          } else if (x <= 9) {
            (c === 1 ? this.importTariff : this.exportTariff)[x] = v;
          }
        }
        return v === v || !this.badNumber;
      }
      const channel = directChannel(c, d, x);
      if (channel !== 0) {
        const v = this.measure(b, kindOf(channel));
        if (v === v) this.channel[channel] = v;
        return v === v || !this.badNumber;
      }
      return true;
    }
    if (a === 1 && n === 3 && c === 0 && d === 2 && x === 8) {
      this.version = readDigits(b, gs[0], ge[0]); // -1 if unreadable: then it declares nothing
      return true;
    }
    if (a !== 0) return true;
    if (n === 0) {
      if (c === 1 && d === 0 && x === 0) {
        this.time = parseClock(b, gs[0], ge[0], this.winter, this.summer);
      } else if (c === 96 && d === 14 && x === 0) {
        if (ge[0] === gs[0]) return true; // "()" says nothing
        const v = readDigits(b, gs[0], ge[0]);
        if (v < 0) return false;
        this.channel[Channel.tariff] = v;
      } else if (c === 96 && d === 1 && x === 4) {
        this.belgian = true;
      }
      return true;
    }
    if (n > 9 || c !== 24) return true;
    // M-Bus channel n.
    if (d === 1 && x === 0) {
      if (ge[0] === gs[0]) return true; // "()": no device
      const type = readDigits(b, gs[0], ge[0]);
      if (type < 0) return false;
      this.deviceType[n] = type;
      return true;
    }
    if (d === 2 && (x === 1 || x === 3)) return this.gasValue(b, n, this.lastS, this.lastE, false);
    if (d === 3 && x === 0) {
      // DSMR 2.2/3.0: (time)(status)(period)(count)(obis)(unit), then (value) here or on the next line.
      if (this.groups < 6 || readDigits(b, gs[3], ge[3]) !== 1) return true;
      if (unitExponent(K_GAS, b, gs[5], ge[5]) < 0) return true;
      if (this.groups === 6) {
        this.pendingGas = n;
        return true;
      }
      if (this.groups === 7) return this.gasValue(b, n, gs[6], ge[6], true);
    }
    return true;
  }

  /** A gas reading `value*m3` (or a bare `value` when the unit came in an earlier group). */
  gasValue(b: Uint8Array, n: number, s: number, e: number, unitKnown: boolean): boolean {
    let star = s;
    while (star < e && b[star] !== STAR) star++;
    if (star === e && !unitKnown) return true; // no unit: not known to be m3
    if (star < e && unitExponent(K_GAS, b, star + 1, e) < 0) return true; // GJ, …: not gas
    const v = scaleDecimal(b, s, star, 3);
    if (v !== v) return false;
    this.gas[n] = v;
    return true;
  }

  /**
   * The last group of the line as `number*unit` in the channel's unit; NaN when the unit is not the
   * channel's (badNumber false) or the number is unreadable (badNumber true).
   */
  measure(b: Uint8Array, kind: number): number {
    const s = this.lastS;
    const e = this.lastE;
    let star = s;
    while (star < e && b[star] !== STAR) star++;
    this.badNumber = false;
    if (star === e) return NaN;
    const exp = unitExponent(kind, b, star + 1, e);
    if (exp < 0) return NaN;
    const v = scaleDecimal(b, s, star, exp);
    if (v !== v) this.badNumber = true;
    return v;
  }

  /** 1–3 digits (≤ 255) at b[s…] followed by `sep`; sets `next` past the separator. -1 if not. */
  field(b: Uint8Array, s: number, e: number, sep: number): number {
    let v = 0;
    let i = s;
    while (i < e && i - s < 4) {
      const d = b[i] - 0x30;
      if (d < 0 || d > 9) break;
      v = v * 10 + d;
      i++;
    }
    if (i === s || i - s > 3 || v > 255 || i >= e || b[i] !== sep) return -1;
    this.next = i + 1;
    return v;
  }

  /** Records the bounds of the `(…)` groups that fill b[s, e) exactly; false if they do not. */
  scanGroups(b: Uint8Array, s: number, e: number): boolean {
    let n = 0;
    let i = s;
    while (i < e) {
      if (b[i] !== OPEN) return false;
      const start = ++i;
      while (i < e && b[i] !== CLOSE && b[i] !== OPEN) i++;
      if (i === e || b[i] !== CLOSE) return false;
      if (n < MAX_GROUPS) {
        this.gs[n] = start;
        this.ge[n] = i;
      }
      this.lastS = start;
      this.lastE = i;
      n++;
      i++;
    }
    this.groups = n;
    return n > 0;
  }
}

function total(given: number, tariffs: Float64Array): number {
  if (given === given) return given;
  let sum = NaN;
  for (let t = 1; t < 10; t++) {
    const v = tariffs[t];
    if (v === v) sum = sum === sum ? sum + v : v;
  }
  return Number.isSafeInteger(sum) ? sum : NaN;
}

function malformed(b: Uint8Array, s: number, e: number): TelegramError {
  const line = latin1(b, s, e);
  return new TelegramError('malformed', `malformed line: ${JSON.stringify(line)}`, { line });
}
