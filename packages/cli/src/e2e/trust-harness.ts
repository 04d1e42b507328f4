// The trust repository end to end, shared by the trust-* e2e tests: throwaway keys made by
// `apx generate-key-pair` (empty password), a repository made by `apx trust init` with 2-of-3
// production approvers, sample artifacts compiled, signed, published and approved by real
// `apx` processes, and production workers (`apx worker` child processes) whose JSON log lines
// and /metrics the tests read. Every CLI run is asynchronous: the test process keeps reading
// worker logs and sending requests while `apx` runs.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, type KeyObject } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { PublicKey } from '@apx/core';
import { decryptPrivateKey, FileSigner } from '@apx/sign';
import { LocalStore } from '@apx/storage';
import type { MetadataSigner } from '@apx/trust';
import { forge, signedOf } from '@apx/trust/testing/forge';
import { apxAsync, type HttpAnswer, httpGet, type LogLine, MAIN, PAYMENTS_GET, REPO, type Run } from './harness.js';

export type { LogLine, Run };
export { PAYMENTS_GET };

/** How long a test waits for something a worker should do (polls; never a fixed sleep). */
export const DEADLINE_MS = 20_000;
/** The runbook's production allow-list. */
export const ALLOWED = '1.0.0,1.1.0';
/** The keys every repository uses; tests add their own (rotations, a mirror). */
export const BASE_KEYS = [
  'root',
  'targets',
  'snapshot',
  'timestamp',
  'dev',
  'staging',
  'alice',
  'bob',
  'carol',
  'signer',
  'devsigner',
];
/** Two of the three production approvers and the online keys: what publishes a production change. */
export const PRODUCTION = ['alice', 'bob', 'snapshot', 'timestamp'];
export const ONLINE = ['snapshot', 'timestamp'];

type Json = Record<string, unknown>;

/** `apx ARGS` with an empty key password, without blocking the event loop. */
export function apxRun(cwd: string, args: string[], env: Record<string, string> = {}): Promise<Run> {
  return apxAsync(cwd, args, { COSIGN_PASSWORD: '', ...env });
}

export function ok(r: Run): Run {
  assert.equal(r.status, 0, `apx failed (${r.status}): ${r.stderr}`);
  return r;
}

/** A failed command: one `ERROR: ` line containing `includes`, exit 1. */
export function fails(r: Run, includes: string): void {
  assert.equal(r.status, 1, `exit status; stderr: ${r.stderr}`);
  const last = r.stderr.trimEnd().split('\n').at(-1) ?? '';
  assert.ok(last.startsWith('ERROR: ') && last.includes(includes), `expected "${includes}" in: ${r.stderr}`);
}

/** Runs `tasks` with at most `width` at a time (keeps a 2-core machine responsive). */
async function bounded<T>(width: number, tasks: Array<() => Promise<T>>): Promise<T[]> {
  const out: T[] = new Array(tasks.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(width, tasks.length) }, async () => {
      while (next < tasks.length) {
        const i = next++;
        out[i] = await (tasks[i] as () => Promise<T>)();
      }
    }),
  );
  return out;
}

/** Polls `probe` until it returns a value (not undefined) or the deadline passes. */
export async function poll<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, ms = DEADLINE_MS): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * The workspace every repository of a test file shares: keys, the payments sample as 1.0.0 and
 * 1.1.0 compiled for production and signed by keys/signer.key, and a template store holding a
 * trust repository (production: 2 of alice, bob, carol; signer trusted; 1.0.0 published and
 * approved; dev: devsigner trusted). Each test clones the template.
 */
export class TrustFixture {
  readonly dir: string;
  readonly template: string;
  readonly rootFile: string;
  private readonly clones: string[] = [];

  private constructor(dir: string) {
    this.dir = dir;
    this.template = join(dir, 'template');
    this.rootFile = join(dir, 'root.json');
  }

  static async create(extraKeys: string[] = []): Promise<TrustFixture> {
    const f = new TrustFixture(mkdtempSync(join(tmpdir(), 'apx-trust-fixture-')));
    const keys = [...BASE_KEYS, ...extraKeys];
    await bounded(
      2,
      keys.map((k) => async () => ok(await f.apx(['generate-key-pair', '--output-key-prefix', `keys/${k}`]))),
    );
    // Compiling does not need the repository: in parallel with its set-up.
    const compiled = bounded(1, [() => f.compile('1.0.0'), () => f.compile('1.1.0')]);
    const k = (names: string[]) => names.flatMap((n) => ['--key', `keys/${n}.key`]);
    const store = ['--store', f.template];
    ok(
      await f.apx([
        'trust',
        'init',
        ...store,
        ...['--root-key', 'keys/root.key', '--targets-key', 'keys/targets.key'],
        ...['--snapshot-key', 'keys/snapshot.key', '--timestamp-key', 'keys/timestamp.key'],
        ...['--approver', 'dev=keys/dev.pub', '--approver', 'staging=keys/staging.pub'],
        ...['--approver', 'production=keys/alice.pub', '--approver', 'production=keys/bob.pub'],
        ...['--approver', 'production=keys/carol.pub', '--threshold', 'production=2'],
        ...k(['dev', 'staging', 'alice', 'bob']),
      ]),
    );
    ok(await f.apx(['trust', 'signer', 'add', '--env', 'production', 'keys/signer.pub', ...store, ...k(PRODUCTION)]));
    ok(await f.apx(['trust', 'signer', 'add', '--env', 'dev', 'keys/devsigner.pub', ...store, ...k(['dev', ...ONLINE])]));
    const [v100] = await compiled;
    f.publish(f.template, v100 as string);
    ok(await f.apx(['trust', 'approve', 'pb-pay-v1@1.0.0', '--env', 'production', ...store, ...k(PRODUCTION)]));
    cpSync(join(f.template, 'tuf', '1.root.json'), f.rootFile);
    return f;
  }

  apx(args: string[], env: Record<string, string> = {}): Promise<Run> {
    return apxRun(this.dir, args, { APX_AUDIT_LOG: join(this.dir, 'audit.log'), ...env });
  }

  key(name: string): string {
    return join(this.dir, 'keys', `${name}.key`);
  }

  /** The APX key id (hex SHA-256 of the public key) of keys/NAME.pub. */
  keyId(name: string): string {
    return PublicKey.fromPem(readFileSync(join(this.dir, 'keys', `${name}.pub`), 'utf8')).keyId;
  }

  /** keys/NAME.key as a signer (TUF metadata or artifacts), as an attacker holding it would use it. */
  signer(name: string): Promise<MetadataSigner> {
    return FileSigner.open(this.key(name), async () => '', `keys/${name}.key`);
  }

  async privateKey(name: string): Promise<KeyObject> {
    return decryptPrivateKey(readFileSync(this.key(name), 'utf8'), '', `keys/${name}.key`);
  }

  /**
   * Compiles a sample (default: payments) as VERSION for ENV, signed with keys/KEY.key, into
   * build/ENV-KEY[-TAG]/; `edit` changes the YAML first. Returns the .wasm path.
   */
  async compile(
    version: string,
    options: { env?: string; key?: string; sample?: string; tag?: string; edit?: (yaml: string) => string } = {},
  ): Promise<string> {
    const { env = 'production', key = 'signer', sample = 'payments-api', tag } = options;
    let yaml = readFileSync(join(REPO, 'configs', 'samples', `${sample}.yaml`), 'utf8');
    if (sample === 'payments-api') yaml = yaml.replace(/version: 1\.0\.0/, `version: ${version}`);
    if (options.edit) yaml = options.edit(yaml);
    const name = `${sample}-${version}${tag ? `-${tag}` : ''}`;
    mkdirSync(join(this.dir, 'src'), { recursive: true });
    writeFileSync(join(this.dir, 'src', `${name}.yaml`), yaml);
    const out = `build/${env}-${key}${tag ? `-${tag}` : ''}`;
    const r = ok(await this.apx(['compile', '--env', env, '--key', `keys/${key}.key`, '--out', out, `src/${name}.yaml`]));
    const wasm = /✓ Compiled: (\S+\.wasm)/.exec(r.stdout)?.[1];
    assert.ok(wasm, r.stdout);
    return join(this.dir, wasm);
  }

  /** The production build of the payments sample at VERSION (signed by keys/signer.key). */
  build(version: string): string {
    return join(this.dir, 'build', 'production-signer', `pb-pay-v1@${version}.wasm`);
  }

  /** Copies an artifact and its .sig and .sigstore.json into a directory store, optionally renamed. */
  publish(store: string, wasm: string, as = basename(wasm)): void {
    mkdirSync(store, { recursive: true });
    for (const suffix of ['', '.sig', '.sigstore.json']) {
      if (existsSync(`${wasm}${suffix}`)) cpSync(`${wasm}${suffix}`, join(store, `${as}${suffix}`));
    }
  }

  /** A new repository: a copy of the template store (same keys, same metadata). */
  clone(): TrustRepo {
    const dir = mkdtempSync(join(tmpdir(), 'apx-trust-repo-'));
    this.clones.push(dir);
    cpSync(this.template, join(dir, 'store'), { recursive: true });
    return new TrustRepo(this, dir);
  }

  async cleanup(): Promise<void> {
    await TrustWorker.stopAll();
    for (const d of [...this.clones, this.dir]) rmSync(d, { recursive: true, force: true });
  }
}

/** One trust repository in a directory store, and the production workers that read it. */
export class TrustRepo {
  readonly fixture: TrustFixture;
  readonly dir: string;
  readonly store: string;

  constructor(fixture: TrustFixture, dir: string) {
    this.fixture = fixture;
    this.dir = dir;
    this.store = join(dir, 'store');
  }

  /** `apx trust SUB... --store STORE --key keys/K.key...` */
  trust(sub: string[], keys: string[] = PRODUCTION, store = this.store): Promise<Run> {
    return this.fixture.apx(['trust', ...sub, '--store', store, ...keys.flatMap((k) => ['--key', `keys/${k}.key`])]);
  }

  async approve(artifact: string, keys: string[] = PRODUCTION, env = 'production'): Promise<Run> {
    return ok(await this.trust(['approve', artifact, '--env', env], keys));
  }

  async revoke(ref: string, reason: string, keys: string[] = PRODUCTION): Promise<Run> {
    return ok(await this.trust(['revoke', ref, '--env', 'production', '--reason', reason], keys));
  }

  /** `apx trust publish` (the heartbeat); returns the timestamp version it published. */
  async heartbeat(expires?: string, keys: string[] = ONLINE): Promise<number> {
    const r = ok(await this.trust(['publish', '--json', ...(expires ? ['--expires', `timestamp=${expires}`] : [])], keys));
    return (JSON.parse(r.stdout) as { timestamp: number }).timestamp;
  }

  publish(wasm: string, as?: string): void {
    this.fixture.publish(this.store, wasm, as);
  }

  path(name: string): string {
    return join(this.store, name);
  }

  read(name: string): Buffer {
    return readFileSync(this.path(name));
  }

  write(name: string, bytes: Uint8Array | string): void {
    mkdirSync(dirname(this.path(name)), { recursive: true });
    writeFileSync(this.path(name), bytes);
  }

  /** The current versions of the published metadata (what tuf/timestamp.json leads to). */
  async current(): Promise<{ timestamp: number; snapshot: number; roles: Record<string, number> }> {
    const store = new LocalStore({ root: this.store });
    const ts = await signedOf(store, 'tuf/timestamp.json');
    const snapshot = (ts.meta as Record<string, { version: number }>)['snapshot.json']?.version as number;
    const snap = await signedOf(store, `tuf/${snapshot}.snapshot.json`);
    const roles = Object.fromEntries(
      Object.entries(snap.meta as Record<string, { version: number }>).map(([f, m]) => [f.replace(/\.json$/, ''), m.version]),
    );
    return { timestamp: ts.version as number, snapshot, roles };
  }

  /** forgeEnvironment adding one approval: the artifact `name` in the store, by length and SHA-256. */
  forgeApproval(
    env: string,
    name: string,
    signers: string[],
    rewrite?: (file: { signed: Json; signatures: Json[] }) => void,
  ): Promise<number> {
    const build = this.read(name);
    const target = { length: build.byteLength, hashes: { sha256: createHash('sha256').update(build).digest('hex') } };
    return this.forgeEnvironment(
      env,
      (role) => {
        (role.targets as Record<string, unknown>)[name] = target;
      },
      signers,
      rewrite,
    );
  }

  /**
   * What an attacker holding `signers` (key names) can publish: the next version of ENV's role,
   * changed by `change`, signed by those keys, named by a new snapshot and timestamp signed
   * with the online keys (assumed compromised too: the worst case).
   */
  async forgeEnvironment(
    env: string,
    change: (signed: Json) => void,
    signers: string[],
    rewrite: (file: { signed: Json; signatures: Json[] }) => void = () => undefined,
  ): Promise<number> {
    const store = new LocalStore({ root: this.store });
    const ts = await signedOf(store, 'tuf/timestamp.json');
    const snapVersion = (ts.meta as Record<string, { version: number }>)['snapshot.json']?.version as number;
    const snap = await signedOf(store, `tuf/${snapVersion}.snapshot.json`);
    const envVersion = (snap.meta as Record<string, { version: number }>)[`${env}.json`]?.version as number;
    const role = structuredClone(await signedOf(store, `tuf/${envVersion}.${env}.json`));
    role.version = envVersion + 100; // past anything the real repository publishes in a test
    change(role);
    const signed = await forge(env, role, await Promise.all(signers.map((s) => this.fixture.signer(s))));
    const file = JSON.parse(signed.toString('utf8')) as { signed: Json; signatures: Json[] };
    rewrite(file);
    const roleBytes = Buffer.from(JSON.stringify(file));
    this.write(`tuf/${role.version}.${env}.json`, roleBytes);
    const meta = { ...(snap.meta as Json), [`${env}.json`]: fileMeta(role.version as number, roleBytes) };
    const snapshot = { ...snap, version: snapVersion + 100, meta };
    const snapBytes = await forge('snapshot', snapshot, [await this.fixture.signer('snapshot')]);
    this.write(`tuf/${snapshot.version}.snapshot.json`, snapBytes);
    await this.forgeTimestamp({ meta: { 'snapshot.json': fileMeta(snapshot.version, snapBytes) } });
    return role.version as number;
  }

  /** tuf/timestamp.json with `changes` (version + 100 by default), signed with keys/KEY.key. */
  async forgeTimestamp(changes: Json, key = 'timestamp'): Promise<Buffer> {
    const ts = await signedOf(new LocalStore({ root: this.store }), 'tuf/timestamp.json');
    const bytes = await forge('timestamp', { ...ts, version: (ts.version as number) + 100, ...changes }, [
      await this.fixture.signer(key),
    ]);
    this.write('tuf/timestamp.json', bytes);
    return bytes;
  }

  stateDir(name = 'state'): string {
    return join(this.dir, name);
  }

  /** A production worker on this repository (trust repository mode); `env` adds or overrides settings. */
  worker(env: Record<string, string> = {}, state = 'state'): Promise<TrustWorker> {
    return TrustWorker.start(this.fixture.dir, {
      APX_ENV: 'production',
      APX_STORE: this.store,
      APX_TRUST_REPOSITORY: 'store',
      APX_TRUST_ROOT: this.fixture.rootFile,
      APX_STATE_DIR: this.stateDir(state),
      ALLOWED_POLICY_VERSIONS: ALLOWED,
      APX_RELOAD_INTERVAL: '1',
      ...env,
    });
  }
}

function fileMeta(version: number, bytes: Buffer): Json {
  return { version, length: bytes.byteLength, hashes: { sha256: createHash('sha256').update(bytes).digest('hex') } };
}

/** A line matcher: `message` equal to a string, or matching a RegExp. */
export type MessageMatch = string | RegExp;
const matches = (m: MessageMatch, text: string) => (typeof m === 'string' ? text === m : m.test(text));

/** `apx worker` as a child process on a free port; every one started is stopped by stopAll(). */
export class TrustWorker {
  private static readonly running = new Set<TrustWorker>();
  readonly logs: LogLine[] = [];
  url = '';
  private readonly child: ChildProcess;
  private readonly exited: Promise<void>;

  private constructor(child: ChildProcess) {
    this.child = child;
    this.exited = new Promise((r) => child.once('exit', () => r()));
    const push = (raw: boolean) => (line: string) => {
      try {
        if (raw) throw new Error('stderr');
        this.logs.push(JSON.parse(line) as LogLine);
      } catch {
        this.logs.push({ severity: 'RAW', message: line });
      }
    };
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', push(false));
    createInterface({ input: child.stderr as NodeJS.ReadableStream }).on('line', push(true));
  }

  static async start(cwd: string, env: Record<string, string>): Promise<TrustWorker> {
    // Only the settings the test gives: nothing inherited may change the worker's mode.
    const inherited = Object.fromEntries(
      Object.entries(process.env).filter(([k]) => !k.startsWith('APX_') && k !== 'ALLOWED_POLICY_VERSIONS'),
    );
    const child = spawn(process.execPath, [MAIN, 'worker'], {
      cwd,
      // One process unless the test asks for more (APX_WORKERS defaults to every CPU in production).
      env: { ...inherited, APX_PORT: '0', APX_WORKERS: '1', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const worker = new TrustWorker(child);
    TrustWorker.running.add(worker);
    const listening = await worker.waitFor((l) => l.message.startsWith('worker listening on '), 'listening');
    worker.url = listening.message.slice('worker listening on '.length);
    return worker;
  }

  static async stopAll(): Promise<void> {
    await Promise.all([...TrustWorker.running].map((w) => w.stop()));
  }

  /** The number of log lines so far: waitFor(…, { from: mark }) looks only at later lines. */
  mark(): number {
    return this.logs.length;
  }

  lines(from = 0, match: (l: LogLine) => boolean = () => true): LogLine[] {
    return this.logs.slice(from).filter(match);
  }

  /** Waits (bounded) for a log line from `from` on; fails with the log so far. */
  async waitFor(match: (line: LogLine) => boolean, what: string, options: { from?: number; ms?: number } = {}): Promise<LogLine> {
    const end = Date.now() + (options.ms ?? DEADLINE_MS);
    for (;;) {
      const found = this.logs.slice(options.from ?? 0).find(match);
      if (found) return found;
      if (this.child.exitCode !== null || this.child.signalCode !== null || Date.now() > end) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const tail = this.logs
      .slice(-60)
      .map((l) => JSON.stringify(l))
      .join('\n');
    throw new Error(`no ${what} in worker output (last lines):\n${tail}`);
  }

  /** The message of a line that says `message`, from `from` on. */
  waitForMessage(message: MessageMatch, what: string, from = 0, ms?: number): Promise<LogLine> {
    return this.waitFor((l) => matches(message, l.message), what, { from, ...(ms ? { ms } : {}) });
  }

  /** Waits until the worker has applied trust metadata with at least this timestamp version. */
  waitForTrust(timestamp: number, from = 0): Promise<LogLine> {
    return this.waitFor(
      (l) =>
        l.message.startsWith('trust repository in force: ') &&
        ((l.trust_versions as { timestamp?: number } | undefined)?.timestamp ?? 0) >= timestamp,
      `trust metadata with timestamp version ${timestamp} in force`,
      { from },
    );
  }

  /**
   * A refused trust refresh: one ERROR line `trust repository refused, keeping …` with its
   * reason code and, for attacks, `security_event: trust_metadata_refused`, and its metric.
   */
  async expectTrustRefused(reason: string, from: number, message?: RegExp): Promise<LogLine> {
    const line = await this.waitFor(
      (l) => l.reason === reason && l.message.startsWith('trust repository refused, keeping '),
      `trust refusal ${reason}`,
      { from },
    );
    assert.equal(line.severity, 'ERROR');
    if (reason !== 'EXPIRED' && reason !== 'STORE_FAILED') assert.equal(line.security_event, 'trust_metadata_refused');
    if (message) assert.match(line.message, message);
    assert.ok(
      (await this.metric(`apx_trust_refresh_failures_total{reason="${reason}"}`)) >= 1,
      `refresh failure ${reason} counted`,
    );
    return line;
  }

  /**
   * A refused load: the runbook's `artifact verification failed for REF: …` at ERROR with its
   * reason code, security event and the metric labelled with the code.
   */
  async expectLoadRefused(
    ref: string,
    reason: string,
    options: { from?: number; message?: MessageMatch; securityEvent?: string; metric?: string; severity?: string } = {},
  ): Promise<LogLine> {
    const prefix = `artifact verification failed for ${ref}: `;
    const line = await this.waitFor(
      (l) => l.reason === reason && l.message.startsWith(prefix) && l.policy_ref === ref,
      `load refusal ${reason} of ${ref}`,
      { from: options.from ?? 0 },
    );
    assert.equal(line.severity, options.severity ?? 'ERROR');
    if (options.message) assert.ok(matches(options.message, line.message.slice(prefix.length)), line.message);
    assert.equal(line.security_event, options.securityEvent);
    const metric = options.metric ?? `apx_artifacts_verification_failures_total{reason="${reason}"}`;
    assert.ok((await this.metric(metric)) >= 1, `${metric} counted`);
    return line;
  }

  /** Waits for `policy loaded: REF`. */
  loaded(ref: string, from = 0): Promise<LogLine> {
    return this.waitForMessage(`policy loaded: ${ref}`, `load of ${ref}`, from);
  }

  /** Asserts that no line from `from` on says REF was loaded. */
  assertNotLoaded(ref: string, from = 0): void {
    const line = this.lines(from, (l) => l.message === `policy loaded: ${ref}`)[0];
    assert.equal(line, undefined, `${ref} must not load`);
  }

  get(path: string): Promise<HttpAnswer> {
    return httpGet(`${this.url}${path}`);
  }

  async decide(policy = 'pb-pay-v1', request: Record<string, unknown> = PAYMENTS_GET) {
    const res = await fetch(`${this.url}/v1/decide`, { method: 'POST', body: JSON.stringify({ policy, request }) });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  }

  /** The reference serving a policy (from a decision), or null when nothing serves it (503, or 404: unknown). */
  async serving(policy = 'pb-pay-v1'): Promise<string | null> {
    const d = await this.decide(policy);
    return d.status === 503 || d.status === 404 ? null : (d.body.policy as string);
  }

  /** Sum of a metric's samples whose line starts with `prefix` (name plus labels). */
  async metric(prefix: string): Promise<number> {
    const { text } = await this.get('/metrics');
    let total = 0;
    for (const line of text.split('\n')) if (line.startsWith(prefix)) total += Number(line.split(' ').pop());
    return total;
  }

  async stop(): Promise<void> {
    TrustWorker.running.delete(this);
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill('SIGTERM');
      const killed = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
      await this.exited;
      clearTimeout(killed);
    }
  }
}
