// Envoy ext_authz over gRPC (issue 13): Check throughput and latency of the real worker
// (`apx worker` with APX_GRPC_PORT, the payments sample compiled and signed) against a bare
// grpc-js server answering every Check with the same OK CheckResponse (same protos, no
// decision), measured in the same run. Each server is its own Node process; the load comes
// from a third process: one HTTP/2 connection, as Envoy keeps, with BENCH_GRPC_CONCURRENCY
// calls in flight (node:http2, the request encoded once), BENCH_GRPC_SECONDS per run,
// alternating bare and worker runs. Prints calls/s, p50, p99 and the ratios. No goal is
// asserted: the figures are for the report.
//   npm run bench:grpc            BENCH_GRPC_SECONDS=8 BENCH_GRPC_CONCURRENCY=64

import { type ChildProcess, spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { connect } from 'node:http2';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { checkRequest, extAuthzClient, loadExtAuthzDefinition } from '@apx/worker/test-support/ext-authz-client';
import { REPO, signedSample } from './fixture.js';

const SELF = join(REPO, 'bench', 'dist', 'grpc.js');
const SECONDS = Number(process.env.BENCH_GRPC_SECONDS ?? 8);
const CONCURRENCY = Number(process.env.BENCH_GRPC_CONCURRENCY ?? 64);
const ROUNDS = 2;

// An allowed request with the full decision (route, identity, header mutations); /healthz
// needs no API key, so no tenant rate limit turns the run into a run of 429s.
const REQUEST = checkRequest({
  method: 'GET',
  host: 'api.example.com',
  path: '/healthz',
  headers: { 'x-request-id': 'bench', 'user-agent': 'envoy' },
  ip: '198.51.100.7',
  policy: 'pb-pay-v1',
});

interface LoadResult {
  calls: number;
  errors: number;
  seconds: number;
  rps: number;
  p50: number;
  p99: number;
}

/**
 * `grpc.js load TARGET`: the load generator process; prints one JSON LoadResult. It speaks
 * gRPC over node:http2 with the request encoded once and the answers only checked for
 * grpc-status 0, so that the servers, not the client, are what is measured.
 */
async function load(target: string): Promise<void> {
  const definition = await loadExtAuthzDefinition();
  const method = (definition['envoy.service.auth.v3.Authorization'] as Record<string, { requestSerialize(v: unknown): Buffer }>)
    .Check as { requestSerialize(v: unknown): Buffer };
  const message = method.requestSerialize(REQUEST);
  const frame = Buffer.alloc(5 + message.length);
  frame.writeUInt32BE(message.length, 1);
  message.copy(frame, 5);
  const session = connect(`http://${target}`);
  const headers = {
    ':method': 'POST',
    ':path': '/envoy.service.auth.v3.Authorization/Check',
    'content-type': 'application/grpc',
    te: 'trailers',
  };
  const call = () =>
    new Promise<boolean>((resolveCall) => {
      const stream = session.request(headers);
      let status: string | undefined;
      stream.on('response', (h) => {
        if (h['grpc-status'] !== undefined) status = String(h['grpc-status']);
      });
      stream.on('trailers', (t) => {
        status = String(t['grpc-status']);
      });
      stream.on('data', () => {});
      stream.on('close', () => resolveCall(status === '0'));
      stream.end(frame);
    });
  for (let i = 0; i < 1000; i++) await call();
  const latencies: number[] = [];
  let errors = 0;
  const end = performance.now() + SECONDS * 1000;
  const start = performance.now();
  async function lane(): Promise<void> {
    while (performance.now() < end) {
      const t0 = performance.now();
      const ok = await call();
      latencies.push(performance.now() - t0);
      if (!ok) errors++;
    }
  }
  await Promise.all(Array.from({ length: CONCURRENCY }, lane));
  const seconds = (performance.now() - start) / 1000;
  session.close();
  latencies.sort((a, b) => a - b);
  const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * q))] ?? 0;
  const result: LoadResult = {
    calls: latencies.length,
    errors,
    seconds,
    rps: latencies.length / seconds,
    p50: at(0.5),
    p99: at(0.99),
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

/** `grpc.js bare PORT RESPONSE_JSON`: grpc-js answering every Check with that CheckResponse. */
async function bare(port: string, responseJson: string): Promise<void> {
  const { Server, ServerCredentials } = await import('@grpc/grpc-js');
  // The worker's own proto loading, so that both servers encode with the same definitions.
  const definition = await loadExtAuthzDefinition();
  const response = JSON.parse(responseJson) as Record<string, unknown>;
  const server = new Server();
  server.addService(definition['envoy.service.auth.v3.Authorization'] as never, {
    Check: (_call: unknown, callback: (err: null, r: unknown) => void) => callback(null, response),
  });
  server.bindAsync(`127.0.0.1:${port}`, ServerCredentials.createInsecure(), (err, bound) => {
    if (err) throw err;
    process.stdout.write(`listening ${bound}\n`);
  });
}

function runLoad(target: string): Promise<LoadResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [SELF, 'load', target], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString('utf8');
    });
    child.on('exit', (code) =>
      code === 0 ? resolvePromise(JSON.parse(out) as LoadResult) : reject(new Error(`load exited ${code}`)),
    );
  });
}

/** Resolves with the first stdout line matching `pattern` (its first group). */
function waitLine(child: ChildProcess, pattern: RegExp): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    const timer = setTimeout(() => reject(new Error(`no line matching ${pattern}`)), 30_000);
    lines.on('line', (line) => {
      const m = pattern.exec(line);
      if (m) {
        clearTimeout(timer);
        resolvePromise(m[1] as string);
      }
    });
    child.on('exit', (code) => reject(new Error(`process exited ${code} before ${pattern}`)));
  });
}

async function main(): Promise<void> {
  const { dir } = await signedSample('apx-bench-grpc-');
  const children: ChildProcess[] = [];
  try {
    const worker = spawn(process.execPath, [join(REPO, 'packages/cli/dist/main.js'), 'worker'], {
      cwd: dir,
      env: { ...process.env, APX_PORT: '0', APX_GRPC_PORT: '0', APX_RELOAD_INTERVAL: '0', APX_POLICIES: 'pb-pay-v1' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    children.push(worker);
    const lines = createInterface({ input: worker.stdout as NodeJS.ReadableStream });
    const workerTarget = await new Promise<string>((resolvePromise, reject) => {
      let target = '';
      const timer = setTimeout(() => reject(new Error('the worker did not start')), 30_000);
      lines.on('line', (line) => {
        const entry = JSON.parse(line) as { message: string; grpc_address?: string };
        if (entry.grpc_address) target = entry.grpc_address;
        if (entry.message === 'policy loaded: pb-pay-v1@1.0.0' && target) {
          clearTimeout(timer);
          resolvePromise(target);
        }
      });
    });
    // The bare server answers what the worker answers to this request.
    const probe = await extAuthzClient(workerTarget);
    const answer = await probe.check(REQUEST);
    probe.close();
    if (!answer.ok || (answer.response.status as { code: number }).code !== 0)
      throw new Error(`the benchmark request is not allowed: ${JSON.stringify(answer)}`);
    const { http_response: _oneof, ...response } = answer.response;
    const bareServer = spawn(process.execPath, [SELF, 'bare', '0', JSON.stringify(response)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    children.push(bareServer);
    const bareTarget = `127.0.0.1:${await waitLine(bareServer, /^listening (\d+)$/)}`;

    const bares: LoadResult[] = [];
    const workers: LoadResult[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      bares.push(await runLoad(bareTarget));
      workers.push(await runLoad(workerTarget));
    }
    const best = (rs: LoadResult[]) => rs.reduce((a, b) => (b.rps > a.rps ? b : a));
    const b = best(bares);
    const w = best(workers);
    const line = (name: string, r: LoadResult) =>
      `  ${name.padEnd(22)} ${r.rps.toFixed(0).padStart(7)} calls/s   p50 ${r.p50.toFixed(2)} ms   p99 ${r.p99.toFixed(2)} ms   (${r.calls} calls, ${r.errors} errors)`;
    console.log(
      `Envoy ext_authz Check over gRPC, one HTTP/2 connection, ${CONCURRENCY} calls in flight, ${SECONDS} s runs, best of ${ROUNDS} alternating (node ${process.version}):`,
    );
    console.log(line('bare grpc-js (OK)', b));
    console.log(line('apx worker (decides)', w));
    console.log(
      `  throughput ratio worker/bare ${(w.rps / b.rps).toFixed(3)}; p99 ratio worker/bare ${(w.p99 / b.p99).toFixed(3)}`,
    );
  } finally {
    for (const c of children) c.kill();
    rmSync(dir, { recursive: true, force: true });
  }
}

const [mode, ...args] = process.argv.slice(2);
if (mode === 'load') await load(args[0] as string);
else if (mode === 'bare') await bare(args[0] as string, args[1] as string);
else await main();
