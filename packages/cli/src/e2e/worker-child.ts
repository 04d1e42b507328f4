// `apx worker` as a child process with everything it prints kept (stdout log lines and
// stderr), its exit watched, and an environment stripped of the cloud credentials and
// settings of the machine running the tests, so a test states exactly which it gives.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { type HttpAnswer, httpGet, type LogLine, MAIN } from './harness.js';

/** Variables that would let a client library find credentials or settings of this machine. */
const AMBIENT =
  /^(APX_|ALLOWED_POLICY_VERSIONS$|AWS_|GOOGLE_|GCE_|GCLOUD_|CLOUDSDK_|METADATA_SERVER|STORAGE_EMULATOR|VAULT_|COSIGN_)/;

/** The test process's environment without AMBIENT variables, HOME in a fresh directory, then `env`. */
export function cleanEnvironment(home: string, env: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !AMBIENT.test(k)) out[k] = v;
  // No drain on stop (staging and production default to 5 s) unless the test asks for one.
  // One process unless the test asks for more (APX_WORKERS defaults to every CPU in staging and production).
  return { ...out, HOME: home, APX_PORT: '0', APX_RELOAD_INTERVAL: '0', APX_DRAIN_SECONDS: '0', APX_WORKERS: '1', ...env };
}

export class WorkerChild {
  readonly lines: string[] = [];
  stderr = '';
  url = '';
  readonly exited: Promise<number | null>;
  exitCode: number | null | undefined;
  readonly #child: ChildProcess;
  readonly #home: string;

  private constructor(cwd: string, env: Record<string, string>, args: string[]) {
    this.#home = mkdtempSync(join(tmpdir(), 'apx-home-'));
    this.#child = spawn(process.execPath, [MAIN, 'worker', ...args], {
      cwd,
      env: cleanEnvironment(this.#home, env),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.exited = new Promise((resolve) =>
      this.#child.on('exit', (code) => {
        this.exitCode = code;
        resolve(code);
      }),
    );
    createInterface({ input: this.#child.stdout as NodeJS.ReadableStream }).on('line', (line) => this.lines.push(line));
    this.#child.stderr?.on('data', (c: Buffer) => {
      this.stderr += c.toString('utf8');
    });
  }

  /** Starts `apx worker ARGS`; resolves once it listens, or when it exits (check exitCode). */
  static async start(cwd: string, env: Record<string, string>, args: string[] = []): Promise<WorkerChild> {
    const w = new WorkerChild(cwd, env, args);
    const listening = await Promise.race([
      w.waitFor((l) => l.message.startsWith('worker listening on '), 'worker listening on', 30_000),
      w.exited.then(() => undefined),
    ]);
    if (listening) w.url = listening.message.slice('worker listening on '.length);
    return w;
  }

  /** The stdout lines that are JSON log lines (others are kept as RAW). */
  get logs(): LogLine[] {
    return this.lines.map((line) => {
      try {
        return JSON.parse(line) as LogLine;
      } catch {
        return { severity: 'RAW', message: line };
      }
    });
  }

  /** Everything the process printed. */
  get output(): string {
    return `${this.lines.join('\n')}\n${this.stderr}`;
  }

  /** Waits (bounded) for a log line matching; fails with the output so far, or as soon as the process exits. */
  async waitFor(match: (line: LogLine) => boolean, what: string, timeoutMs = 20_000): Promise<LogLine> {
    const until = Date.now() + timeoutMs;
    while (Date.now() < until) {
      const found = this.logs.find(match);
      if (found) return found;
      if (this.exitCode !== undefined) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const state = this.exitCode === undefined ? 'still running' : `exited with ${this.exitCode}`;
    throw new Error(`no ${what} (worker ${state}); output:\n${this.output}`);
  }

  get(path: string): Promise<HttpAnswer> {
    return httpGet(`${this.url}${path}`);
  }

  /** SIGTERM, then the exit code; removes the HOME directory. */
  async stop(): Promise<number | null> {
    if (this.exitCode === undefined) this.#child.kill('SIGTERM');
    const code = await this.exited;
    rmSync(this.#home, { recursive: true, force: true });
    return code;
  }
}
