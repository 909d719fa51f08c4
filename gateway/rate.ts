// Token buckets per key (Hello rate limiting): `burst` tokens, refilled one per `intervalMs`.

export class TokenBuckets {
  readonly #buckets = new Map<string, { tokens: number; at: number }>();

  constructor(readonly burst: number, readonly intervalMs: number, readonly now: () => number, readonly maxKeys = 100_000) {}

  take(key: string): boolean {
    const now = this.now();
    if (this.#buckets.size > this.maxKeys) {
      // A bucket idle long enough to be full again is the same as no bucket.
      const full = this.burst * this.intervalMs;
      for (const [k, b] of this.#buckets) if (now - b.at >= full) this.#buckets.delete(k);
    }
    const b = this.#buckets.get(key) ?? { tokens: this.burst, at: now };
    b.tokens = Math.min(this.burst, b.tokens + (now - b.at) / this.intervalMs);
    b.at = now;
    this.#buckets.set(key, b);
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }
}
