// Reading the image's settings (the manifest's `config`, overridden by `key=value` on the mcconfig
// command line; on the simulator also by gridlet-sim.json): values arrive as strings from the command
// line (`p1Rx=16`), so each is read with a fallback.

/** A number, or `fallback` when the value is absent or not a number. */
export function num(v: unknown, fallback: number): number {
  const n = typeof v === 'number' ? v : typeof v === 'string' && v !== '' ? Number(v) : NaN;
  return Number.isFinite(n) ? n : fallback;
}

export function str(v: unknown, fallback: string): string {
  return typeof v === 'string' && v !== '' ? v : fallback;
}

export function flag(v: unknown): boolean {
  return v === true || v === 1 || v === 'true' || v === '1';
}

/** `broker`: brokers in order of preference, `host[:port],host[:port]`. */
export function brokerList(list: string): { host: string; port: number }[] {
  return list
    .split(',')
    .map((s) => s.trim().replace(/^mqtts?:\/\//, ''))
    .filter((s) => s !== '')
    .map((s) => {
      const i = s.lastIndexOf(':');
      return i > 0 ? { host: s.slice(0, i), port: num(s.slice(i + 1), 1883) } : { host: s, port: 1883 };
    });
}

/** `relays`: `id:pin` pairs, `1:23,2:22` — relay 1 on GPIO23, relay 2 on GPIO22. */
export function relayPins(list: string): { id: number; pin: number }[] {
  const out: { id: number; pin: number }[] = [];
  for (const part of list.split(',')) {
    const s = part.trim();
    if (!s) continue;
    const m = /^(\d+):(\d+)$/.exec(s);
    if (!m) throw new RangeError(`relays: "${s}" is not id:pin (e.g. relays=1:23,2:22)`);
    const id = Number(m[1]);
    if (id < 1 || id > 8 || out.some((r) => r.id === id)) throw new RangeError(`relays: relay id ${id} is not 1–8 or given twice`);
    out.push({ id, pin: Number(m[2]) });
  }
  return out;
}
