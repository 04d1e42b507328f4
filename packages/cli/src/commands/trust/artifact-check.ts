// Before an approver signs an approval: would a worker of that environment run this
// artifact once it is approved? The one verifier in core answers (DESIGN.md §1), with the
// trust the environment role will carry: this target, and the artifact signers it trusts.

import {
  type ArtifactRef,
  type IdentityPolicy,
  isApxError,
  type KeyValidity,
  type PublicKey,
  SignatureVerifier,
  type SigstoreTrustedRoot,
  sha256Hex,
  verifyPolicyArtifact,
} from '@apx/core';
import type { ArtifactStore } from '@apx/storage';
import type { CliContext } from '../../context.js';
import { CliError, CliErrorCode } from '../../error.js';
import { trustModule } from './shared.js';

/** An artifact signing key an environment trusts, with its validity window when it has one. */
export interface TrustedKey {
  publicKey: PublicKey;
  validity?: KeyValidity;
}

/** An artifact read for approval, with what sits beside it. */
export interface ArtifactToApprove {
  ref: ArtifactRef;
  artifact: Uint8Array;
  signature: Uint8Array | undefined;
  bundle: Uint8Array | undefined;
  /** Where it was read (a path, or the reference in the store). */
  source: string;
  length: number;
  sha256: string;
}

/** A path (`build/pb-pay-v1@1.1.0.wasm`) reads a local file; a reference (`pb-pay-v1@1.1.0`) the store. */
export function isArtifactPath(text: string): boolean {
  return text.endsWith('.wasm') || text.includes('/');
}

export async function readArtifactToApprove(ctx: CliContext, store: ArtifactStore, text: string): Promise<ArtifactToApprove> {
  const { fetchArtifact, readArtifactFiles } = await import('@apx/storage');
  const { parseArtifactRef } = await import('@apx/core');
  let files: { ref: string; artifact: Uint8Array; signature: Uint8Array | undefined; bundle: Uint8Array | undefined };
  if (isArtifactPath(text)) {
    const read = await readArtifactFiles(text, { cwd: ctx.cwd });
    files = { ref: read.ref, artifact: read.artifact, signature: read.signature, bundle: read.bundle };
  } else {
    const fetched = await fetchArtifact(store, text);
    if (!fetched) {
      throw new CliError(CliErrorCode.INPUT_NOT_FOUND, `artifact not found: ${text} is not in ${store.url}`, {
        hint: 'publish it first (apx publish), or pass the path of the .wasm',
      });
    }
    files = fetched;
  }
  return {
    ref: parseArtifactRef(files.ref),
    artifact: files.artifact,
    signature: files.signature,
    bundle: files.bundle,
    source: text,
    length: files.artifact.byteLength,
    sha256: sha256Hex(files.artifact),
  };
}

/**
 * Refuses an approval that workers of `env` would not honour: the signature must verify with
 * one of the artifact signing keys the environment trusts, or a keyless signature's certificate
 * (checked against `trustedRoot`, the workers' APX_SIGSTORE_TRUSTED_ROOT, default the
 * public-good root) must name an identity it trusts; and every other check of the worker's
 * verifier must pass (binding, WebAssembly, ABI, embedded name), as if the approval were in force.
 */
export async function checkWouldVerify(
  env: string,
  input: ArtifactToApprove,
  trusted: { keys: readonly TrustedKey[]; identities: readonly IdentityPolicy[] },
  trustedRoot?: SigstoreTrustedRoot,
): Promise<void> {
  const { TrustError, TrustErrorCode } = await trustModule();
  const name = `${input.ref.policyId}@${input.ref.version}`;
  const signers = trusted.keys;
  if (signers.length === 0 && trusted.identities.length === 0) {
    throw new TrustError(
      TrustErrorCode.INVALID_REQUEST,
      `refusing to approve ${name} for ${env}: ${env} trusts no artifact signing key yet`,
      {
        hint: `add the key that signs its artifacts first: apx trust signer add --env ${env} KEY.pub --key APPROVER-KEY`,
      },
    );
  }
  try {
    verifyPolicyArtifact({
      material: { ref: input.ref, artifact: input.artifact, signature: input.signature, bundle: input.bundle },
      trust: {
        kind: 'tuf',
        environment: env,
        target: { length: input.length, sha256: input.sha256 },
        signers: signers.map(({ publicKey, validity }) => ({
          keyId: publicKey.keyId,
          verifier: new SignatureVerifier(publicKey),
          ...(validity ? { validity } : {}),
        })),
        identities: [...trusted.identities],
        namedVersions: new Set([input.ref.version]),
      },
      // Workers require signed bindings outside development (APX_REQUIRE_BINDING's default).
      policy: { environment: env, strict: true, requireBinding: env !== 'dev', ...(trustedRoot ? { trustedRoot } : {}) },
    });
  } catch (err) {
    if (!isApxError(err)) throw err;
    throw new TrustError(TrustErrorCode.INVALID_REQUEST, `refusing to approve ${name} for ${env}: ${err.message}`, {
      hint:
        err.code === 'SIGNATURE_INVALID'
          ? `it is not signed by a key ${env} trusts (apx trust status --env ${env} lists them; apx trust signer add adds one)`
          : (err.hint ?? 'fix the artifact, then approve it again'),
      cause: err,
    });
  }
}
