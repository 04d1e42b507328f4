import { sha256Hex } from '../digest.js';
import { CoreErrorCode, VerificationError } from '../error.js';
import { checkAbi } from '../wasm/abi-check.js';
import { meterModule } from '../wasm/meter.js';
import { type ArtifactRef, formatArtifactRef } from './ref.js';
import { issueVerifiedArtifact, type VerifiedArtifact, type VerifiedArtifactFields } from './verified-artifact.js';
import { START_SECTION, wasmSectionIds } from './wasm-sections.js';

/**
 * What a verifying process hands a serving process it started (the worker's cluster primary
 * to its children, over the private IPC channel between them): the bytes that passed
 * verifyPolicyArtifact there, and that verifier's verdict on them. Plain data: it crosses a
 * process boundary, where a VerifiedArtifact (a registered object holding a compiled Module)
 * cannot.
 */
export interface HandedArtifact {
  bytes: Uint8Array;
  verdict: HandedVerdict;
}

/** The verdict's fields that the bytes alone cannot re-establish (the trust decision). */
export type HandedVerdict = Omit<VerifiedArtifactFields, 'module' | 'meta' | 'tables'>;

/** The parts of a VerifiedArtifact a verifying process hands on with the bytes. */
export function handedVerdict(artifact: VerifiedArtifact): HandedVerdict {
  return {
    ref: { policyId: artifact.ref.policyId, version: artifact.ref.version },
    digest: artifact.digest,
    size: artifact.size,
    keyId: artifact.keyId,
    identity: artifact.identity,
    certificateIdentity: artifact.certificateIdentity,
    binding: artifact.binding,
    ...(artifact.attestations ? { attestations: artifact.attestations } : {}),
    trust: artifact.trust,
    verifiedAt: artifact.verifiedAt,
  };
}

/**
 * Makes the VerifiedArtifact of bytes that the process's own verifying parent verified.
 *
 * The trust decision (signature, keyring, approval, revocation, rollback floor, binding,
 * attestations) was taken by the parent, which alone holds the trust state; it is taken on
 * the parent's word, which arrives over a channel only the two processes share. What the bytes
 * themselves can prove is proved again here, so that a corrupted or mixed-up hand-off fails
 * closed: their SHA-256 and size are the verdict's, and they compile (metered), have no start
 * function, pass the ABI check and embed the reference's name, exactly as verifyPolicyArtifact
 * checks (its steps 11 to 15).
 *
 * This is the only other place a VerifiedArtifact is made; the worker calls it in one place
 * (packages/worker/src/cluster/child-policies.ts), on what its primary sent.
 */
export function adoptHandedArtifact(handed: HandedArtifact): VerifiedArtifact {
  const { bytes, verdict } = handed;
  const ref: ArtifactRef = verdict.ref;
  const refText = formatArtifactRef(ref);
  const refuse = (what: string) =>
    new VerificationError(CoreErrorCode.ARTIFACT_NOT_VERIFIED, `refusing the artifact handed for ${refText}: ${what}`, {
      hint: 'the verifying process and the serving process disagree; restart the worker',
    });
  if (!(bytes instanceof Uint8Array)) throw refuse('no bytes');
  if (bytes.byteLength !== verdict.size) throw refuse(`${bytes.byteLength} bytes, verified ${verdict.size}`);
  const digest = `sha256:${sha256Hex(bytes)}`;
  if (digest !== verdict.digest) throw refuse(`the bytes are ${digest}, verified ${verdict.digest}`);
  let module: WebAssembly.Module;
  try {
    module = new WebAssembly.Module(meterModule(bytes));
  } catch (err) {
    throw refuse(`WebAssembly validation failed: ${(err as Error).message}`);
  }
  if (wasmSectionIds(bytes).includes(START_SECTION)) throw refuse('the module has a start function');
  const { meta, tables } = checkAbi(module);
  if (meta.policy !== ref.policyId || meta.version !== ref.version) {
    throw refuse(`the module says ${meta.policy}@${meta.version}`);
  }
  return issueVerifiedArtifact({ ...verdict, module, meta, tables });
}
