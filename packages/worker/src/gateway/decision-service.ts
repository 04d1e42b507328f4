import { randomBytes } from 'node:crypto';
import type { JwtTable } from '@apx/core';
import { bearerToken, createJwtVerifier, type JwtVerifierOptions, type JwtVerify } from '../jwt.js';
import type { LoadedPolicy } from '../loader.js';
import type { WorkerLogger } from '../observability/logger.js';
import type { DecisionTally, WorkerMetrics } from '../observability/metrics.js';
import type { RateLimiter } from '../rate-limit.js';
import type { PolicyDecision } from '../runtime.js';
import type { ServingPolicies } from '../serving-policies.js';

/** What the decision pipeline needs; the worker's HTTP server and the gateways share one. */
export interface DecisionDeps {
  policies: ServingPolicies;
  metrics: WorkerMetrics;
  limiter: RateLimiter;
  /** Options of the JWKS fetches (tests point fetch at a local server). */
  jwt?: JwtVerifierOptions;
  /** Where dry-run denials and sampled decisions are logged (nothing is logged without it). */
  log?: WorkerLogger;
  /** APX_DEFAULT_POLICY: the policy gateways ask when their request names none. */
  defaultPolicy?: string;
  /** APX_DRY_RUN: every policy (true) or the named policy ids; their denials are allowed, logged and counted. */
  dryRun?: boolean | ReadonlySet<string>;
  /** APX_DECISION_LOG_SAMPLE: the share of decisions logged, 0 (default, off) to 1. */
  decisionLogSample?: number;
}

/**
 * What one run of the pipeline came to, before any protocol shapes it:
 * - `decided`: the policy answered (allow or deny); `dryRun` when a denial was let through;
 * - `rate_limited`: the policy allowed but a rate limit refused (`dryRun`: let through);
 * - `refused`: no decision (bad request 400, unknown policy 404, not loaded 503, token check
 *   or runtime failure 500). `error` is the one-line reason.
 */
export type DecisionOutcome = (
  | { kind: 'decided'; policyId: string; loaded: LoadedPolicy; decision: PolicyDecision; dryRun: boolean }
  | {
      kind: 'rate_limited';
      policyId: string;
      loaded: LoadedPolicy;
      /** The policy's decision (an allow) that the rate limit refused. */
      decision: PolicyDecision;
      limit: string;
      retryAfter: number;
      dryRun: boolean;
    }
  | { kind: 'refused'; status: number; error: string; policyId?: string; loaded?: LoadedPolicy }
) & {
  /** Set when the decision was logged, so that the log line and the gateway's answer agree. */
  decisionId?: string;
};

/**
 * A decision as a gateway enforces it (Envoy ext_authz, forward-auth):
 * - allow: `status` 200; `headers`/`removeHeaders`: the policy's request-header mutations
 *   for the upstream request; `responseHeaders`: the policy's response-header additions;
 * - deny: `status` is the policy's (401, 403, 429...), `body` is JSON
 *   `{"allow":false,"status":N,"reason":"...","rule":...,"policy":"...","digest":"..."}`
 *   and `headers` the denial's response headers (`retry-after` on a rate limit);
 * - error: no decision could be made (unknown or unloaded policy, failure): `status` is 5xx
 *   (503 for a policy not loaded, else 500) and `body` is JSON `{"error":"..."}`. Gateways
 *   must refuse the request: errors fail closed.
 */
export interface GatewayDecision {
  kind: 'allow' | 'deny' | 'error';
  status: number;
  body: string;
  /** Shared between decisions on allow (the policy's tables): read, never modify. */
  headers: Record<string, string>;
  removeHeaders: string[];
  responseHeaders: Record<string, string>;
  policy?: string;
  digest?: string;
  rule?: string | null;
  decisionId: string;
  /** True when a denial was turned into an allow by dry run. */
  dryRun?: boolean;
}

/** A request as the gateways build it: the `request` object of `POST /v1/decide`. */
export interface GatewayRequest {
  method: string;
  host: string;
  path: string;
  ip?: string;
  headers?: Record<string, string>;
  bodySize?: number;
}

export interface DecisionService {
  /**
   * Decides `request` with policy `policyRef` (a policy id; undefined: APX_DEFAULT_POLICY, or
   * the only policy served). `done` is called exactly once, synchronously unless a bearer
   * token has to be verified. It never throws: failures come back as `kind: 'error'`.
   */
  decide(policyRef: string | undefined, request: unknown, done: (d: GatewayDecision) => void): void;
  /** The pipeline under decide() and POST /v1/decide: the outcome, before any protocol shapes it. */
  evaluate(policyRef: unknown, request: unknown, done: (o: DecisionOutcome) => void): void;
}

/** Decision ids: a random per-process prefix and a counter (unique, and cheap on every request). */
const ID_PREFIX = randomBytes(6).toString('hex');
let idCounter = 0;
export function nextDecisionId(): string {
  idCounter += 1;
  return `${ID_PREFIX}-${idCounter.toString(36)}`;
}

const EMPTY: Readonly<Record<string, string>> = Object.freeze({});

/**
 * The decision pipeline: policy lookup (one read of the serving version, so a swap never
 * splits a request), bearer-token verification, the policy, rate limits, the decision
 * counters, dry run and the sampled decision log. Synchronous unless a token is verified.
 */
export function createDecisionService(deps: DecisionDeps): DecisionService {
  const { policies, metrics, limiter, log } = deps;
  const sample = deps.decisionLogSample ?? 0;
  const dryRunAll = deps.dryRun === true;
  const dryRunSet = typeof deps.dryRun === 'object' ? deps.dryRun : undefined;
  const dryRunFor = (policyId: string) => dryRunAll || (dryRunSet?.has(policyId) ?? false);

  /** One JWT verifier per loaded version (its JWKS cache lives as long as the version serves). */
  const verifiers = new WeakMap<LoadedPolicy, Promise<JwtVerify>>();
  function jwtVerifierFor(loaded: LoadedPolicy): Promise<JwtVerify> {
    let v = verifiers.get(loaded);
    if (!v) {
      v = createJwtVerifier(loaded.runtime.jwt as JwtTable, deps.jwt ?? {});
      verifiers.set(loaded, v);
    }
    return v;
  }

  /** The decision counters, resolved once per (policy, outcome): counting allocates nothing. */
  const counters = new Map<string, Record<string, DecisionTally>>();
  function counter(policy: string, outcome: string): DecisionTally {
    let byOutcome = counters.get(policy);
    if (!byOutcome) {
      byOutcome = {};
      counters.set(policy, byOutcome);
    }
    let c = byOutcome[outcome];
    if (!c) {
      c = metrics.decisionTally(policy, outcome);
      byOutcome[outcome] = c;
    }
    return c;
  }

  function evaluate(policyRef: unknown, request: unknown, done: (o: DecisionOutcome) => void): void {
    // The decision log's sample is drawn first, so an unsampled request costs one comparison.
    if (sample > 0 && Math.random() < sample) {
      const started = performance.now();
      run(policyRef, request, (o) => {
        logDecision(o, performance.now() - started);
        done(o);
      });
    } else run(policyRef, request, done);
  }

  function run(policyRef: unknown, request: unknown, done: (o: DecisionOutcome) => void) {
    let policyId = policyRef;
    if (policyId === undefined) {
      const states = policies.list();
      if (states.length !== 1) {
        return done({ kind: 'refused', status: 400, error: 'several policies are served; name one with "policy"' });
      }
      policyId = states[0]?.policyId;
    }
    if (typeof policyId !== 'string') return done({ kind: 'refused', status: 400, error: '"policy" must be a policy id string' });
    const loaded = policies.get(policyId);
    if (!loaded) {
      const known = policies.list().some((s) => s.policyId === policyId);
      return done({
        kind: 'refused',
        status: known ? 503 : 404,
        error: known ? `policy ${policyId} is not loaded yet` : `unknown policy ${policyId}`,
        policyId,
      });
    }
    if (typeof request !== 'object' || request === null) {
      return done({ kind: 'refused', status: 400, error: 'missing "request" object', policyId });
    }
    const req = request as Record<string, unknown>;
    if (req.jwt !== undefined) {
      return done({
        kind: 'refused',
        status: 400,
        error: 'request.jwt is set by the worker; send the token as request.headers.authorization: "Bearer <token>"',
        policyId,
      });
    }
    const token = loaded.runtime.jwt ? bearerToken(req.headers) : undefined;
    if (token === undefined) return decideWith(loaded, policyId, request, done);
    // Only token-bearing requests go asynchronous: the JWKS may need fetching.
    const id = policyId;
    jwtVerifierFor(loaded)
      .then((verify) => verify(token))
      .then(
        (jwt) => decideWith(loaded, id, { ...req, jwt }, done),
        (err: unknown) =>
          done({
            kind: 'refused',
            status: 500,
            error: `token verification failed: ${(err as Error).message}`,
            policyId: id,
            loaded,
          }),
      );
  }

  function decideWith(loaded: LoadedPolicy, policyId: string, request: unknown, done: (o: DecisionOutcome) => void) {
    let decision: PolicyDecision;
    try {
      decision = loaded.runtime.decide(request);
    } catch (err) {
      counter(policyId, 'error').inc();
      return done({ kind: 'refused', status: 400, error: (err as Error).message, policyId, loaded });
    }
    if (decision.allow && decision.rateLimits.length > 0) {
      const refused = limiter.take(loaded.refText, decision.rateLimits);
      if (refused) {
        counter(policyId, 'rate_limited').inc();
        const dryRun = dryRunFor(policyId);
        if (dryRun) wouldDeny(policyId, loaded, 429, `rate limit exceeded: ${refused.limit}`, null);
        return done({
          kind: 'rate_limited',
          policyId,
          loaded,
          decision,
          limit: refused.limit,
          retryAfter: refused.retryAfter,
          dryRun,
        });
      }
    }
    counter(policyId, decision.allow ? 'allow' : 'deny').inc();
    const dryRun = !decision.allow && dryRunFor(policyId);
    if (dryRun) wouldDeny(policyId, loaded, decision.status, decision.reason, decision.rule ?? null);
    done({ kind: 'decided', policyId, loaded, decision, dryRun });
  }

  /** A denial dry run let through: counted, and logged at INFO (no request content). */
  function wouldDeny(policyId: string, loaded: LoadedPolicy, status: number, reason: string, rule: string | null): void {
    counter(policyId, 'dry_run').inc();
    log?.info(
      { event: 'dry_run_denied', policy_ref: loaded.refText, digest: loaded.artifact.digest, status, rule },
      `dry run: ${loaded.refText} would deny ${status}: ${reason}`,
    );
  }

  /**
   * One line per sampled decision: id, policy reference and digest, outcome, rule, latency.
   * Never the request: no headers, no tokens, no keys, no cookies, no addresses.
   */
  function logDecision(o: DecisionOutcome, latencyMs: number): void {
    if (!log) return;
    const decisionId = nextDecisionId();
    o.decisionId = decisionId;
    const latency_ms = Math.round(latencyMs * 1000) / 1000;
    if (o.kind === 'refused') {
      log.info(
        {
          event: 'decision',
          decision_id: decisionId,
          policy: o.policyId ?? null,
          policy_ref: o.loaded?.refText ?? null,
          digest: o.loaded?.artifact.digest ?? null,
          outcome: 'error',
          status: o.status,
          rule: null,
          latency_ms,
        },
        'decision',
      );
      return;
    }
    const outcome = o.kind === 'rate_limited' ? 'rate_limited' : o.decision.allow ? 'allow' : 'deny';
    log.info(
      {
        event: 'decision',
        decision_id: decisionId,
        policy: o.policyId,
        policy_ref: o.loaded.refText,
        digest: o.loaded.artifact.digest,
        outcome,
        status: o.kind === 'rate_limited' ? 429 : o.decision.status,
        rule: o.kind === 'rate_limited' ? null : (o.decision.rule ?? null),
        ...(o.kind === 'rate_limited' ? { rate_limit: o.limit } : {}),
        dry_run: o.dryRun,
        latency_ms,
      },
      'decision',
    );
  }

  function decide(policyRef: string | undefined, request: unknown, done: (d: GatewayDecision) => void): void {
    try {
      evaluate(policyRef ?? deps.defaultPolicy, request, (o) => {
        let d: GatewayDecision;
        try {
          d = toGatewayDecision(o);
        } catch (err) {
          d = errorDecision(500, `decision failed: ${(err as Error).message}`);
        }
        done(d);
      });
    } catch (err) {
      done(errorDecision(500, `decision failed: ${(err as Error).message}`));
    }
  }

  return { decide, evaluate };
}

function errorDecision(status: number, error: string, extra: Partial<GatewayDecision> = {}): GatewayDecision {
  return {
    kind: 'error',
    status,
    body: JSON.stringify({ error }),
    headers: {},
    removeHeaders: [],
    responseHeaders: {},
    decisionId: nextDecisionId(),
    ...extra,
  };
}

/** The outcome as a gateway enforces it (see GatewayDecision). */
export function toGatewayDecision(o: DecisionOutcome): GatewayDecision {
  const decisionId = o.decisionId ?? nextDecisionId();
  if (o.kind === 'refused') {
    // A request the worker cannot decide is never let through; 5xx whatever the cause.
    const ref = o.loaded ? { policy: o.loaded.refText, digest: o.loaded.artifact.digest } : {};
    return errorDecision(o.status === 503 ? 503 : 500, o.error, { ...ref, decisionId });
  }
  const policy = o.loaded.refText;
  const digest = o.loaded.artifact.digest;
  if (o.kind === 'rate_limited') {
    if (o.dryRun)
      return allowWith(o.decision.headers ?? EMPTY_MUTATIONS, policy, digest, o.decision.rule ?? null, decisionId, true);
    return {
      kind: 'deny',
      status: 429,
      body: `{"allow":false,"status":429,"reason":${JSON.stringify(`rate limit exceeded: ${o.limit}`)},"rule":null,"rateLimit":${JSON.stringify(o.limit)},"policy":${JSON.stringify(policy)},"digest":"${digest}"}`,
      headers: { 'retry-after': String(o.retryAfter) },
      removeHeaders: [],
      responseHeaders: {},
      policy,
      digest,
      rule: null,
      decisionId,
    };
  }
  const d = o.decision;
  const rule = d.rule ?? null;
  if (d.allow) return allowWith(d.headers ?? EMPTY_MUTATIONS, policy, digest, rule, decisionId, false);
  if (o.dryRun) return allowWith(EMPTY_MUTATIONS, policy, digest, rule, decisionId, true);
  return {
    kind: 'deny',
    status: d.status,
    body: `{"allow":false,"status":${d.status},"reason":${JSON.stringify(d.reason)},"rule":${rule === null ? 'null' : JSON.stringify(rule)},"policy":${JSON.stringify(policy)},"digest":"${digest}"}`,
    headers: {},
    removeHeaders: [],
    responseHeaders: {},
    policy,
    digest,
    rule,
    decisionId,
  };
}

const EMPTY_MUTATIONS = Object.freeze({
  request: Object.freeze({ set: EMPTY, remove: Object.freeze([]) as readonly string[] }),
  response: Object.freeze({ set: EMPTY, remove: Object.freeze([]) as readonly string[] }),
});

function allowWith(
  mutations: NonNullable<PolicyDecision['headers']>,
  policy: string,
  digest: string,
  rule: string | null,
  decisionId: string,
  dryRun: boolean,
): GatewayDecision {
  const d: GatewayDecision = {
    kind: 'allow',
    status: 200,
    body: '',
    // The policy's shared tables, not copies: on every allowed request (read-only).
    headers: mutations.request.set as Record<string, string>,
    removeHeaders: mutations.request.remove as string[],
    responseHeaders: mutations.response.set as Record<string, string>,
    policy,
    digest,
    rule,
    decisionId,
  };
  // Set only in dry run (no spread of a fresh object on every allowed request).
  if (dryRun) d.dryRun = true;
  return d;
}
