// Test support: an independent verifier (@sigstore/verify) that trusts exactly one key.
import type { PublicKey } from '@apx/core';
import { type Bundle, bundleFromJSON } from '@sigstore/bundle';
import { PublicKeyDetails, TrustedRoot } from '@sigstore/protobuf-specs';
import { toSignedEntity, toTrustMaterial, Verifier } from '@sigstore/verify';

/** Verifies a serialized bundle with @sigstore/verify, offline, trusting only `key` (P-256). */
export function sigstoreVerify(bundleJson: string, key: PublicKey, artifact?: Buffer): void {
  const root = TrustedRoot.fromJSON({
    mediaType: 'application/vnd.dev.sigstore.trustedroot+json;version=0.1',
    tlogs: [],
    certificateAuthorities: [],
    ctlogs: [],
    timestampAuthorities: [],
  });
  const trust = toTrustMaterial(root, {
    [key.keyId]: {
      rawBytes: key.spkiDer,
      keyDetails: PublicKeyDetails.PKIX_ECDSA_P256_SHA_256,
      validFor: { start: new Date(0) },
    },
  });
  const bundle: Bundle = bundleFromJSON(JSON.parse(bundleJson));
  new Verifier(trust, { tlogThreshold: 0, ctlogThreshold: 0, timestampThreshold: 0 }).verify(toSignedEntity(bundle, artifact));
}
