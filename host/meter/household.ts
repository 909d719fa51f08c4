// One real day of household load (UCI "Individual household electric power consumption",
// 2007-02-01, 1-minute resolution; see data/SOURCES.md and data/LICENSE.md), as integer units.

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export interface HouseholdMinute {
  /** Minute of the day, 0..1439 (local time of the recording). */
  minute: number;
  /** Active power, W. */
  powerW: number;
  /** Voltage, mV. */
  voltageMv: number;
  /** Current, mA. */
  currentMa: number;
}

export const HOUSEHOLD_FILE = fileURLToPath(new URL('./data/uci-household-power_sceaux-fr_2007-02-01_1min.txt', import.meta.url));

let cached: HouseholdMinute[] | undefined;

/** Parses "0.326" style decimals exactly into an integer scaled by 10^digits. */
function scaled(text: string, digits: number): number {
  const m = /^(\d+)(?:\.(\d+))?$/.exec(text.trim());
  if (!m) throw new Error(`household data: not a number: "${text}"`);
  const frac = (m[2] ?? '').padEnd(digits, '0').slice(0, digits);
  return Number(m[1]) * 10 ** digits + Number(frac || '0');
}

export function householdDay(): HouseholdMinute[] {
  if (cached) return cached;
  const lines = readFileSync(HOUSEHOLD_FILE, 'latin1').split('\n').filter((l) => l.trim());
  const out: HouseholdMinute[] = [];
  for (const line of lines.slice(1)) {
    const f = line.split(';');
    const [hh, mm] = f[1].split(':').map(Number);
    out.push({
      minute: hh * 60 + mm,
      powerW: scaled(f[2], 3), // kW with 3 decimals → W
      voltageMv: scaled(f[4], 3), // V with 3 decimals → mV
      currentMa: scaled(f[5], 3), // A → mA
    });
  }
  if (out.length !== 1440) throw new Error(`household data: expected 1440 minutes, found ${out.length}`);
  cached = out;
  return out;
}
