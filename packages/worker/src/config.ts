import { accessSync, constants, type Stats, statSync } from 'node:fs';
import { isIP } from 'node:net';
import { availableParallelism } from 'node:os';
import { dirname, isAbsolute, relative, resolve } from 'node:path';
import {
  type ApxError,
  DEFAULT_DECISION_DEADLINE_MS,
  formatArtifactRef,
  isApxError,
  isPolicyId,
  isSemver,
  parseArtifactRef,
} from '@apx/core';
import { systemErrorCode } from '@apx/core/os-error';
import { redactStoreUrl } from '@apx/storage/redact';
import { AllowList } from './allow-list.js';
import { WorkerError, WorkerErrorCode } from './error.js';
import { NO_TRUSTED_PROXIES, TrustedProxies } from './gateway/trusted-proxies.js';
import { DEFAULT_KEY_REFRESH_MS } from './refreshing-key.js';

export type Environment = 'dev' | 'staging' | 'production';

/** A configured policy: pinned to one version, or following the highest admitted version. */
export interface PolicySelector {
  policyId: string;
  version: string | undefined;
}

export interface WorkerConfig {
  env: Environment;
  store: string;
  publicKey: string;
  strict: boolean;
  allowList: AllowList | undefined;
  /** Empty: every policy found in the store. */
  policies: PolicySelector[];
  cacheDir: string | undefined;
  /** The worker's own trusted state (rollback floors); required in staging and production. */
  stateDir: string | undefined;
  /** Exact references the operator allows below their rollback floor (APX_ALLOW_ROLLBACK). */
  allowRollback: ReadonlySet<string>;
  host: string;
  port: number;
  /** Envoy ext_authz gRPC port (APX_GRPC_PORT) on `host`; undefined: not served. */
  grpcPort: number | undefined;
  reloadIntervalMs: number;
  /** How often a public key held remotely (Secret Manager, KMS, HSM) is re-read. */
  keyRefreshMs: number;
  memoryCacheEntries: number;
  /** Longest a decision may run before the policy is stopped (APX_DECISION_DEADLINE_MS). */
  decisionDeadlineMs: number;
  /** Require a signed binding (name, version, environment) for every artifact. */
  requireBinding: boolean;
  /** The TUF trust repository: `store` (tuf/ in APX_STORE) or a store URL; undefined: runbook mode. */
  trustRepository: string | undefined;
  /** The root trusted on first start (a copy of tuf/1.root.json), when APX_STATE_DIR has none yet. */
  trustRoot: string | undefined;
  /** How long loaded policies keep serving after the trust metadata expired. */
  trustGraceMs: number;
  /**
   * A Sigstore trusted_root.json: keyless artifacts and the timestamps that date keyed
   * signatures are verified against it (default for keyless: the public-good root embedded in APX).
   */
  sigstoreTrustedRoot: string | undefined;
  // Gateways, HTTP side (issue 13): forward-auth, dry run, decision log.
  /** The policy a gateway's request that names none is decided by (APX_DEFAULT_POLICY). */
  defaultPolicy: string | undefined;
  /** Proxies whose forwarded headers are believed (APX_TRUSTED_PROXIES); empty: none. */
  trustedProxies: TrustedProxies;
  /** APX_DRY_RUN: every policy (true), none (false) or these policy ids: denials are allowed, logged, counted. */
  dryRun: boolean | ReadonlySet<string>;
  /** APX_DECISION_LOG_SAMPLE: share of decisions logged, 0 (off) to 1. */
  decisionLogSample: number;
  /** APX_DRAIN_SECONDS, in ms: how long a stopping worker keeps serving with /readyz at 503. */
  drainMs: number;
  /** APX_WORKERS: serving processes sharing the ports; 1 is the single-process worker (docs/architecture.md, "The multi-process worker"). */
  workers: number;
}

/** One setting: its environment name (DESIGN.md §6), its flag, default and meaning. */
export interface Setting {
  key: keyof WorkerConfig;
  env: string;
  flag: string;
  default: string | undefined;
  description: string;
}

/** APX_WORKERS at most: more serving processes than this is a mistake, not a machine. */
export const MAX_WORKERS = 256;

export const SETTINGS: readonly Setting[] = [
  {
    key: 'env',
    env: 'APX_ENV',
    flag: 'env',
    default: 'dev',
    description: 'dev, staging or production; production refuses unsafe settings.',
  },
  {
    key: 'store',
    env: 'APX_STORE',
    flag: 'store',
    default: './artifacts',
    description: 'Where artifacts live: a directory, file://, gs://, s3:// or oci:// URL.',
  },
  {
    key: 'publicKey',
    env: 'APX_PUBLIC_KEY',
    flag: 'public-key',
    default: 'keys/cosign.pub',
    description:
      'The trusted public key: a PEM file (or keyring), env://VAR, a GCP Secret Manager version projects/P/secrets/S/versions/V, or the signing key in a KMS or HSM (gcpkms://, awskms://, hashivault://, pkcs11:).',
  },
  {
    key: 'strict',
    env: 'APX_STRICT_MODE',
    flag: 'strict-mode',
    default: 'true',
    description: 'Reject unsigned artifacts (true/false). Cannot be false in production.',
  },
  {
    key: 'allowList',
    env: 'ALLOWED_POLICY_VERSIONS',
    flag: 'allowed-versions',
    default: undefined,
    description: 'Comma-separated versions, pb-id@version entries or semver ranges. Required in production.',
  },
  {
    key: 'policies',
    env: 'APX_POLICIES',
    flag: 'policies',
    default: undefined,
    description:
      'Comma-separated policies to serve: pb-id@version (pinned) or pb-id (highest allowed). Default: all in the store.',
  },
  {
    key: 'requireBinding',
    env: 'APX_REQUIRE_BINDING',
    flag: 'require-binding',
    default: undefined,
    description:
      'Require a signed binding naming policy, version and this environment (default: true in staging and production; cannot be false in production).',
  },
  {
    key: 'trustRepository',
    env: 'APX_TRUST_REPOSITORY',
    flag: 'trust-repository',
    default: undefined,
    description:
      'The TUF trust repository (apx trust): "store" for tuf/ in APX_STORE, or another store URL. Off: runbook mode (APX_PUBLIC_KEY alone; no revocation, freshness or approvals).',
  },
  {
    key: 'trustRoot',
    env: 'APX_TRUST_ROOT',
    flag: 'trust-root',
    default: undefined,
    description:
      "The trust repository's root to trust on first start (a copy of tuf/1.root.json obtained out of band); later starts use the root kept in APX_STATE_DIR.",
  },
  {
    key: 'sigstoreTrustedRoot',
    env: 'APX_SIGSTORE_TRUSTED_ROOT',
    flag: 'sigstore-trusted-root',
    default: undefined,
    description:
      'A Sigstore trusted_root.json (Fulcio CAs, Rekor and CT log keys, timestamp authorities): keyless artifacts, and the timestamps that date signatures by keys with a validity window, are verified against it. Keyless default: the public-good root embedded in APX.',
  },
  {
    key: 'trustGraceMs',
    env: 'APX_TRUST_GRACE',
    flag: 'trust-grace',
    default: '3600',
    description:
      'Seconds loaded policies keep serving after the trust metadata expired (new loads stop at once); then they are unloaded.',
  },
  {
    key: 'cacheDir',
    env: 'APX_CACHE_DIR',
    flag: 'cache-dir',
    default: undefined,
    description: 'Directory for the on-disk artifact cache (re-verified on every read).',
  },
  {
    key: 'stateDir',
    env: 'APX_STATE_DIR',
    flag: 'state-dir',
    default: undefined,
    description:
      "Directory for the worker's trusted state: the rollback floors (floors.json). Required in staging and production.",
  },
  {
    key: 'allowRollback',
    env: 'APX_ALLOW_ROLLBACK',
    flag: 'allow-rollback',
    default: undefined,
    description:
      'Comma-separated exact references (pb-pay-v1@1.0.0) that may load below the highest version verified: a deliberate rollback.',
  },
  {
    key: 'host',
    env: 'APX_HOST',
    flag: 'host',
    default: '127.0.0.1',
    description: 'Address to listen on (0.0.0.0 for all interfaces).',
  },
  { key: 'port', env: 'APX_PORT', flag: 'port', default: '8080', description: 'HTTP port (0 picks a free one).' },
  {
    key: 'grpcPort',
    env: 'APX_GRPC_PORT',
    flag: 'grpc-port',
    default: undefined,
    description:
      'Port of the Envoy ext_authz gRPC service (envoy.service.auth.v3.Authorization/Check) on APX_HOST; off unless set (9191 is customary; 0 picks a free one).',
  },
  {
    key: 'reloadIntervalMs',
    env: 'APX_RELOAD_INTERVAL',
    flag: 'reload-interval',
    default: '30',
    description: 'Seconds between checks of the store for new versions (0 disables).',
  },
  {
    key: 'keyRefreshMs',
    env: 'APX_KEY_REFRESH_INTERVAL',
    flag: 'key-refresh-interval',
    default: String(DEFAULT_KEY_REFRESH_MS / 1000),
    description:
      'Seconds between reads of a public key held remotely (Secret Manager, KMS, HSM): a rotated key is trusted within this time, without a restart.',
  },
  {
    key: 'memoryCacheEntries',
    env: 'APX_MEMORY_CACHE_ENTRIES',
    flag: 'memory-cache-entries',
    default: '64',
    description: 'Verified artifacts kept in memory, by digest.',
  },
  {
    key: 'decisionDeadlineMs',
    env: 'APX_DECISION_DEADLINE_MS',
    flag: 'decision-deadline-ms',
    default: String(DEFAULT_DECISION_DEADLINE_MS),
    description:
      'Milliseconds one decision may run; a policy that runs longer is stopped, answers deny 503 and is unloaded until another version loads.',
  },
  // Gateways, HTTP side (issue 13; docs/gateways.md).
  {
    key: 'defaultPolicy',
    env: 'APX_DEFAULT_POLICY',
    flag: 'default-policy',
    default: undefined,
    description:
      'The policy id that decides gateway requests naming none (forward-auth /v1/authz, Envoy without context_extensions apx_policy). Default: the only policy served, if there is one.',
  },
  {
    key: 'trustedProxies',
    env: 'APX_TRUSTED_PROXIES',
    flag: 'trusted-proxies',
    default: undefined,
    description:
      'Comma-separated addresses or CIDR blocks of the proxies in front of the worker (10.0.0.0/8,192.0.2.7): only their X-Forwarded-For / X-Real-IP are believed; any other caller is judged by its connection address. Default: none.',
  },
  {
    key: 'dryRun',
    env: 'APX_DRY_RUN',
    flag: 'dry-run',
    default: 'false',
    description:
      'true: every denial (policy or rate limit) is allowed instead, logged and counted (apx_decisions_dry_run_denied_total); a comma-separated list of policy ids does so for those policies only. Said at start as a warning.',
  },
  {
    key: 'decisionLogSample',
    env: 'APX_DECISION_LOG_SAMPLE',
    flag: 'decision-log-sample',
    default: '0',
    description:
      'Share of decisions logged, one JSON line each (decision id, policy reference and digest, outcome, rule, latency; never request headers): 0 (off) to 1.',
  },
  {
    key: 'drainMs',
    env: 'APX_DRAIN_SECONDS',
    flag: 'drain-seconds',
    default: undefined,
    description:
      'Seconds a worker keeps serving after SIGTERM with /readyz answering 503, so load balancers stop sending to it, before its servers close (default: 5 in staging and production, 0 in dev; at most 600). A second signal exits at once.',
  },
  {
    key: 'workers',
    env: 'APX_WORKERS',
    flag: 'workers',
    default: undefined,
    description: `Serving processes sharing the HTTP (and gRPC) port, 1 to ${MAX_WORKERS}; above 1, one more process verifies and hands the verified policies to them (default: the CPUs available to the process in staging and production, 1 in dev).`,
  },
];

/**
 * APX_WORKERS when unset: every CPU the process may use in staging and production (staging
 * rehearses production, so it runs the same multi-process worker); one process in dev, where
 * one request at a time is the norm and a single process is simpler to debug.
 */
export function defaultWorkers(environment: Environment): number {
  return environment === 'dev' ? 1 : Math.min(MAX_WORKERS, Math.max(1, availableParallelism()));
}

/** APX_DRAIN_SECONDS when unset: load balancers need a few seconds to see /readyz at 503. */
export const DEFAULT_DRAIN_SECONDS: Record<Environment, number> = { dev: 0, staging: 5, production: 5 };

function invalid(setting: Setting, value: string, expected: string): WorkerError {
  return new WorkerError(WorkerErrorCode.CONFIG_INVALID, `invalid ${setting.env}="${value}"`, { hint: expected });
}

/** The ApxErrors an error stands for (an AggregateError of them: several problems), or undefined for a bug. */
export function configProblems(err: unknown): ApxError[] | undefined {
  if (isApxError(err)) return [err];
  if (err instanceof AggregateError && err.errors.length > 0 && err.errors.every(isApxError)) return err.errors as ApxError[];
  return undefined;
}

/** Throws nothing for no problem, the problem itself for one, an AggregateError of them for several. */
export function throwProblems(problems: ApxError[], what = 'settings'): void {
  if (problems.length === 1) throw problems[0];
  if (problems.length > 1) {
    throw new AggregateError(
      problems,
      `${problems.length} problems in the ${what}: ${problems.map((p) => p.message).join('; ')}`,
    );
  }
}

function parseEnvironment(s: Setting, v: string): Environment {
  const map: Record<string, Environment> = {
    dev: 'dev',
    development: 'dev',
    staging: 'staging',
    production: 'production',
    prod: 'production',
  };
  const env = map[v.toLowerCase()];
  if (!env) throw invalid(s, v, 'use dev, staging or production');
  return env;
}

function parseBool(s: Setting, v: string): boolean {
  if (/^(true|1|yes|on)$/i.test(v)) return true;
  if (/^(false|0|no|off)$/i.test(v)) return false;
  throw invalid(s, v, 'use true or false');
}

/** A whole number written in digits (no sign, exponent, hex or fraction) from min to max. */
function parseInteger(
  s: Setting,
  v: string,
  min: number,
  max: number,
  expected = `use a whole number from ${min} to ${max}`,
): number {
  const n = /^\d{1,15}$/.test(v) ? Number(v) : Number.NaN;
  if (!Number.isInteger(n) || n < min || n > max) throw invalid(s, v, expected);
  return n;
}

/** A duration setting, in whole seconds, returned in milliseconds. */
function parseSeconds(s: Setting, v: string, min: number, max: number, zero?: string): number {
  const range = `from ${min} to ${max}${zero ? ` (${zero})` : ''}`;
  const unit = /^\d+(\.\d+)?\s*[a-z]+$/i.test(v) ? `, without a unit (${v.replace(/[a-z\s]+$/i, '') || '30'} means seconds)` : '';
  return parseInteger(s, v, min, max, `use a whole number of seconds ${range}${unit}`) * 1000;
}

function parsePort(s: Setting, v: string): number {
  return parseInteger(s, v, 0, 65535, 'use a port number from 0 to 65535 (0 picks a free one)');
}

// RFC 1123 host names: dot-separated labels of letters, digits and inner hyphens.
const HOST_NAME = /^(?=.{1,253}\.?$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*\.?$/i;

function parseHost(s: Setting, v: string): string {
  if (isIP(v) !== 0 || HOST_NAME.test(v)) return v;
  const bracketed = /^\[(.+)\]$/.exec(v)?.[1];
  if (bracketed !== undefined && isIP(bracketed) === 6)
    throw invalid(s, v, `write the IPv6 address without brackets: ${bracketed}`);
  throw invalid(s, v, 'use an IP address of this machine (127.0.0.1; 0.0.0.0 or :: for every interface) or a host name');
}

/** Each comma-separated item of a list setting, parsed; one problem per bad item. */
function parseItems<T>(s: Setting, v: string, parse: (item: string) => T | undefined, expected: (item: string) => string): T[] {
  const out: T[] = [];
  const problems: ApxError[] = [];
  const items = v
    .split(',')
    .map((i) => i.trim())
    .filter((i) => i !== '');
  if (items.length === 0) problems.push(invalid(s, v, 'the list names nothing; unset it or list entries, comma-separated'));
  for (const item of items) {
    const parsed = parse(item);
    if (parsed === undefined) {
      problems.push(
        new WorkerError(WorkerErrorCode.CONFIG_INVALID, `invalid ${s.env}="${v}": "${item}" ${expected(item)}`, {
          hint: `fix or remove "${item}"`,
        }),
      );
    } else out.push(parsed);
  }
  throwProblems(problems);
  return out;
}

function parsePolicies(s: Setting, v: string): PolicySelector[] {
  const selectors = parseItems(
    s,
    v,
    (item) => {
      const at = item.lastIndexOf('@');
      const policyId = at < 0 ? item : item.slice(0, at);
      const version = at < 0 ? undefined : item.slice(at + 1);
      return isPolicyId(policyId) && (version === undefined || isSemver(version)) ? { policyId, version } : undefined;
    },
    () => 'is not a policy (pb-pay-v1) or exact reference (pb-pay-v1@1.0.0)',
  );
  const seen = new Set<string>();
  for (const { policyId } of selectors) {
    if (seen.has(policyId)) {
      throw new WorkerError(WorkerErrorCode.CONFIG_INVALID, `invalid ${s.env}="${v}": ${policyId} is named more than once`, {
        hint: `a worker serves one version of a policy: keep one entry for ${policyId} (pinned pb-pay-v1@1.0.0, or pb-pay-v1 for the highest allowed)`,
      });
    }
    seen.add(policyId);
  }
  return selectors;
}

function parseRollbacks(s: Setting, v: string): ReadonlySet<string> {
  const refs = parseItems(
    s,
    v,
    (item) => {
      try {
        return formatArtifactRef(parseArtifactRef(item));
      } catch (err) {
        if (!isApxError(err)) throw err;
        return undefined;
      }
    },
    () => 'is not an exact reference; list references such as pb-pay-v1@1.0.0',
  );
  return new Set(refs);
}

// Gateways, HTTP side (issue 13).
function parseDefaultPolicy(s: Setting, v: string): string {
  if (isPolicyId(v)) return v;
  throw invalid(s, v, 'name a policy id (pb-pay-v1), without a version');
}

function parseTrustedProxies(s: Setting, v: string): TrustedProxies {
  return TrustedProxies.of(
    parseItems(
      s,
      v,
      (item) => (TrustedProxies.problem(item) ? undefined : item),
      (item) => TrustedProxies.problem(item) as string,
    ),
  );
}

function parseDryRun(s: Setting, v: string): boolean | ReadonlySet<string> {
  if (/^(true|1|yes|on|false|0|no|off)$/i.test(v)) return parseBool(s, v);
  const ids = parseItems(
    s,
    v,
    (item) => (isPolicyId(item) ? item : undefined),
    () => 'is not a policy id; use true, false, or policy ids such as pb-pay-v1,pb-admin-v2',
  );
  return new Set(ids);
}

function parseSample(s: Setting, v: string): number {
  const n = /^(0|1|0?\.\d{1,6}|1\.0*)$/.test(v) ? Number(v) : Number.NaN;
  if (!(n >= 0 && n <= 1)) throw invalid(s, v, 'use a share from 0 (off) to 1 (every decision), e.g. 0.01');
  return n;
}

/** The nearest part of `absolute` that exists (itself, or the closest parent), with its stats. */
function nearestExisting(absolute: string): { path: string; stats: Stats } {
  for (let p = absolute; ; p = dirname(p)) {
    try {
      return { path: p, stats: statSync(p) };
    } catch (err) {
      const code = systemErrorCode(err);
      if ((code !== 'ENOENT' && code !== 'ENOTDIR') || dirname(p) === p) throw err;
    }
  }
}

/**
 * A directory the worker writes (APX_STATE_DIR, APX_CACHE_DIR): an existing, writable
 * directory, or a path it can create (its nearest existing part is a writable directory).
 */
function checkDirectory(s: Setting, v: string, cwd: string): string {
  const absolute = resolve(cwd, v);
  const hint = `set ${s.env} to a directory the worker can write (it is created if missing)`;
  let found: { path: string; stats: Stats };
  try {
    found = nearestExisting(absolute);
  } catch (err) {
    throw new WorkerError(WorkerErrorCode.CONFIG_INVALID, `cannot use ${s.env}="${v}": ${(err as Error).message}`, { hint });
  }
  const shown = found.path === absolute ? undefined : isAbsolute(v) ? found.path : relative(cwd, found.path);
  if (!found.stats.isDirectory()) {
    throw new WorkerError(
      WorkerErrorCode.CONFIG_INVALID,
      shown === undefined ? `${s.env}="${v}" is a file, not a directory` : `${s.env}="${v}": ${shown} is a file, not a directory`,
      { hint },
    );
  }
  try {
    accessSync(found.path, constants.W_OK | constants.X_OK);
  } catch {
    throw new WorkerError(
      WorkerErrorCode.CONFIG_INVALID,
      shown === undefined
        ? `${s.env}="${v}" is not writable by the worker`
        : `${s.env}="${v}" cannot be created: ${shown} is not writable by the worker`,
      { hint },
    );
  }
  return v;
}

/** A file the worker reads at start (APX_TRUST_ROOT): it must exist and be a regular file. */
function checkFile(s: Setting, v: string, cwd: string, hint: string): string {
  let stats: Stats;
  try {
    stats = statSync(resolve(cwd, v));
  } catch (err) {
    const code = systemErrorCode(err);
    const why = code === 'ENOENT' || code === 'ENOTDIR' ? 'no such file' : (err as Error).message;
    throw new WorkerError(WorkerErrorCode.CONFIG_INVALID, `${s.env}="${v}": ${why}`, { hint });
  }
  if (!stats.isFile()) {
    throw new WorkerError(
      WorkerErrorCode.CONFIG_INVALID,
      `${s.env}="${v}" is ${stats.isDirectory() ? 'a directory' : 'not a regular file'}, not a file`,
      { hint },
    );
  }
  return v;
}

const STORE_SCHEMES = new Set(['file', 'gs', 's3', 'oci', 'oci+http']);
const STORE_FORMS = 'a directory (./artifacts), file:///dir, gs://bucket/prefix, s3://bucket/prefix, oci://host/repo';

/** A store URL's scheme is one the worker can open (the store itself is opened at start). */
function checkStoreUrl(s: Setting, v: string): string {
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(v)?.[1]?.toLowerCase();
  if (scheme !== undefined && !STORE_SCHEMES.has(scheme))
    throw invalid(s, redactStoreUrl(v), `unsupported scheme ${scheme}://; use ${STORE_FORMS}`);
  return v;
}

/** APX_TRUST_REPOSITORY: `store`, a store URL, or an existing local directory. */
function checkTrustRepository(s: Setting, v: string, cwd: string): string {
  checkStoreUrl(s, v);
  if (v === 'store' || /^[a-z][a-z0-9+.-]*:\/\//i.test(v)) return v;
  const hint = `use "store" for tuf/ in APX_STORE, or another store: ${STORE_FORMS}`;
  let stats: Stats | undefined;
  try {
    stats = statSync(resolve(cwd, v));
  } catch {
    stats = undefined;
  }
  if (!stats?.isDirectory()) {
    throw new WorkerError(WorkerErrorCode.CONFIG_INVALID, `${s.env}="${v}": no such directory`, { hint });
  }
  return v;
}

export interface ResolveOptions {
  /** The directory relative paths are resolved against (default: the process's). */
  cwd?: string;
}

/**
 * Builds the worker's configuration: flags override the environment, the environment
 * overrides defaults (DESIGN.md §6). Every setting is checked, and every problem is
 * reported: one ApxError (one line) per problem, thrown as that error alone or as an
 * AggregateError of them. Production refuses strict mode off, a missing allow-list and
 * wildcards in it. Returns warnings to log at start (strict mode off outside production).
 */
export function resolveConfig(
  env: Record<string, string | undefined>,
  flags: Record<string, string | undefined> = {},
  options: ResolveOptions = {},
): { config: WorkerConfig; warnings: string[] } {
  const cwd = options.cwd ?? process.cwd();
  const raw = (s: Setting): string | undefined => {
    const v = flags[s.flag] ?? env[s.env];
    return v === undefined || v.trim() === '' ? s.default : v.trim();
  };
  const setting = (key: keyof WorkerConfig): Setting => SETTINGS.find((s) => s.key === key) as Setting;
  const text = (key: keyof WorkerConfig) => raw(setting(key));
  const problems: ApxError[] = [];
  // Each setting is parsed on its own; a bad one is recorded and replaced by `fallback`, so
  // that every problem is found in one start.
  const read = <T>(key: keyof WorkerConfig, parse: (s: Setting, v: string) => T, fallback: T): T => {
    const s = setting(key);
    const v = raw(s);
    if (v === undefined) return fallback;
    try {
      return parse(s, v);
    } catch (err) {
      const found = configProblems(err);
      if (!found) throw err;
      problems.push(...found);
      return fallback;
    }
  };
  const refuse = (code: WorkerErrorCode, message: string, hint: string) =>
    problems.push(new WorkerError(code, message, { hint }));

  // The old trust documents are gone; a worker configured for them must not start without
  // the protection its operator thinks it has.
  for (const gone of ['APX_KEYRING', 'APX_REVOCATIONS', 'APX_INDEX', 'APX_INDEX_GRACE']) {
    if (env[gone] !== undefined && env[gone]?.trim() !== '') {
      refuse(
        WorkerErrorCode.CONFIG_INVALID,
        `${gone} is no longer supported`,
        'keyrings, revocation lists and policy indexes moved to the trust repository: set APX_TRUST_REPOSITORY (docs/operations.md, "Migrating")',
      );
    }
  }
  // Undefined when APX_ENV itself is wrong: the checks that depend on it are skipped.
  const environment = read<Environment | undefined>('env', parseEnvironment, undefined);
  const production = environment === 'production';
  const strict = read('strict', parseBool, true);
  const allowText = text('allowList');
  const config: WorkerConfig = {
    env: environment ?? 'dev',
    store: read('store', checkStoreUrl, text('store') as string),
    publicKey: text('publicKey') as string,
    strict,
    allowList: read('allowList', (s, v) => AllowList.parse(v, s.env, { production }), undefined),
    policies: read('policies', parsePolicies, []),
    cacheDir: read('cacheDir', (s, v) => checkDirectory(s, v, cwd), text('cacheDir')),
    stateDir: read('stateDir', (s, v) => checkDirectory(s, v, cwd), text('stateDir')),
    allowRollback: read('allowRollback', parseRollbacks, new Set<string>()),
    host: read('host', parseHost, text('host') as string),
    port: read('port', parsePort, 0),
    grpcPort: read('grpcPort', parsePort, undefined),
    reloadIntervalMs: read('reloadIntervalMs', (s, v) => parseSeconds(s, v, 0, 86400, '0 disables reloading'), 0),
    keyRefreshMs: read('keyRefreshMs', (s, v) => parseSeconds(s, v, 1, 86400), DEFAULT_KEY_REFRESH_MS),
    memoryCacheEntries: read('memoryCacheEntries', (s, v) => parseInteger(s, v, 1, 100000), 1),
    decisionDeadlineMs: read(
      'decisionDeadlineMs',
      (s, v) => parseInteger(s, v, 1, 60_000, 'use a whole number of milliseconds from 1 to 60000'),
      DEFAULT_DECISION_DEADLINE_MS,
    ),
    trustRepository: read('trustRepository', (s, v) => checkTrustRepository(s, v, cwd), text('trustRepository')),
    trustRoot: read(
      'trustRoot',
      (s, v) => checkFile(s, v, cwd, "set APX_TRUST_ROOT to a copy of the repository's tuf/1.root.json obtained out of band"),
      text('trustRoot'),
    ),
    trustGraceMs: read('trustGraceMs', (s, v) => parseSeconds(s, v, 0, 30 * 86400), 0),
    sigstoreTrustedRoot: read(
      'sigstoreTrustedRoot',
      (s, v) => checkFile(s, v, cwd, 'set APX_SIGSTORE_TRUSTED_ROOT to the trusted_root.json of your Sigstore instance'),
      text('sigstoreTrustedRoot'),
    ),
    requireBinding: read('requireBinding', parseBool, environment !== 'dev'),
    // Gateways, HTTP side (issue 13).
    defaultPolicy: read('defaultPolicy', parseDefaultPolicy, undefined),
    trustedProxies: read('trustedProxies', parseTrustedProxies, NO_TRUSTED_PROXIES),
    dryRun: read('dryRun', parseDryRun, false),
    decisionLogSample: read('decisionLogSample', parseSample, 0),
    drainMs: read(
      'drainMs',
      (s, v) => parseSeconds(s, v, 0, 600, '0 closes at once'),
      DEFAULT_DRAIN_SECONDS[environment ?? 'dev'] * 1000,
    ),
    workers: read(
      'workers',
      (s, v) => parseInteger(s, v, 1, MAX_WORKERS, `use a whole number of processes from 1 to ${MAX_WORKERS} (1: one process)`),
      defaultWorkers(environment ?? 'dev'),
    ),
  };

  if (config.grpcPort !== undefined && config.grpcPort !== 0 && config.grpcPort === config.port) {
    refuse(
      WorkerErrorCode.CONFIG_INVALID,
      `APX_GRPC_PORT=${config.grpcPort} is also APX_PORT: the gRPC and HTTP services need a port each`,
      'set APX_GRPC_PORT to another port (9191 is customary for ext_authz), or unset it to serve HTTP only',
    );
  }
  if (config.trustRepository !== undefined) {
    if (config.stateDir === undefined) {
      refuse(
        WorkerErrorCode.CONFIG_UNSAFE,
        'refusing to use a trust repository without APX_STATE_DIR',
        'set APX_STATE_DIR to a persistent directory only the worker writes: it keeps the trusted metadata, so a restart never goes backwards',
      );
    }
    const explicitKey = flags[setting('publicKey').flag] ?? env.APX_PUBLIC_KEY;
    if (explicitKey !== undefined && explicitKey.trim() !== '') {
      refuse(
        WorkerErrorCode.CONFIG_INVALID,
        'APX_PUBLIC_KEY and APX_TRUST_REPOSITORY cannot be used together',
        "with a trust repository the environment's role names the artifact signers (apx trust signer add); unset APX_PUBLIC_KEY",
      );
    }
  } else if (config.trustRoot !== undefined) {
    refuse(
      WorkerErrorCode.CONFIG_INVALID,
      'APX_TRUST_ROOT is set without APX_TRUST_REPOSITORY: it would be ignored',
      'set APX_TRUST_REPOSITORY too (the root belongs to that repository), or unset APX_TRUST_ROOT',
    );
  }
  const warnings: string[] = [];
  if (production) {
    if (!strict) {
      refuse(
        WorkerErrorCode.CONFIG_UNSAFE,
        'refusing to start in production with strict mode disabled',
        'unset APX_STRICT_MODE (strict is the default); every production artifact must be signed',
      );
    }
    if (allowText === undefined) {
      refuse(
        WorkerErrorCode.CONFIG_UNSAFE,
        'refusing to start in production without an allow-list',
        'set ALLOWED_POLICY_VERSIONS, e.g. ALLOWED_POLICY_VERSIONS="1.0.0,1.1.0"',
      );
    }
    if (!config.requireBinding) {
      refuse(
        WorkerErrorCode.CONFIG_UNSAFE,
        'refusing to start in production without signed bindings',
        'unset APX_REQUIRE_BINDING; production artifacts must carry a statement naming policy, version and environment',
      );
    }
  }
  // Rollback floors kept only in memory are forgotten by a restart, which would re-open every
  // rollback; outside development they must persist.
  if (environment !== undefined && environment !== 'dev' && text('stateDir') === undefined) {
    refuse(
      WorkerErrorCode.CONFIG_UNSAFE,
      `refusing to start in ${environment} without APX_STATE_DIR`,
      'set APX_STATE_DIR to a persistent directory only the worker writes; it keeps the rollback floors across restarts',
    );
  }
  throwProblems(problems);
  if (environment !== 'production' && !strict) {
    warnings.push(`strict mode disabled (APX_ENV=${config.env}): unsigned artifacts will be loaded; never do this in production`);
  }
  return { config, warnings };
}
