import { dssePreAuthEncoding, IN_TOTO_PAYLOAD_TYPE } from '@apx/core';
import type { Witness } from '@sigstore/sign';
import { publicKeyPem } from './blob.js';
import { isKeyless } from './keyless.js';
import type { Signer } from './signer/signer.js';
import { sigstoreBundle } from './sigstore-libs.js';
import { witnessBundle } from './witness.js';

export interface SignedStatement {
  /** A Sigstore bundle v0.3 whose DSSE envelope carries the statement. */
  bundleJson: string;
  /** Hex SHA-256 of the signing key's SPKI DER (keyless: the ephemeral key's). */
  keyId: string;
}

/**
 * Signs an in-toto statement as `cosign attest-blob --bundle` does: a DSSE envelope
 * (payload type application/vnd.in-toto+json, signature over DSSE's PAE) in a Sigstore
 * bundle v0.3, with a key hint (keyed) or the Fulcio certificate (keyless); `witnesses` add
 * Rekor entries and RFC 3161 timestamps over the envelope.
 */
export async function signStatement(
  signer: Signer,
  statement: Record<string, unknown>,
  options: { witnesses?: readonly Witness[] } = {},
): Promise<SignedStatement> {
  const cert = isKeyless(signer) ? await signer.certificate() : undefined;
  const payload = Buffer.from(JSON.stringify(statement), 'utf8');
  const envelopeSig = await signer.sign(dssePreAuthEncoding(IN_TOTO_PAYLOAD_TYPE, payload));
  const { bundleToJSON, toDSSEBundle } = sigstoreBundle();
  const bundle = toDSSEBundle({
    artifact: payload,
    artifactType: IN_TOTO_PAYLOAD_TYPE,
    signature: envelopeSig.signature,
    ...(cert ? { certificate: cert.der } : { keyHint: envelopeSig.publicKey.keyId }),
    certificateChain: false,
  });
  await witnessBundle(bundle, cert ? cert.pem : publicKeyPem(envelopeSig.publicKey), options.witnesses ?? []);
  return { bundleJson: JSON.stringify(bundleToJSON(bundle)), keyId: envelopeSig.publicKey.keyId };
}
