// Drives the real `apx` processes for end-to-end tests: the CLI as users run it, and the
// worker as a child process whose JSON log lines and HTTP API the tests read.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { tempDir } from '@apx/core/testing/hygiene';
import { checkRequest, extAuthzClient } from '@apx/worker/test-support/ext-authz-client';

export const REPO = resolve(import.meta.dirname ?? dirname(new URL(import.meta.url).pathname), '..', '..', '..', '..');
export const MAIN = join(REPO, 'packages', 'cli', 'dist', 'main.js');
export const SHARED = resolve(process.env.APX_SHARED_DIR ?? resolve(REPO, '..', 'shared'));
export const PASSWORD = 'e2e-password';

/**
 * A new temporary directory, removed when the test process exits (each test file runs in its
 * own process), whether its tests passed or not.
 */
export function scratchDir(prefix = 'apx-e2e-'): string {
  return tempDir(prefix);
}

export interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

/**
 * The environment a test runs `apx` with: the test's own, COSIGN_PASSWORD set to the test
 * password, the audit log kept in the test's working directory (keys/audit.log: the user's
 * ~/.config/apx/audit.log, the default, is never written by tests), then `env` on top, where
 * `undefined` removes a variable (e.g. no password).
 */
function environment(env: Record<string, string | undefined>): Record<string, string> {
  const full: Record<string, string | undefined> = {
    ...process.env,
    COSIGN_PASSWORD: PASSWORD,
    APX_AUDIT_LOG: 'keys/audit.log',
    ...env,
  };
  return Object.fromEntries(Object.entries(full).filter((e): e is [string, string] => e[1] !== undefined));
}

/** Runs `apx ARGS` in `cwd` (see `environment` for the variables it gets). */
export function apx(cwd: string, args: string[], env: Record<string, string | undefined> = {}): Run {
  const r = spawnSync(process.execPath, [MAIN, ...args], { cwd, env: environment(env), encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/**
 * The same, without blocking the event loop: needed whenever the test process itself hosts
 * a server the command talks to (fake GCS, s3rver, proxies).
 */
export function apxAsync(
  cwd: string,
  args: string[],
  env: Record<string, string | undefined> = {},
  options: { killAfterMs?: number } = {},
): Promise<Run & { timedOut: boolean }> {
  const child = spawn(process.execPath, [MAIN, ...args], {
    cwd,
    env: environment(env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => {
    stdout += c.toString('utf8');
  });
  child.stderr.on('data', (c: Buffer) => {
    stderr += c.toString('utf8');
  });
  // A command that should have ended (a worker that should have refused to start) is killed
  // and reported, not waited for.
  let timedOut = false;
  const timer =
    options.killAfterMs === undefined
      ? undefined
      : setTimeout(() => {
          timedOut = true;
          child.kill('SIGKILL');
        }, options.killAfterMs);
  return new Promise((resolve) =>
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr, timedOut });
    }),
  );
}

export function ok(r: Run): Run {
  assert.equal(r.status, 0, `apx failed: ${r.stderr}`);
  return r;
}

/**
 * A scratch workspace with a signing key and the payments sample compiled and signed into
 * build/ (dev environment), plus variants on demand.
 */
export class Workspace {
  readonly dir = scratchDir('apx-e2e-');

  constructor() {
    ok(apx(this.dir, ['generate-key-pair']));
  }

  path(...parts: string[]): string {
    return join(this.dir, ...parts);
  }

  /** Compiles the payments sample (optionally as another version) into build/. */
  compilePayments(version = '1.0.0', extra: string[] = []): string {
    const source = readFileSync(join(REPO, 'configs/samples/payments-api.yaml'), 'utf8').replace(
      /version: 1\.0\.0/,
      `version: ${version}`,
    );
    const file = this.path(`payments-${version}.yaml`);
    writeFileSync(file, source);
    // Variants built with other flags go to their own folder, never over the plain build.
    const out = extra.length === 0 ? 'build' : `build${extra.join('').replace(/\W+/g, '-')}`;
    ok(apx(this.dir, ['compile', '--out', out, ...extra, file]));
    return this.path(out, `pb-pay-v1@${version}.wasm`);
  }

  /** Copies an artifact (with whatever sits beside it) into a directory store. */
  stage(store: string, artifact: string, parts: Array<'' | '.sig' | '.sigstore.json'> = ['', '.sig', '.sigstore.json']): string {
    mkdirSync(store, { recursive: true });
    const name = artifact.split('/').pop() as string;
    for (const p of parts) copyFileSync(`${artifact}${p}`, join(store, `${name}${p}`));
    return join(store, name);
  }
}

/** An HTTP answer: its status, its text, and the text parsed as JSON when it is JSON. */
export interface HttpAnswer {
  status: number;
  body: unknown;
  text: string;
}

/** GET `url`; the body parsed as JSON when it is (metrics are text). */
export async function httpGet(url: string): Promise<HttpAnswer> {
  const res = await fetch(url);
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON: the text is the body
  }
  return { status: res.status, body, text };
}

export interface LogLine {
  severity: string;
  message: string;
  [field: string]: unknown;
}

/** `apx worker` as a child process on a free port. */
export class WorkerProcess {
  readonly logs: LogLine[] = [];
  url = '';
  private readonly child: ChildProcess;
  private readonly exited: Promise<number | null>;

  private constructor(child: ChildProcess) {
    this.child = child;
    this.exited = new Promise((r) => child.on('exit', (code) => r(code)));
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
      try {
        this.logs.push(JSON.parse(line) as LogLine);
      } catch {
        this.logs.push({ severity: 'RAW', message: line });
      }
    });
  }

  static async start(cwd: string, env: Record<string, string>, command: string[] = [MAIN, 'worker']): Promise<WorkerProcess> {
    // Staging and production workers need a state directory (rollback floors): each worker
    // gets a fresh one unless the test passes its own (to keep floors across restarts).
    const stateDir = scratchDir('apx-state-');
    const child = spawn(process.execPath, command, {
      cwd,
      // No drain on stop (staging and production default to 5 s) unless the test asks for one;
      // one process unless the test asks for more (APX_WORKERS defaults to every CPU there).
      env: {
        ...process.env,
        APX_PORT: '0',
        APX_RELOAD_INTERVAL: '0',
        APX_DRAIN_SECONDS: '0',
        APX_WORKERS: '1',
        APX_STATE_DIR: stateDir,
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const worker = new WorkerProcess(child);
    const listening = await worker.waitFor((l) => l.message.startsWith('worker listening on '));
    worker.url = listening.message.slice('worker listening on '.length);
    return worker;
  }

  /** Waits (bounded: 15 s) for a log line; fails with the log so far. */
  async waitFor(match: (line: LogLine) => boolean, what = 'log line'): Promise<LogLine> {
    for (let i = 0; i < 300; i++) {
      const found = this.logs.find(match);
      if (found) return found;
      if (this.child.exitCode !== null) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`no ${what} in worker output:\n${this.logs.map((l) => JSON.stringify(l)).join('\n')}`);
  }

  /** The worker process's id (e.g. to read its memory in /proc). */
  get pid(): number {
    return this.child.pid as number;
  }

  get(path: string): Promise<HttpAnswer> {
    return httpGet(`${this.url}${path}`);
  }

  async decide(policy: string, request: Record<string, unknown>): Promise<{ status: number; body: Record<string, unknown> }> {
    const res = await fetch(`${this.url}/v1/decide`, { method: 'POST', body: JSON.stringify({ policy, request }) });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  }

  /** Sum of a metric's samples whose line starts with `prefix` (name plus labels). */
  async metric(prefix: string): Promise<number> {
    const { text } = await this.get('/metrics');
    let total = 0;
    for (const line of text.split('\n')) if (line.startsWith(prefix)) total += Number(line.split(' ').pop());
    return total;
  }

  /** Sends `signal` and returns at once (see `exit` for the outcome). */
  kill(signal: NodeJS.Signals): void {
    this.child.kill(signal);
  }

  /** The exit code once the process exits (null if a signal killed it). */
  get exit(): Promise<number | null> {
    return this.exited;
  }

  /** SIGTERM, then the exit code (null if a signal killed it). */
  async stop(): Promise<number | null> {
    this.child.kill('SIGTERM');
    return await this.exited;
  }
}

/** An allowed request to the payments sample (API key acme-prod). */
export const PAYMENTS_GET = {
  method: 'GET',
  host: 'api.example.com',
  path: '/v1/payments/123',
  ip: '198.51.100.7',
  headers: { 'x-api-key': 'demo-acme-prod-key' },
};

/**
 * A decision request whose headers are sent and acknowledged by the worker (Expect:
 * 100-continue: the worker answers 100 once it has taken the request), with its body still to
 * come: `finish()` sends the body and resolves with the answer.
 */
export async function heldDecision(
  url: string,
  body: string,
): Promise<{ finish(): Promise<{ status: number; headers: Record<string, unknown>; body: string }> }> {
  const req = request(`${url}/v1/decide`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), expect: '100-continue' },
  });
  const answer = new Promise<{ status: number; headers: Record<string, unknown>; body: string }>((resolve, reject) => {
    req.on('error', reject);
    req.on('response', (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        text += c;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
    });
  });
  req.flushHeaders();
  // The worker has the request in hand once it says 100 Continue.
  await new Promise<void>((resolve, reject) => {
    req.once('continue', () => resolve());
    answer.catch(reject);
  });
  // Half the body now; the rest when the test says.
  const half = Math.floor(body.length / 2);
  req.write(body.slice(0, half));
  return {
    finish() {
      req.end(body.slice(half));
      return answer;
    },
  };
}

/** Envoy's ext_authz over gRPC (APX_GRPC_PORT) allows the payments GET on this worker. */
export async function assertGrpcAllows(worker: WorkerProcess): Promise<void> {
  const grpcAddress = (await worker.waitFor((l) => l.message.startsWith('ext_authz gRPC listening on '))).grpc_address;
  const client = await extAuthzClient(String(grpcAddress));
  try {
    const checked = await client.check(checkRequest({ ...PAYMENTS_GET, policy: 'pb-pay-v1' }));
    assert.ok(checked.ok, JSON.stringify(checked));
    assert.equal((checked.response.status as { code: number }).code, 0);
  } finally {
    client.close();
  }
}
