/** One charge a decision asks for: bucket `name` keyed by `key`, refilling at `rps` up to `burst`. */
export interface RateLimitCharge {
  name: string;
  key: string;
  rps: number;
  burst: number;
}

interface Bucket {
  tokens: number;
  updated: number;
}

/**
 * Token buckets for the rate limits policies declare (the policy names them; the host
 * keeps the counters, DESIGN.md §7). A request is admitted only if every bucket it charges
 * has a token, and then all are charged together, so a refused request costs nothing.
 * The table is bounded: the least recently used buckets go first (a full bucket is the
 * state a forgotten one would refill to anyway).
 */
export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private readonly maxBuckets: number;
  private readonly now: () => number;

  constructor(options: { maxBuckets?: number; now?: () => number } = {}) {
    this.maxBuckets = options.maxBuckets ?? 100_000;
    this.now = options.now ?? (() => performance.now());
  }

  /** Undefined when admitted (and charged); otherwise the limit that refused and seconds to wait. */
  take(scope: string, charges: readonly RateLimitCharge[]): { limit: string; retryAfter: number } | undefined {
    if (charges.length === 0) return undefined;
    const t = this.now();
    const touched: Bucket[] = [];
    for (const c of charges) {
      const id = `${scope}\u0000${c.name}\u0000${c.key}`;
      let b = this.buckets.get(id);
      if (b) {
        this.buckets.delete(id);
        b.tokens = Math.min(c.burst, b.tokens + ((t - b.updated) / 1000) * c.rps);
        b.updated = t;
      } else {
        b = { tokens: c.burst, updated: t };
      }
      this.buckets.set(id, b);
      if (b.tokens < 1) return { limit: c.name, retryAfter: Math.max(1, Math.ceil((1 - b.tokens) / Math.max(c.rps, 1e-9))) };
      touched.push(b);
    }
    for (const b of touched) b.tokens -= 1;
    while (this.buckets.size > this.maxBuckets) this.buckets.delete(this.buckets.keys().next().value as string);
    return undefined;
  }
}
