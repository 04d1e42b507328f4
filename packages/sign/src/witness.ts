import type { Bundle } from '@sigstore/bundle';
import type { Witness } from '@sigstore/sign';

/**
 * Has each witness (Rekor, a timestamp authority) testify to the bundle's signature and adds
 * what it returns (transparency-log entries, RFC 3161 timestamps) to the bundle, in order,
 * as @sigstore/sign's bundle builders do. `keyPem`: the signer's public key or certificate.
 */
export async function witnessBundle(bundle: Bundle, keyPem: string, witnesses: readonly Witness[]): Promise<void> {
  const material = bundle.verificationMaterial;
  for (const witness of witnesses) {
    const added = await witness.testify(bundle.content, keyPem);
    if (added.tlogEntries?.length) material.tlogEntries = [...material.tlogEntries, ...added.tlogEntries];
    if (added.rfc3161Timestamps?.length) {
      const data = material.timestampVerificationData ?? { rfc3161Timestamps: [] };
      data.rfc3161Timestamps = [...data.rfc3161Timestamps, ...added.rfc3161Timestamps];
      material.timestampVerificationData = data;
    }
  }
}
