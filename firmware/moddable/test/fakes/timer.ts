// Fake `timer` for the adapters' tests on XS: a manual clock the test advances.

type Callback = (t: FakeTimer) => void;
interface FakeTimer { id: number; due: number; every: number; fn: Callback }

let now = 0;
let seq = 0;
const live: FakeTimer[] = [];

const Timer = {
  set(fn: Callback, ms = 0, repeat = 0): FakeTimer {
    const t = { id: ++seq, due: now + ms, every: repeat, fn };
    live.push(t);
    return t;
  },
  repeat(fn: Callback, ms: number): FakeTimer {
    return Timer.set(fn, ms, ms);
  },
  clear(t: FakeTimer | undefined | null): void {
    const i = t ? live.indexOf(t) : -1;
    if (i >= 0) live.splice(i, 1);
  },
  schedule(): void {
    throw new Error('not faked');
  },
  delay(): void {
    throw new Error('not faked');
  },
};

export default Timer;

/** Runs every timer due within `ms`, in due order. */
export function advance(ms: number): void {
  const until = now + ms;
  for (;;) {
    let next: FakeTimer | undefined;
    for (const t of live) if (t.due <= until && (!next || t.due < next.due)) next = t;
    if (!next) break;
    now = next.due;
    if (next.every) next.due += next.every;
    else live.splice(live.indexOf(next), 1);
    next.fn(next);
  }
  now = until;
}

export function pending(): number {
  return live.length;
}

export function fakeNow(): number {
  return now;
}
