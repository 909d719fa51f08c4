// Pairing many meters from a CSV file: the rules `gridlet pair --csv` and the dashboard's pair page
// share (the page gets them in /shared.js).

import { isDeviceId, normalizePairCode } from '../../firmware/core/wire/ids.js';

export interface CsvRow { line: number; deviceId: string; code: string }

/**
 * Reads "deviceId,code" lines: an optional header, blank lines and # comments are skipped; fields may
 * be quoted. Each malformed line is returned with its number and what is wrong with it.
 */
export function parsePairCsv(text: string): { rows: CsvRow[]; bad: { line: number; why: string }[] } {
  const rows: CsvRow[] = [];
  const bad: { line: number; why: string }[] = [];
  const lineOf = new Map<string, number>();
  let first = true;
  text.replace(/^\uFEFF/, '').split(/\r?\n/).forEach((raw, i) => {
    const line = i + 1;
    const l = raw.trim();
    if (!l || l.startsWith('#')) return;
    const fields = l.split(/[,;\t]/).map((x) => x.trim().replace(/^"(.*)"$/, '$1').trim());
    while (fields.length > 2 && fields[fields.length - 1] === '') fields.pop();
    const wasFirst = first;
    first = false;
    if (wasFirst && /^(device[ _-]?id|id|device)$/i.test(fields[0]) && /^(pair[ _-]?)?code$/i.test(fields[1] ?? '')) return;
    if (fields.length !== 2 || !fields[0] || !fields[1]) {
      bad.push({ line, why: `expected "deviceId,code", found ${fields.length} field(s)` });
      return;
    }
    const [deviceId, code] = fields;
    if (!isDeviceId(deviceId)) bad.push({ line, why: `"${deviceId.slice(0, 40)}" is not a device id (16 characters a-z and 2-7)` });
    else if (!normalizePairCode(code)) bad.push({ line, why: `"${code.slice(0, 40)}" is not a pair code (XXXXX-XXXXX: A-Z and 2-7)` });
    else if (lineOf.has(deviceId)) bad.push({ line, why: `device ${deviceId} is already on line ${lineOf.get(deviceId)}` });
    else {
      lineOf.set(deviceId, line);
      rows.push({ line, deviceId, code });
    }
  });
  return { rows, bad };
}

