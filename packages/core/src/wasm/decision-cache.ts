import type { PolicyDecision } from './decision.js';

/** Most decisions kept (a policy has far fewer static outcomes than this in practice). */
export const DECISION_CACHE_MAX = 1024;

/**
 * Cache: the decisions whose every part comes from the policy's tables — outcomes for API-key
 * and anonymous callers on routes without address-keyed rate limits — by their outcome slot
 * (route, rule, API key, reason). One frozen object per slot is handed to every request with that
 * outcome, so an allow costs no allocation. Bound: DECISION_CACHE_MAX entries; when full it is
 * emptied (outcome slots are few, so this happens only for policies with thousands of keys).
 * Why it is safe in the trusted core: the decisions are frozen, and a cached one is returned
 * only while the module's record still says the same effect, status and reason (checked by
 * the caller), so the cache can save work but never change an answer.
 */
export class DecisionCache {
  private readonly bySlot = new Map<number, PolicyDecision>();

  get(slot: number): PolicyDecision | undefined {
    return this.bySlot.get(slot);
  }

  /** Freezes `d` (and its charges) and keeps it for `slot`. */
  set(slot: number, d: PolicyDecision): PolicyDecision {
    if (!Object.isFrozen(d.rateLimits)) {
      for (const c of d.rateLimits) Object.freeze(c);
      Object.freeze(d.rateLimits);
    }
    Object.freeze(d);
    if (this.bySlot.size >= DECISION_CACHE_MAX) this.bySlot.clear();
    this.bySlot.set(slot, d);
    return d;
  }
}
