import type { PolicyDecision } from './decision.js';

/** Most decisions kept (a policy has far fewer static outcomes than this in practice). */
export const DECISION_CACHE_MAX = 1024;
/** Slot spaces up to this size are served from an array indexed by slot (no hashing). */
const ARRAY_SLOTS = 4096;

/**
 * Cache: the decisions whose every part comes from the policy's tables and the caller's
 * identity — outcomes on routes without address-keyed rate limits, for API-key and anonymous
 * callers (one cache) or for the last JWT caller (another, emptied when the caller changes:
 * DecisionReader) — by their outcome slot (route, rule, API key, reason). One frozen object
 * per slot is handed to every request with that outcome, so an allow costs no allocation.
 * Bound: DECISION_CACHE_MAX entries; when full it is emptied (outcome slots are few, so this
 * happens only for policies with thousands of keys). Why it is safe in the trusted core: the
 * decisions are frozen, and a cached one is returned only while the module's record still
 * says the same effect, status and reason (checked by the caller), so the cache can save work
 * but never change an answer.
 */
export class DecisionCache {
  /** By slot, when the slot space is small; else the map. */
  private readonly array: (PolicyDecision | undefined)[] | undefined;
  private readonly map: Map<number, PolicyDecision> | undefined;
  /** The slots in use, so that emptying costs what was stored, not the slot space. */
  private readonly used: number[] = [];

  constructor(slotCount: number) {
    if (slotCount <= ARRAY_SLOTS) this.array = new Array(slotCount).fill(undefined);
    else this.map = new Map();
  }

  clear(): void {
    const array = this.array;
    if (array !== undefined) for (const slot of this.used) array[slot] = undefined;
    else this.map?.clear();
    this.used.length = 0;
  }

  get(slot: number): PolicyDecision | undefined {
    return this.array !== undefined ? this.array[slot] : this.map?.get(slot);
  }

  /** Freezes `d` (and its charges) and keeps it for `slot`. */
  set(slot: number, d: PolicyDecision): PolicyDecision {
    if (!Object.isFrozen(d.rateLimits)) {
      for (const c of d.rateLimits) Object.freeze(c);
      Object.freeze(d.rateLimits);
    }
    Object.freeze(d);
    if (this.used.length >= DECISION_CACHE_MAX) this.clear();
    if (this.array !== undefined) {
      if (this.array[slot] === undefined) this.used.push(slot);
      this.array[slot] = d;
    } else {
      this.map?.set(slot, d);
      this.used.push(slot);
    }
    return d;
  }
}
