// `gridlet meter parse FILE [--hex] [--key HEX] [--auth-key HEX] [--type TYPE]`: a capture of a meter's
// output — a P1 telegram, HDLC or M-Bus frames, a Smarty envelope, an LLC PDU or a bare DLMS APDU, as
// bytes or (--hex) as hex text — through the firmware core's parser. Prints one JSON object per message
// (`format`, `time`, `channels` in WIRE.md units, every `registers` value the message held, and for DLMS
// its security, system title and frame counter) on stdout; each refusal as `FILE: reason` on stderr,
// naming the layer that refused it (`HDLC FCS mismatch in frame 2`, `GCM tag does not match: wrong
// key?`). Exit 0 when every message parsed, 1 otherwise, 2 for a usage error.

import { readFile } from 'node:fs/promises';
import { parseCapture, isMeterType, METER_TYPES, type MeterType } from '../../firmware/core/meter/meter.js';
import { parseMeterKey } from '../../firmware/core/meter/keys.js';
import type { MeterError } from '../../firmware/core/meter/error.js';
import type { MeterReading } from '../../firmware/core/meter/reading.js';

export interface MeterParseIo {
  out: (line: string) => void;
  err: (line: string) => void;
}

export interface MeterParseOptions {
  hex?: boolean;
  key?: string;
  authKey?: string;
  type?: string;
}

const consoleIo: MeterParseIo = { out: (l) => console.log(l), err: (l) => console.error(l) };

export class MeterParseUsage extends Error {}

export async function meterParse(file: string, io: MeterParseIo = consoleIo, o: MeterParseOptions = {}): Promise<number> {
  const key = o.key === undefined ? undefined : parseMeterKey('--key', o.key);
  const authKey = o.authKey === undefined ? undefined : parseMeterKey('--auth-key', o.authKey);
  if (typeof key === 'string') throw new MeterParseUsage(key);
  if (typeof authKey === 'string') throw new MeterParseUsage(authKey);
  if (o.type !== undefined && !isMeterType(o.type)) throw new MeterParseUsage(`--type is one of ${METER_TYPES.join(', ')}`);
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(await readFile(file));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory' : (e as Error).message;
    io.err(`${file}: cannot read: ${why}`);
    return 1;
  }
  if (o.hex) {
    const decoded = fromHexText(bytes);
    if (typeof decoded === 'string') {
      io.err(`${file}: ${decoded}`);
      return 1;
    }
    bytes = decoded;
  }
  const { readings, errors } = parseCapture(bytes, { type: (o.type as MeterType) ?? 'auto', key, authKey, registers: true });
  for (const r of readings) io.out(JSON.stringify(shown(r)));
  for (const e of errors) io.err(`${file}: ${describe(e, !o.hex && looksLikeHex(bytes))}`);
  return errors.length === 0 && readings.length > 0 ? 0 : 1;
}

function shown(r: MeterReading): object {
  const channels: Record<string, number> = {};
  for (const [c, v] of r.values) channels[String(c)] = v;
  return {
    format: r.format,
    ...(r.header !== undefined ? { header: r.header, crc: r.crc } : {}),
    time: r.time ?? null,
    channels,
    ...(r.security !== undefined ? { security: r.security } : {}),
    ...(r.systemTitle !== undefined ? { systemTitle: r.systemTitle, frameCounter: r.frameCounter } : {}),
    ...(r.invokeId !== undefined ? { invokeId: r.invokeId } : {}),
    ...(r.listId !== undefined ? { listId: r.listId } : {}),
    ...(r.frames !== undefined ? { frames: r.frames } : {}),
    registers: r.registers ?? [],
  };
}

function describe(e: MeterError, hexText: boolean): string {
  if (e.layer === 'detect' && hexText) return `${e.message}; the file looks like hex text: add --hex`;
  if (e.layer !== 'dsmr') return e.message;
  switch (e.reason) {
    case 'malformed':
      return `${e.message} (not a DSMR/P1 data line)`;
    case 'truncated':
      return `${e.message} (is the whole telegram there, from "/" to the "!CRC" line and its line end?)`;
    default:
      return e.message;
  }
}

function looksLikeHex(b: Uint8Array): boolean {
  let digits = 0;
  for (const c of b) {
    if ((c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66)) digits++;
    else if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) return false;
  }
  return digits >= 4;
}

/** Hex text (whitespace anywhere, `#` comments to the end of a line) as bytes, or what is wrong with it. */
export function fromHexText(b: Uint8Array): Uint8Array | string {
  const text = new TextDecoder('latin1').decode(b);
  const out: number[] = [];
  let pending = -1;
  let line = 1;
  let column = 0;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    column++;
    if (ch === '\n') {
      line++;
      column = 0;
      continue;
    }
    if (ch === '#') {
      while (i + 1 < text.length && text[i + 1] !== '\n') i++;
      continue;
    }
    if (ch === ' ' || ch === '\t' || ch === '\r') continue;
    const v = parseInt(ch, 16);
    if (Number.isNaN(v)) return `not hex: ${JSON.stringify(ch)} at line ${line}, column ${column}`;
    if (pending < 0) pending = v;
    else {
      out.push(pending * 16 + v);
      pending = -1;
    }
  }
  if (pending >= 0) return 'not hex: an odd number of hex digits';
  return Uint8Array.from(out);
}
