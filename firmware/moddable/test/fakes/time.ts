// Fake `time`: ticks follow the fake timer clock; set records the wall clock it was given.
import { fakeNow } from './timer.js';

export let lastSet: number | undefined;
let wrapOffset = 0;

const Time = {
  set(seconds: number): void {
    lastSet = seconds;
  },
  timezone: 0,
  dst: 0,
  get ticks(): number {
    return (fakeNow() + wrapOffset) % 4294967296;
  },
  delta(start: number, end?: number): number {
    return (end ?? fakeNow()) - start;
  },
};

/** Moves the tick counter so the next ticks are near 2^32 (to test the wrap). */
export function nearWrap(msBefore: number): void {
  wrapOffset = 4294967296 - msBefore - fakeNow();
}

export default Time;
