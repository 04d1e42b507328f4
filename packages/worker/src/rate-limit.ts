/** One charge a decision asks for: bucket `name` keyed by `key`, refilling at `rps` up to `burst`. */
export interface RateLimitCharge {
  name: string;
  key: string;
  rps: number;
  burst: number;
}

/** Why a request was refused: the limit's name and the seconds until it has a token again. */
export interface RateLimitRefusal {
  limit: string;
  retryAfter: number;
}

const NONE = -1;

/**
 * Token buckets for the rate limits policies declare (the policy names them; the host
 * keeps the counters, DESIGN.md §7). A request is admitted only if every bucket it charges
 * has a token, and then all are charged together, so a refused request costs nothing.
 * The table is bounded: the least recently used buckets go first (a full bucket is the
 * state a forgotten one would refill to anyway).
 *
 * It is on every allowed request, so an admission allocates nothing: buckets live in typed
 * arrays indexed by slot (grown by doubling, up to the bound), found through maps nested by
 * scope, limit name and key (no key string is built), and the recency order is a linked list
 * threaded through the slots.
 */
export class RateLimiter {
  private readonly maxBuckets: number;
  private readonly now: () => number;
  /** scope -> limit name -> key -> slot. */
  private readonly index = new Map<string, Map<string, Map<string, number>>>();
  private tokens = new Float64Array(0);
  private updated = new Float64Array(0);
  /** Recency list: `head` is the least recently used slot, `tail` the most recent. */
  private older = new Int32Array(0);
  private newer = new Int32Array(0);
  private head = NONE;
  private tail = NONE;
  /** Where each slot sits in `index`, to forget it when evicted. */
  private keysOf: Array<Map<string, number> | undefined> = [];
  private keyOf: Array<string | undefined> = [];
  /** Slots in use, slots ever handed out, and the ones given back by evictions. */
  private live = 0;
  private used = 0;
  private free = new Int32Array(0);
  private freeCount = 0;
  /** The slots one take() charges (a request declares a handful of limits). */
  private touched = new Int32Array(8);

  constructor(options: { maxBuckets?: number; now?: () => number } = {}) {
    this.maxBuckets = options.maxBuckets ?? 100_000;
    this.now = options.now ?? (() => performance.now());
  }

  /** Buckets held now (at most maxBuckets between calls). */
  get size(): number {
    return this.live;
  }

  /** Undefined when admitted (and charged); otherwise the limit that refused and seconds to wait. */
  take(scope: string, charges: readonly RateLimitCharge[]): RateLimitRefusal | undefined {
    const n = charges.length;
    if (n === 0) return undefined;
    const t = this.now();
    if (this.touched.length < n) this.touched = new Int32Array(n);
    const touched = this.touched;
    for (let i = 0; i < n; i++) {
      const c = charges[i] as RateLimitCharge;
      let slot = this.index.get(scope)?.get(c.name)?.get(c.key) ?? NONE;
      if (slot === NONE) {
        slot = this.create(scope, c.name, c.key);
        this.tokens[slot] = c.burst;
      } else {
        const refilled = (this.tokens[slot] as number) + ((t - (this.updated[slot] as number)) / 1000) * c.rps;
        this.tokens[slot] = Math.min(c.burst, refilled);
        this.unlink(slot);
      }
      this.updated[slot] = t;
      this.append(slot);
      const left = this.tokens[slot] as number;
      if (left < 1) return { limit: c.name, retryAfter: Math.max(1, Math.ceil((1 - left) / Math.max(c.rps, 1e-9))) };
      touched[i] = slot;
    }
    const tokens = this.tokens;
    for (let i = 0; i < n; i++) {
      const slot = touched[i] as number;
      tokens[slot] = (tokens[slot] as number) - 1;
    }
    while (this.live > this.maxBuckets) this.evict(this.head);
    return undefined;
  }

  private create(scope: string, name: string, key: string): number {
    let slot: number;
    if (this.freeCount > 0) slot = this.free[--this.freeCount] as number;
    else {
      if (this.used === this.tokens.length) this.grow();
      slot = this.used++;
    }
    this.live++;
    let byName = this.index.get(scope);
    if (byName === undefined) {
      byName = new Map();
      this.index.set(scope, byName);
    }
    let keys = byName.get(name);
    if (keys === undefined) {
      keys = new Map();
      byName.set(name, keys);
    }
    keys.set(key, slot);
    this.keysOf[slot] = keys;
    this.keyOf[slot] = key;
    return slot;
  }

  /** Forgets the bucket in `slot` (the least recently used) and keeps the slot for reuse. */
  private evict(slot: number): void {
    this.unlink(slot);
    this.keysOf[slot]?.delete(this.keyOf[slot] as string);
    this.keysOf[slot] = undefined;
    this.keyOf[slot] = undefined;
    this.free[this.freeCount++] = slot;
    this.live--;
  }

  private grow(): void {
    const size = Math.max(64, this.tokens.length * 2);
    const widen = <T extends Float64Array | Int32Array>(from: T, to: T): T => {
      to.set(from);
      return to;
    };
    this.tokens = widen(this.tokens, new Float64Array(size));
    this.updated = widen(this.updated, new Float64Array(size));
    this.older = widen(this.older, new Int32Array(size));
    this.newer = widen(this.newer, new Int32Array(size));
    this.free = widen(this.free, new Int32Array(size));
  }

  private unlink(slot: number): void {
    const o = this.older[slot] as number;
    const w = this.newer[slot] as number;
    if (o === NONE) this.head = w;
    else this.newer[o] = w;
    if (w === NONE) this.tail = o;
    else this.older[w] = o;
  }

  private append(slot: number): void {
    this.older[slot] = this.tail;
    this.newer[slot] = NONE;
    if (this.tail === NONE) this.head = slot;
    else this.newer[this.tail] = slot;
    this.tail = slot;
  }
}
