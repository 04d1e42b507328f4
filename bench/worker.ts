// Worker HTTP benchmark (issues 4, 17): POST /v1/decide under load (wrk, a separate process)
// on the real worker (the CLI's `apx worker`), against a bare node:http server doing the work
// any decision endpoint cannot avoid (read the body, JSON.parse it, answer a small JSON), in
// the same run, alternating rounds so that drift on the machine hits both.
// - The bodies vary: a few thousand distinct requests (IPv4 and IPv6 client addresses, API
//   keys good and bad, paths, methods), pregenerated and cycled through by a wrk Lua script,
//   so no per-request cache on either side answers from a handful of inputs.
// - 1 process: the worker as started by default in dev, against one bare node:http process.
// - N processes (N = os.availableParallelism()): the worker with APX_WORKERS=N against a bare
//   node:http `node:cluster` of N. How many processes really serve is counted from the
//   per-process prefix of X-Apx-Decision-Id over fresh connections, so a worker that ignores
//   APX_WORKERS is reported as such.
// Prints the median of BENCH_RUNS rounds (default 3), each goal beside its ratio (>= 0.85).
// Drives only the CLI as a process and HTTP, so it also runs against older commits.
// Cold load of an artifact is measured by bench/load.ts.

import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { REPO, signedSample } from './fixture.js';

const DURATION = process.env.BENCH_DURATION ?? '8s';
const RUNS = Math.max(1, Number(process.env.BENCH_RUNS ?? 3));
const GOAL = 0.85;
const N = availableParallelism();
const DISTINCT = 4096;

if (spawnSync('wrk', ['--version']).error) {
  console.log('wrk not installed (apt-get install wrk): HTTP benchmark skipped');
  process.exit(0);
}

const { dir } = await signedSample('apx-bench-');

// ---- the requests ---------------------------------------------------------------------
// A fixed pseudo-random sequence, so every run (and every commit measured) sends the same.
let seed = 0x2f6b_1a3d;
const rand = (n: number) => {
  seed = (Math.imul(seed, 1_103_515_245) + 12_345) >>> 0;
  return (seed >>> 8) % n;
};
const pick = <T>(xs: readonly T[]): T => xs[rand(xs.length)] as T;
const ipv4 = () => `${pick([198, 192, 100, 10, 172])}.${rand(256)}.${rand(256)}.${1 + rand(254)}`;
const ipv6 = () => `2001:db8:${rand(0x10000).toString(16)}:${rand(0x10000).toString(16)}::${(1 + rand(0xfffe)).toString(16)}`;
const hex = (n: number) => Array.from({ length: n }, () => rand(16).toString(16)).join('');

/**
 * The mix a partner-facing gateway sees: anonymous health checks, keyed partners reading and
 * writing (allowed, denied by scope or plan, or rate limited once their tenant's bucket is
 * empty), unknown keys, missing credentials, addresses on the deny list. JWTs are left out:
 * the sample's issuer is not reachable here (bench:decide covers token-bearing requests).
 */
function oneRequest(): Record<string, unknown> {
  const ip = rand(3) === 0 ? ipv6() : ipv4();
  const id = `req-${hex(12)}`;
  const kind = rand(100);
  if (kind < 30) return { method: 'GET', host: 'api.example.com', path: '/healthz', ip, headers: { 'x-request-id': id } };
  if (kind < 35) {
    const denied = rand(2) === 0 ? `203.0.113.${rand(256)}` : `2001:db8:bad:${rand(0x10000).toString(16)}::1`;
    return {
      method: 'GET',
      host: 'api.example.com',
      path: `/v1/payments/pay_${hex(8)}`,
      ip: denied,
      headers: { 'x-request-id': id },
    };
  }
  const method = pick(['GET', 'GET', 'POST']);
  const path = pick([
    '/v1/payments',
    `/v1/payments/pay_${hex(10)}`,
    `/v1/payments/pay_${hex(6)}/captures`,
    '/v1/refunds',
    `/v1/refunds/re_${hex(8)}`,
  ]);
  const headers: Record<string, string> = {
    'x-request-id': id,
    'user-agent': pick(['partner-sdk/2.1', 'curl/8.5', 'okhttp/4.12']),
  };
  if (method === 'POST' && rand(4) !== 0) headers['idempotency-key'] = hex(16);
  if (kind < 70) headers['x-api-key'] = pick(['demo-acme-prod-key', 'demo-globex-key']);
  else if (kind < 90) headers['x-api-key'] = `unknown-${hex(20)}`;
  return { method, host: pick(['api.example.com', 'api.example.com:443']), path, ip, headers, bodySize: rand(4096) };
}

const bodies = Array.from({ length: DISTINCT }, () => JSON.stringify({ policy: 'pb-pay-v1', request: oneRequest() }));
const bodiesFile = join(dir, 'bodies.txt');
writeFileSync(bodiesFile, `${bodies.join('\n')}\n`);
// Each wrk thread formats every request once, then cycles through them from its own offset.
const script = join(dir, 'decide.lua');
writeFileSync(
  script,
  `local threads = 0
function setup(thread)
  thread:set("offset", threads * 997)
  threads = threads + 1
end
local requests = {}
local i = 0
function init(args)
  local headers = { ["Content-Type"] = "application/json" }
  for line in io.lines(${JSON.stringify(bodiesFile)}) do
    requests[#requests + 1] = wrk.format("POST", "/v1/decide", headers, line)
  end
  i = (offset or 0) % #requests
end
function request()
  i = i + 1
  if i > #requests then i = 1 end
  return requests[i]
end
`,
);

// ---- the servers ----------------------------------------------------------------------
// The baseline: read the body, parse it, answer a small JSON naming what was asked.
const bareSource = (processes: number) => `
const cluster = require('node:cluster');
const http = require('node:http');
if (${processes} > 1 && cluster.isPrimary) {
  for (let i = 0; i < ${processes}; i++) cluster.fork();
} else {
  http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const input = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      const answer = JSON.stringify({ allow: true, status: 200, reason: 'allowed', policy: input.policy, path: input.request.path, ip: input.request.ip ?? null });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(answer) });
      res.end(answer);
    });
  }).listen(Number(process.env.PORT), '127.0.0.1');
}
`;

const children = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of children) c.kill();
});

async function waitFor(child: ChildProcess, url: string, init?: RequestInit): Promise<void> {
  for (let i = 0; i < 150; i++) {
    if (child.exitCode !== null) throw new Error(`server for ${url} exited with ${child.exitCode}`);
    try {
      if ((await fetch(url, init)).status < 500) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`server at ${url} did not start`);
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode === null && child.signalCode === null) {
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
  }
  children.delete(child);
}

function startWorker(port: number, processes: number): ChildProcess {
  const child = spawn(process.execPath, [join(REPO, 'packages/cli/dist/main.js'), 'worker'], {
    cwd: dir,
    env: { ...process.env, APX_PORT: String(port), APX_RELOAD_INTERVAL: '0', APX_WORKERS: String(processes) },
    stdio: 'ignore',
  });
  children.add(child);
  return child;
}

function startBare(port: number, processes: number): ChildProcess {
  // A file, not -e: node:cluster forks the primary's script.
  const file = join(dir, `bare-${processes}.cjs`);
  writeFileSync(file, bareSource(processes));
  const child = spawn(process.execPath, [file], { env: { ...process.env, PORT: String(port) }, stdio: 'ignore' });
  children.add(child);
  return child;
}

/** A forward-auth call on a fresh connection: the decision id's prefix names the serving process. */
function decisionIdPrefix(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: '127.0.0.1',
        port,
        path: '/v1/authz/pb-pay-v1',
        agent: false,
        headers: {
          connection: 'close',
          'x-forwarded-uri': '/healthz',
          'x-forwarded-method': 'GET',
          'x-forwarded-host': 'api.example.com',
        },
      },
      (res) => {
        res.resume();
        resolve(String(res.headers['x-apx-decision-id'] ?? '').split('-')[0] as string);
      },
    );
    req.on('error', reject);
    req.end();
  });
}

async function servingProcesses(port: number): Promise<number> {
  const prefixes = new Set<string>();
  for (let i = 0; i < 48; i++) prefixes.add(await decisionIdPrefix(port));
  return prefixes.size;
}

// CPU time of a server and its descendants (Linux /proc): on a shared machine, CPU per request
// says more than req/s, which drifts with whatever else runs.
const TICKS = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout?.trim() || 100);
function cpuSeconds(root: number): number | undefined {
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((p) => /^\d+$/.test(p));
  } catch {
    return undefined;
  }
  const stats = new Map<number, { ppid: number; ticks: number }>();
  for (const p of pids) {
    try {
      const text = readFileSync(`/proc/${p}/stat`, 'utf8');
      const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
      stats.set(Number(p), { ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]) });
    } catch {
      // gone meanwhile
    }
  }
  const tree = new Set([root]);
  for (let grew = true; grew; ) {
    grew = false;
    for (const [pid, st] of stats)
      if (!tree.has(pid) && tree.has(st.ppid)) {
        tree.add(pid);
        grew = true;
      }
  }
  let ticks = 0;
  for (const pid of tree) ticks += stats.get(pid)?.ticks ?? 0;
  return stats.has(root) ? ticks / TICKS : undefined;
}

function wrk(port: number, server: ChildProcess): { rps: number; p99: string; non2xx: number; cpuUs?: number } {
  const cpu0 = cpuSeconds(server.pid as number);
  const out = spawnSync(
    'wrk',
    ['-t2', '-c64', `-d${DURATION}`, '--latency', '-s', script, `http://127.0.0.1:${port}/v1/decide`],
    {
      encoding: 'utf8',
    },
  ).stdout;
  const cpu1 = cpuSeconds(server.pid as number);
  const requests = Number(/(\d+) requests in/.exec(out)?.[1] ?? 0);
  return {
    rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? 0),
    p99: /\s99%\s+(\S+)/.exec(out)?.[1] ?? '?',
    non2xx: Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0),
    ...(cpu0 !== undefined && cpu1 !== undefined && requests > 0 ? { cpuUs: ((cpu1 - cpu0) * 1e6) / requests } : {}),
  };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

/** What the worker decides for the first 400 bodies, sent one at a time: the mix the load carries. */
async function decisionMix(port: number): Promise<string> {
  const counts = new Map<string, number>();
  for (const body of bodies.slice(0, 400)) {
    const res = await fetch(`http://127.0.0.1:${port}/v1/decide`, { method: 'POST', body });
    const d = (await res.json()) as { allow?: boolean; status?: number };
    const key = res.status !== 200 ? `HTTP ${res.status}` : d.allow ? 'allow' : `deny ${d.status}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return [...counts]
    .sort((a, b) => b[1] - a[1])
    .map(([k, n]) => `${k} ${(n / 4).toFixed(0)}%`)
    .join(', ');
}

async function measure(processes: number, workerPort: number, barePort: number) {
  const worker = startWorker(workerPort, processes);
  await waitFor(worker, `http://127.0.0.1:${workerPort}/readyz`);
  const bare = startBare(barePort, processes);
  await waitFor(bare, `http://127.0.0.1:${barePort}/v1/decide`, { method: 'POST', body: bodies[0] as string });
  const serving = await servingProcesses(workerPort);
  const mix = processes === 1 ? await decisionMix(workerPort) : undefined;
  const bares: number[] = [];
  const workers: number[] = [];
  const bareCpu: number[] = [];
  const workerCpu: number[] = [];
  let bareP99 = '?';
  let workerP99 = '?';
  let workerNon2xx = 0;
  for (let round = 0; round < RUNS; round++) {
    const b = wrk(barePort, bare);
    const w = wrk(workerPort, worker);
    bares.push(b.rps);
    workers.push(w.rps);
    if (b.cpuUs !== undefined) bareCpu.push(b.cpuUs);
    if (w.cpuUs !== undefined) workerCpu.push(w.cpuUs);
    bareP99 = b.p99;
    workerP99 = w.p99;
    workerNon2xx += w.non2xx;
  }
  await stop(worker);
  await stop(bare);
  const cpu =
    bareCpu.length === RUNS && workerCpu.length === RUNS ? { bare: median(bareCpu), worker: median(workerCpu) } : undefined;
  return { serving, mix, bare: median(bares), worker: median(workers), bares, workers, bareP99, workerP99, workerNon2xx, cpu };
}

function report(title: string, r: Awaited<ReturnType<typeof measure>>) {
  const ratio = r.worker / r.bare;
  const all = (xs: number[]) => xs.map((x) => x.toFixed(0)).join(', ');
  console.log(title);
  console.log(`  bare node:http  ${r.bare.toFixed(0)} req/s (runs: ${all(r.bares)}), p99 ${r.bareP99}`);
  console.log(`  apx worker      ${r.worker.toFixed(0)} req/s (runs: ${all(r.workers)}), p99 ${r.workerP99}`);
  console.log(`  ratio ${ratio.toFixed(3)} (goal >= ${GOAL}: ${ratio >= GOAL ? 'met' : 'NOT met'})`);
  if (r.cpu)
    console.log(
      `  CPU per request (server processes, user+sys, median): bare ${r.cpu.bare.toFixed(1)} µs, worker ${r.cpu.worker.toFixed(1)} µs; bare/worker ${(r.cpu.bare / r.cpu.worker).toFixed(3)} (what the ratio tends to when the servers, not the machine, are the limit)`,
    );
}

const how = `wrk -t2 -c64 -d${DURATION}, ${DISTINCT} distinct bodies, median of ${RUNS} alternating runs (node ${process.version}, ${N} CPUs)`;
const one = await measure(1, 18182, 18181);
console.log(
  `decisions for the first 400 bodies, sent one at a time: ${one.mix} (under load, keyed requests past their tenant's 200 rps are answered 429)`,
);
report(`POST /v1/decide, 1 process each, ${how}:`, one);
if (N > 1) {
  const many = await measure(N, 18184, 18183);
  report(`POST /v1/decide, ${N} processes each (APX_WORKERS=${N}; bare: node:cluster of ${N}), ${how}:`, many);
  if (many.serving < N)
    console.log(
      `  NOTE: only ${many.serving} worker process(es) answered (distinct decision-id prefixes over 48 fresh connections): this worker does not run APX_WORKERS=${N} processes, so this row compares ${many.serving} against ${N}`,
    );
  else console.log(`  ${many.serving} worker processes answered (distinct decision-id prefixes over 48 fresh connections)`);
}
process.exit(0);
