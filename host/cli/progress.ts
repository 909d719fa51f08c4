// Progress of a bulk command (pairing a CSV, deploying a guest or sending demand response to many devices)
// on stderr: a redrawn bar with count, rate and ETA on a terminal, a plain line every few seconds
// otherwise (logs, CI), and nothing at all when the command prints JSON.

export interface ProgressSink {
  /** A terminal: the bar is redrawn in place. */
  isTTY?: boolean;
  /** Terminal width (default 80). */
  columns?: number;
  write(text: string): unknown;
}

export interface ProgressOptions {
  /** What is being done, e.g. "pairing". */
  label: string;
  total: number;
  /** Where to draw; undefined (or `quiet`) draws nothing. */
  sink?: ProgressSink;
  quiet?: boolean;
  /** Non-TTY: a line at most this often (default 5000 ms). */
  lineIntervalMs?: number;
  /** TTY: a redraw at most this often (default 100 ms). */
  redrawMs?: number;
  /** Unix ms; tests move it. */
  now?: () => number;
}

export function formatDuration(s: number): string {
  if (!Number.isFinite(s) || s < 0) return '?';
  s = Math.round(s);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

export class Progress {
  readonly #o: Required<Omit<ProgressOptions, 'sink'>> & { sink?: ProgressSink };
  readonly #started: number;
  #done = 0;
  #failed = 0;
  #lastDraw = -Infinity;
  #drawn = false;
  #finished = false;

  constructor(o: ProgressOptions) {
    this.#o = { lineIntervalMs: 5000, redrawMs: 100, quiet: false, now: Date.now, ...o };
    this.#started = this.#o.now();
    if (this.#active && this.#o.sink!.isTTY) this.#draw();
  }

  get #active(): boolean {
    return !this.#o.quiet && this.#o.sink !== undefined && this.#o.total > 0;
  }

  get done(): number {
    return this.#done;
  }

  /** One more item finished (`ok` false counts it as failed too). */
  tick(ok = true): void {
    this.#done++;
    if (!ok) this.#failed++;
    if (!this.#active) return;
    const t = this.#o.now();
    if (this.#o.sink!.isTTY) {
      if (t - this.#lastDraw >= this.#o.redrawMs || this.#done === this.#o.total) this.#draw();
      // Not a terminal: the first line after one interval (a run over within seconds prints none), then one per interval.
    } else if (t - this.#started >= this.#o.lineIntervalMs && t - this.#lastDraw >= this.#o.lineIntervalMs) this.#draw();
  }

  /**
   * Writes a line above the bar (a TTY) or plainly: a failure worth seeing as it happens. A `routine`
   * line (a success) is left out on a TTY, where the bar stands for it. Returns false when there is no
   * sink (the caller prints the line some other way).
   */
  note(line: string, routine = false): boolean {
    if (!this.#active) return false;
    if (routine && this.#o.sink!.isTTY) return true;
    if (this.#o.sink!.isTTY && this.#drawn) this.#o.sink!.write(`\r\x1b[K${line}\n`);
    else this.#o.sink!.write(`${line}\n`);
    if (this.#o.sink!.isTTY) this.#draw();
    return true;
  }

  /** Clears the bar (a TTY) or writes a last line when some progress was already reported. */
  finish(): void {
    if (this.#finished) return;
    this.#finished = true;
    if (!this.#active) return;
    if (this.#o.sink!.isTTY) {
      if (this.#drawn) this.#o.sink!.write('\r\x1b[K');
    } else if (this.#drawn) this.#o.sink!.write(`${this.text()}\n`);
  }

  /** "pairing 45/100 (2 failed) 12.5/s ETA 4s" */
  text(): string {
    const elapsed = (this.#o.now() - this.#started) / 1000;
    const rate = elapsed > 0 ? this.#done / elapsed : 0;
    const left = this.#o.total - this.#done;
    const eta = left === 0 ? `in ${formatDuration(elapsed)}` : rate > 0 ? `ETA ${formatDuration(left / rate)}` : 'ETA ?';
    const failed = this.#failed ? ` (${this.#failed} failed)` : '';
    return `${this.#o.label} ${this.#done}/${this.#o.total}${failed} ${rate.toFixed(rate < 10 ? 1 : 0)}/s ${eta}`;
  }

  #draw(): void {
    const sink = this.#o.sink!;
    this.#lastDraw = this.#o.now();
    if (!sink.isTTY) {
      sink.write(`${this.text()}\n`);
      this.#drawn = true;
      return;
    }
    const text = this.text();
    const width = Math.max(10, Math.min(40, (sink.columns ?? 80) - text.length - 4));
    const filled = Math.round((width * this.#done) / Math.max(1, this.#o.total));
    sink.write(`\r\x1b[K[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${text}`);
    this.#drawn = true;
  }
}

/** Runs `work` over `items` with at most `concurrency` at once; results keep the items' order. */
export async function pool<T, R>(items: readonly T[], concurrency: number, work: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await work(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, items.length)) }, worker));
  return out;
}
