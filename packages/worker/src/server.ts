import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { WorkerMetrics } from './observability/metrics.js';
import type { PolicySet } from './policy-set.js';
import type { RateLimiter } from './rate-limit.js';

const MAX_DECIDE_BODY = 1024 * 1024;

export interface ServerDeps {
  policies: PolicySet;
  metrics: WorkerMetrics;
  limiter: RateLimiter;
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const json = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(json), ...headers });
  res.end(json);
}

function readBody(req: IncomingMessage): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > MAX_DECIDE_BODY) {
      resolve(undefined);
      req.resume();
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_DECIDE_BODY) {
        resolve(undefined);
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/**
 * The worker's HTTP API. `POST /v1/decide` is the hot path: parse, pick the serving
 * version (one read of the current reference, so a swap never splits a request), decide,
 * charge rate limits, answer; nothing is logged per request.
 */
export function createWorkerServer(deps: ServerDeps): Server {
  const { policies, metrics, limiter } = deps;

  async function decide(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await readBody(req);
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
    let decision: ReturnType<typeof loaded.runtime.decide>;
    try {
      decision = loaded.runtime.decide(input.request);
    } catch (err) {
      counter(policyId, 'error').inc();
      return send(res, 400, { error: (err as Error).message, policy: loaded.refText });
    }
    const meta = { policy: loaded.refText, digest: loaded.artifact.digest };
    if (decision.allow && decision.rateLimits.length > 0) {
      const refused = limiter.take(loaded.refText, decision.rateLimits);
      if (refused) {
        counter(policyId, 'rate_limited').inc();
        return send(
          res,
          429,
          { ...decision.detail, allow: false, status: 429, reason: `rate limit exceeded: ${refused.limit}`, ...meta },
          { 'retry-after': String(refused.retryAfter) },
        );
      }
    }
    counter(policyId, decision.allow ? 'allow' : 'deny').inc();
    send(res, 200, { ...decision.detail, allow: decision.allow, status: decision.status, reason: decision.reason, ...meta });
  }

  /** prom-client resolves label sets by hashing on every inc(); resolve each once. */
  const counters = new Map<string, ReturnType<typeof metrics.decisions.labels>>();
  function counter(policy: string, outcome: string): ReturnType<typeof metrics.decisions.labels> {
    const key = `${policy}\u0000${outcome}`;
    let c = counters.get(key);
    if (!c) {
      c = metrics.decisions.labels({ policy, outcome });
      counters.set(key, c);
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
        verified_at: s.current?.artifact.verifiedAt.toISOString() ?? null,
        status: s.current ? 'ready' : 'not_ready',
        last_error: s.lastError?.message ?? null,
      })),
    );
  }

  return createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const route = `${req.method} ${path}`;
    const fail = (err: unknown) => {
      if (!res.headersSent) send(res, 500, { error: (err as Error).message });
    };
    switch (route) {
      case 'POST /v1/decide':
        decide(req, res).catch(fail);
        return;
      case 'GET /v1/policies':
        return listPolicies(res);
      case 'GET /healthz':
        return send(res, 200, { status: 'ok' });
      case 'GET /readyz': {
        const ready = policies.ready();
        return send(res, ready ? 200 : 503, {
          status: ready ? 'ready' : 'not_ready',
          policies: policies
            .list()
            .map((s) => ({ policy: s.policyId, ready: s.current !== undefined, error: s.lastError?.message ?? null })),
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
