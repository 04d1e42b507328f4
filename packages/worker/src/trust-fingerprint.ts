import type { TrustInForce } from '@apx/core';

/**
 * A canonical text of the trust in force for one reference: signers (by key id and validity
 * window), keyless identities, the approved target, the versions named explicitly and the
 * attestation requirements. Two trusts with the same fingerprint would give the same verdict
 * on the same bytes, so a load verified under one stands under the other; any difference
 * (a revocation, a removed signer, a new requirement) sends the artifact back through core.
 * Verifier objects are left out: the key id names the key they hold.
 */
export function trustFingerprint(trust: TrustInForce): string {
  return JSON.stringify(trust, (key, value: unknown) => {
    if (key === 'verifier') return undefined;
    if (value instanceof RegExp) return `/${value.source}/${value.flags}`;
    if (value instanceof Set) return [...value].map(String).sort();
    if (value instanceof Map) return [...value.entries()].sort(([a], [b]) => String(a).localeCompare(String(b)));
    return value;
  });
}
