import { CoreErrorCode, VerificationError } from '../error.js';
import type { Keyring } from './keyring.js';
import { documentSigner } from './signed-document.js';

/** One revoked thing: exactly one of a reference, an artifact digest or a key id. */
export interface Revocation {
  ref?: string;
  digest?: string;
  keyId?: string;
  reason: string;
  revokedAt: string;
}

const REF = /^[a-z0-9](?:[a-z0-9._-]{0,126}[a-z0-9])?@\S+$/;
const DIGEST = /^sha256:[0-9a-f]{64}$/;
const KEY_ID = /^[0-9a-f]{64}$/;

function invalid(source: string, why: string): VerificationError {
  return new VerificationError(CoreErrorCode.REVOCATION_LIST_INVALID, `invalid revocation list ${source}: ${why}`, {
    hint: 'publish a list written by apx revoke, signed by an active key of the keyring',
  });
}

/** What a target names: a reference, a digest or a key id, told apart by their shapes. */
export function revocationTarget(target: string): Pick<Revocation, 'ref' | 'digest' | 'keyId'> | undefined {
  if (DIGEST.test(target)) return { digest: target };
  if (KEY_ID.test(target)) return { keyId: target };
  if (REF.test(target)) return { ref: target };
  return undefined;
}

/**
 * A signed list of revoked artifacts and keys. Versions only go up: a worker refuses a list
 * older than the one it holds, so an attacker who controls the store cannot replay an old
 * list to un-revoke something.
 */
export class RevocationList {
  readonly version: number;
  readonly issuedAt: string;
  readonly entries: readonly Revocation[];

  constructor(version: number, issuedAt: string, entries: Revocation[]) {
    this.version = version;
    this.issuedAt = issuedAt;
    this.entries = entries;
  }

  static empty(): RevocationList {
    return new RevocationList(0, new Date(0).toISOString(), []);
  }

  static parse(text: string, source = 'revocations.json'): RevocationList {
    let doc: Record<string, unknown>;
    try {
      doc = JSON.parse(text) as Record<string, unknown>;
    } catch {
      throw invalid(source, 'not JSON');
    }
    if (typeof doc !== 'object' || doc === null || doc.apiVersion !== 'apx/v1' || doc.kind !== 'RevocationList') {
      throw invalid(source, 'expected apiVersion "apx/v1" and kind "RevocationList"');
    }
    const { version, issuedAt, entries } = doc;
    if (typeof version !== 'number' || !Number.isInteger(version) || version < 1)
      throw invalid(source, 'version must be a positive integer');
    if (typeof issuedAt !== 'string' || Number.isNaN(Date.parse(issuedAt)))
      throw invalid(source, 'issuedAt must be an RFC 3339 time');
    if (!Array.isArray(entries)) throw invalid(source, 'entries must be a list');
    const parsed = entries.map((e: unknown, i: number) => {
      const r = e as Record<string, unknown>;
      const targets = ['ref', 'digest', 'keyId'].filter((k) => r?.[k] !== undefined);
      if (typeof e !== 'object' || e === null || targets.length !== 1)
        throw invalid(source, `entries[${i}] must name exactly one of ref, digest, keyId`);
      const target = String(r[targets[0] as string]);
      if (!revocationTarget(target))
        throw invalid(source, `entries[${i}] target ${target} is not a reference, sha256 digest or key id`);
      if (typeof r.reason !== 'string' || r.reason === '') throw invalid(source, `entries[${i}].reason is required`);
      if (typeof r.revokedAt !== 'string' || Number.isNaN(Date.parse(r.revokedAt)))
        throw invalid(source, `entries[${i}].revokedAt must be an RFC 3339 time`);
      return { [targets[0] as string]: target, reason: r.reason, revokedAt: r.revokedAt } as unknown as Revocation;
    });
    return new RevocationList(version, issuedAt, parsed);
  }

  /** The list's document, as apx revoke writes it. */
  toJSON(): Record<string, unknown> {
    return {
      apiVersion: 'apx/v1',
      kind: 'RevocationList',
      version: this.version,
      issuedAt: this.issuedAt,
      entries: this.entries,
    };
  }

  /** A new version of this list with one more entry. */
  add(revocation: Revocation, now: Date): RevocationList {
    return new RevocationList(this.version + 1, now.toISOString(), [...this.entries, revocation]);
  }

  /** The entry revoking this artifact (by reference, digest or signing key), if any. */
  find(ref: string, digest: string | undefined, keyId: string | null | undefined): Revocation | undefined {
    return this.entries.find(
      (e) => e.ref === ref || (digest !== undefined && e.digest === digest) || (keyId && e.keyId === keyId),
    );
  }

  /** The error that refuses a revoked artifact. */
  static refusal(entry: Revocation): VerificationError {
    const what = entry.ref ?? entry.digest ?? `key ${entry.keyId}`;
    return new VerificationError(CoreErrorCode.REVOKED, `revoked: ${what} (${entry.reason}, ${entry.revokedAt})`, {
      hint: 'publish and allow a version that is not revoked',
    });
  }

  /**
   * Verifies a list's detached signature with an active key of the keyring and that it is
   * not older than the list held. Returns the parsed list.
   */
  static verify(text: Buffer, signature: Buffer, keyring: Keyring, held: RevocationList, source: string): RevocationList {
    if (!documentSigner(text, signature, keyring))
      throw invalid(source, 'its signature does not verify with an active key of the keyring');
    const list = RevocationList.parse(text.toString('utf8'), source);
    if (list.version < held.version) {
      throw invalid(
        source,
        `version ${list.version} is older than the list held (version ${held.version}); refusing to roll back revocations`,
      );
    }
    return list;
  }
}
