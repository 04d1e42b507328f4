import { type ArtifactBinding, bindingStatement } from '@apx/core';
import type { Witness } from '@sigstore/sign';
import { signStatement } from './attestation.js';
import { isKeyless, type SigningIdentity } from './keyless.js';
import type { Signer } from './signer/signer.js';

export interface ArtifactSignature {
  /** The `.sig` file: cosign's detached signature over the artifact bytes. */
  signatureFileContent: string;
  /** The `.sigstore.json` file: a v0.3 bundle whose DSSE envelope carries the binding statement. */
  bundleJson: string;
  statement: Record<string, unknown>;
  keyId: string;
  /** Keyless signing: the Fulcio certificate (the `.pem` beside the `.sig`) and the identity it names. */
  certificatePem?: string;
  identity?: SigningIdentity;
}

/** What the signer states; size and signing time are filled in here. */
export type BindingClaims = Omit<ArtifactBinding, 'size' | 'signedAt'>;

/**
 * Signs a policy artifact twice: the bytes, as cosign does (so `cosign verify-blob` keeps
 * working), and an in-toto statement binding the bytes to their name, version and
 * environment, in a DSSE envelope inside a Sigstore bundle (what APX workers require).
 * A keyless signer puts its Fulcio certificate in the bundle instead of a key hint;
 * `options.witnesses` add Rekor entries and RFC 3161 timestamps over the envelope's signature.
 */
export async function signArtifact(
  signer: Signer,
  artifact: Uint8Array,
  claims: BindingClaims,
  now = new Date(),
  options: { witnesses?: readonly Witness[] } = {},
): Promise<ArtifactSignature> {
  const blob = await signer.sign(artifact);
  const cert = isKeyless(signer) ? await signer.certificate() : undefined;
  const statement = bindingStatement(artifact, { ...claims, size: artifact.byteLength, signedAt: now.toISOString() });
  // Keyless: Rekor logs the envelope (and a TSA may timestamp it); keyed: a timestamp at most.
  const { bundleJson } = await signStatement(signer, statement, options);
  return {
    signatureFileContent: blob.signature.toString('base64'),
    bundleJson,
    statement,
    keyId: blob.publicKey.keyId,
    ...(cert ? { certificatePem: cert.pem, identity: cert.identity } : {}),
  };
}
