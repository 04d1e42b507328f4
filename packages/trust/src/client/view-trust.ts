// What a trust view means for one artifact reference, in the core verifier's terms.

import { type ArtifactRef, artifactFileName, type KeyValidity, SignatureVerifier, type TufTrust } from '@apx/core';
import type { TrustView } from './client.js';

const ARTIFACT_PATH = /^([a-z0-9](?:[a-z0-9._-]{0,126}[a-z0-9])?)@(.+)\.wasm$/;

/** Approved artifacts of the view as (policy id, version) pairs, in target-path order. */
export function approvedRefs(view: TrustView | undefined): ArtifactRef[] {
  const out: ArtifactRef[] = [];
  for (const path of view?.targets.keys() ?? []) {
    const m = ARTIFACT_PATH.exec(path);
    if (m?.[1] && m[2]) out.push({ policyId: m[1], version: m[2] });
  }
  return out;
}

/**
 * The environment's verdict on one reference for verifyPolicyArtifact: its approved target (or
 * none), the signers the role trusts, and the versions of this policy the role names (each may
 * load below the rollback floor: a signed rollback). `verifierOf` lets a long-lived caller reuse
 * parsed keys across loads.
 */
export function tufTrustFor(
  view: TrustView | undefined,
  ref: ArtifactRef,
  verifierOf: (signer: TrustView['signers'][number]) => SignatureVerifier = (s) => new SignatureVerifier(s.publicKey),
): TufTrust {
  const target = view?.targets.get(artifactFileName(ref));
  return {
    kind: 'tuf',
    environment: view?.environment ?? '',
    target: target && { length: target.length, sha256: target.sha256 },
    signers: (view?.signers ?? []).map((s) => {
      const validity: KeyValidity = {};
      if (s.notBefore) validity.notBefore = new Date(s.notBefore);
      if (s.notAfter) validity.notAfter = new Date(s.notAfter);
      return s.notBefore || s.notAfter
        ? { keyId: s.keyId, verifier: verifierOf(s), validity }
        : { keyId: s.keyId, verifier: verifierOf(s) };
    }),
    identities: (view?.identities ?? []).map((s) => s.identity),
    namedVersions: new Set(
      approvedRefs(view)
        .filter((r) => r.policyId === ref.policyId)
        .map((r) => r.version),
    ),
    ...(view?.attestations ? { attestations: view.attestations } : {}),
  };
}
