// apx trust's engine: reads the published repository, makes new versions of roles, signs
// them with whatever keys the operator holds, stages what still lacks signatures, and
// publishes complete sets with one compare-and-swap on tuf/timestamp.json.

import type { ArtifactRef } from '@apx/core';
import {
  type Advisory,
  type AttestationRequirements,
  artifactFileName,
  describeIdentityPolicy,
  formatArtifactRef,
  type IdentityPolicy,
  identityPolicyJson,
  type PublicKey,
  requiresNothing,
} from '@apx/core';
import type { ArtifactStore } from '@apx/storage';
import type { Metadata, Root, Snapshot, Targets, Timestamp } from '@tufjs/models';
import type { EnvironmentCustom, TargetCustom } from '../custom.js';

import { CUSTOM_FIELD } from '../custom.js';
import { TrustError, TrustErrorCode } from '../error.js';
import { addSignature, type MetadataSigner, tufKey } from '../keys.js';
import {
  defaultExpirySeconds,
  ENVIRONMENT_ROLES,
  metadataObjectName,
  ROOT,
  SNAPSHOT,
  stagedObjectName,
  TARGETS,
  TIMESTAMP,
  TIMESTAMP_OBJECT,
} from '../layout.js';
import { delegatingView, metadataBytes, type RoleMetadata, roleKeys } from '../metadata.js';
import {
  environmentJson,
  expiresIn,
  type InitRoles,
  initialRoot,
  initialTargets,
  type Json,
  type RoleKeys,
  rootWithRoleKeys,
  snapshotJson,
  targetsWithDelegation,
  timestampJson,
  unsigned,
} from './drafts.js';
import { highestPublished, loadRepository, type RepositoryState, storeFailed } from './state.js';

/** Sets an environment's attestation policy; one that asks for nothing removes the field. */
function setAttestations(custom: EnvironmentCustom, requirements: AttestationRequirements): void {
  if (requiresNothing(requirements)) delete custom.attestations;
  else custom.attestations = requirements;
}

export interface Approval {
  ref: ArtifactRef;
  length: number;
  /** Lowercase hex SHA-256 of the artifact bytes. */
  sha256: string;
}

/** A role still waiting for signatures after a command. */
export interface PendingRole {
  role: string;
  version: number;
  signatures: number;
  threshold: number;
  /** Key ids of the role that have not signed yet. */
  missing: string[];
}

export type CommitResult =
  | { kind: 'published'; roles: Record<string, number>; snapshot: number; timestamp: number }
  | { kind: 'staged'; pending: PendingRole[] };

export interface RepositoryOptions {
  now?: () => Date;
  /** Validity of new versions per role, in seconds (defaults: layout.ts). */
  expires?: Partial<Record<string, number>>;
  /** The root to start the chain from instead of the store's tuf/1.root.json. */
  trustedRoot?: Uint8Array;
  /** Open a repository whose tuf/timestamp.json is damaged or forged, to publish a good one. */
  recoverTimestamp?: boolean;
}

export interface UpdateOptions extends RepositoryOptions {
  /** Tries in all, the first included (default 5). */
  attempts?: number;
  /** Commits differently (sign, publish) instead of repo.commit(drafts). */
  settle?: (repo: TrustRepository, drafts: Drafts) => Promise<CommitResult>;
  /** Whether a lost compare-and-swap may be retried on the repository as it was read. */
  retryable?: (repo: TrustRepository) => boolean;
  /** Called before each retry with its number. */
  onRetry?: (attempt: number, attempts: number) => void;
}

/** Roles changed by one command, as unsigned TUF JSON: published or staged together. */
export type Drafts = Map<string, Json>;

type Delegator = Metadata<Root> | Metadata<Targets>;

export class TrustRepository {
  readonly store: ArtifactStore;
  readonly state: RepositoryState;
  readonly #options: RepositoryOptions;

  private constructor(store: ArtifactStore, state: RepositoryState, options: RepositoryOptions) {
    this.store = store;
    this.state = state;
    this.#options = options;
  }

  /**
   * Read, change, commit; on a conflict (another publisher won the compare-and-swap), read
   * again and re-apply the change on top, up to `attempts` times. The change is a function of
   * the repository as read, so what it approves or revokes is decided on the current state.
   * `retryable` can refuse a retry (re-drafting a change that waits for more signatures would
   * drop the ones collected); the last conflict is then thrown as it is.
   */
  static async update(
    store: ArtifactStore,
    change: (repo: TrustRepository) => Drafts | Promise<Drafts>,
    signers: MetadataSigner[],
    options: UpdateOptions = {},
  ): Promise<{ repo: TrustRepository; result: CommitResult; attempts: number }> {
    const attempts = options.attempts ?? 5;
    for (let i = 1; ; i++) {
      const repo = await TrustRepository.open(store, options);
      const drafts = await change(repo);
      try {
        const result = options.settle ? await options.settle(repo, drafts) : await repo.commit(drafts, signers);
        return { repo, result, attempts: i };
      } catch (err) {
        if (!(err instanceof TrustError && err.code === TrustErrorCode.CONFLICT)) throw err;
        if (i >= attempts || options.retryable?.(repo) === false) throw err;
        options.onRetry?.(i + 1, attempts);
        // Back off with jitter: concurrent publishers that all lost to one winner would
        // otherwise collide again at once, on every attempt.
        await new Promise((r) => setTimeout(r, Math.floor(Math.random() * 50 * 2 ** Math.min(i, 6))));
      }
    }
  }

  static async open(store: ArtifactStore, options: RepositoryOptions = {}): Promise<TrustRepository> {
    const state = await loadRepository(store, {
      ...(options.trustedRoot ? { trustedRoot: options.trustedRoot } : {}),
      ...(options.recoverTimestamp ? { recoverTimestamp: true } : {}),
    });
    return new TrustRepository(store, state, options);
  }

  /**
   * Creates a repository: root, targets (delegating each environment to its approvers),
   * snapshot and timestamp, each signed by a threshold of its keys. Every threshold must be
   * met by the signers given: a half-made root would leave workers nothing to trust.
   */
  static async init(store: ArtifactStore, roles: InitRoles, signers: MetadataSigner[], options: RepositoryOptions = {}) {
    const now = (options.now ?? (() => new Date()))();
    const exp = (role: string) => expiresIn(now, options.expires?.[role] ?? defaultExpirySeconds(role));
    const root = unsigned(ROOT, initialRoot(roles, exp(ROOT))) as Metadata<Root>;
    const targets = unsigned(TARGETS, initialTargets(exp(TARGETS))) as Metadata<Targets>;
    await signEligible(root, signers, [roleKeys(root, ROOT).keyIDs]);
    await signEligible(targets, signers, [roleKeys(root, TARGETS).keyIDs]);
    requireThreshold(root, ROOT, root);
    requireThreshold(root, TARGETS, targets);
    const targetsBytes = metadataBytes(targets);
    const snapshot = unsigned(
      SNAPSHOT,
      snapshotJson(undefined, { [TARGETS]: { version: 1, bytes: targetsBytes } }, 1, exp(SNAPSHOT)),
    ) as Metadata<Snapshot>;
    await signEligible(snapshot, signers, [roleKeys(root, SNAPSHOT).keyIDs]);
    requireThreshold(root, SNAPSHOT, snapshot);
    const snapshotBytes = metadataBytes(snapshot);
    const timestamp = unsigned(
      TIMESTAMP,
      timestampJson({ version: 1, bytes: snapshotBytes }, 1, exp(TIMESTAMP)),
    ) as Metadata<Timestamp>;
    await signEligible(timestamp, signers, [roleKeys(root, TIMESTAMP).keyIDs]);
    requireThreshold(root, TIMESTAMP, timestamp);
    const created = await put(store, metadataObjectName(ROOT, 1), metadataBytes(root));
    if (created === 'exists') {
      throw new TrustError(TrustErrorCode.CONFLICT, `a trust repository already exists in ${store.url}`, {
        hint: 'change it with apx trust approve, revoke or rotate; apx trust status shows what is in force',
      });
    }
    await put(store, metadataObjectName(TARGETS, 1), targetsBytes);
    await put(store, metadataObjectName(SNAPSHOT, 1), snapshotBytes);
    await swap(store, TIMESTAMP_OBJECT, metadataBytes(timestamp), null);
    // Then each environment: its delegation and its first (empty) version, published together
    // once its approvers have signed (now, or later with apx trust sign).
    const repo = await TrustRepository.open(store, options);
    let drafts: Drafts = new Map();
    for (const [env, spec] of Object.entries(roles.environments)) {
      drafts = repo.#withEnvironment(drafts, env, spec);
    }
    if (drafts.size === 0) return { kind: 'published', roles: {}, snapshot: 1, timestamp: 1 } as CommitResult;
    return repo.#signAndSettle(repo.#draftsToMetadata(drafts), signers, { anySigner: true });
  }

  /** Adds (or re-keys) an environment: the targets delegation and the role's next version. */
  #withEnvironment(drafts: Drafts, env: string, spec: RoleKeys): Drafts {
    if (!ENVIRONMENT_ROLES.includes(env)) {
      throw new TrustError(TrustErrorCode.INVALID_REQUEST, `unknown environment ${env}`, {
        hint: `environments are ${ENVIRONMENT_ROLES.join(', ')}`,
      });
    }
    const base = (drafts.get(TARGETS) as Json | undefined)
      ? (unsigned(TARGETS, drafts.get(TARGETS) as Json) as Metadata<Targets>)
      : ((this.#liveStaged(TARGETS) as Metadata<Targets> | undefined) ?? this.state.targets);
    const next = new Map(drafts);
    next.set(TARGETS, targetsWithDelegation(base, env, spec, this.#nextVersion(TARGETS), this.#expires(TARGETS)));
    const current = (this.#liveStaged(env) as Metadata<Targets> | undefined) ?? this.state.environments.get(env);
    next.set(
      env,
      environmentJson(current, env, this.#nextVersion(env), this.#expires(env), () => undefined),
    );
    return next;
  }

  get now(): Date {
    return (this.#options.now ?? (() => new Date()))();
  }

  #expires(role: string): string {
    const env = this.state.targets.signed.delegations?.roles?.[role] !== undefined;
    return expiresIn(
      this.now,
      this.#options.expires?.[role] ?? this.#options.expires?.[env ? 'environment' : role] ?? defaultExpirySeconds(role),
    );
  }

  /** The committed metadata of a role (undefined: an environment with no version yet). */
  committed(role: string): Metadata<Root> | Metadata<Targets> | undefined {
    if (role === ROOT) return this.state.root;
    if (role === TARGETS) return this.state.targets;
    return this.state.environments.get(role);
  }

  /** Staged metadata still ahead of what is published (a later publish makes it stale). */
  #liveStaged(role: string): Metadata<Root> | Metadata<Targets> | undefined {
    const staged = this.state.staged.get(role);
    if (!staged) return undefined;
    const published = this.committed(role)?.signed.version ?? 0;
    const v = staged.metadata.signed.version;
    if (role === ROOT ? v !== published + 1 : v <= published) return undefined;
    return staged.metadata;
  }

  /** The next version of a role: past the committed one and past any leftover of a failed publish. */
  #nextVersion(role: string): number {
    const staged = this.#liveStaged(role);
    if (staged) return staged.signed.version;
    const committed = this.committed(role)?.signed.version ?? 0;
    if (role === ROOT) return committed + 1;
    return Math.max(committed, highestPublished(this.state, role)) + 1;
  }

  #environment(env: string): void {
    if (!this.state.targets.signed.delegations?.roles?.[env]) {
      const known = Object.keys(this.state.targets.signed.delegations?.roles ?? {}).join(', ');
      throw new TrustError(TrustErrorCode.INVALID_REQUEST, `the trust repository has no environment ${env}`, {
        hint: `environments: ${known || 'none'}`,
      });
    }
  }

  /** A new version of an environment role, built on staged changes if any are waiting. */
  #changeEnvironment(env: string, change: (targets: Json, custom: EnvironmentCustom) => void): Drafts {
    this.#environment(env);
    const base = (this.#liveStaged(env) as Metadata<Targets> | undefined) ?? this.state.environments.get(env);
    return new Map([[env, environmentJson(base, env, this.#nextVersion(env), this.#expires(env), change)]]);
  }

  /**
   * Sets what an environment requires of artifacts' attestations (replacing what it required);
   * requirements that ask for nothing remove the field.
   */
  requireAttestations(env: string, requirements: Omit<AttestationRequirements, 'vulnerabilities'>): Drafts {
    return this.#changeEnvironment(env, (_targets, custom) => {
      // The VEX advisories are apx trust vex's: kept as they are.
      setAttestations(custom, { ...requirements, vulnerabilities: custom.attestations?.vulnerabilities ?? [] });
    });
  }

  /**
   * The VEX gate: replaces the environment's affected, unresolved component versions (from a
   * CycloneDX VEX document); its other attestation requirements are kept.
   */
  setVulnerabilities(env: string, vulnerabilities: readonly Advisory[]): Drafts {
    return this.#changeEnvironment(env, (_targets, custom) => {
      const current = custom.attestations ?? {
        provenance: false,
        sbom: false,
        builderIds: [],
        sourceRepositories: [],
        denyComponents: [],
        vulnerabilities: [],
      };
      setAttestations(custom, { ...current, vulnerabilities: [...vulnerabilities] });
    });
  }

  /** Approves an artifact (by length and SHA-256) for an environment. */
  approve(env: string, approval: Approval): Drafts {
    const path = artifactFileName(approval.ref);
    const custom: TargetCustom = {
      policyId: approval.ref.policyId,
      version: approval.ref.version,
      approvedAt: this.now.toISOString(),
    };
    return this.#changeEnvironment(env, (targets) => {
      targets[path] = { length: approval.length, hashes: { sha256: approval.sha256 }, custom: { [CUSTOM_FIELD]: custom } };
    });
  }

  /** Revokes an approval: the environment's next version no longer lists it; the reason is kept. */
  revoke(env: string, ref: ArtifactRef, reason: string): Drafts {
    const path = artifactFileName(ref);
    return this.#changeEnvironment(env, (targets, custom) => {
      const entry = targets[path] as { hashes?: { sha256?: string } } | undefined;
      if (!entry) {
        throw new TrustError(TrustErrorCode.INVALID_REQUEST, `${formatArtifactRef(ref)} is not approved in ${env}`, {
          hint: `apx trust status --env ${env} lists what is approved`,
        });
      }
      delete targets[path];
      custom.revoked.push({ path, sha256: entry.hashes?.sha256 ?? '', reason, revokedAt: this.now.toISOString() });
    });
  }

  /**
   * Trusts (or stops trusting) a key, or an identity (keyless: a Fulcio certificate's issuer,
   * subject and GitHub facts), to sign artifacts for an environment.
   */
  setSigner(
    env: string,
    change: {
      add?: PublicKey;
      removeKeyId?: string;
      addIdentity?: IdentityPolicy;
      removeIdentity?: IdentityPolicy;
      /** Ends a key's validity window at `at` (RFC 3339): its signatures still load when a trusted time dates them before. */
      retire?: { keyId: string; at: string };
    },
  ): Drafts {
    return this.#changeEnvironment(env, (_targets, custom) => {
      if (change.retire) {
        const { keyId: id, at } = change.retire;
        const signer = custom.signers.find((s) => s.keyId === id || (id.length >= 8 && s.keyId.startsWith(id)));
        if (!signer) {
          throw new TrustError(TrustErrorCode.INVALID_REQUEST, `key ${id} does not sign for ${env}`, {
            hint: `apx trust status --env ${env} lists its signers`,
          });
        }
        if (Number.isNaN(Date.parse(at)))
          throw new TrustError(TrustErrorCode.INVALID_REQUEST, `--at ${at} is not an RFC 3339 time`);
        signer.notAfter = new Date(at).toISOString();
      }
      const same = (a: IdentityPolicy, b: IdentityPolicy) =>
        JSON.stringify(identityPolicyJson(a)) === JSON.stringify(identityPolicyJson(b));
      if (change.addIdentity) {
        const identity = change.addIdentity;
        custom.identities ??= [];
        if (custom.identities.some((s) => same(s.identity, identity))) {
          throw new TrustError(
            TrustErrorCode.INVALID_REQUEST,
            `identity ${describeIdentityPolicy(identity)} already signs for ${env}`,
          );
        }
        custom.identities.push({ identity });
      }
      if (change.removeIdentity) {
        const identity = change.removeIdentity;
        const at = (custom.identities ?? []).findIndex((s) => same(s.identity, identity));
        if (at < 0) {
          throw new TrustError(
            TrustErrorCode.INVALID_REQUEST,
            `identity ${describeIdentityPolicy(identity)} does not sign for ${env}`,
            {
              hint: `apx trust status --env ${env} lists its signers`,
            },
          );
        }
        custom.identities?.splice(at, 1);
      }
      if (change.add) {
        const key = change.add;
        if (custom.signers.some((s) => s.keyId === key.keyId)) {
          throw new TrustError(TrustErrorCode.INVALID_REQUEST, `key ${key.keyId} already signs for ${env}`);
        }
        custom.signers.push({ keyId: key.keyId, publicKey: key });
      }
      if (change.removeKeyId) {
        const id = change.removeKeyId;
        const at = custom.signers.findIndex((s) => s.keyId === id || (id.length >= 8 && s.keyId.startsWith(id)));
        if (at < 0) {
          throw new TrustError(TrustErrorCode.INVALID_REQUEST, `key ${id} does not sign for ${env}`, {
            hint: `apx trust status --env ${env} lists its signers`,
          });
        }
        custom.signers.splice(at, 1);
      }
    });
  }

  /**
   * New keys for a role. A top-level role's keys live in root: the next root must be signed
   * by a threshold of the old and of the new root keys (TUF 5.3.4). An environment's keys
   * live in the targets delegation: the environment role is re-signed under its new keys in
   * the same publish, so its approvals stay valid.
   */
  rotate(role: string, spec: RoleKeys): Drafts {
    for (const k of spec.keys) tufKey(k); // refuse unsupported key types before anything is built
    if ([ROOT, TARGETS, SNAPSHOT, TIMESTAMP].includes(role)) {
      const base = (this.#liveStaged(ROOT) as Metadata<Root> | undefined) ?? this.state.root;
      const drafts: Drafts = new Map([[ROOT, rootWithRoleKeys(base, role, spec, this.#nextVersion(ROOT), this.#expires(ROOT))]]);
      // Snapshot and timestamp are re-signed by every publish; targets is not: without a
      // version signed by the new targets keys in the same publish, the new root would leave
      // the targets in force signed by keys it no longer names, and every reader would refuse it.
      if (role === TARGETS) for (const [r, json] of this.renew(TARGETS)) drafts.set(r, json);
      return drafts;
    }
    return this.#withEnvironment(new Map(), role, spec);
  }

  /** Renews a role's expiry without changing what it says. */
  renew(role: string): Drafts {
    if (role === ROOT)
      return new Map([
        [ROOT, { ...(this.state.root.signed.toJSON() as Json), version: this.#nextVersion(ROOT), expires: this.#expires(ROOT) }],
      ]);
    if (role === TARGETS) {
      const base = (this.#liveStaged(TARGETS) ?? this.state.targets) as Metadata<Targets>;
      return new Map([
        [TARGETS, { ...(base.signed.toJSON() as Json), version: this.#nextVersion(TARGETS), expires: this.#expires(TARGETS) }],
      ]);
    }
    if (role === SNAPSHOT || role === TIMESTAMP) return new Map();
    return this.#changeEnvironment(role, () => undefined);
  }

  /** The delegator that decides a role's threshold, taking changes in the same commit into account. */
  #delegators(role: string, signed: Map<string, RoleMetadata>): Delegator[] {
    const root = (signed.get(ROOT) as Metadata<Root> | undefined) ?? this.state.root;
    if (role === ROOT) return signed.has(ROOT) ? [this.state.root, root] : [root];
    if (role === TARGETS || role === SNAPSHOT || role === TIMESTAMP) return [root];
    return [(signed.get(TARGETS) as Metadata<Targets> | undefined) ?? this.state.targets];
  }

  /**
   * Signs the drafts with every given key that belongs to their roles, then publishes them
   * if each meets its threshold, or stages them for more signatures (offline multi-party
   * signing: apx trust sign). Staged signatures on a draft whose content is unchanged are kept.
   */
  async commit(drafts: Drafts, signers: MetadataSigner[]): Promise<CommitResult> {
    return this.#signAndSettle(this.#draftsToMetadata(drafts), signers);
  }

  #draftsToMetadata(drafts: Drafts): Map<string, RoleMetadata> {
    const signed = new Map<string, RoleMetadata>();
    for (const [role, json] of drafts) {
      const md = unsigned(role, json);
      const staged = this.#liveStaged(role);
      if (staged && JSON.stringify(staged.signed.toJSON()) === JSON.stringify(md.signed.toJSON())) {
        Object.assign(md.signatures, staged.signatures);
      }
      signed.set(role, md);
    }
    return signed;
  }

  /** Adds signatures to the staged roles, then publishes them if every threshold is met. */
  async sign(signers: MetadataSigner[]): Promise<CommitResult> {
    const signed = new Map<string, RoleMetadata>();
    for (const role of this.state.staged.keys()) {
      const md = this.#liveStaged(role);
      if (md) signed.set(role, md);
    }
    if (signed.size === 0) {
      throw new TrustError(TrustErrorCode.STAGED_STALE, 'nothing is waiting for signatures', {
        hint: 'apx trust status shows what is staged; staged changes that a later publish superseded are dropped',
      });
    }
    return this.#signAndSettle(signed, signers);
  }

  /**
   * Signs, then publishes or stages. A key given that belongs to none of the roles involved
   * is refused (a development key offered for production says so at once), except at init,
   * where the root keys just used are passed along.
   */
  async #signAndSettle(
    signed: Map<string, RoleMetadata>,
    signers: MetadataSigner[],
    options: { anySigner?: boolean } = {},
  ): Promise<CommitResult> {
    const useful = new Set<string>();
    for (const [role, md] of signed) {
      const eligible = this.#delegators(role, signed).map((d) => roleKeys(d, role).keyIDs);
      for (const id of await signEligible(md, signers, eligible)) useful.add(id);
    }
    const online = this.#onlineKeyIds(signed);
    for (const s of signers) {
      const id = tufKey(await s.publicKey()).keyID;
      if (!options.anySigner && !useful.has(id) && !online.has(id)) {
        throw new TrustError(
          TrustErrorCode.KEY_NOT_IN_ROLE,
          `${s.keyRef} is not a key of ${[...signed.keys()].join(', ') || 'snapshot or timestamp'}`,
          {
            hint: 'apx trust status lists the key ids of each role',
          },
        );
      }
    }
    const pending = [...signed].flatMap(([role, md]) => this.#pending(role, md, signed));
    // Complete roles still need the online keys to be published; without them they wait staged.
    if (pending.length === 0 && signed.size > 0) pending.push(...(await this.#missingOnline(signed, signers)));
    if (pending.length > 0) {
      await this.#stage(signed);
      return { kind: 'staged', pending };
    }
    return this.#publish(signed, signers);
  }

  async #missingOnline(signed: Map<string, RoleMetadata>, signers: MetadataSigner[]): Promise<PendingRole[]> {
    const root = (signed.get(ROOT) as Metadata<Root> | undefined) ?? this.state.root;
    const ids = new Set(await Promise.all(signers.map(async (s) => tufKey(await s.publicKey()).keyID)));
    return [SNAPSHOT, TIMESTAMP].flatMap((role) => {
      const { keyIDs, threshold } = roleKeys(root, role);
      const have = keyIDs.filter((id) => ids.has(id)).length;
      const version = role === SNAPSHOT ? this.state.snapshot.signed.version + 1 : this.state.timestamp.signed.version + 1;
      return have >= threshold
        ? []
        : [{ role, version, signatures: have, threshold, missing: keyIDs.filter((id) => !ids.has(id)) }];
    });
  }

  #onlineKeyIds(signed: Map<string, RoleMetadata>): Set<string> {
    const root = (signed.get(ROOT) as Metadata<Root> | undefined) ?? this.state.root;
    return new Set([...roleKeys(root, SNAPSHOT).keyIDs, ...roleKeys(root, TIMESTAMP).keyIDs]);
  }

  #pending(role: string, md: RoleMetadata, signed: Map<string, RoleMetadata>): PendingRole[] {
    return this.#delegators(role, signed).flatMap((delegator) => {
      const { keyIDs, threshold } = roleKeys(delegator, role);
      const have = keyIDs.filter((id) => md.signatures[id] !== undefined && verifies(delegator, id, md));
      if (have.length >= threshold) return [];
      return [
        {
          role,
          version: md.signed.version,
          signatures: have.length,
          threshold,
          missing: keyIDs.filter((id) => !have.includes(id)),
        },
      ];
    });
  }

  async #stage(signed: Map<string, RoleMetadata>): Promise<void> {
    for (const [role, md] of signed) {
      const token = this.state.staged.get(role)?.token ?? null;
      await swap(this.store, stagedObjectName(role), metadataBytes(md), token);
    }
  }

  /**
   * The publish: role files first (create-only, versioned: never overwritten), then a new
   * snapshot naming them, then the one mutable file, tuf/timestamp.json, by compare-and-swap
   * against the version this command read. A concurrent publish makes the swap fail: the
   * loser's files are unreferenced leftovers, and the command reports a conflict.
   */
  async #publish(signed: Map<string, RoleMetadata>, signers: MetadataSigner[]): Promise<CommitResult> {
    const root = (signed.get(ROOT) as Metadata<Root> | undefined) ?? this.state.root;
    const files: Record<string, { version: number; bytes: Buffer }> = {};
    for (const [role, md] of signed) {
      if (role === ROOT) continue;
      const bytes = metadataBytes(md);
      const name = metadataObjectName(role, md.signed.version);
      if ((await put(this.store, name, bytes)) === 'exists') throw conflictOn(name);
      files[role] = { version: md.signed.version, bytes };
    }
    const snapshotVersion = Math.max(this.state.snapshot.signed.version, highestPublished(this.state, SNAPSHOT)) + 1;
    const snapshot = unsigned(
      SNAPSHOT,
      snapshotJson(this.state.snapshot, files, snapshotVersion, this.#expires(SNAPSHOT)),
    ) as Metadata<Snapshot>;
    await signEligible(snapshot, signers, [roleKeys(root, SNAPSHOT).keyIDs]);
    requireThreshold(root, SNAPSHOT, snapshot);
    const snapshotBytes = metadataBytes(snapshot);
    const timestampVersion = this.state.timestamp.signed.version + 1;
    const timestamp = unsigned(
      TIMESTAMP,
      timestampJson({ version: snapshotVersion, bytes: snapshotBytes }, timestampVersion, this.#expires(TIMESTAMP)),
    ) as Metadata<Timestamp>;
    await signEligible(timestamp, signers, [roleKeys(root, TIMESTAMP).keyIDs]);
    requireThreshold(root, TIMESTAMP, timestamp);
    const snapshotName = metadataObjectName(SNAPSHOT, snapshotVersion);
    if ((await put(this.store, snapshotName, snapshotBytes)) === 'exists') throw conflictOn(snapshotName);
    // A new root is visible to clients as soon as it exists (they look for the next root
    // first), while the roles signed under it count only once the timestamp names them: the
    // root goes last before the swap, so the two appear as close together as the store allows.
    const rootMd = signed.get(ROOT);
    if (rootMd) {
      const name = metadataObjectName(ROOT, rootMd.signed.version);
      if ((await put(this.store, name, metadataBytes(rootMd))) === 'exists') throw conflictOn(name);
    }
    await swap(this.store, TIMESTAMP_OBJECT, metadataBytes(timestamp), this.state.timestampToken);
    const roles = Object.fromEntries([...signed].map(([role, md]) => [role, md.signed.version]));
    return { kind: 'published', roles, snapshot: snapshotVersion, timestamp: timestampVersion };
  }

  /**
   * Publishes what is staged (once complete) with new snapshot and timestamp versions; with
   * nothing staged, re-signs snapshot and timestamp with fresh expiries (the freshness heartbeat).
   */
  publish(signers: MetadataSigner[]): Promise<CommitResult> {
    const signed = new Map<string, RoleMetadata>();
    for (const role of this.state.staged.keys()) {
      const md = this.#liveStaged(role);
      if (md) signed.set(role, md);
    }
    // Staged changes still short of signatures wait (untouched); they must not stop the
    // heartbeat, or one pending approval would let the timestamp expire for every worker.
    const waiting = [...signed].some(([role, md]) => this.#pending(role, md, signed).length > 0);
    return this.#signAndSettle(waiting ? new Map() : signed, signers);
  }
}

function verifies(delegator: Delegator, keyId: string, md: RoleMetadata): boolean {
  const view = delegatingView(delegator);
  const keys = view.keys ?? view.delegations?.keys ?? {};
  try {
    keys[keyId]?.verifySignature(md);
    return keys[keyId] !== undefined;
  } catch {
    return false;
  }
}

/** Signs with each signer whose TUF key id is among the eligible ones; returns the key ids used. */
async function signEligible(md: RoleMetadata, signers: MetadataSigner[], eligible: string[][]): Promise<string[]> {
  const allowed = new Set(eligible.flat());
  const used: string[] = [];
  for (const s of signers) {
    const id = tufKey(await s.publicKey()).keyID;
    if (!allowed.has(id)) continue;
    await addSignature(md, s);
    used.push(id);
  }
  return used;
}

function requireThreshold(delegator: Delegator, role: string, md: RoleMetadata): void {
  const { keyIDs, threshold } = roleKeys(delegator, role);
  const have = keyIDs.filter((id) => verifies(delegator, id, md)).length;
  if (have < threshold) {
    throw new TrustError(
      TrustErrorCode.THRESHOLD_NOT_MET,
      `${role} needs ${threshold} signature(s), has ${have}: pass ${role} keys with --key`,
      { hint: `the ${role} key ids are ${keyIDs.map((k) => k.slice(0, 12)).join(', ')}` },
    );
  }
}

function conflictOn(name: string): TrustError {
  return new TrustError(TrustErrorCode.CONFLICT, `conflict: ${name} was published by another apx trust command meanwhile`, {
    hint: 'run the command again: it re-reads the repository and applies the change on top',
  });
}

async function put(store: ArtifactStore, name: string, bytes: Buffer): Promise<'created' | 'exists'> {
  try {
    await store.put(name, bytes, { ifAbsent: true });
    return 'created';
  } catch (err) {
    if ((err as { code?: string }).code === 'CONFLICT') return 'exists';
    throw storeFailed(err, `cannot write ${name} to ${store.url}`);
  }
}

async function swap(store: ArtifactStore, name: string, bytes: Buffer, expected: string | null): Promise<void> {
  try {
    await store.swap(name, bytes, expected);
  } catch (err) {
    if ((err as { code?: string }).code === 'CONFLICT') {
      throw new TrustError(
        TrustErrorCode.CONFLICT,
        `conflict: ${name} changed since it was read (another apx trust command published meanwhile)`,
        {
          hint: 'run the command again: it re-reads the repository and applies the change on top',
          cause: err,
        },
      );
    }
    throw storeFailed(err, `cannot write ${name} to ${store.url}`);
  }
}
