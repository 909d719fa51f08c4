// GRIDLET_ALLOC_PROF=FILE: `gridlet gateway` samples where it allocates (V8's sampling heap profiler,
// garbage included, one sample per 4 KiB) from when it is ready until it is told to stop, and writes
// the profile to FILE (a .heapprofile that Chrome's DevTools open). What allocates per frame is what
// the garbage collector then costs; docs/benchmarks.md "Reproducing".

import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';

/** Starts sampling when GRIDLET_ALLOC_PROF is set; the function returned stops it and writes the file. */
export async function startAllocationProfile(): Promise<() => Promise<void>> {
  const file = process.env.GRIDLET_ALLOC_PROF;
  if (!file) return async () => {};
  const session = new Session();
  session.connect();
  const post = (method: string, params?: object) =>
    new Promise<unknown>((resolve, reject) => session.post(method, params, (err, res) => (err ? reject(err) : resolve(res))));
  await post('HeapProfiler.startSampling', { samplingInterval: 4096, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
  return async () => {
    const res = (await post('HeapProfiler.stopSampling')) as { profile: unknown };
    writeFileSync(file, JSON.stringify(res.profile));
    session.disconnect();
  };
}
