import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import {
  createDecisionService,
  type DecisionDeps,
  type DecisionOutcome,
  type DecisionService,
} from './gateway/decision-service.js';
import { FORWARD_AUTH_PREFIX, handleForwardAuth } from './gateway/forward-auth.js';
import { NO_TRUSTED_PROXIES, type TrustedProxies } from './gateway/trusted-proxies.js';
import type { LoadedPolicy } from './loader.js';
import type { PolicyDecision } from './runtime.js';

const MAX_DECIDE_BODY = 1024 * 1024;
/** Answer bodies kept per serving version (a policy's static outcomes are far fewer). */
const DECISION_BODIES_MAX = 1024;

export interface ServerDeps extends DecisionDeps {
  /** APX_TRUSTED_PROXIES: whose forwarded headers (X-Forwarded-For...) forward-auth believes. Default: nobody's. */
  trustedProxies?: TrustedProxies;
  /** True once the worker is draining (SIGTERM): /readyz answers 503 and connections are not kept alive. */
  draining?: () => boolean;
  /** The decision pipeline (default: one made from these deps); a serving child of APX_WORKERS passes its gated one. */
  decisions?: DecisionService;
  /** What GET /metrics answers (default: `metrics`); a serving child answers the whole worker's. */
  metricsText?: () => Promise<{ text: string; contentType: string }>;
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const json = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(json), ...headers });
  res.end(json);
}

/** A failure no answer was given for yet: 500 with its message (a closure per request costs). */
function fail(res: ServerResponse, err: unknown): void {
  if (!res.headersSent) send(res, 500, { error: (err as Error).message });
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
 * The worker's HTTP API. `POST /v1/decide` is the hot path: parse, then the decision pipeline
 * (gateway/decision-service.ts: pick the serving version with one read of the current
 * reference, so a swap never splits a request; decide; charge rate limits), then answer with
 * the runtime's JSON. `/v1/authz...` is forward-auth for gateways (gateway/forward-auth.ts).
 * Nothing is logged per request, except sampled decisions (APX_DECISION_LOG_SAMPLE) and
 * denials let through by dry run (APX_DRY_RUN).
 */
export function createWorkerServer(deps: ServerDeps): Server {
  const { policies, metrics } = deps;
  const service = deps.decisions ?? createDecisionService(deps);
  const metricsText =
    deps.metricsText ?? (async () => ({ text: await metrics.registry.metrics(), contentType: metrics.registry.contentType }));
  const trusted = deps.trustedProxies ?? NO_TRUSTED_PROXIES;

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
    service.evaluate(input.policy, input.request, (o) => answer(res, o));
  }

  function answer(res: ServerResponse, o: DecisionOutcome) {
    if (o.kind === 'refused') {
      // A decision the runtime refused (a bad request shape) names the policy that refused it.
      return send(
        res,
        o.status,
        o.loaded && o.status === 400 ? { error: o.error, policy: o.loaded.refText } : { error: o.error },
      );
    }
    const { loaded } = o;
    if (o.kind === 'rate_limited') {
      // Dry run: the policy's allow, with what the rate limit would have answered.
      if (o.dryRun)
        return sendRaw(
          res,
          200,
          `${o.decision.json.slice(0, -1)},"dryRun":true,"wouldDeny":${rateLimitedJson(loaded, o.limit).json}${referenceSuffix(loaded)}`,
        );
      // Refusals under load must stay cheap: a small fixed body per (version, limit), built once.
      const denied = rateLimitedJson(loaded, o.limit);
      res.writeHead(429, [
        'content-type',
        'application/json',
        'content-length',
        denied.length,
        'retry-after',
        String(o.retryAfter),
      ]);
      res.end(denied.json);
      return;
    }
    if (o.dryRun) {
      // Dry run: an allow, carrying the denial the policy decided.
      const reason = JSON.stringify(`dry run: would deny: ${o.decision.reason}`);
      return sendRaw(
        res,
        200,
        `{"allow":true,"status":200,"reason":${reason},"dryRun":true,"wouldDeny":${o.decision.json}${referenceSuffix(loaded)}`,
      );
    }
    // The hot path: the runtime's JSON with the deciding reference appended, no re-serializing;
    // for a decision the runtime hands out again (frozen), the whole body is built once.
    const { decision } = o;
    if (!Object.isFrozen(decision)) return sendRaw(res, 200, decision.json.slice(0, -1) + referenceSuffix(loaded));
    let bodies = decisionBodies.get(loaded);
    if (bodies === undefined) {
      bodies = new Map();
      decisionBodies.set(loaded, bodies);
    }
    let body = bodies.get(decision);
    if (body === undefined) {
      const json = decision.json.slice(0, -1) + referenceSuffix(loaded);
      body = { json, length: String(Buffer.byteLength(json)) };
      if (bodies.size >= DECISION_BODIES_MAX) bodies.clear();
      bodies.set(decision, body);
    }
    res.writeHead(200, ['content-type', 'application/json', 'content-length', body.length]);
    res.end(body.json);
  }

  function sendRaw(res: ServerResponse, status: number, json: string) {
    res.writeHead(status, ['content-type', 'application/json', 'content-length', String(Buffer.byteLength(json))]);
    res.end(json);
  }

  /**
   * Response bodies of the runtime's shared decisions, per serving version (freed with it);
   * bounded, in case a runtime hands out many distinct shared decisions.
   */
  const decisionBodies = new WeakMap<LoadedPolicy, Map<PolicyDecision, { json: string; length: string }>>();

  /** `,"policy":"<ref>","digest":"<digest>"}` for a loaded version, built once. */
  const suffixes = new WeakMap<object, string>();
  function referenceSuffix(loaded: LoadedPolicy): string {
    let suffix = suffixes.get(loaded);
    if (suffix === undefined) {
      suffix = `,"policy":${JSON.stringify(loaded.refText)},"digest":"${loaded.artifact.digest}"}`;
      suffixes.set(loaded, suffix);
    }
    return suffix;
  }

  /**
   * The 429 body, `{"allow":false,"status":429,"reason":"rate limit exceeded: <limit>",
   * "rateLimit":"<limit>","policy":"<ref>","digest":"<digest>"}`, per version and limit name.
   */
  const rateLimitedBodies = new WeakMap<LoadedPolicy, Map<string, { json: string; length: string }>>();
  function rateLimitedJson(loaded: LoadedPolicy, limit: string): { json: string; length: string } {
    let byLimit = rateLimitedBodies.get(loaded);
    if (byLimit === undefined) {
      byLimit = new Map();
      rateLimitedBodies.set(loaded, byLimit);
    }
    let body = byLimit.get(limit);
    if (body === undefined) {
      const json = JSON.stringify({
        allow: false,
        status: 429,
        reason: `rate limit exceeded: ${limit}`,
        rateLimit: limit,
        policy: loaded.refText,
        digest: loaded.artifact.digest,
      });
      body = { json, length: String(Buffer.byteLength(json)) };
      // Limit names come from the policy's tables: a handful per version.
      byLimit.set(limit, body);
    }
    return body;
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

  const draining = deps.draining ?? (() => false);
  return createServer((req, res) => {
    // Draining: every request is still served, but keep-alive clients are moved off this worker.
    if (draining()) res.setHeader('connection', 'close');
    const url = req.url ?? '/';
    const path = url.includes('?') ? (url.split('?')[0] as string) : url;
    if (path === '/v1/decide' && req.method === 'POST') {
      readBody(req, (body) => {
        try {
          decide(res, body);
        } catch (err) {
          fail(res, err);
        }
      });
      return;
    }
    if (path === FORWARD_AUTH_PREFIX || path.startsWith(`${FORWARD_AUTH_PREFIX}/`)) {
      try {
        handleForwardAuth(req, res, url, service, trusted);
      } catch (err) {
        fail(res, err);
      }
      return;
    }
    const route = `${req.method} ${path}`;
    switch (route) {
      case 'GET /v1/policies':
        return listPolicies(res);
      case 'GET /healthz':
        return send(res, 200, { status: 'ok' });
      case 'GET /readyz': {
        if (draining()) return send(res, 503, { status: 'draining', reason: 'the worker is stopping (SIGTERM): draining' });
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
        metricsText().then(
          ({ text, contentType }) => {
            res.writeHead(200, { 'content-type': contentType });
            res.end(text);
          },
          (err: unknown) => fail(res, err),
        );
        return;
      default:
        send(res, path === '/v1/decide' ? 405 : 404, { error: `no route for ${route}` });
    }
  });
}
