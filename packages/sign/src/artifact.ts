import { type ArtifactBinding, bindingStatement, IN_TOTO_PAYLOAD_TYPE } from '@apx/core';
import { bundleToJSON, toDSSEBundle } from '@sigstore/bundle';
import { dsse } from '@sigstore/core';
import type { Witness } from '@sigstore/sign';
import { publicKeyPem } from './blob.js';
import { isKeyless, type SigningIdentity } from './keyless.js';
import type { Signer } from './signer/signer.js';
import { witnessBundle } from './witness.js';

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
  const payload = Buffer.from(JSON.stringify(statement), 'utf8');
  const envelopeSig = await signer.sign(dsse.preAuthEncoding(IN_TOTO_PAYLOAD_TYPE, payload));
  const bundle = toDSSEBundle({
    artifact: payload,
    artifactType: IN_TOTO_PAYLOAD_TYPE,
    signature: envelopeSig.signature,
    ...(cert ? { certificate: cert.der } : { keyHint: envelopeSig.publicKey.keyId }),
    certificateChain: false,
  });
  // Keyless: Rekor logs the envelope (and a TSA may timestamp it); keyed: a timestamp at most.
  await witnessBundle(bundle, cert ? cert.pem : publicKeyPem(envelopeSig.publicKey), options.witnesses ?? []);
  return {
    signatureFileContent: blob.signature.toString('base64'),
    bundleJson: JSON.stringify(bundleToJSON(bundle)),
    statement,
    keyId: blob.publicKey.keyId,
    ...(cert ? { certificatePem: cert.pem, identity: cert.identity } : {}),
  };
}
