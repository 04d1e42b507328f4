// Issue 13: the worker's forward-auth endpoint on its own (the request shapes of Envoy's
// http_service mode, Traefik and nginx), dry run, and the sampled decision log, on an
// in-process worker serving the signed payments sample.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type RunningWorker, resolveConfig, startWorker } from '@apx/worker';
import { apx, ok, REPO, Workspace } from './harness.js';

const ACME = { 'x-api-key': 'demo-acme-prod-key' };
const GLOBEX = { 'x-api-key': 'demo-globex-key' };

async function startWith(ws: Workspace, store: string, env: Record<string, string>, lines: string[]): Promise<RunningWorker> {
  const { config, warnings } = resolveConfig({ APX_PORT: '0', APX_RELOAD_INTERVAL: '0', APX_STORE: store, ...env });
  const worker = await startWorker(config, warnings, {
    env: {},
    cwd: ws.dir,
    logDestination: { write: (l: string) => lines.push(l) },
  });
  await worker.refresh();
  return worker;
}

/** fetch() cannot set Host; the Envoy-style calls need it. */
function get(
  url: string,
  options: { method?: string; headers: Record<string, string> },
): Promise<{ status: number; headers: IncomingHttpHeaders; text: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: options.method ?? 'GET', headers: options.headers, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        text += c;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text }));
    });
    req.on('error', reject);
    req.end();
  });
}

const parse = (lines: string[]) => lines.map((l) => JSON.parse(l) as Record<string, unknown>);

describe('e2e: forward-auth /v1/authz, dry run and the decision log', () => {
  const ws = new Workspace();
  const store = ws.path('store');
  let enforcing: RunningWorker;
  let dryRun: RunningWorker;
  const enforcingLog: string[] = [];
  const dryRunLog: string[] = [];

  before(async () => {
    ws.stage(store, ws.compilePayments());
    enforcing = await startWith(ws, store, { APX_DEFAULT_POLICY: 'pb-pay-v1', APX_DECISION_LOG_SAMPLE: '1' }, enforcingLog);
    // The dry-run worker serves the sample with 2 requests per client address and hour.
    const limited = readFileSync(join(REPO, 'configs/samples/payments-api.yaml'), 'utf8').replace(
      '  rateLimits:\n',
      '  rateLimits:\n    - name: per-address\n      key: request.ip\n      limit: 2\n      window: 1h\n',
    );
    writeFileSync(ws.path('limited.yaml'), limited);
    ok(apx(ws.dir, ['compile', '--out', 'build-limited', ws.path('limited.yaml')]));
    ws.stage(ws.path('store-limited'), ws.path('build-limited', 'pb-pay-v1@1.0.0.wasm'));
    dryRun = await startWith(ws, ws.path('store-limited'), { APX_DRY_RUN: 'pb-pay-v1' }, dryRunLog);
  });
  after(async () => {
    await enforcing?.stop();
    await dryRun?.stop();
  });

  it('Envoy http_service: the policy and the original path from the path, method and Host as sent', async () => {
    const ok = await get(`${enforcing.url}/v1/authz/pb-pay-v1/v1/payments/9?x=1`, {
      headers: { ...ACME, host: 'api.example.com' },
    });
    assert.equal(ok.status, 200, ok.text);
    assert.equal(ok.headers['x-policy-version'], '1.0.0');
    assert.match(String(ok.headers['x-apx-decision-id']), /^[0-9a-f]{12}-[0-9a-z]+$/);
    // The same through the default-policy segment, and a denial with the policy's status and body.
    const denied = await get(`${enforcing.url}/v1/authz/_/v1/payments/9`, {
      method: 'POST',
      headers: { ...GLOBEX, host: 'api.example.com' },
    });
    assert.equal(denied.status, 403);
    assert.equal(denied.headers['content-type'], 'application/json');
    assert.equal(denied.headers['x-apx-status'], undefined, 'X-Apx-Status is for nginx only');
    const body = JSON.parse(denied.text) as Record<string, unknown>;
    assert.deepEqual(
      { allow: body.allow, status: body.status, reason: body.reason, rule: body.rule, policy: body.policy },
      {
        allow: false,
        status: 403,
        reason: 'payments:write scope required',
        rule: 'writes-need-scope',
        policy: 'pb-pay-v1@1.0.0',
      },
    );
  });

  it('Traefik/Caddy headers decide over the call path and method; nginx also gets X-Apx-Status and X-Apx-Body', async () => {
    const traefik = await fetch(`${enforcing.url}/v1/authz`, {
      headers: {
        ...GLOBEX,
        'x-forwarded-method': 'POST',
        'x-forwarded-uri': '/v1/payments/1',
        'x-forwarded-host': 'api.example.com',
      },
    });
    assert.equal(traefik.status, 403);
    const nginx = await fetch(`${enforcing.url}/v1/authz/pb-pay-v1`, {
      headers: { 'x-original-method': 'GET', 'x-original-uri': '/v1/payments/1', 'x-forwarded-host': 'api.example.com' },
    });
    assert.equal(nginx.status, 401);
    assert.equal(nginx.headers.get('x-apx-status'), '401');
    assert.deepEqual(JSON.parse(nginx.headers.get('x-apx-body') ?? ''), await nginx.json());
  });

  it('refuses a call that does not say unambiguously which request to decide (400)', async () => {
    // A client behind Caddy adding X-Original-URI to have the anonymous health route decided.
    const smuggled = await fetch(`${enforcing.url}/v1/authz/pb-pay-v1`, {
      headers: { 'x-forwarded-uri': '/v1/payments/1', 'x-original-uri': '/healthz', 'x-forwarded-host': 'api.example.com' },
    });
    assert.equal(smuggled.status, 400);
    assert.match(((await smuggled.json()) as { error: string }).error, /x-original-uri and x-forwarded-uri disagree/);
    const methods = await fetch(`${enforcing.url}/v1/authz/pb-pay-v1`, {
      headers: { ...GLOBEX, 'x-original-uri': '/v1/payments/1', 'x-original-method': 'POST', 'x-forwarded-method': 'GET' },
    });
    assert.equal(methods.status, 400);
    const nothing = await fetch(`${enforcing.url}/v1/authz/pb-pay-v1`, { headers: ACME });
    assert.equal(nothing.status, 400);
    assert.match(((await nothing.json()) as { error: string }).error, /no original request/);
    // Envoy's path mode decides the path it was given, whatever headers say.
    const envoy = await get(`${enforcing.url}/v1/authz/pb-pay-v1/v1/payments/1`, {
      headers: { host: 'api.example.com', 'x-original-uri': '/healthz', 'x-forwarded-uri': '/healthz' },
    });
    assert.equal(envoy.status, 401);
  });

  it('fails closed on an unknown policy (500) and answers 5xx, never 2xx, without a decision', async () => {
    const r = await get(`${enforcing.url}/v1/authz/pb-nope/v1/payments/1`, { headers: { ...ACME, host: 'api.example.com' } });
    assert.equal(r.status, 500);
    assert.deepEqual(JSON.parse(r.text), { error: 'unknown policy pb-nope' });
  });

  it('POST /v1/decide answers as before', async () => {
    const r = await fetch(`${enforcing.url}/v1/decide`, {
      method: 'POST',
      body: JSON.stringify({
        policy: 'pb-pay-v1',
        request: { method: 'GET', host: 'api.example.com', path: '/v1/payments/1', headers: ACME },
      }),
    });
    const body = (await r.json()) as Record<string, unknown>;
    assert.equal(r.status, 200);
    assert.equal(body.allow, true);
    assert.equal(body.effect, 'allow');
    assert.equal(body.policy, 'pb-pay-v1@1.0.0');
    assert.deepEqual(body.headers, {
      request: { set: { 'X-Policy-Version': '1.0.0' }, remove: ['X-Debug'] },
      response: { set: { 'Cache-Control': 'no-store' }, remove: [] },
    });
  });

  it('logs each decision (sample 1) with id, reference, digest, outcome, rule and latency, and no request content', () => {
    const decisions = parse(enforcingLog).filter((l) => l.event === 'decision');
    assert.ok(decisions.length >= 5, `${decisions.length} decision lines`);
    const denial = decisions.find((l) => l.rule === 'writes-need-scope');
    assert.ok(denial);
    assert.equal(denial.outcome, 'deny');
    assert.equal(denial.status, 403);
    assert.equal(denial.policy_ref, 'pb-pay-v1@1.0.0');
    assert.match(String(denial.digest), /^sha256:[0-9a-f]{64}$/);
    assert.equal(typeof denial.latency_ms, 'number');
    const text = enforcingLog.join('\n');
    for (const secret of ['demo-acme-prod-key', 'demo-globex-key', 'x-api-key']) assert.ok(!text.includes(secret), secret);
    // The worker without a sample logs no decision.
    assert.equal(parse(dryRunLog).filter((l) => l.event === 'decision').length, 0);
  });

  it('dry run (APX_DRY_RUN=pb-pay-v1): a denial is allowed, logged and counted', async () => {
    assert.ok(
      parse(dryRunLog).some(
        (l) => l.severity === 'WARNING' && l.setting === 'APX_DRY_RUN' && String(l.message).includes('pb-pay-v1'),
      ),
      'no dry-run warning at start',
    );
    const r = await get(`${dryRun.url}/v1/authz/pb-pay-v1/v1/payments/1`, {
      method: 'POST',
      headers: { ...GLOBEX, host: 'api.example.com' },
    });
    assert.equal(r.status, 200);
    assert.equal(r.headers['x-apx-dry-run'], 'true');
    const decide = await fetch(`${dryRun.url}/v1/decide`, {
      method: 'POST',
      body: JSON.stringify({ policy: 'pb-pay-v1', request: { method: 'GET', host: 'api.example.com', path: '/v1/payments/1' } }),
    });
    const body = (await decide.json()) as { allow: boolean; dryRun: boolean; wouldDeny: { status: number; reason: string } };
    assert.equal(body.allow, true);
    assert.equal(body.dryRun, true);
    assert.equal(body.wouldDeny.status, 401);
    const logged = parse(dryRunLog).filter((l) => l.event === 'dry_run_denied');
    assert.equal(logged.length, 2);
    assert.equal(logged[0]?.message, 'dry run: pb-pay-v1@1.0.0 would deny 403: payments:write scope required');
    assert.equal(logged[0]?.rule, 'writes-need-scope');
    const metrics = await (await fetch(`${dryRun.url}/metrics`)).text();
    assert.match(metrics, /apx_decisions_dry_run_denied_total\{policy="pb-pay-v1"\} 2/);
    assert.match(metrics, /apx_decisions_total\{policy="pb-pay-v1",outcome="deny"\} 2/);
  });
  it('dry run lets a rate-limited request through too, marked and counted', async () => {
    // 2 allowed requests per address and hour: the next 3 are over the limit.
    const answers = [];
    for (let i = 0; i < 5; i++) {
      answers.push(
        await get(`${dryRun.url}/v1/authz/pb-pay-v1/v1/payments/1`, { headers: { ...ACME, host: 'api.example.com' } }),
      );
    }
    assert.deepEqual(
      answers.map((a) => a.status),
      [200, 200, 200, 200, 200],
    );
    assert.deepEqual(
      answers.map((a) => a.headers['x-apx-dry-run']),
      [undefined, undefined, 'true', 'true', 'true'],
    );
    const letThrough = 3;
    // Allowed by the policy: the upstream still gets its header.
    assert.ok(answers.every((a) => a.headers['x-policy-version'] === '1.0.0'));
    const metrics = await (await fetch(`${dryRun.url}/metrics`)).text();
    assert.match(metrics, new RegExp(`apx_decisions_dry_run_denied_total\\{policy="pb-pay-v1"\\} ${2 + letThrough}\\n`));
    assert.match(metrics, new RegExp(`apx_decisions_total\\{policy="pb-pay-v1",outcome="rate_limited"\\} ${letThrough}\\n`));
    assert.ok(parse(dryRunLog).some((l) => l.event === 'dry_run_denied' && l.status === 429));
  });
});
