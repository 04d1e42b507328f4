// The worker's side of the trust repository: TUF's client workflow (TUF spec 5.3 to 5.6)
// driven over the artifact store, each step verified by tuf-js's TrustedMetadataStore, the
// verified files kept in APX_STATE_DIR so that a restart never trusts anything older.

import type { AttestationRequirements } from '@apx/core';
import type { ArtifactStore } from '@apx/storage';
import type { Metadata, Root, Targets } from '@tufjs/models';
import { TrustedMetadataStore } from 'tuf-js/dist/store.js';
import {
  type ArtifactSigner,
  type EnvironmentCustom,
  type IdentitySigner,
  type RevocationRecord,
  readEnvironmentCustom,
} from '../custom.js';
import { TrustError, TrustErrorCode } from '../error.js';
import {
  MAX_ROOT_ROTATIONS,
  maxBytesOf,
  metadataObjectName,
  metaFileName,
  ROOT,
  SNAPSHOT,
  TARGETS,
  TIMESTAMP,
  TIMESTAMP_OBJECT,
} from '../layout.js';
import { parseMetadata } from '../metadata.js';
import { StateDir } from './state-dir.js';

/** One artifact the environment approves: TUF target path, length and SHA-256. */
export interface ApprovedTarget {
  path: string;
  length: number;
  sha256: string;
}

/** What the trust repository says for one environment, as of the last good refresh. */
export interface TrustView {
  environment: string;
  versions: { root: number; timestamp: number; snapshot: number; targets: number; environment: number };
  /** The earliest expiry of the metadata this view rests on: past it the view is stale. */
  expires: Date;
  /** Approved artifacts by target path (`pb-pay-v1@1.1.0.wasm`). */
  targets: ReadonlyMap<string, ApprovedTarget>;
  /** Keys trusted to sign artifacts for this environment. */
  signers: readonly ArtifactSigner[];
  /** Identities trusted to sign artifacts keylessly for this environment. */
  identities: readonly IdentitySigner[];
  revoked: readonly RevocationRecord[];
  /** What the environment requires of artifacts' attestations; undefined: nothing. */
  attestations?: AttestationRequirements | undefined;
  refreshedAt: Date;
}

export interface TrustClientOptions {
  /** Where the repository is read from: only reads are needed (a worker passes its artifact source). */
  store: Pick<ArtifactStore, 'url' | 'get'>;
  /** Where verified metadata is kept (a worker's APX_STATE_DIR/tuf). */
  stateDir: string;
  environment: string;
  /** The root trusted on first start (APX_TRUST_ROOT), when the state directory has none. */
  bootstrapRoot?: Uint8Array;
  now?: () => Date;
}

const FLOORS = 'floors.json';
type Floors = Record<string, number>;

/** tuf-js's and @tufjs/models' error classes, by name, onto APX's codes. */
function codeOf(err: unknown): TrustErrorCode {
  if (err instanceof TrustError) return err.code;
  const name = (err as { constructor?: { name?: string } })?.constructor?.name ?? '';
  const message = (err as Error)?.message ?? '';
  switch (name) {
    case 'UnsignedMetadataError':
      return TrustErrorCode.SIGNATURE_THRESHOLD;
    case 'ExpiredMetadataError':
      return TrustErrorCode.EXPIRED;
    case 'LengthOrHashMismatchError':
      return TrustErrorCode.MISMATCH;
    case 'BadVersionError':
    case 'EqualVersionError':
      return /match/.test(message) ? TrustErrorCode.MISMATCH : TrustErrorCode.ROLLBACK;
    default:
      return TrustErrorCode.METADATA_INVALID;
  }
}

function refused(file: string, err: unknown): TrustError {
  if (err instanceof TrustError) return err;
  const code = codeOf(err);
  const hints: Partial<Record<TrustErrorCode, string>> = {
    [TrustErrorCode.EXPIRED]:
      'the trust repository was not renewed in time: run apx trust publish with the snapshot and timestamp keys',
    [TrustErrorCode.SIGNATURE_THRESHOLD]: 'the file is not signed by enough keys of its role: it was forged or tampered with',
    [TrustErrorCode.ROLLBACK]:
      'the store serves metadata older than this worker already trusts: it was replayed or restored from a backup',
    [TrustErrorCode.MISMATCH]: 'the store serves files from different publishes (mix-and-match) or a file was altered',
  };
  const hint = hints[code] ?? 'the trust repository is written by apx trust; republish it';
  return new TrustError(code, `trust metadata ${file} refused: ${(err as Error).message}`, { hint, cause: err });
}

export class TrustClient {
  readonly #o: TrustClientOptions;
  readonly #state: StateDir;

  constructor(options: TrustClientOptions) {
    this.#o = options;
    this.#state = new StateDir(options.stateDir);
  }

  get storeUrl(): string {
    return this.#o.store.url;
  }

  async #fetch(name: string, role: string): Promise<Buffer | undefined> {
    try {
      return await this.#o.store.get(name, { maxBytes: maxBytesOf(role) });
    } catch (err) {
      const code = (err as { code?: string }).code === 'TOO_LARGE' ? TrustErrorCode.TOO_LARGE : TrustErrorCode.STORE_FAILED;
      throw new TrustError(code, `trust metadata ${name}: ${(err as Error).message}`, {
        hint: code === TrustErrorCode.TOO_LARGE ? 'a trust file over its cap is refused (endless data)' : 'check the store',
        cause: err,
      });
    }
  }

  async #floors(): Promise<Floors> {
    const bytes = await this.#state.read(FLOORS);
    if (!bytes) return {};
    try {
      const floors = JSON.parse(bytes.toString('utf8')) as unknown;
      if (typeof floors !== 'object' || floors === null || Array.isArray(floors)) throw new Error('not an object');
      for (const v of Object.values(floors)) if (!Number.isSafeInteger(v)) throw new Error('a version is not an integer');
      return floors as Floors;
    } catch (err) {
      throw new TrustError(TrustErrorCode.STATE_INVALID, `${this.#o.stateDir}/${FLOORS} is corrupt: ${(err as Error).message}`, {
        hint: 'restore APX_STATE_DIR from backup; deleting it re-trusts APX_TRUST_ROOT and forgets which versions were seen',
      });
    }
  }

  /**
   * One refresh: root chain, timestamp, snapshot, top-level targets, this environment's role.
   * Throws a TrustError naming the file and the check that failed; the caller keeps serving
   * its last good view.
   */
  async refresh(): Promise<TrustView> {
    const now = (this.#o.now ?? (() => new Date()))();
    const floors = await this.#floors();
    const storedRoot = await this.#state.read('root.json');
    const rootBytes = storedRoot ?? this.#o.bootstrapRoot;
    if (!rootBytes) {
      throw new TrustError(
        TrustErrorCode.ROOT_MISSING,
        `no trusted root: ${this.#o.stateDir}/root.json does not exist and APX_TRUST_ROOT is not set`,
        {
          hint: "set APX_TRUST_ROOT to the repository's tuf/1.root.json, obtained out of band, for the first start",
        },
      );
    }
    parseMetadata(ROOT, rootBytes, 'trusted root');
    let trusted: TrustedMetadataStore;
    try {
      trusted = new TrustedMetadataStore(Buffer.from(rootBytes));
    } catch (err) {
      throw refused('trusted root', err);
    }
    // 5.3: follow the root chain, each next root signed by the old and the new root keys.
    let rotated = false;
    for (let i = 0; i < MAX_ROOT_ROTATIONS; i++) {
      const name = metadataObjectName(ROOT, trusted.root.signed.version + 1);
      const bytes = await this.#fetch(name, ROOT);
      if (!bytes) break;
      parseMetadata(ROOT, bytes, name);
      const previous = trusted.root;
      try {
        trusted.updateRoot(bytes);
      } catch (err) {
        throw refused(name, err);
      }
      await this.#forgetRotated(previous, trusted.root, floors);
      await this.#state.write('root.json', bytes);
      rotated = true;
    }
    // First start with no rotation since: keep the bootstrap root as the trusted one.
    if (!storedRoot && !rotated) await this.#state.write('root.json', Buffer.from(rootBytes));
    // 5.4: timestamp, local first (rollback protection), then the store's.
    await this.#loadLocal(TIMESTAMP, (b) => trusted.updateTimestamp(b));
    const tsBytes = await this.#fetch(TIMESTAMP_OBJECT, TIMESTAMP);
    if (!tsBytes) {
      throw new TrustError(
        TrustErrorCode.REPOSITORY_NOT_FOUND,
        `trust metadata ${TIMESTAMP_OBJECT} not found in ${this.#o.store.url}`,
        {
          hint: 'publish the trust repository (apx trust init / apx trust publish) into this store',
        },
      );
    }
    parseMetadata(TIMESTAMP, tsBytes, TIMESTAMP_OBJECT);
    let timestampChanged = true;
    try {
      trusted.updateTimestamp(tsBytes);
    } catch (err) {
      if (
        codeOf(err) !== TrustErrorCode.ROLLBACK ||
        (err as { constructor: { name: string } }).constructor.name !== 'EqualVersionError'
      )
        throw refused(TIMESTAMP_OBJECT, err);
      timestampChanged = false;
    }
    const timestamp = trusted.timestamp;
    if (!timestamp) throw refused(TIMESTAMP_OBJECT, new Error('no timestamp'));
    // 5.5: snapshot at the version the timestamp names.
    const snapshotVersion = timestamp.signed.snapshotMeta.version;
    const snapshotName = metadataObjectName(SNAPSHOT, snapshotVersion);
    const localSnapshot = await this.#loadLocal(SNAPSHOT, (b) => trusted.updateSnapshot(b, true));
    let snapshotBytes: Buffer | undefined;
    if (!localSnapshot || trusted.snapshot?.signed.version !== snapshotVersion) {
      snapshotBytes = await this.#required(snapshotName, SNAPSHOT);
      try {
        trusted.updateSnapshot(snapshotBytes);
      } catch (err) {
        throw refused(snapshotName, err);
      }
    } else {
      try {
        // A local snapshot that is current must still be unexpired and match the timestamp.
        trusted.updateSnapshot(localSnapshot, true);
      } catch (err) {
        if (codeOf(err) === TrustErrorCode.EXPIRED) throw refused(snapshotName, err);
      }
    }
    const snapshot = trusted.snapshot;
    if (!snapshot) throw refused(snapshotName, new Error('no snapshot'));
    // 5.6: top-level targets, then this environment's delegated role.
    const targetsBytes = await this.#loadTargets(trusted, TARGETS, ROOT, snapshot.signed.meta[metaFileName(TARGETS)]?.version);
    const targets = trusted.targets as Metadata<Targets>;
    const env = this.#o.environment;
    const envMeta = snapshot.signed.meta[metaFileName(env)];
    let envRole: Metadata<Targets> | undefined;
    let envBytes: Buffer | undefined;
    if (envMeta) {
      if (!targets.signed.delegations?.roles?.[env]) {
        throw refused(
          metadataObjectName(TARGETS, targets.signed.version),
          new Error(`targets does not delegate environment ${env}`),
        );
      }
      envBytes = await this.#loadTargets(trusted, env, TARGETS, envMeta.version);
      envRole = trusted.getRole(env);
    }
    const versions = versionsOf(trusted, envRole);
    // Defence in depth: even with local copies lost or damaged, no role goes below what this
    // worker has trusted before.
    for (const [role, floor] of Object.entries(floors)) {
      const v = versions[role as keyof typeof versions];
      if (v !== undefined && v < floor) {
        throw new TrustError(
          TrustErrorCode.ROLLBACK,
          `trust metadata ${role} version ${v} is older than version ${floor} trusted before`,
          {
            hint: 'the store serves metadata older than this worker already trusts: it was replayed or restored from a backup',
          },
        );
      }
    }
    const view = buildView(env, versions, trusted.root, [timestamp, snapshot, targets, envRole], envRole, now);
    // tuf-js judges expiry by the wall clock; this judges it by the worker's clock as well,
    // so one clock decides freshness everywhere (TUF 5.4.4, 5.5.6, 5.6.6).
    if (view.expires.getTime() <= now.getTime()) {
      throw new TrustError(TrustErrorCode.EXPIRED, `trust metadata expired at ${view.expires.toISOString()}`, {
        hint: 'the trust repository was not renewed in time: run apx trust publish with the snapshot and timestamp keys',
      });
    }
    if (timestampChanged) await this.#state.write('timestamp.json', tsBytes);
    if (snapshotBytes) await this.#state.write('snapshot.json', snapshotBytes);
    if (targetsBytes) await this.#state.write('targets.json', targetsBytes);
    if (envBytes) await this.#state.write(`${env}.json`, envBytes);
    await this.#state.write(FLOORS, Buffer.from(JSON.stringify(versions)));
    return view;
  }

  /**
   * 5.3.11: a rotated timestamp or snapshot key voids the local copies and the floors of that
   * role (fast-forward recovery). Recorded before the new root is: a refresh that fails later
   * (the store still serving the old timestamp, say) must not leave the new root trusted with
   * the old floors, which would refuse every timestamp of the new key as a rollback.
   */
  async #forgetRotated(previous: Metadata<Root>, next: Metadata<Root>, floors: Floors): Promise<void> {
    let changed = false;
    for (const role of [TIMESTAMP, SNAPSHOT]) {
      if (sameKeys(previous, next, role)) continue;
      await this.#state.remove(`${role}.json`);
      if (role in floors) {
        delete floors[role];
        changed = true;
      }
    }
    if (changed) await this.#state.write(FLOORS, Buffer.from(JSON.stringify(floors)));
  }

  /**
   * The view this client verified before, from its state directory alone (no store access):
   * what a restarted worker serves while the store is unreachable or refused. Every file is
   * verified again from the trusted root, must be the version last recorded, and must be
   * unexpired; otherwise this throws and nothing is trusted.
   */
  async loadTrusted(): Promise<TrustView> {
    const now = (this.#o.now ?? (() => new Date()))();
    const floors = await this.#floors();
    const env = this.#o.environment;
    const read = async (role: string) => {
      const bytes = await this.#state.read(`${role}.json`);
      if (!bytes) throw new TrustError(TrustErrorCode.STATE_INVALID, `no verified ${role} metadata in ${this.#o.stateDir} yet`);
      parseMetadata(role, bytes, `${this.#o.stateDir}/${role}.json`);
      return bytes;
    };
    let trusted: TrustedMetadataStore;
    try {
      trusted = new TrustedMetadataStore(await read(ROOT));
      trusted.updateTimestamp(await read(TIMESTAMP));
      trusted.updateSnapshot(await read(SNAPSHOT), true);
      trusted.updateDelegatedTargets(await read(TARGETS), TARGETS, ROOT);
      if (trusted.snapshot?.signed.meta[metaFileName(env)]) trusted.updateDelegatedTargets(await read(env), env, TARGETS);
    } catch (err) {
      throw refused(`${this.#o.stateDir} (verified state)`, err);
    }
    const envRole = trusted.getRole(env);
    const versions = versionsOf(trusted, envRole);
    // The state files must be the ones last recorded: nothing older, nothing swapped in.
    for (const [role, v] of Object.entries(versions)) {
      if (floors[role] !== undefined && floors[role] !== v) {
        throw new TrustError(
          TrustErrorCode.STATE_INVALID,
          `${this.#o.stateDir}: ${role} is version ${v}, version ${floors[role]} was recorded`,
          {
            hint: 'the state directory was altered; restore it from backup or let the worker refresh from the store',
          },
        );
      }
    }
    const view = buildView(
      env,
      versions,
      trusted.root,
      [trusted.timestamp, trusted.snapshot, trusted.targets, envRole],
      envRole,
      now,
    );
    if (view.expires.getTime() <= now.getTime()) {
      throw new TrustError(
        TrustErrorCode.EXPIRED,
        `the verified state in ${this.#o.stateDir} expired at ${view.expires.toISOString()}`,
      );
    }
    return view;
  }

  /** Loads a role's local copy into the trusted set; a missing or unusable copy is skipped. */
  async #loadLocal(role: string, load: (bytes: Buffer) => unknown): Promise<Buffer | undefined> {
    const bytes = await this.#state.read(`${role}.json`);
    if (!bytes) return undefined;
    try {
      load(bytes);
      return bytes;
    } catch {
      return undefined; // the floors still guard against going backwards
    }
  }

  async #required(name: string, role: string): Promise<Buffer> {
    const bytes = await this.#fetch(name, role);
    if (!bytes) {
      throw new TrustError(TrustErrorCode.MISMATCH, `trust metadata ${name} not found in ${this.#o.store.url}`, {
        hint: 'the store withholds a file the snapshot names, or a publish is still in progress',
      });
    }
    parseMetadata(role, bytes, name);
    return bytes;
  }

  /** A targets role at the version the snapshot names: the local copy if it is that one, else the store's. */
  async #loadTargets(trusted: TrustedMetadataStore, role: string, delegator: string, version: number | undefined) {
    const name = metadataObjectName(role, version ?? 0);
    if (version === undefined)
      throw refused(
        metadataObjectName(SNAPSHOT, trusted.snapshot?.signed.version ?? 0),
        new Error(`snapshot does not list ${role}`),
      );
    const local = await this.#state.read(`${role}.json`);
    if (local) {
      try {
        trusted.updateDelegatedTargets(local, role, delegator);
        return undefined;
      } catch {
        // not the current version, or damaged: fetch it
      }
    }
    const bytes = await this.#required(name, role);
    try {
      trusted.updateDelegatedTargets(bytes, role, delegator);
    } catch (err) {
      throw refused(name, err);
    }
    return bytes;
  }
}

/** The version of each role in a trusted set (0 for an environment with no version yet). */
function versionsOf(trusted: TrustedMetadataStore, envRole: Metadata<Targets> | undefined): TrustView['versions'] {
  return {
    root: trusted.root.signed.version,
    timestamp: trusted.timestamp?.signed.version ?? 0,
    snapshot: trusted.snapshot?.signed.version ?? 0,
    targets: trusted.targets?.signed.version ?? 0,
    environment: envRole?.signed.version ?? 0,
  };
}

function sameKeys(a: Metadata<Root>, b: Metadata<Root>, role: string): boolean {
  const x = a.signed.roles[role];
  const y = b.signed.roles[role];
  return !!x && !!y && x.threshold === y.threshold && [...x.keyIDs].sort().join() === [...y.keyIDs].sort().join();
}

function buildView(
  environment: string,
  versions: TrustView['versions'],
  root: Metadata<Root>,
  files: Array<Metadata<Targets> | { signed: { expires: string } } | undefined>,
  envRole: Metadata<Targets> | undefined,
  now: Date,
): TrustView {
  const expiries = [root, ...files].filter((f) => f !== undefined).map((f) => Date.parse(f.signed.expires));
  const targets = new Map<string, ApprovedTarget>();
  for (const [path, t] of Object.entries(envRole?.signed.targets ?? {})) {
    const sha256 = t.hashes.sha256;
    if (typeof sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(sha256)) continue; // unmatchable: approves nothing
    targets.set(path, { path, length: t.length, sha256 });
  }
  const custom: EnvironmentCustom = envRole ? readEnvironmentCustom(environment, envRole.signed) : { signers: [], revoked: [] };
  return {
    environment,
    versions,
    expires: new Date(Math.min(...expiries)),
    targets,
    signers: custom.signers,
    identities: custom.identities ?? [],
    revoked: custom.revoked,
    ...(custom.attestations ? { attestations: custom.attestations } : {}),
    refreshedAt: now,
  };
}
