// `gridlet meter parse FILE`: one P1 telegram from a file (a capture, a fixture) → its WIRE.md channels.
// Prints {"header","crc","time","channels":{"1":…}} on stdout and returns 0, or one line naming the
// file and what is wrong with it on stderr and returns 1.

import { readFile } from 'node:fs/promises';
import { parseTelegram, TelegramError } from '../../firmware/core/meter/dsmr.js';

export interface MeterParseIo {
  out: (line: string) => void;
  err: (line: string) => void;
}

const consoleIo: MeterParseIo = { out: (l) => console.log(l), err: (l) => console.error(l) };

export async function meterParse(file: string, io: MeterParseIo = consoleIo): Promise<number> {
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(await readFile(file));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory' : (e as Error).message;
    io.err(`${file}: cannot read: ${why}`);
    return 1;
  }
  try {
    // The device's own limits (2048 bytes), so that what passes here passes on a meter.
    const r = parseTelegram(bytes);
    const channels: Record<string, number> = {};
    for (const [c, v] of r.values) channels[String(c)] = v;
    io.out(JSON.stringify({ header: r.header, crc: r.crc, time: r.time ?? null, channels }));
    return 0;
  } catch (e) {
    if (!(e instanceof TelegramError)) throw e;
    io.err(`${file}: ${describe(e)}`);
    return 1;
  }
}

function describe(e: TelegramError): string {
  switch (e.reason) {
    case 'crc':
    case 'too-long':
      return e.message;
    case 'malformed':
      return `${e.message} (not a DSMR/P1 data line)`;
    case 'truncated':
      return `${e.message} (is the whole telegram there, from "/" to the "!CRC" line and its line end?)`;
  }
}
