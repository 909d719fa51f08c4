// How far V8 lets the gateway's JavaScript heap grow past what was live at its last full collection
// before it collects again (`gridlet gateway --heap-headroom`). V8's own heuristic lets it grow up to 4×;
// the gateway's default is 30 % while the heap is small and 20 % once more than 64 MiB is live (thousands
// of meters connected). At 10,000 meters on the embedded broker 20 % kept ~13 MiB less resident over
// 300 s at the same CPU; in the throughput bench (200 devices, a live heap under 40 MiB) it cost ~12 %
// more CPU per frame than 30 %, so small heaps keep 30 % (docs/benchmarks.md).

import { constants, PerformanceObserver } from 'node:perf_hooks';
import { getHeapStatistics, setFlagsFromString } from 'node:v8';

export interface HeadroomSettings {
  /** Percent while the live heap is at most `largeBytes`. */
  small: number;
  /** Percent once more than `largeBytes` is live. */
  large: number;
  largeBytes: number;
}

export const DEFAULT_HEADROOM: HeadroomSettings = { small: 30, large: 20, largeBytes: 64 * 2 ** 20 };

/** The headroom for what a full collection left live; back to `small` only below ¾ of `largeBytes`. */
export class HeapHeadroom {
  #percent = 0;

  constructor(readonly settings: HeadroomSettings, readonly set: (percent: number) => void) {
    this.#apply(settings.small);
  }

  get percent(): number {
    return this.#percent;
  }

  /** After a full collection: `liveBytes` still in use. */
  collected(liveBytes: number): void {
    const s = this.settings;
    if (liveBytes > s.largeBytes) this.#apply(s.large);
    else if (liveBytes < s.largeBytes * 0.75) this.#apply(s.small);
  }

  #apply(percent: number): void {
    if (percent === this.#percent) return;
    this.#percent = percent;
    this.set(percent);
  }
}

/** V8's setting (read whenever V8 sets its next limit, so it holds from the next collection on). */
export function setHeapGrowingPercent(percent: number): void {
  setFlagsFromString(`--heap-growing-percent=${percent}`);
}

/**
 * Follows full collections (a `gc` performance observer) and sets the headroom for the heap each one
 * leaves. Returns the function that stops it.
 */
export function watchHeapHeadroom(h: HeapHeadroom): () => void {
  const obs = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      if ((e as unknown as { detail?: { kind?: number } }).detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR) {
        h.collected(getHeapStatistics().used_heap_size);
        return;
      }
    }
  });
  obs.observe({ entryTypes: ['gc'] });
  return () => obs.disconnect();
}
