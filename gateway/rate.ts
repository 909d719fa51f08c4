// Token buckets per key (Hello rate limiting): `burst` tokens, refilled one per `intervalMs`.

export class TokenBuckets {
  readonly #buckets = new Map<string, { tokens: number; at: number }>();
  #sweep: NodeJS.Timeout | undefined;

  constructor(readonly burst: number, readonly intervalMs: number, readonly now: () => number, readonly maxKeys = 100_000) {}

  take(key: string): boolean {
    const now = this.now();
    if (this.#buckets.size > this.maxKeys) this.#dropFull(now);
    const b = this.#buckets.get(key) ?? { tokens: this.burst, at: now };
    b.tokens = Math.min(this.burst, b.tokens + (now - b.at) / this.intervalMs);
    b.at = now;
    this.#buckets.set(key, b);
    // A fleet that Hellos once and pairs keeps no bucket per meter: full ones go a refill time later.
    this.#schedule();
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  /** Keys holding a bucket (a full one is dropped by the next sweep). */
  get size(): number {
    return this.#buckets.size;
  }

  #schedule(): void {
    this.#sweep ??= setTimeout(() => {
      this.#sweep = undefined;
      this.#dropFull(this.now());
      if (this.#buckets.size) this.#schedule();
    }, this.burst * this.intervalMs).unref();
  }

  /** A bucket idle long enough to be full again is the same as no bucket. */
  #dropFull(now: number): void {
    const full = this.burst * this.intervalMs;
    for (const [k, b] of this.#buckets) if (now - b.at >= full) this.#buckets.delete(k);
  }
}
