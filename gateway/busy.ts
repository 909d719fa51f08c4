// Where the gateway's main thread spends its time, by part of the frame pipeline: each part adds the
// wall time of its synchronous work (on the event loop that is CPU time). Process-wide, because the
// store and the mesh do not know which gateway they serve; exported as gridlet_busy_seconds_total
// (metrics.ts) and read by `npm run bench -- gateway-throughput` as a per-frame breakdown.

/** Frame acceptance (parse, replay check, box open, body decode); the group commit; ack seal and
 * publish; signing mesh messages; keeping them (chain appends). */
export type BusyPart = 'frame' | 'commit' | 'ack' | 'sign' | 'mesh-store';

export const BUSY_PARTS: readonly BusyPart[] = ['frame', 'commit', 'ack', 'sign', 'mesh-store'];

const spent: { [part in BusyPart]: number } = { frame: 0, commit: 0, ack: 0, sign: 0, 'mesh-store': 0 };

/** Adds the time since `since` (a performance.now()) to `part`. */
export function busy(part: BusyPart, since: number): void {
  spent[part] += performance.now() - since;
}

/** Adds the time since `since` to `part`, and takes it off `outer` (which holds it: a part's work inside another's). */
export function busyWithin(part: BusyPart, outer: BusyPart, since: number): void {
  const ms = performance.now() - since;
  spent[part] += ms;
  spent[outer] -= ms;
}

/** Milliseconds spent in each part since the process started. */
export function busyMs(): { readonly [part in BusyPart]: number } {
  return spent;
}
