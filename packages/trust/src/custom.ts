// APX's custom fields in TUF metadata (TUF spec 4.5 and 4.3: unrecognized fields are kept
// and signed with the metadata). An environment role carries `apx` with the artifact signers
// it trusts and the record of what it revoked; each approved target carries `apx` with the
// policy reference it approves.

import {
  type AttestationRequirements,
  attestationRequirementsJson,
  type IdentityPolicy,
  identityPolicyJson,
  isApxError,
  PublicKey,
  parseAttestationRequirements,
  parseIdentityPolicy,
  requiresNothing,
} from '@apx/core';
import type { Targets } from '@tufjs/models';
import { TrustError, TrustErrorCode } from './error.js';

export const CUSTOM_FIELD = 'apx';

/** A key trusted to sign artifacts for an environment (cosign key). */
export interface ArtifactSigner {
  /** APX key id: hex SHA-256 of the SPKI DER (DESIGN.md §3). */
  keyId: string;
  publicKey: PublicKey;
  /**
   * The key's validity window (RFC 3339), e.g. the end of a retired key: judged by the
   * worker at the signature's trusted time (TSA timestamp, Rekor integrated time), never
   * at the signing time the signer claims.
   */
  notBefore?: string;
  notAfter?: string;
}

/**
 * An identity trusted to sign artifacts keylessly for an environment (a Fulcio certificate
 * for this OIDC issuer and subject, and GitHub workflow facts when given). Written in
 * `apx.signers` as `{"identity": {...}}` beside the key records.
 */
export interface IdentitySigner {
  identity: IdentityPolicy;
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
  /** Keyless signers; kept in `apx.signers` beside the keys. */
  identities?: IdentitySigner[];
  revoked: RevocationRecord[];
  /** What the environment requires of artifacts' attestations (SBOM, provenance, conditions). */
  attestations?: AttestationRequirements;
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
  const signers: ArtifactSigner[] = [];
  const identities: IdentitySigner[] = [];
  signersRaw.forEach((s, i) => {
    if (isObject(s) && s.identity !== undefined) {
      // A bad identity (an unanchored pattern...) refuses the whole role: fail closed.
      identities.push({ identity: parseIdentityPolicy(s.identity, `in ${role} apx.signers[${i}]`) });
      return;
    }
    if (!isObject(s) || typeof s.publicKey !== 'string' || typeof s.keyId !== 'string')
      throw invalid(role, `signers[${i}] needs keyId and publicKey, or identity`);
    const publicKey = PublicKey.fromPem(s.publicKey, `${role} apx.signers[${i}]`);
    if (publicKey.keyId !== s.keyId) throw invalid(role, `signers[${i}].keyId does not match its public key`);
    const signer: ArtifactSigner = { keyId: publicKey.keyId, publicKey };
    for (const bound of ['notBefore', 'notAfter'] as const) {
      const v = s[bound];
      if (v === undefined) continue;
      if (typeof v !== 'string' || Number.isNaN(Date.parse(v)))
        throw invalid(role, `signers[${i}].${bound} is not an RFC 3339 time`);
      signer[bound] = v;
    }
    signers.push(signer);
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
  const custom: EnvironmentCustom = identities.length > 0 ? { signers, identities, revoked } : { signers, revoked };
  if (raw.attestations !== undefined) {
    try {
      // A malformed requirement refuses the whole role: fail closed, never a check switched off.
      custom.attestations = parseAttestationRequirements(raw.attestations, `in ${role} apx.attestations`);
    } catch (err) {
      if (!isApxError(err)) throw err;
      throw invalid(role, `attestations: ${err.message}`);
    }
  }
  return custom;
}

/** The `apx` field as written into an environment role. */
export function environmentCustomJson(custom: EnvironmentCustom): Record<string, unknown> {
  return {
    signers: [
      ...custom.signers.map((s) => ({
        keyId: s.keyId,
        publicKey: s.publicKey.keyObject.export({ type: 'spki', format: 'pem' }).toString(),
        ...(s.notBefore ? { notBefore: s.notBefore } : {}),
        ...(s.notAfter ? { notAfter: s.notAfter } : {}),
      })),
      ...(custom.identities ?? []).map((s) => ({ identity: identityPolicyJson(s.identity) })),
    ],
    revoked: custom.revoked.map((r) => ({ ...r })),
    ...(custom.attestations && !requiresNothing(custom.attestations)
      ? { attestations: attestationRequirementsJson(custom.attestations) }
      : {}),
  };
}

/** What an approved target records besides length and hashes. */
export interface TargetCustom {
  policyId: string;
  version: string;
  approvedAt: string;
}
