import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { JwtTable } from '@apx/core';
import { bearerToken, createJwtVerifier, type JwtVerifierOptions, type JwtVerify } from './jwt.js';
import type { LoadedPolicy } from './loader.js';
import type { WorkerMetrics } from './observability/metrics.js';
import type { PolicySet } from './policy-set.js';
import type { RateLimiter } from './rate-limit.js';

const MAX_DECIDE_BODY = 1024 * 1024;

export interface ServerDeps {
  policies: PolicySet;
  metrics: WorkerMetrics;
  limiter: RateLimiter;
  /** Options of the JWKS fetches (tests point fetch at a local server). */
  jwt?: JwtVerifierOptions;
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const json = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(json), ...headers });
  res.end(json);
}

/**
 * Collects a request body up to the cap and hands it to `done` (undefined: over the cap),
 * with plain callbacks: this is on every decision, and a promise per request costs.
 */
function readBody(req: IncomingMessage, done: (body: Buffer | undefined) => void): void {
  if (Number(req.headers['content-length'] ?? 0) > MAX_DECIDE_BODY) {
    req.resume();
    done(undefined);
    return;
  }
  let first: Buffer | undefined;
  let more: Buffer[] | undefined;
  let size = 0;
  req.on('data', (c: Buffer) => {
    size += c.length;
    if (size > MAX_DECIDE_BODY) {
      req.destroy();
      done(undefined);
      return;
    }
    if (first === undefined) first = c;
    else {
      more ??= [first];
      more.push(c);
    }
  });
  req.on('end', () => {
    if (size <= MAX_DECIDE_BODY) done(more ? Buffer.concat(more) : (first ?? Buffer.alloc(0)));
  });
}

/**
 * The worker's HTTP API. `POST /v1/decide` is the hot path: parse, pick the serving
 * version (one read of the current reference, so a swap never splits a request), decide,
 * charge rate limits, answer; nothing is logged per request.
 */
export function createWorkerServer(deps: ServerDeps): Server {
  const { policies, metrics, limiter } = deps;

  function decide(res: ServerResponse, body: Buffer | undefined) {
    if (!body) return send(res, 413, { error: `request body over ${MAX_DECIDE_BODY} bytes` });
    let input: { policy?: unknown; request?: unknown };
    try {
      input = JSON.parse(body.toString('utf8')) as typeof input;
    } catch {
      return send(res, 400, { error: 'body is not JSON; send {"policy": "<policy-id>", "request": {...}}' });
    }
    if (typeof input !== 'object' || input === null || typeof input.request !== 'object' || input.request === null) {
      return send(res, 400, { error: 'missing "request" object; send {"policy": "<policy-id>", "request": {...}}' });
    }
    let policyId = input.policy;
    if (policyId === undefined) {
      const states = policies.list();
      if (states.length !== 1) return send(res, 400, { error: 'several policies are served; name one with "policy"' });
      policyId = states[0]?.policyId;
    }
    if (typeof policyId !== 'string') return send(res, 400, { error: '"policy" must be a policy id string' });
    const loaded = policies.get(policyId);
    if (!loaded) {
      const known = policies.list().some((s) => s.policyId === policyId);
      return send(res, known ? 503 : 404, {
        error: known ? `policy ${policyId} is not loaded yet` : `unknown policy ${policyId}`,
      });
    }
    const request = input.request as Record<string, unknown>;
    if (request.jwt !== undefined) {
      return send(res, 400, {
        error: 'request.jwt is set by the worker; send the token as request.headers.authorization: "Bearer <token>"',
      });
    }
    const token = loaded.runtime.jwt ? bearerToken(request.headers) : undefined;
    if (token === undefined) return answer(res, loaded, policyId, request);
    // Only token-bearing requests go asynchronous: the JWKS may need fetching.
    jwtVerifierFor(loaded)
      .then((verify) => verify(token))
      .then(
        (jwt) => answer(res, loaded, policyId as string, { ...request, jwt }),
        (err: unknown) => send(res, 500, { error: `token verification failed: ${(err as Error).message}` }),
      );
  }

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

  function answer(res: ServerResponse, loaded: LoadedPolicy, policyId: string, request: unknown) {
    let decision: ReturnType<typeof loaded.runtime.decide>;
    try {
      decision = loaded.runtime.decide(request);
    } catch (err) {
      counter(policyId, 'error').inc();
      return send(res, 400, { error: (err as Error).message, policy: loaded.refText });
    }
    const meta = { policy: loaded.refText, digest: loaded.artifact.digest };
    if (decision.allow && decision.rateLimits.length > 0) {
      const refused = limiter.take(loaded.refText, decision.rateLimits);
      if (refused) {
        counter(policyId, 'rate_limited').inc();
        // Refusals under load must stay cheap: a small fixed body, no re-serialized decision.
        return send(
          res,
          429,
          { allow: false, status: 429, reason: `rate limit exceeded: ${refused.limit}`, rateLimit: refused.limit, ...meta },
          { 'retry-after': String(refused.retryAfter) },
        );
      }
    }
    counter(policyId, decision.allow ? 'allow' : 'deny').inc();
    // The hot path: the runtime's JSON with the deciding reference appended, no re-serializing.
    const json = decision.json.slice(0, -1) + referenceSuffix(loaded);
    res.writeHead(200, ['content-type', 'application/json', 'content-length', String(Buffer.byteLength(json))]);
    res.end(json);
  }

  /** `,"policy":"<ref>","digest":"<digest>"}` for a loaded version, built once. */
  const suffixes = new WeakMap<object, string>();
  function referenceSuffix(loaded: { refText: string; artifact: { digest: string } }): string {
    let suffix = suffixes.get(loaded);
    if (suffix === undefined) {
      suffix = `,"policy":${JSON.stringify(loaded.refText)},"digest":"${loaded.artifact.digest}"}`;
      suffixes.set(loaded, suffix);
    }
    return suffix;
  }

  /** prom-client resolves label sets by hashing on every inc(); resolve each once. */
  type LabelledCounter = ReturnType<typeof metrics.decisions.labels>;
  const counters = new Map<string, Record<string, LabelledCounter>>();
  function counter(policy: string, outcome: string): LabelledCounter {
    let byOutcome = counters.get(policy);
    if (!byOutcome) {
      byOutcome = {};
      counters.set(policy, byOutcome);
    }
    let c = byOutcome[outcome];
    if (!c) {
      c = metrics.decisions.labels({ policy, outcome });
      byOutcome[outcome] = c;
    }
    return c;
  }

  function listPolicies(res: ServerResponse): void {
    send(
      res,
      200,
      policies.list().map((s) => ({
        policy: s.policyId,
        ref: s.current?.refText ?? null,
        digest: s.current?.artifact.digest ?? null,
        key_id: s.current?.artifact.keyId ?? null,
        ...(s.current?.artifact.identity ? { identity: s.current.artifact.identity } : {}),
        verified_at: s.current?.artifact.verifiedAt.toISOString() ?? null,
        status: s.current ? 'ready' : s.refused && policies.discovering ? 'refused' : 'not_ready',
        last_error: s.lastError?.message ?? null,
      })),
    );
  }

  return createServer((req, res) => {
    const url = req.url ?? '/';
    const path = url.includes('?') ? (url.split('?')[0] as string) : url;
    const fail = (err: unknown) => {
      if (!res.headersSent) send(res, 500, { error: (err as Error).message });
    };
    if (path === '/v1/decide' && req.method === 'POST') {
      readBody(req, (body) => {
        try {
          decide(res, body);
        } catch (err) {
          fail(err);
        }
      });
      return;
    }
    const route = `${req.method} ${path}`;
    switch (route) {
      case 'GET /v1/policies':
        return listPolicies(res);
      case 'GET /healthz':
        return send(res, 200, { status: 'ok' });
      case 'GET /readyz': {
        const { ready, reason } = policies.readiness();
        return send(res, ready ? 200 : 503, {
          status: ready ? 'ready' : 'not_ready',
          ...(reason ? { reason } : {}),
          policies: policies.list().map((s) => ({
            policy: s.policyId,
            ready: s.current !== undefined,
            ...(s.refused && policies.discovering && !s.current ? { refused: true } : {}),
            error: s.lastError?.message ?? null,
          })),
        });
      }
      case 'GET /metrics':
        metrics.registry.metrics().then((text) => {
          res.writeHead(200, { 'content-type': metrics.registry.contentType });
          res.end(text);
        }, fail);
        return;
      default:
        send(res, path === '/v1/decide' ? 405 : 404, { error: `no route for ${route}` });
    }
  });
}
