// APX's custom fields in TUF metadata (TUF spec 4.5 and 4.3: unrecognized fields are kept
// and signed with the metadata). An environment role carries `apx` with the artifact signers
// it trusts and the record of what it revoked; each approved target carries `apx` with the
// policy reference it approves.

import { PublicKey } from '@apx/core';
import type { Targets } from '@tufjs/models';
import { TrustError, TrustErrorCode } from './error.js';

export const CUSTOM_FIELD = 'apx';

/** A key trusted to sign artifacts for an environment (cosign key; identities come later). */
export interface ArtifactSigner {
  /** APX key id: hex SHA-256 of the SPKI DER (DESIGN.md §3). */
  keyId: string;
  publicKey: PublicKey;
}

/** What a revocation removed, kept for the audit trail and for `apx trust status`. */
export interface RevocationRecord {
  path: string;
  sha256: string;
  reason: string;
  revokedAt: string;
}

export interface EnvironmentCustom {
  signers: ArtifactSigner[];
  revoked: RevocationRecord[];
}

function invalid(role: string, why: string): TrustError {
  return new TrustError(TrustErrorCode.METADATA_INVALID, `invalid ${role} metadata: apx.${why}`, {
    hint: 'environment roles are written by apx trust; re-approve with apx trust approve',
  });
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Reads an environment role's `apx` field; a role without one trusts no signer. */
export function readEnvironmentCustom(role: string, signed: Targets): EnvironmentCustom {
  const raw = signed.unrecognizedFields?.[CUSTOM_FIELD];
  if (raw === undefined) return { signers: [], revoked: [] };
  if (!isObject(raw)) throw invalid(role, 'is not an object');
  const signersRaw = raw.signers ?? [];
  const revokedRaw = raw.revoked ?? [];
  if (!Array.isArray(signersRaw)) throw invalid(role, 'signers is not a list');
  if (!Array.isArray(revokedRaw)) throw invalid(role, 'revoked is not a list');
  const signers = signersRaw.map((s, i) => {
    if (!isObject(s) || typeof s.publicKey !== 'string' || typeof s.keyId !== 'string')
      throw invalid(role, `signers[${i}] needs keyId and publicKey`);
    const publicKey = PublicKey.fromPem(s.publicKey, `${role} apx.signers[${i}]`);
    if (publicKey.keyId !== s.keyId) throw invalid(role, `signers[${i}].keyId does not match its public key`);
    return { keyId: publicKey.keyId, publicKey };
  });
  const revoked = revokedRaw.map((r, i) => {
    if (
      !isObject(r) ||
      typeof r.path !== 'string' ||
      typeof r.sha256 !== 'string' ||
      typeof r.reason !== 'string' ||
      typeof r.revokedAt !== 'string'
    )
      throw invalid(role, `revoked[${i}] needs path, sha256, reason and revokedAt`);
    return { path: r.path, sha256: r.sha256, reason: r.reason, revokedAt: r.revokedAt };
  });
  return { signers, revoked };
}

/** The `apx` field as written into an environment role. */
export function environmentCustomJson(custom: EnvironmentCustom): Record<string, unknown> {
  return {
    signers: custom.signers.map((s) => ({
      keyId: s.keyId,
      publicKey: s.publicKey.keyObject.export({ type: 'spki', format: 'pem' }).toString(),
    })),
    revoked: custom.revoked.map((r) => ({ ...r })),
  };
}

/** What an approved target records besides length and hashes. */
export interface TargetCustom {
  policyId: string;
  version: string;
  approvedAt: string;
}
