// Worker benchmarks (issue 4), each against a baseline measured in the same run:
// 1. POST /v1/decide under load (wrk, a separate process) on the real worker, against a
//    bare node:http server answering the same route with a same-size JSON body, both in
//    their own single Node process. Goal: worker req/s >= 0.8 x bare.
// Cold load of an artifact is measured by bench/load.ts.

import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO, signedSample } from './fixture.js';

const DURATION = process.env.BENCH_DURATION ?? '8s';

const sample = await signedSample('apx-bench-');
const { dir } = sample;

// ---- 1. HTTP under load ---------------------------------------------------------------
if (spawnSync('wrk', ['--version']).error) {
  console.log('wrk not installed (apt-get install wrk): HTTP benchmark skipped');
  process.exit(0);
}
// An allowed request with the full decision (route, identity, header mutations). A request
// with an API key would be charged to the tenant's 200 rps bucket and measure 429s instead.
const body = JSON.stringify({
  policy: 'pb-pay-v1',
  request: { method: 'GET', host: 'api.example.com', path: '/healthz', ip: '198.51.100.7', headers: { 'x-request-id': 'bench' } },
});
writeFileSync(
  join(dir, 'post.lua'),
  `wrk.method = "POST"\nwrk.body = ${JSON.stringify(body)}\nwrk.headers["Content-Type"] = "application/json"\n`,
);

// The bare server answers with the worker's own answer to this request, byte for byte.
let sampleDecision = '';
// The baseline reads and parses the body and answers the same JSON: the same work a
// decision endpoint cannot avoid, without policy evaluation.
const bare = () => `
const http = require('node:http');
const answer = ${JSON.stringify(sampleDecision)};
http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    JSON.parse(Buffer.concat(chunks).toString('utf8'));
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(answer) });
    res.end(answer);
  });
}).listen(Number(process.env.PORT), '127.0.0.1', () => console.log('ready'));
`;

async function startAndWait(child: ChildProcess, url: string, init?: RequestInit): Promise<void> {
  for (let i = 0; i < 100; i++) {
    try {
      if ((await fetch(url, init)).status < 500) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  child.kill();
  throw new Error(`server at ${url} did not start`);
}

function wrk(port: number): { rps: number; p99: string } {
  const out = spawnSync(
    'wrk',
    ['-t2', '-c64', `-d${DURATION}`, '--latency', '-s', join(dir, 'post.lua'), `http://127.0.0.1:${port}/v1/decide`],
    {
      encoding: 'utf8',
    },
  ).stdout;
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? 0);
  const p99 = /\s99%\s+(\S+)/.exec(out)?.[1] ?? '?';
  return { rps, p99 };
}

const barePort = 18181;
const workerPort = 18182;
const workerChild = spawn(process.execPath, [join(REPO, 'packages/cli/dist/main.js'), 'worker'], {
  cwd: dir,
  env: { ...process.env, APX_PORT: String(workerPort), APX_RELOAD_INTERVAL: '0' },
  stdio: 'ignore',
});
await startAndWait(workerChild, `http://127.0.0.1:${workerPort}/readyz`);
sampleDecision = await (await fetch(`http://127.0.0.1:${workerPort}/v1/decide`, { method: 'POST', body })).text();
if ((JSON.parse(sampleDecision) as { allow?: boolean }).allow !== true)
  throw new Error(`benchmark request is not allowed: ${sampleDecision}`);
const bareChild = spawn(process.execPath, ['-e', bare()], { env: { ...process.env, PORT: String(barePort) }, stdio: 'ignore' });
await startAndWait(bareChild, `http://127.0.0.1:${barePort}/v1/decide`, { method: 'POST', body });

// Alternate runs so drift on the machine hits both.
const bares: number[] = [];
const workers: number[] = [];
let bareP99 = '?';
let workerP99 = '?';
for (let round = 0; round < 2; round++) {
  const b = wrk(barePort);
  const w = wrk(workerPort);
  bares.push(b.rps);
  workers.push(w.rps);
  bareP99 = b.p99;
  workerP99 = w.p99;
}
bareChild.kill();
workerChild.kill();
const bareRps = Math.max(...bares);
const workerRps = Math.max(...workers);
console.log(`POST /v1/decide, wrk -t2 -c64 -d${DURATION}, best of 2 alternating runs (node ${process.version}):`);
console.log(`  bare node:http  ${bareRps.toFixed(0)} req/s, p99 ${bareP99}`);
console.log(`  apx worker      ${workerRps.toFixed(0)} req/s, p99 ${workerP99}`);
console.log(`  ratio ${(workerRps / bareRps).toFixed(3)} (goal >= 0.8: ${workerRps / bareRps >= 0.8 ? 'met' : 'NOT met'})`);
