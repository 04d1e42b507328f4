// Issue 13: real gateways enforce APX decisions through the worker's forward-auth endpoint.
// nginx (auth_request) and Caddy (forward_auth) run the configurations of deploy/gateways/ —
// the very text docs/gateways.md shows — with only the example addresses replaced, in front
// of a node:http upstream that records what reaches it.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request as httpRequest, type IncomingHttpHeaders, type Server } from 'node:http';
import { type AddressInfo, connect, createServer as createTcpServer } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { toolMissing } from '@apx/core/testing/tools';
import { apx, ok, REPO, Workspace } from './harness.js';
import { WorkerChild } from './worker-child.js';

const TEMPLATES = join(REPO, 'deploy', 'gateways');
const DOCS = join(REPO, 'docs', 'gateways.md');
const HOST = 'api.example.com';
const ACME = { 'x-api-key': 'demo-acme-prod-key' };
const GLOBEX = { 'x-api-key': 'demo-globex-key' };

/** The payments sample with a small per-address limit, so that 429 is reached in a few requests. */
function gatewayPolicy(ws: Workspace): string {
  const source = readFileSync(join(REPO, 'configs/samples/payments-api.yaml'), 'utf8').replace(
    '  rateLimits:\n',
    '  rateLimits:\n    - name: per-address\n      key: request.ip\n      limit: 4\n      window: 1h\n',
  );
  assert.ok(source.includes('per-address'));
  const file = ws.path('gateway-policy.yaml');
  writeFileSync(file, source);
  ok(apx(ws.dir, ['compile', '--out', 'build', file]));
  return ws.path('build', 'pb-pay-v1@1.0.0.wasm');
}

async function freePort(): Promise<number> {
  const s = createTcpServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

async function waitForPort(port: number, what: string, child: ChildProcess, output: () => string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (child.exitCode !== null) throw new Error(`${what} exited with ${child.exitCode}:\n${output()}`);
    const up = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (up) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${what} did not listen on ${port}:\n${output()}`);
}

/** A documented template with its example addresses replaced by the test's. */
function fromTemplate(name: string, ports: { gateway: number; worker: number; upstream: number }): string {
  const text = readFileSync(join(TEMPLATES, name), 'utf8');
  const out = text
    .replaceAll('127.0.0.1:8000', `127.0.0.1:${ports.gateway}`)
    .replaceAll('http://:8000', `http://:${ports.gateway}`)
    .replaceAll('127.0.0.1:8080', `127.0.0.1:${ports.worker}`)
    .replaceAll('127.0.0.1:9000', `127.0.0.1:${ports.upstream}`);
  assert.ok(!/:(8000|8080|9000)\b/.test(out), `${name}: an example address was not replaced`);
  return out;
}

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
}

/** One request through a gateway, from a chosen loopback address (each test its own client). */
function call(
  port: number,
  path: string,
  options: { method?: string; headers?: Record<string, string>; from: string },
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: '127.0.0.1',
        port,
        path,
        method: options.method ?? 'GET',
        localAddress: options.from,
        headers: { host: HOST, ...options.headers },
        agent: false,
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          text += c;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

interface Gateway {
  name: string;
  port: number;
  /** nginx answers what it cannot get a decision for as 500; Caddy passes the worker's 5xx or says 502. */
  failureStatuses: number[];
  stop(): Promise<void>;
}

async function startProcess(
  name: string,
  command: string,
  args: string[],
  env: Record<string, string>,
  port: number,
): Promise<{ child: ChildProcess; stop: () => Promise<void> }> {
  let output = '';
  const child = spawn(command, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout?.on('data', (c: Buffer) => {
    output += c.toString();
  });
  child.stderr?.on('data', (c: Buffer) => {
    output += c.toString();
  });
  await waitForPort(port, name, child, () => output);
  return {
    child,
    stop: async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    },
  };
}

async function startNginx(dir: string, ports: { gateway: number; worker: number; upstream: number }): Promise<Gateway> {
  const home = join(dir, 'nginx');
  mkdirSync(join(home, 'tmp'), { recursive: true });
  writeFileSync(join(home, 'apx.conf'), fromTemplate('nginx.conf', ports));
  // The documented server block, included by a main file that keeps every path in the
  // scratch directory, so that nginx runs as any user.
  writeFileSync(
    join(home, 'nginx.conf'),
    [
      'daemon off;',
      'master_process off;',
      `pid ${join(home, 'nginx.pid')};`,
      `error_log ${join(home, 'error.log')} warn;`,
      'events { worker_connections 256; }',
      'http {',
      '  access_log off;',
      ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `  ${t}_temp_path ${join(home, 'tmp', t)};`),
      `  include ${join(home, 'apx.conf')};`,
      '}',
      '',
    ].join('\n'),
  );
  const p = await startProcess(
    'nginx',
    'nginx',
    ['-c', join(home, 'nginx.conf'), '-p', home, '-e', join(home, 'error.log')],
    {},
    ports.gateway,
  );
  return { name: 'nginx', port: ports.gateway, failureStatuses: [500], stop: p.stop };
}

async function startCaddy(dir: string, ports: { gateway: number; worker: number; upstream: number }): Promise<Gateway> {
  const home = join(dir, 'caddy');
  mkdirSync(home, { recursive: true });
  writeFileSync(join(home, 'Caddyfile'), fromTemplate('Caddyfile', ports));
  const p = await startProcess(
    'caddy',
    'caddy',
    ['run', '--config', join(home, 'Caddyfile'), '--adapter', 'caddyfile'],
    { HOME: home, XDG_DATA_HOME: join(home, 'data'), XDG_CONFIG_HOME: join(home, 'config') },
    ports.gateway,
  );
  return { name: 'caddy', port: ports.gateway, failureStatuses: [500, 502, 503], stop: p.stop };
}

const noNginx = toolMissing('nginx');
const noCaddy = toolMissing('caddy');

describe('e2e: nginx auth_request and Caddy forward_auth enforce APX decisions (deploy/gateways, docs/gateways.md)', {
  skip: noNginx && noCaddy ? `${noNginx}; ${noCaddy}` : false,
}, () => {
  const ws = new Workspace();
  const store = ws.path('store');
  let workerPort = 0;
  let worker: WorkerChild;
  let upstream: Server;
  const reached: Array<{ url: string; headers: IncomingHttpHeaders }> = [];
  const gateways: Gateway[] = [];

  before(async () => {
    ws.stage(store, gatewayPolicy(ws));
    workerPort = await freePort();
    worker = await WorkerChild.start(ws.dir, {
      APX_STORE: store,
      APX_PORT: String(workerPort),
      // nginx and Caddy connect from 127.0.0.1; the test's clients from other loopback addresses.
      APX_TRUSTED_PROXIES: '127.0.0.1',
      APX_DECISION_LOG_SAMPLE: '1',
    });
    assert.ok(worker.url, worker.output);
    await worker.waitFor((l) => l.message.startsWith('policy loaded: pb-pay-v1@1.0.0'), 'policy loaded');
    upstream = createServer((req, res) => {
      reached.push({ url: req.url ?? '', headers: req.headers });
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('upstream');
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    const upstreamPort = (upstream.address() as AddressInfo).port;
    if (!noNginx)
      gateways.push(await startNginx(ws.dir, { gateway: await freePort(), worker: workerPort, upstream: upstreamPort }));
    if (!noCaddy)
      gateways.push(await startCaddy(ws.dir, { gateway: await freePort(), worker: workerPort, upstream: upstreamPort }));
  });

  after(async () => {
    for (const g of gateways) await g.stop();
    await worker?.stop();
    await new Promise<void>((r) => (upstream ? upstream.close(() => r()) : r()));
    rmSync(ws.dir, { recursive: true, force: true });
  });

  // Each gateway's clients get their own loopback addresses (the policy limits per address).
  const client = (g: Gateway, n: number) => `127.0.${g.name === 'nginx' ? 1 : 2}.${n}`;

  it('the documented configurations are the files the tests run', () => {
    const docs = readFileSync(DOCS, 'utf8');
    for (const name of ['nginx.conf', 'Caddyfile']) {
      const text = readFileSync(join(TEMPLATES, name), 'utf8').trimEnd();
      assert.ok(docs.includes(text), `docs/gateways.md does not show deploy/gateways/${name} as it is`);
    }
  });

  it('an allowed request reaches the upstream with the header the policy adds (a client copy is replaced)', async () => {
    for (const g of gateways) {
      const before = reached.length;
      const r = await call(g.port, '/v1/payments/42?expand=1', {
        headers: { ...ACME, 'x-policy-version': 'forged' },
        from: client(g, 2),
      });
      assert.equal(r.status, 200, `${g.name}: ${r.text}`);
      assert.equal(r.text, 'upstream');
      assert.equal(reached.length, before + 1, g.name);
      const seen = reached.at(-1) as { url: string; headers: IncomingHttpHeaders };
      assert.equal(seen.url, '/v1/payments/42?expand=1', g.name);
      assert.equal(seen.headers['x-policy-version'], '1.0.0', g.name);
      assert.match(String(seen.headers['x-apx-decision-id']), /^[0-9a-f]{12}-[0-9a-z]+$/, g.name);
    }
  });

  it("a denied request gets the policy's status and body (401, 403) and never reaches the upstream", async () => {
    for (const g of gateways) {
      const before = reached.length;
      const unauthenticated = await call(g.port, '/v1/payments/42', { from: client(g, 3) });
      assert.equal(unauthenticated.status, 401, `${g.name}: ${unauthenticated.text}`);
      assert.match(String(unauthenticated.headers['content-type']), /application\/json/, g.name);
      const body401 = JSON.parse(unauthenticated.text) as Record<string, unknown>;
      assert.equal(body401.allow, false);
      assert.equal(body401.status, 401);
      assert.equal(body401.reason, 'authentication required');
      assert.equal(body401.policy, 'pb-pay-v1@1.0.0');

      const forbidden = await call(g.port, '/v1/payments/42', { method: 'POST', headers: GLOBEX, from: client(g, 3) });
      assert.equal(forbidden.status, 403, `${g.name}: ${forbidden.text}`);
      const body403 = JSON.parse(forbidden.text) as Record<string, unknown>;
      assert.equal(body403.reason, 'payments:write scope required');
      assert.equal(body403.rule, 'writes-need-scope');
      assert.equal(reached.length, before, `${g.name}: a denied request reached the upstream`);
    }
  });

  it('a rate-limited request gets 429 with Retry-After and the policy body (nginx: through @apx_denied)', async () => {
    for (const g of gateways) {
      const from = client(g, 4);
      const statuses: number[] = [];
      let last: Answer | undefined;
      for (let i = 0; i < 6; i++) {
        last = await call(g.port, '/v1/payments/7', { headers: ACME, from });
        statuses.push(last.status);
      }
      assert.deepEqual(statuses, [200, 200, 200, 200, 429, 429], `${g.name}: ${last?.text}`);
      const answer = last as Answer;
      assert.match(String(answer.headers['retry-after']), /^\d+$/, g.name);
      const body = JSON.parse(answer.text) as Record<string, unknown>;
      assert.equal(body.status, 429);
      assert.equal(body.reason, 'rate limit exceeded: per-address');
    }
  });

  it('X-Forwarded-For sent by a client is not believed: the gateway-seen address decides', async () => {
    // 203.0.113.0/24 is on the policy's deny list; a client claiming it is judged by its own address.
    for (const g of gateways) {
      const r = await call(g.port, '/v1/payments/1', {
        headers: { ...ACME, 'x-forwarded-for': '203.0.113.9', 'x-real-ip': '203.0.113.9' },
        from: client(g, 5),
      });
      assert.equal(r.status, 200, `${g.name}: ${r.text}`);
    }
    // Straight to the worker from an address that is not a trusted proxy: ignored too, and
    // believed only from a trusted proxy (the deny list then applies).
    const direct = (from: string) =>
      new Promise<number>((resolve, reject) => {
        const req = httpRequest(
          {
            host: '127.0.0.1',
            port: workerPort,
            path: '/v1/authz/pb-pay-v1',
            localAddress: from,
            headers: { ...ACME, 'x-forwarded-uri': '/v1/payments/1', 'x-forwarded-host': HOST, 'x-forwarded-for': '203.0.113.9' },
            agent: false,
          },
          (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          },
        );
        req.on('error', reject);
        req.end();
      });
    assert.equal(await direct('127.0.3.1'), 200);
    assert.equal(await direct('127.0.0.1'), 403);
  });

  it("a client cannot have another request decided by adding the other gateway family's headers", async () => {
    for (const g of gateways) {
      const before = reached.length;
      // /healthz is anonymous; /v1/payments needs a key. Either family names /healthz.
      for (const header of ['x-original-uri', 'x-forwarded-uri']) {
        const r = await call(g.port, '/v1/payments/1', { headers: { [header]: '/healthz' }, from: client(g, 8) });
        assert.equal(r.status, 401, `${g.name} with ${header}: ${r.status} ${r.text}`);
      }
      assert.equal(reached.length, before, `${g.name}: a request reached the upstream`);
    }
  });

  it('the decision log has one line per decision, without the API key or any header', async () => {
    const lines = worker.logs.filter((l) => l.event === 'decision');
    assert.ok(lines.length >= 10, `only ${lines.length} decision lines`);
    for (const l of lines) {
      assert.match(String(l.decision_id), /^[0-9a-f]{12}-[0-9a-z]+$/);
      assert.equal(l.policy_ref, 'pb-pay-v1@1.0.0');
      assert.match(String(l.digest), /^sha256:[0-9a-f]{64}$/);
      assert.ok(['allow', 'deny', 'rate_limited'].includes(String(l.outcome)), String(l.outcome));
      assert.equal(typeof l.latency_ms, 'number');
    }
    assert.ok(lines.some((l) => l.rule === 'writes-need-scope'));
    assert.ok(!worker.output.includes('demo-acme-prod-key'), 'an API key reached the log');
    assert.ok(!worker.output.includes('demo-globex-key'), 'an API key reached the log');
  });

  it('fails closed: the policy not loaded, then the worker down', async () => {
    await worker.stop();
    // The same port, a store without the artifact: the policy is known but not loaded.
    const empty = ws.path('empty-store');
    mkdirSync(empty, { recursive: true });
    worker = await WorkerChild.start(ws.dir, {
      APX_STORE: empty,
      APX_PORT: String(workerPort),
      APX_POLICIES: 'pb-pay-v1',
      APX_TRUSTED_PROXIES: '127.0.0.1',
    });
    assert.ok(worker.url, worker.output);
    const before = reached.length;
    for (const g of gateways) {
      const r = await call(g.port, '/v1/payments/1', { headers: ACME, from: client(g, 6) });
      assert.ok(g.failureStatuses.includes(r.status), `${g.name} answered ${r.status} with the policy not loaded: ${r.text}`);
    }
    await worker.stop();
    for (const g of gateways) {
      const r = await call(g.port, '/v1/payments/1', { headers: ACME, from: client(g, 7) });
      assert.ok(g.failureStatuses.includes(r.status), `${g.name} answered ${r.status} with the worker down: ${r.text}`);
    }
    assert.equal(reached.length, before, 'a request reached the upstream without a decision');
  });
});
