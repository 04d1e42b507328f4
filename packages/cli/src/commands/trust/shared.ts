// What every `apx trust` subcommand shares: the store, the keys it may sign with, durations,
// the commit loop (with automatic retry on a lost compare-and-swap), result lines, JSON output.
// @apx/trust and @apx/storage load only when a trust command runs (apx --version needs neither).

import { ENVIRONMENTS, type PublicKey } from '@apx/core';
import type { Signer } from '@apx/sign';
import type { ArtifactStore } from '@apx/storage';
import type { CommitResult, Drafts, PendingRole, TrustRepository } from '@apx/trust';
import { auditTrust, type TrustAuditEntry } from '../../audit.js';
import { type FlagSpec, flagString, type ParsedArgs, UsageError } from '../../command.js';
import type { CliContext } from '../../context.js';
import { openSigner } from '../../keyref.js';

export const ENVIRONMENT_NAMES = ENVIRONMENTS;
/** @apx/trust's TOP_LEVEL_ROLES, spelled here so that parsing flags does not load @apx/trust. */
export const TOP_LEVEL_NAMES = ['root', 'targets', 'snapshot', 'timestamp'] as const;
export const ROLE_NAMES: readonly string[] = [...TOP_LEVEL_NAMES, ...ENVIRONMENT_NAMES];

export const STORE_FLAG: FlagSpec = {
  name: 'store',
  type: 'string',
  value: 'URL',
  description: 'The artifact store holding the trust repository under tuf/ (default: $APX_STORE, else ./artifacts).',
};
export const KEY_FLAG: FlagSpec = {
  name: 'key',
  type: 'string',
  value: 'REF',
  multiple: true,
  description:
    'A key this command may sign with (repeat for each): key file, gcpkms://, awskms://, hashivault:// or pkcs11:. Role keys sign what they belong to; snapshot and timestamp keys publish.',
};
export const JSON_FLAG: FlagSpec = { name: 'json', type: 'boolean', description: 'Print the result as JSON on stdout.' };
export const ENV_FLAG: FlagSpec = {
  name: 'env',
  type: 'string',
  value: 'ENV',
  description: 'The environment role: dev, staging or production (required).',
};
export const EXPIRES_FLAG: FlagSpec = {
  name: 'expires',
  type: 'string',
  value: 'ROLE=DURATION',
  multiple: true,
  description:
    'Validity of the new versions of a role (repeatable): timestamp=24h, snapshot=7d, production=90d; units m, h, d (defaults: root and targets 365d, snapshot 7d, timestamp 24h, environments 90d).',
};

export const trustModule = () => import('@apx/trust');

/** The values of a repeatable string flag (none: empty). */
export function flagList(args: ParsedArgs, name: string): string[] {
  const v = args.flags[name];
  if (v === undefined) return [];
  const list = Array.isArray(v) ? v : [v];
  for (const item of list) if (typeof item !== 'string' || item === '') throw new UsageError(`--${name} needs a value`);
  return list as string[];
}

/** `--env`, required, one of the environment roles. */
export function environmentFlag(args: ParsedArgs): string {
  const env = flagString(args, 'env');
  if (env === undefined) throw new UsageError('--env is required (dev, staging or production)');
  return checkEnvironment(env, '--env');
}

export function checkEnvironment(env: string, where: string): string {
  if (!(ENVIRONMENT_NAMES as readonly string[]).includes(env)) {
    throw new UsageError(`${where} ${env} is not one of ${ENVIRONMENT_NAMES.join(', ')}`);
  }
  return env;
}

export function checkRole(role: string, where: string): string {
  if (!ROLE_NAMES.includes(role)) throw new UsageError(`${where} ${role} is not a role: ${ROLE_NAMES.join(', ')}`);
  return role;
}

const UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 };

/** A duration such as 30m, 24h, 7d or 90d, in seconds. */
export function parseDuration(text: string, where: string): number {
  const m = /^([1-9][0-9]{0,5})([smhd])$/.exec(text);
  if (!m) throw new UsageError(`${where}${where.endsWith('=') ? '' : ' '}${text} is not a duration like 30m, 24h, 7d or 90d`);
  return Number(m[1]) * (UNITS[m[2] as string] as number);
}

/** A positive integer flag value (thresholds). */
export function parseCount(text: string, where: string): number {
  if (!/^[1-9][0-9]{0,2}$/.test(text)) throw new UsageError(`${where} ${text} is not a positive whole number`);
  return Number(text);
}

/** `NAME=VALUE` items of a repeatable flag, in order. */
export function parseAssignments(items: readonly string[], flag: string): Array<[string, string]> {
  return items.map((item) => {
    const at = item.indexOf('=');
    if (at <= 0 || at === item.length - 1) throw new UsageError(`--${flag} ${item} is not NAME=VALUE`);
    return [item.slice(0, at), item.slice(at + 1)];
  });
}

/** `--expires ROLE=DURATION...` as seconds by role; `roles` limits which roles may be named. */
export function parseExpires(args: ParsedArgs, roles: readonly string[] = ROLE_NAMES): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [role, duration] of parseAssignments(flagList(args, 'expires'), 'expires')) {
    if (!roles.includes(role)) throw new UsageError(`--expires ${role}=${duration}: the role must be one of ${roles.join(', ')}`);
    if (out[role] !== undefined) throw new UsageError(`--expires names ${role} twice`);
    out[role] = parseDuration(duration, `--expires ${role}=`);
  }
  return out;
}

export function storeUrl(ctx: CliContext, args: ParsedArgs): string {
  return flagString(args, 'store') ?? ctx.env.APX_STORE ?? './artifacts';
}

/** Opens the store named by --store (or $APX_STORE, or ./artifacts), runs `work`, closes it. */
export async function withTrustStore<T>(
  ctx: CliContext,
  args: ParsedArgs,
  work: (store: ArtifactStore) => Promise<T>,
): Promise<T> {
  const { openStore } = await import('@apx/storage');
  const store = await openStore(storeUrl(ctx, args), { cwd: ctx.cwd, env: ctx.env });
  try {
    return await work(store);
  } finally {
    await store.close?.();
  }
}

/** The signers of every --key, opened once each (file keys ask their password once). */
export async function openSigners(ctx: CliContext, args: ParsedArgs, options: { required?: boolean } = {}): Promise<Signer[]> {
  const refs = [...new Set(flagList(args, 'key'))];
  if (refs.length === 0 && options.required !== false) {
    throw new UsageError('--key is required: pass each key this command may sign with (repeat --key)');
  }
  const signers: Signer[] = [];
  for (const ref of refs) signers.push(await openSigner(ctx, ref));
  return signers;
}

/** A key's TUF key id (what root and targets list) and its short form for people. */
export async function tufKeyId(key: PublicKey): Promise<string> {
  return (await trustModule()).tufKey(key).keyID;
}
export const short = (id: string) => id.slice(0, 12);

export async function signerIds(signers: readonly Signer[]): Promise<Array<{ keyId: string; keyRef: string }>> {
  return Promise.all(signers.map(async (s) => ({ keyId: await tufKeyId(await s.publicKey()), keyRef: s.keyRef })));
}

/** Whether the given keys alone meet the thresholds of `role` and of the online roles (snapshot, timestamp). */
export function keysMeetThresholds(repo: TrustRepository, role: string, ids: ReadonlySet<string>): boolean {
  const rootRoles = repo.state.root.signed.roles;
  const delegated = repo.state.targets.signed.delegations?.roles?.[role];
  const roles = [rootRoles.snapshot, rootRoles.timestamp, delegated ?? rootRoles[role]];
  return roles.every((r) => r !== undefined && r.keyIDs.filter((id) => ids.has(id)).length >= r.threshold);
}

export interface CommitOptions {
  signers: readonly Signer[];
  expires?: Record<string, number>;
  /** Open a repository whose timestamp is damaged or forged (apx trust publish --recover). */
  recoverTimestamp?: boolean;
  /** Re-open, re-apply and re-commit after a lost compare-and-swap, up to 3 more times. */
  retry?: { role: string };
  /** The change, made on a freshly opened repository (again on each retry). */
  apply(repo: TrustRepository): Drafts | Promise<Drafts>;
  /** Commits differently (sign, publish) instead of repo.commit(drafts). */
  settle?(repo: TrustRepository, drafts: Drafts): Promise<CommitResult>;
}

export const MAX_ATTEMPTS = 4;

/**
 * Opens the repository, applies the change and commits it. A concurrent publish makes the
 * commit lose its compare-and-swap on tuf/timestamp.json: when the keys given publish by
 * themselves, the change is re-applied on top of what won (the other change is kept);
 * otherwise the conflict is reported, since re-drafting would drop collected signatures.
 */
export async function commitChange(
  ctx: CliContext,
  store: ArtifactStore,
  options: CommitOptions,
): Promise<{ repo: TrustRepository; result: CommitResult; attempts: number }> {
  const { TrustRepository, isTrustError, TrustError, TrustErrorCode } = await trustModule();
  const ids = new Set((await signerIds(options.signers)).map((s) => s.keyId));
  let attempts = 1;
  try {
    return await TrustRepository.update(store, options.apply, [...options.signers], {
      ...(options.expires ? { expires: options.expires } : {}),
      ...(options.recoverTimestamp ? { recoverTimestamp: true } : {}),
      ...(options.settle ? { settle: options.settle } : {}),
      attempts: MAX_ATTEMPTS,
      retryable: (repo) => options.retry !== undefined && keysMeetThresholds(repo, options.retry.role, ids),
      onRetry: (attempt, max) => {
        attempts = attempt;
        ctx.stderr.write(
          `conflict: the trust repository changed since it was read; applying the change again (attempt ${attempt} of ${max})\n`,
        );
      },
    });
  } catch (err) {
    if (!isTrustError(err, TrustErrorCode.CONFLICT)) throw err;
    throw new TrustError(
      TrustErrorCode.CONFLICT,
      `conflict: the trust repository in ${store.url} changed since it was read (another apx trust command published meanwhile)${attempts > 1 ? `; gave up after ${attempts} attempts` : ''}`,
      {
        hint: 'run the command again: it re-reads the repository and applies the change on top; apx trust status shows what is in force',
        cause: err,
      },
    );
  }
}

/** `production has 1 of 2 signatures; missing key ids 1a2b3c4d5e6f, 9f8e7d6c5b4a` for each pending role. */
export function pendingText(pending: readonly PendingRole[]): string {
  return pending
    .map(
      (p) =>
        `${p.role} version ${p.version} has ${p.signatures} of ${p.threshold} signature${p.threshold === 1 ? '' : 's'}; missing key ids ${p.missing.map(short).join(', ')}`,
    )
    .join('; ');
}

/** The next step after a staged commit: who must sign, with which command. */
export function pendingHint(pending: readonly PendingRole[]): string {
  const online = pending.every((p) => p.role === 'snapshot' || p.role === 'timestamp');
  return online
    ? 'run apx trust publish --key SNAPSHOT-KEY --key TIMESTAMP-KEY'
    : `run apx trust sign --key … with one of the missing keys (and the snapshot and timestamp keys to publish)`;
}

/** What a commit did: `production version 4, published` or `staged: production version 5 has 1 of 2 signatures; …`. */
export function resultText(result: CommitResult): string {
  if (result.kind === 'published') {
    const roles = Object.entries(result.roles).map(([r, v]) => `${r} version ${v}`);
    if (roles.length === 0) roles.push(`snapshot version ${result.snapshot}`, `timestamp version ${result.timestamp}`);
    return `${roles.join(', ')}, published`;
  }
  return `staged: ${pendingText(result.pending)}; ${pendingHint(result.pending)}`;
}

export function resultJson(result: CommitResult): Record<string, unknown> {
  return result.kind === 'published'
    ? { outcome: 'published', roles: result.roles, snapshot: result.snapshot, timestamp: result.timestamp }
    : { outcome: 'staged', pending: result.pending };
}

/** Role versions a result touched (published or staged), for the audit trail. */
export function resultRoles(result: CommitResult): Record<string, number> {
  if (result.kind === 'published') return { ...result.roles, snapshot: result.snapshot, timestamp: result.timestamp };
  return Object.fromEntries(result.pending.map((p) => [p.role, p.version]));
}

/** Appends the audit record of a trust change made with `signers`. */
export async function auditChange(
  ctx: CliContext,
  signers: readonly Signer[],
  result: CommitResult,
  entry: Omit<TrustAuditEntry, 'outcome' | 'roles' | 'keys'>,
): Promise<void> {
  await auditTrust(ctx, { ...entry, outcome: result.kind, roles: resultRoles(result), keys: await signerIds(signers) });
}

export function writeJson(ctx: CliContext, value: unknown): void {
  ctx.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/**
 * Prints a commit's result (JSON with --json): `✓ approved X for production (production
 * version 4, published)`, or `… approved X for production: staged: …; run apx trust sign …`.
 * Staged is not a failure: the change waits for more signatures.
 */
export function report(
  ctx: CliContext,
  args: ParsedArgs,
  line: string,
  result: CommitResult,
  extra: Record<string, unknown> = {},
) {
  if (args.flags.json === true) {
    writeJson(ctx, { ...extra, ...resultJson(result) });
    return;
  }
  ctx.stderr.write(result.kind === 'published' ? `✓ ${line} (${resultText(result)})\n` : `… ${line}: ${resultText(result)}\n`);
}
