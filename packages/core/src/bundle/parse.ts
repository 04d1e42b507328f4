import type { Bundle } from '@sigstore/bundle';
import type { HashAlgorithm } from '@sigstore/protobuf-specs';
import { decodeStdBase64 } from '../base64.js';
import type { DigestAlgorithm } from '../digest.js';
import { CoreErrorCode, VerificationError } from '../error.js';
import { protobufSpecs, sigstoreBundle, sigstoreCore } from '../sigstore-libs.js';

/** What a signature bundle claims, in one shape whatever the file format was. */
export type ParsedBundle =
  | {
      format: 'sigstore';
      mediaType: string;
      bundle: Bundle;
      content:
        | { kind: 'message'; signature: Buffer; digest?: { algorithm: DigestAlgorithm; value: Buffer } }
        | { kind: 'dsse'; payloadType: string; payload: Buffer; signature: Buffer };
      keyHint: string | undefined;
      tlogEntries: number;
      timestamps: number;
    }
  | {
      /** cosign's pre-v3 `{"base64Signature": ...}` bundle (v2 and v3.1 --new-bundle-format=false). */
      format: 'cosign-legacy';
      signature: Buffer;
      hasRekorBundle: boolean;
    };

/** The digest algorithm of a bundle's message digest, when APX supports it. */
function digestAlgorithmOf(algorithm: HashAlgorithm): DigestAlgorithm | undefined {
  const { HashAlgorithm } = protobufSpecs();
  if (algorithm === HashAlgorithm.SHA2_256) return 'sha256';
  if (algorithm === HashAlgorithm.SHA2_384) return 'sha384';
  if (algorithm === HashAlgorithm.SHA2_512) return 'sha512';
  return undefined;
}

function invalid(source: string, why: string, cause?: unknown): VerificationError {
  return new VerificationError(CoreErrorCode.BUNDLE_INVALID, `invalid bundle ${source}: ${why}`, {
    hint: 'pass the .sigstore.json file written by apx sign-blob --bundle or cosign sign-blob --bundle',
    cause,
  });
}

/** True for a certificate whose issuer is its own subject (a root), or that does not parse. */
function isSelfIssued(der: Buffer): boolean {
  try {
    const cert = sigstoreCore().X509Certificate.parse(Buffer.from(der));
    return cert.subject.equals(cert.issuer);
  } catch {
    return true;
  }
}

/**
 * Reads a Sigstore bundle (v0.1 to v0.3, message signature or DSSE) or a legacy cosign
 * bundle. Structure is validated by @sigstore/bundle; nothing is trusted yet.
 */
export function parseBundle(text: string, source = 'bundle'): ParsedBundle {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw invalid(source, 'not JSON', err);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw invalid(source, 'not a JSON object');
  const obj = json as Record<string, unknown>;

  if (typeof obj.base64Signature === 'string' && obj.mediaType === undefined) {
    const signature = decodeStdBase64(obj.base64Signature);
    if (!signature || signature.length === 0) throw invalid(source, 'base64Signature is not valid base64');
    return { format: 'cosign-legacy', signature, hasRekorBundle: obj.rekorBundle !== undefined };
  }
  if (typeof obj.mediaType !== 'string') throw invalid(source, 'no mediaType and no base64Signature');

  const { bundleFromJSON, isBundleWithDsseEnvelope, isBundleWithMessageSignature } = sigstoreBundle();
  let bundle: Bundle;
  try {
    bundle = bundleFromJSON(json);
  } catch (err) {
    throw invalid(source, err instanceof Error ? err.message : String(err), err);
  }
  const material = bundle.verificationMaterial;
  if (material.content.$case === 'x509CertificateChain') {
    // The chain carries the signing certificate and at most intermediates: a root there is
    // not trusted for being there (roots come from the trusted root only), and the bundle
    // specification forbids it; other clients refuse such a bundle, and so does APX.
    for (const [i, cert] of material.content.x509CertificateChain.certificates.entries()) {
      if (i > 0 && isSelfIssued(cert.rawBytes)) {
        throw invalid(source, `its certificate chain includes a root certificate (certificate ${i + 1} is self-signed)`);
      }
    }
  }
  const keyHint = material.content.$case === 'publicKey' ? material.content.publicKey.hint : undefined;
  const tlogEntries = material.tlogEntries.length;
  const timestamps = material.timestampVerificationData?.rfc3161Timestamps.length ?? 0;
  const common = { format: 'sigstore' as const, mediaType: bundle.mediaType, bundle, keyHint, tlogEntries, timestamps };

  if (isBundleWithMessageSignature(bundle)) {
    const ms = bundle.content.messageSignature;
    if (!ms.messageDigest) return { ...common, content: { kind: 'message', signature: ms.signature } };
    const algorithm = digestAlgorithmOf(ms.messageDigest.algorithm);
    if (!algorithm) {
      const name = protobufSpecs().HashAlgorithm[ms.messageDigest.algorithm];
      throw invalid(source, `unsupported message digest algorithm ${name}`);
    }
    return {
      ...common,
      content: { kind: 'message', signature: ms.signature, digest: { algorithm, value: ms.messageDigest.digest } },
    };
  }
  if (isBundleWithDsseEnvelope(bundle)) {
    const env = bundle.content.dsseEnvelope;
    const first = env.signatures[0];
    if (env.signatures.length !== 1 || !first) throw invalid(source, 'a DSSE envelope must carry exactly one signature');
    return {
      ...common,
      content: { kind: 'dsse', payloadType: env.payloadType, payload: env.payload, signature: first.sig },
    };
  }
  throw invalid(source, 'neither a message signature nor a DSSE envelope');
}
