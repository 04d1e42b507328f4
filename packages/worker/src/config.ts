import { formatArtifactRef, isApxError, isPolicyId, isSemver, parseArtifactRef } from '@apx/core';
import { AllowList } from './allow-list.js';
import { WorkerError, WorkerErrorCode } from './error.js';
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
  reloadIntervalMs: number;
  /** How often a public key held remotely (Secret Manager, KMS, HSM) is re-read. */
  keyRefreshMs: number;
  memoryCacheEntries: number;
  /** Require a signed binding (name, version, environment) for every artifact. */
  requireBinding: boolean;
  /** The TUF trust repository: `store` (tuf/ in APX_STORE) or a store URL; undefined: runbook mode. */
  trustRepository: string | undefined;
  /** The root trusted on first start (a copy of tuf/1.root.json), when APX_STATE_DIR has none yet. */
  trustRoot: string | undefined;
  /** How long loaded policies keep serving after the trust metadata expired. */
  trustGraceMs: number;
}

/** One setting: its environment name (DESIGN.md §6), its flag, default and meaning. */
export interface Setting {
  key: keyof WorkerConfig;
  env: string;
  flag: string;
  default: string | undefined;
  description: string;
}

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
];

function invalid(setting: Setting, value: string, expected: string): WorkerError {
  return new WorkerError(WorkerErrorCode.CONFIG_INVALID, `invalid ${setting.env}="${value}"`, { hint: expected });
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

function parseInteger(s: Setting, v: string, min: number, max: number): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw invalid(s, v, `use a whole number from ${min} to ${max}`);
  return n;
}

function parsePolicies(s: Setting, v: string): PolicySelector[] {
  const out: PolicySelector[] = [];
  for (const raw of v.split(',')) {
    const item = raw.trim();
    if (item === '') continue;
    const at = item.lastIndexOf('@');
    const policyId = at < 0 ? item : item.slice(0, at);
    const version = at < 0 ? undefined : item.slice(at + 1);
    if (!isPolicyId(policyId) || (version !== undefined && !isSemver(version))) {
      throw invalid(s, v, `"${item}" is not a policy (pb-pay-v1) or reference (pb-pay-v1@1.0.0)`);
    }
    out.push({ policyId, version });
  }
  return out;
}

function parseRollbacks(s: Setting, v: string | undefined): ReadonlySet<string> {
  const refs = new Set<string>();
  for (const raw of (v ?? '').split(',')) {
    const item = raw.trim();
    if (item === '') continue;
    try {
      refs.add(formatArtifactRef(parseArtifactRef(item)));
    } catch (err) {
      if (!isApxError(err)) throw err;
      throw invalid(s, v as string, `"${item}" is not an exact reference; list references such as pb-pay-v1@1.0.0`);
    }
  }
  return refs;
}

/**
 * Builds the worker's configuration: flags override the environment, the environment
 * overrides defaults (DESIGN.md §6). Production refuses strict mode off and a missing
 * allow-list. Returns warnings to log at start (strict mode off outside production).
 */
export function resolveConfig(
  env: Record<string, string | undefined>,
  flags: Record<string, string | undefined> = {},
): { config: WorkerConfig; warnings: string[] } {
  const raw = (s: Setting): string | undefined => {
    const v = flags[s.flag] ?? env[s.env];
    return v === undefined || v.trim() === '' ? s.default : v.trim();
  };
  const setting = (key: keyof WorkerConfig): Setting => SETTINGS.find((s) => s.key === key) as Setting;
  const text = (key: keyof WorkerConfig) => raw(setting(key));

  const environment = parseEnvironment(setting('env'), text('env') as string);
  const strict = parseBool(setting('strict'), text('strict') as string);
  const allowText = text('allowList');
  const allowList = allowText === undefined ? undefined : AllowList.parse(allowText);
  const policiesText = text('policies');
  const config: WorkerConfig = {
    env: environment,
    store: text('store') as string,
    publicKey: text('publicKey') as string,
    strict,
    allowList,
    policies: policiesText === undefined ? [] : parsePolicies(setting('policies'), policiesText),
    cacheDir: text('cacheDir'),
    stateDir: text('stateDir'),
    allowRollback: parseRollbacks(setting('allowRollback'), text('allowRollback')),
    host: text('host') as string,
    port: parseInteger(setting('port'), text('port') as string, 0, 65535),
    reloadIntervalMs: parseInteger(setting('reloadIntervalMs'), text('reloadIntervalMs') as string, 0, 86400) * 1000,
    keyRefreshMs: parseInteger(setting('keyRefreshMs'), text('keyRefreshMs') as string, 1, 86400) * 1000,
    memoryCacheEntries: parseInteger(setting('memoryCacheEntries'), text('memoryCacheEntries') as string, 1, 100000),
    trustRepository: text('trustRepository'),
    trustRoot: text('trustRoot'),
    trustGraceMs: parseInteger(setting('trustGraceMs'), text('trustGraceMs') as string, 0, 30 * 86400) * 1000,
    requireBinding: (() => {
      const v = text('requireBinding');
      return v === undefined ? environment !== 'dev' : parseBool(setting('requireBinding'), v);
    })(),
  };

  // The old trust documents are gone; a worker configured for them must not start without
  // the protection its operator thinks it has.
  for (const gone of ['APX_KEYRING', 'APX_REVOCATIONS', 'APX_INDEX', 'APX_INDEX_GRACE']) {
    if (env[gone] !== undefined && env[gone]?.trim() !== '') {
      throw new WorkerError(WorkerErrorCode.CONFIG_INVALID, `${gone} is no longer supported`, {
        hint: 'keyrings, revocation lists and policy indexes moved to the trust repository: set APX_TRUST_REPOSITORY (docs/operations.md, "Migrating")',
      });
    }
  }
  if (config.trustRepository !== undefined) {
    if (config.stateDir === undefined) {
      throw new WorkerError(WorkerErrorCode.CONFIG_UNSAFE, 'refusing to use a trust repository without APX_STATE_DIR', {
        hint: 'set APX_STATE_DIR to a persistent directory only the worker writes: it keeps the trusted metadata, so a restart never goes backwards',
      });
    }
    const explicitKey = flags[setting('publicKey').flag] ?? env.APX_PUBLIC_KEY;
    if (explicitKey !== undefined && explicitKey.trim() !== '') {
      throw new WorkerError(WorkerErrorCode.CONFIG_INVALID, 'APX_PUBLIC_KEY and APX_TRUST_REPOSITORY cannot be used together', {
        hint: "with a trust repository the environment's role names the artifact signers (apx trust signer add); unset APX_PUBLIC_KEY",
      });
    }
  }
  const warnings: string[] = [];
  if (environment === 'production') {
    if (!strict) {
      throw new WorkerError(WorkerErrorCode.CONFIG_UNSAFE, 'refusing to start in production with strict mode disabled', {
        hint: 'unset APX_STRICT_MODE (strict is the default); every production artifact must be signed',
      });
    }
    if (!allowList) {
      throw new WorkerError(WorkerErrorCode.CONFIG_UNSAFE, 'refusing to start in production without an allow-list', {
        hint: 'set ALLOWED_POLICY_VERSIONS, e.g. ALLOWED_POLICY_VERSIONS="1.0.0,1.1.0"',
      });
    }
    if (!config.requireBinding) {
      throw new WorkerError(WorkerErrorCode.CONFIG_UNSAFE, 'refusing to start in production without signed bindings', {
        hint: 'unset APX_REQUIRE_BINDING; production artifacts must carry a statement naming policy, version and environment',
      });
    }
  }
  // Rollback floors kept only in memory are forgotten by a restart, which would re-open every
  // rollback; outside development they must persist.
  if (environment !== 'dev' && config.stateDir === undefined) {
    throw new WorkerError(WorkerErrorCode.CONFIG_UNSAFE, `refusing to start in ${environment} without APX_STATE_DIR`, {
      hint: 'set APX_STATE_DIR to a persistent directory only the worker writes; it keeps the rollback floors across restarts',
    });
  }
  if (environment !== 'production' && !strict) {
    warnings.push(
      `strict mode disabled (APX_ENV=${environment}): unsigned artifacts will be loaded; never do this in production`,
    );
  }
  return { config, warnings };
}
