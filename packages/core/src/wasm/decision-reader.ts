import { DECIDE_OK, DECISION, IdentityKind, type PolicyTables, type RateLimitDescriptor } from './abi.js';
import { ANONYMOUS, type DecisionIdentity, NO_HEADER_MUTATIONS, type PolicyDecision, type RateLimitCharge } from './decision.js';
import { DecisionCache } from './decision-cache.js';
import type { PolicyRequest } from './request.js';

const NO_CHARGES: readonly RateLimitCharge[] = Object.freeze([]);

/**
 * Reads the module's decision record (docs/abi.md) into a PolicyDecision. The record is
 * checked first: indexes out of the tables, a status outside 100..599, an allow without a
 * route or a JWT identity without a verified token make it malformed (undefined: the host
 * denies with 500). Static outcomes come from a DecisionCache; the rest are built per request.
 */
export class DecisionReader {
  /** Precomputed at load so that a decision allocates as little as possible. */
  private readonly keyIdentities: readonly DecisionIdentity[];
  private readonly routeLimits: readonly (readonly RateLimitDescriptor[])[];
  /** Per route: does one of its limits charge the client address (so an allow varies per request)? */
  private readonly routeIpKeyed: readonly boolean[];
  private readonly statics: DecisionCache;
  /** The same for the JWT caller `jwtOwner` (the last one seen). */
  private readonly jwtStatics: DecisionCache;
  private jwtOwner: DecisionIdentity | undefined;
  /** The identity of the last JWT caller: consecutive requests of one caller share it (compared by value). */
  private lastJwtIdentity: DecisionIdentity | undefined;

  constructor(
    private readonly i32: Int32Array,
    private readonly tables: PolicyTables,
  ) {
    this.keyIdentities = tables.apiKeys.map((k) =>
      Object.freeze({ kind: 'apiKey' as const, id: k.id, tenant: k.tenant, plan: k.plan }),
    );
    this.routeLimits = tables.routes.map((_, i) =>
      tables.rateLimits.filter((l) => l.routes.length === 0 || l.routes.includes(i)),
    );
    this.routeIpKeyed = this.routeLimits.map((ls) => ls.some((l) => l.key === 'request.ip'));
    const slots = (tables.routes.length + 1) * (tables.rules.length + 1) * (tables.apiKeys.length + 1) * tables.reasons.length;
    this.statics = new DecisionCache(slots);
    this.jwtStatics = new DecisionCache(slots);
  }

  /** The API-key table index the record names, or -1 (read after a well-formed `read`). */
  get apiKey(): number {
    return this.i32[DECISION.identityKind >> 2] === IdentityKind.API_KEY ? (this.i32[DECISION.apiKey >> 2] as number) : -1;
  }

  /** The record's numbers, for the fault report of a malformed one. */
  describe(rc: number): string {
    const i32 = this.i32;
    return `rc=${rc} effect=${i32[DECISION.effect >> 2]} status=${i32[DECISION.status >> 2]} reason=${i32[DECISION.reason >> 2]}`;
  }

  /** The decision `decide` (which returned `rc`) wrote for `req`, or undefined when malformed. */
  read(rc: number, req: PolicyRequest): PolicyDecision | undefined {
    const i32 = this.i32;
    const t = this.tables;
    const effect = i32[DECISION.effect >> 2] as number;
    const status = i32[DECISION.status >> 2] as number;
    const reason = i32[DECISION.reason >> 2] as number;
    const route = i32[DECISION.route >> 2] as number;
    const rule = i32[DECISION.rule >> 2] as number;
    const kind = i32[DECISION.identityKind >> 2] as number;
    const key = i32[DECISION.apiKey >> 2] as number;
    const jwt = t.jwt !== null ? req.jwt : undefined;
    const wellFormed =
      rc === DECIDE_OK &&
      (effect === 0 || effect === 1) &&
      status >= 100 &&
      status <= 599 &&
      reason >= 0 &&
      reason < t.reasons.length &&
      // Only a request that matched a route can be allowed (docs/policy-language.md, order).
      route >= (effect === 1 ? 0 : -1) &&
      route < t.routes.length &&
      rule >= -1 &&
      rule < t.rules.length &&
      (kind === IdentityKind.API_KEY
        ? key >= 0 && key < t.apiKeys.length
        : key === -1 && (kind === IdentityKind.NONE || (kind === IdentityKind.JWT && jwt?.verified === true)));
    if (!wellFormed) return undefined;
    const allow = effect === 1;
    // Static outcomes (everything from the tables and the identity: routes whose limits do
    // not charge the address) are built once per (route, rule, key, reason) and reused while
    // the record's effect, status and reason still match: API-key and anonymous callers in
    // one cache, the current JWT caller in another, emptied when a token of another identity
    // arrives. A JWT caller's first decision is not kept: most token callers are seen once in
    // a row, and freezing and storing their decisions would cost more than building them.
    if (allow && this.routeIpKeyed[route])
      return this.build(allow, status, reason, route, rule, this.identity(kind, key, req), req);
    let cache = this.statics;
    let identity: DecisionIdentity | undefined;
    if (kind === IdentityKind.JWT) {
      identity = this.identity(kind, key, req);
      if (identity !== this.jwtOwner) {
        this.jwtStatics.clear();
        this.jwtOwner = identity;
        return this.build(allow, status, reason, route, rule, identity, req);
      }
      cache = this.jwtStatics;
    }
    // (The reason is part of the slot: the early denials share route -1, rule -1, key -1.)
    const slot = (((route + 1) * (t.rules.length + 1) + rule + 1) * (t.apiKeys.length + 1) + key + 1) * t.reasons.length + reason;
    const cached = cache.get(slot);
    if (
      cached !== undefined &&
      cached.status === status &&
      cached.reason === t.reasons[reason] &&
      (cached.effect === 'allow') === allow
    ) {
      return cached;
    }
    identity ??= this.identity(kind, key, req);
    return cache.set(slot, this.build(allow, status, reason, route, rule, identity, req));
  }

  private build(
    allow: boolean,
    status: number,
    reason: number,
    route: number,
    rule: number,
    identity: DecisionIdentity,
    req: PolicyRequest,
  ): PolicyDecision {
    const t = this.tables;
    return {
      effect: allow ? 'allow' : 'deny',
      status,
      reason: t.reasons[reason] as string,
      route: route < 0 ? null : (t.routes[route]?.name ?? null),
      rule: rule < 0 ? null : (t.rules[rule]?.name ?? null),
      identity,
      headers: allow ? t.headers : NO_HEADER_MUTATIONS,
      rateLimits: allow ? this.charges(route, identity, req) : NO_CHARGES,
    };
  }

  private identity(kind: number, key: number, req: PolicyRequest): DecisionIdentity {
    if (kind === IdentityKind.API_KEY) return this.keyIdentities[key] as DecisionIdentity;
    if (kind !== IdentityKind.JWT || req.jwt?.verified !== true) return ANONYMOUS;
    const c = req.jwt.claims;
    const id = c.sub ?? '';
    const tenant = c.tenant ?? '';
    const plan = c.plan ?? '';
    let identity = this.lastJwtIdentity;
    if (identity === undefined || identity.id !== id || identity.tenant !== tenant || identity.plan !== plan) {
      identity = Object.freeze<DecisionIdentity>({ kind: 'jwt', id, tenant, plan });
      this.lastJwtIdentity = identity;
    }
    return identity;
  }

  private charges(route: number, identity: DecisionIdentity, req: PolicyRequest): readonly RateLimitCharge[] {
    const limits = this.routeLimits[route];
    if (limits === undefined || limits.length === 0) return NO_CHARGES;
    let out: RateLimitCharge[] | undefined;
    for (const l of limits) {
      const value = l.key === 'identity.tenant' ? identity.tenant : l.key === 'identity.id' ? identity.id : (req.ip ?? '');
      // A bucket without a key value (anonymous caller, no address) cannot be charged.
      if (value === '') continue;
      out ??= [];
      out.push({ name: l.name, key: l.key, value, limit: l.limit, windowSeconds: l.windowSeconds, burst: l.burst });
    }
    return out ?? NO_CHARGES;
  }
}
