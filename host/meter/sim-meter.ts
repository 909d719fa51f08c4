// `--meter sim`: a plausible meter driven by the real household day. Each simulated meter is the
// same house shifted in time and scaled a little (from its seed), with small noise, so a fleet
// does not move in lockstep. Channels: 1 energy imported Wh, 3 power W, 5 voltage L1 mV, 8 current L1 mA.

import type { MeterSource } from '../../firmware/core/ports.js';
import { householdDay } from './household.js';
import { Prng } from '../../firmware/core/prng.js';

export interface SimMeterOptions {
  seed?: number;
  /** Milliseconds between readings (default 10 s). */
  intervalMs?: number;
  /** Source of unix ms (defaults to Date.now), so a simulation can run faster than real time. */
  now?: () => number;
  /** Starting value of the energy register, Wh. */
  energyWh?: number;
}

export class SimMeter implements MeterSource {
  #timer: NodeJS.Timeout | undefined;
  #energyWh: number;
  /** Energy not yet a whole Wh, in W·ms (3,600,000 W·ms = 1 Wh). */
  #energyFrac = 0;
  #lastMs = 0;
  #prng: Prng;
  readonly #shiftMin: number;
  readonly #scale: number;
  readonly #intervalMs: number;
  readonly #now: () => number;

  constructor(o: SimMeterOptions = {}) {
    this.#prng = new Prng(o.seed ?? 1);
    this.#shiftMin = this.#prng.int(90) - 45;
    this.#scale = 0.8 + this.#prng.float() * 0.4;
    this.#intervalMs = o.intervalMs ?? 10_000;
    this.#now = o.now ?? Date.now;
    this.#energyWh = o.energyWh ?? 1_000_000 + this.#prng.int(5_000_000);
  }

  /** The reading at unix ms `t` (advances the energy register from the previous call). */
  sample(t: number): [number, number][] {
    const day = householdDay();
    const local = new Date(t);
    const minuteF = local.getHours() * 60 + local.getMinutes() + local.getSeconds() / 60 + this.#shiftMin;
    const m0 = ((Math.floor(minuteF) % 1440) + 1440) % 1440;
    const m1 = (m0 + 1) % 1440;
    const frac = minuteF - Math.floor(minuteF);
    const a = day[m0], b = day[m1];
    const noise = 1 + (this.#prng.float() - 0.5) * 0.04;
    const power = Math.max(0, Math.round((a.powerW + (b.powerW - a.powerW) * frac) * this.#scale * noise));
    const voltage = Math.round(a.voltageMv + (b.voltageMv - a.voltageMv) * frac + (this.#prng.float() - 0.5) * 400);
    const current = Math.max(0, Math.round((power * 1_000_000) / Math.max(voltage, 1)));
    if (this.#lastMs) {
      // Energy integrates power exactly in W·ms; whole Wh move to the register.
      this.#energyFrac += power * (t - this.#lastMs);
      const wh = Math.floor(this.#energyFrac / 3_600_000);
      this.#energyWh += wh;
      this.#energyFrac -= wh * 3_600_000;
    }
    this.#lastMs = t;
    return [[1, this.#energyWh], [3, power], [5, voltage], [8, current]];
  }

  start(onReading: (t: number, values: ReadonlyArray<readonly [number, number]>) => void): void {
    const tick = () => {
      const t = this.#now();
      onReading(t, this.sample(t));
    };
    tick();
    this.#timer = setInterval(tick, this.#intervalMs);
    this.#timer.unref?.();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
