import {
  attestationRequirementsJson,
  describeIdentityPolicy,
  type IdentityPolicyJson,
  identityPolicyJson,
  sha256Hex,
} from '@apx/core';
import type { RepositoryState, readEnvironmentCustom, TrustRepository } from '@apx/trust';
import { type CommandSpec, flagString } from '../../command.js';
import type { CliContext } from '../../context.js';
import {
  checkEnvironment,
  ENVIRONMENT_NAMES,
  JSON_FLAG,
  STORE_FLAG,
  short,
  TOP_LEVEL_NAMES,
  trustModule,
  withTrustStore,
  writeJson,
} from './shared.js';

type Metadata = RepositoryState['root'] | RepositoryState['targets'];
type KeyLike = { verifySignature(md: unknown): void };
interface Delegation {
  keyIDs: string[];
  threshold: number;
}

export interface RoleStatus {
  role: string;
  /** null: an environment with no published version yet. */
  version: number | null;
  expires: string | null;
  expired: boolean;
  threshold: number;
  keyIds: string[];
  /** Key ids of the signatures on the version in force. */
  signedBy: string[];
}

/** An attestation bundle published beside an approved artifact (compliance: what was attested). */
export interface AttestationFile {
  name: string;
  sha256: string;
}

export interface EnvironmentStatus extends RoleStatus {
  approved: Array<{
    path: string;
    length: number;
    sha256: string;
    approvedAt: string | null;
    /** The SBOM and provenance bundles in the store beside it (null: none); filled by withAttestationDigests. */
    sbom?: AttestationFile | null;
    provenance?: AttestationFile | null;
  }>;
  /** What the environment requires of attestations (apx trust require, apx trust vex); null: nothing. */
  attestationPolicy: Record<string, unknown> | null;
  /** APX key ids (hex SHA-256 of the public key) of the keys trusted to sign artifacts. */
  signers: string[];
  /** The same keys with their validity windows (a retired key has notAfter). */
  signerKeys: Array<{ keyId: string; notBefore?: string; notAfter?: string }>;
  /** Identities trusted to sign keylessly (issuer, subject, GitHub facts), as written in the role. */
  identities: Array<{ identity: IdentityPolicyJson; description: string }>;
  revoked: Array<{ path: string; sha256: string; reason: string; revokedAt: string }>;
}

export interface StagedStatus {
  role: string;
  version: number;
  signatures: number;
  threshold: number;
  signedBy: string[];
  missing: string[];
  /** Superseded by a later publish: ignored, re-make the change. */
  stale: boolean;
}

export interface TrustStatus {
  store: string;
  /** When the repository was read and verified. */
  checkedAt?: string;
  roles: RoleStatus[];
  environments: EnvironmentStatus[];
  staged: StagedStatus[];
}

function keysOf(delegator: Metadata): Record<string, KeyLike> {
  const signed = delegator.signed as { keys?: Record<string, KeyLike>; delegations?: { keys: Record<string, KeyLike> } };
  return signed.keys ?? signed.delegations?.keys ?? {};
}

function delegationOf(delegator: Metadata, role: string): Delegation | undefined {
  const signed = delegator.signed as {
    roles?: Record<string, Delegation>;
    delegations?: { roles?: Record<string, Delegation> };
  };
  return signed.roles?.[role] ?? signed.delegations?.roles?.[role];
}

/** Key ids of the delegation whose signatures on `md` verify. */
function validSigners(delegator: Metadata, delegation: Delegation, md: { signatures: Record<string, unknown> }): string[] {
  const keys = keysOf(delegator);
  return delegation.keyIDs.filter((id) => {
    if (md.signatures[id] === undefined) return false;
    try {
      keys[id]?.verifySignature(md);
      return keys[id] !== undefined;
    } catch {
      return false;
    }
  });
}

/** What is in force in the repository, and what waits staged. */
/**
 * `readCustom` is @apx/trust's readEnvironmentCustom, passed in: the trust module (tuf-js)
 * loads only when a trust command runs.
 */
export function trustStatus(
  repo: TrustRepository,
  now: Date,
  readCustom: typeof readEnvironmentCustom,
  only?: string,
): TrustStatus {
  const { state } = repo;
  const role = (
    name: string,
    md: { signed: { version: number; expires: string }; signatures: Record<string, unknown> } | undefined,
    d: Delegation | undefined,
  ): RoleStatus => ({
    role: name,
    version: md?.signed.version ?? null,
    expires: md?.signed.expires ?? null,
    expired: md ? Date.parse(md.signed.expires) <= now.getTime() : false,
    threshold: d?.threshold ?? 0,
    keyIds: d?.keyIDs ?? [],
    signedBy: md ? Object.keys(md.signatures) : [],
  });
  const top = { root: state.root, targets: state.targets, snapshot: state.snapshot, timestamp: state.timestamp };
  const roles = TOP_LEVEL_NAMES.map((name) => role(name, top[name], delegationOf(state.root, name)));
  const environments: EnvironmentStatus[] = [];
  for (const env of ENVIRONMENT_NAMES) {
    if (only !== undefined && env !== only) continue;
    const d = delegationOf(state.targets, env);
    if (!d) continue;
    const md = state.environments.get(env);
    const signed = md?.signed as
      | {
          targets: Record<string, { length: number; hashes: Record<string, string>; custom: Record<string, unknown> }>;
          unrecognizedFields?: Record<string, unknown>;
        }
      | undefined;
    const custom = md
      ? readCustom(env, md.signed as Parameters<typeof readEnvironmentCustom>[1])
      : { signers: [], identities: [], revoked: [] };
    environments.push({
      ...role(env, md, d),
      approved: Object.entries(signed?.targets ?? {}).map(([path, t]) => ({
        path,
        length: t.length,
        sha256: t.hashes.sha256 ?? '',
        approvedAt: String((t.custom.apx as { approvedAt?: string } | undefined)?.approvedAt ?? '') || null,
      })),
      signers: custom.signers.map((s) => s.keyId),
      signerKeys: custom.signers.map((s) => ({
        keyId: s.keyId,
        ...(s.notBefore ? { notBefore: s.notBefore } : {}),
        ...(s.notAfter ? { notAfter: s.notAfter } : {}),
      })),
      identities: (custom.identities ?? []).map((s) => ({
        identity: identityPolicyJson(s.identity),
        description: describeIdentityPolicy(s.identity),
      })),
      revoked: custom.revoked,
      attestationPolicy:
        'attestations' in custom && custom.attestations ? attestationRequirementsJson(custom.attestations) : null,
    });
  }
  const staged: StagedStatus[] = [];
  const liveRoot = (() => {
    const s = state.staged.get('root')?.metadata as RepositoryState['root'] | undefined;
    return s && s.signed.version === state.root.signed.version + 1 ? s : undefined;
  })();
  const liveTargets = (() => {
    const s = state.staged.get('targets')?.metadata as RepositoryState['targets'] | undefined;
    return s && s.signed.version > state.targets.signed.version ? s : undefined;
  })();
  for (const { role: name, metadata } of state.staged.values()) {
    if (only !== undefined && name !== only) continue;
    const committed = name === 'root' ? state.root : name === 'targets' ? state.targets : state.environments.get(name);
    const v = metadata.signed.version;
    const stale = name === 'root' ? v !== state.root.signed.version + 1 : v <= (committed?.signed.version ?? 0);
    const delegators: Metadata[] =
      name === 'root' ? [state.root, metadata] : name === 'targets' ? [liveRoot ?? state.root] : [liveTargets ?? state.targets];
    let worst: StagedStatus | undefined;
    for (const delegator of delegators) {
      const d = delegationOf(delegator, name);
      if (!d) continue;
      const have = validSigners(delegator, d, metadata);
      const entry = {
        role: name,
        version: v,
        signatures: have.length,
        threshold: d.threshold,
        signedBy: Object.keys(metadata.signatures),
        missing: d.keyIDs.filter((id) => !have.includes(id)),
        stale,
      };
      if (!worst || entry.threshold - entry.signatures > worst.threshold - worst.signatures) worst = entry;
    }
    if (worst) staged.push(worst);
  }
  return { store: repo.store.url, roles, environments, staged };
}

/** Attestation bundles are a few KiB; a larger object is not one. */
const MAX_ATTESTATION_BYTES = 1024 * 1024;

/**
 * For each approved artifact, the SHA-256 of the SBOM and provenance bundles published beside
 * it: what an auditor asks for. Read from the store, not verified here (workers verify them).
 */
export async function withAttestationDigests(
  status: TrustStatus,
  store: { get(name: string, options: { maxBytes: number }): Promise<Uint8Array | undefined> },
): Promise<void> {
  for (const e of status.environments) {
    for (const a of e.approved) {
      for (const kind of ['sbom', 'provenance'] as const) {
        const name = `${a.path}.${kind}.sigstore.json`;
        const bytes = await store.get(name, { maxBytes: MAX_ATTESTATION_BYTES }).catch(() => undefined);
        a[kind] = bytes ? { name, sha256: sha256Hex(bytes) } : null;
      }
    }
  }
}

function until(expires: string | null, now: Date): string {
  if (!expires) return '';
  const ms = Date.parse(expires) - now.getTime();
  if (ms <= 0) return ' (EXPIRED)';
  const h = ms / 3_600_000;
  return h < 48 ? ` (in ${Math.floor(h)}h${Math.floor((ms / 60_000) % 60)}m)` : ` (in ${Math.floor(h / 24)}d)`;
}

export function renderStatus(status: TrustStatus, now: Date): string {
  const lines = [`Trust repository in ${status.store}`];
  const roleLine = (r: RoleStatus) =>
    `  ${r.role.padEnd(11)}${r.version === null ? 'no version yet' : `version ${r.version}, expires ${r.expires}${until(r.expires, now)}`}; ${r.threshold} of ${r.keyIds.length} keys ${r.keyIds.map(short).join(', ')}; signed by ${r.signedBy.map(short).join(', ') || 'nobody'}`;
  for (const r of status.roles) lines.push(roleLine(r));
  for (const e of status.environments) {
    lines.push('', roleLine(e).trimStart());
    const window = (k: EnvironmentStatus['signerKeys'][number]) =>
      k.notAfter
        ? ` (${Date.parse(k.notAfter) <= now.getTime() ? 'retired' : 'valid until'} ${k.notAfter})`
        : k.notBefore
          ? ` (valid from ${k.notBefore})`
          : '';
    const signerText = [
      ...e.signerKeys.map((k) => `${k.keyId}${window(k)}`),
      ...e.identities.map((i) => `identity ${i.description}`),
    ];
    lines.push(`  artifact signers: ${signerText.join(', ') || 'none (apx trust signer add)'}`);
    lines.push(`  approved: ${e.approved.length === 0 ? 'none' : ''}`);
    if (e.attestationPolicy) lines.push(`  requires attestations: ${JSON.stringify(e.attestationPolicy)}`);
    for (const a of e.approved) {
      lines.push(`    ${a.path}  sha256:${a.sha256}  ${a.length} bytes  approved ${a.approvedAt ?? '?'}`);
      if (a.sbom !== undefined || a.provenance !== undefined)
        lines.push(
          `      sbom ${a.sbom ? `sha256:${a.sbom.sha256}` : 'none'}  provenance ${a.provenance ? `sha256:${a.provenance.sha256}` : 'none'}`,
        );
    }
    if (e.revoked.length > 0) lines.push('  revoked:');
    for (const r of e.revoked) lines.push(`    ${r.path}  sha256:${r.sha256}  revoked ${r.revokedAt}: ${r.reason}`);
  }
  const live = status.staged.filter((s) => !s.stale);
  lines.push('', live.length === 0 ? 'Staged: nothing waits for signatures' : 'Staged (waiting for signatures; apx trust sign):');
  for (const s of live) {
    lines.push(
      `  ${s.role} version ${s.version}: ${s.signatures} of ${s.threshold} signatures${s.signatures >= s.threshold ? ' (complete: apx trust publish)' : `; missing ${s.missing.map(short).join(', ')}`}`,
    );
  }
  return `${lines.join('\n').replace(/approved: \n/g, 'approved:\n')}\n`;
}

export const trustStatusCommand: CommandSpec = {
  name: 'trust status',
  summary:
    "What is in force: each role's version, expiry, keys and signers; approvals, trusted signers, revocations; staged changes.",
  usage: '[--env ENV] [--store URL] [--json]',
  details: `Reads and verifies the repository (as a worker would, expiry aside: expired roles are
shown as EXPIRED). Role keys are TUF key ids (what "missing key ids" names); artifact signers
are APX key ids (hex SHA-256 of the public key, as apx generate-key-pair prints). --env limits
the environments and staged changes shown to one.`,
  flags: [
    { name: 'env', type: 'string', value: 'ENV', description: 'Only this environment (dev, staging or production).' },
    STORE_FLAG,
    JSON_FLAG,
  ],
  positionals: { min: 0, max: 0, names: '' },
  async run(ctx: CliContext, args) {
    const envText = flagString(args, 'env');
    const env = envText === undefined ? undefined : checkEnvironment(envText, '--env');
    return withTrustStore(ctx, args, async (store) => {
      const { TrustRepository } = await trustModule();
      const repo = await TrustRepository.open(store);
      const now = new Date();
      const status = trustStatus(repo, now, (await trustModule()).readEnvironmentCustom, env);
      await withAttestationDigests(status, store);
      status.checkedAt = now.toISOString();
      if (args.flags.json === true) writeJson(ctx, status);
      else ctx.stdout.write(renderStatus(status, now));
      return 0;
    });
  },
};
