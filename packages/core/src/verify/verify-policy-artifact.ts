import { createHash } from 'node:crypto';
import { artifactFileName, formatArtifactRef, isPolicyId, isSemver } from '../artifact/ref.js';
import {
  type ArtifactTrust,
  issueVerifiedArtifact,
  MAX_ARTIFACT_BYTES,
  type VerifiedArtifact,
  type VerifiedAttestations,
} from '../artifact/verified-artifact.js';
import { START_SECTION, wasmSectionIds } from '../artifact/wasm-sections.js';
import { checkCompilerFloor, checkProvenance, checkSbom, requiredKinds, requiresNothing } from '../attestation/requirements.js';
import { ATTESTATION_KINDS, type AttestationKind, attestationFileName, predicateOf } from '../attestation/statement.js';
import type { ArtifactBinding } from '../binding/statement.js';
import { isKeylessBundle, verifyKeylessBundle } from '../bundle/keyless.js';
import { type ParsedBundle, parseBundle } from '../bundle/parse.js';
import {
  type ArtifactDigest,
  type ArtifactInput,
  type BundleVerification,
  type BundleVerifyOptions,
  verifyBundle,
} from '../bundle/verify.js';
import { digest as digestOf, sha256Hex } from '../digest.js';
import { CoreErrorCode, isApxError, VerificationError } from '../error.js';
import type { CertificateIdentity } from '../keyless/identity.js';
import { publicGoodTrustedRoot } from '../keyless/trusted-root.js';
import { PublicKey } from '../keys/public-key.js';
import { checkKeyValidity, type KeyValidity } from '../keys/validity.js';
import { SignatureVerifier } from '../signature/verifier.js';
import { checkAbi } from '../wasm/abi-check.js';
import { meterModule } from '../wasm/meter.js';
import { bindingFromStatement } from './binding.js';
import type { TrustInForce, VerificationInput, VerificationMaterial, VerificationPolicy } from './input.js';
import { compareSemver } from './semver.js';

/** `\0asm` then version 1: every WebAssembly binary module starts with these 8 bytes. */
const WASM_HEADER = Buffer.from([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]);

/** A key that may vouch for the artifact: the runbook's key or a signer the targets role names. */
interface Candidate {
  keyId: string;
  verifier: SignatureVerifier;
  validity?: KeyValidity | undefined;
}

type Outcome<T> = { ok: true; value: T } | { ok: false; error: unknown };

function attempt<T>(run: () => T): Outcome<T> {
  try {
    return { ok: true, value: run() };
  } catch (error) {
    return { ok: false, error };
  }
}

/**
 * `sha256:<hex>` of the signature material beside an artifact: the `.sig` bytes (length
 * first, so the two files cannot trade bytes) and the bundle's. A verdict of tampering blocks
 * the pair (artifact digest, this digest), never the artifact digest alone: a junk `.sig`
 * beside genuine bytes must not block the genuine bytes with their genuine signature.
 */
export function signatureMaterialDigest(signature: Uint8Array | undefined, bundle: Uint8Array | undefined): string {
  const length = Buffer.alloc(8);
  length.writeBigUInt64BE(signature === undefined ? 0xffffffffffffffffn : BigInt(signature.byteLength));
  const hash = createHash('sha256').update(length);
  if (signature) hash.update(signature);
  if (bundle) hash.update(bundle);
  return `sha256:${hash.digest('hex')}`;
}

/**
 * THE trust decision: may these bytes run as this reference? Pure and synchronous (no I/O,
 * no clock but `policy.now`); the worker, `apx eval`, `apx inspect` and `apx verify` all
 * call it, so there is one answer. The checks run in one fixed order and the first that
 * fails throws a VerificationError with a closed code; the VerifiedArtifact is made last,
 * so nothing half-checked ever exists.
 *
 *  1. reference well formed                        9. signature verifies with a trusted signer
 *  2. allow-list (runbook "Verify version")       10. signed binding (exactly one subject)
 *  3. size cap, before any hashing                11. magic bytes
 *  4. SHA-256                                     12. WebAssembly compile = full validation
 *  5. (digest, signature) pair not blocked        13. no start section
 *  6. TUF: approved target, length and hashes     14. policy ABI
 *  7. rollback floor                              15. embedded apx.meta names the reference
 *  8. signature present (strict)                 10b. attestations the environment requires
 *
 * Revocation, approvals and freshness are the trust repository's: a revoked artifact is no
 * longer a target of the environment's role (step 6), a removed signer is no longer a
 * candidate (step 9), and stale metadata stops loads before this is called.
 */
export function verifyPolicyArtifact(input: VerificationInput): VerifiedArtifact {
  const { material, trust, policy } = input;
  const state = input.state ?? {};
  const { ref, artifact } = material;
  const now = policy.now ?? (() => new Date());
  // The digest checked (step 4) must be of exactly the bytes compiled (step 12). Both read
  // `artifact` within this one synchronous call, so nothing can change it in between, unless
  // its memory is shared with another thread: refused, whoever the caller.
  if (artifact.buffer instanceof SharedArrayBuffer) {
    throw new TypeError('verifyPolicyArtifact: the artifact is in shared memory; pass a copy of its bytes');
  }

  // 1. Runbook "Verification Flow", first box: the worker receives a policy reference
  //    `<policy-id>@<semver>`; anything else names no artifact.
  if (!isPolicyId(ref.policyId) || !isSemver(ref.version)) {
    throw new VerificationError(CoreErrorCode.REF_INVALID, `invalid policy reference "${ref.policyId}@${ref.version}"`, {
      hint: 'write <policy-id>@<semver>, e.g. pb-pay-v1@1.0.0',
    });
  }
  const refText = formatArtifactRef(ref);
  const file = artifactFileName(ref);

  // 2. Runbook "Verification Steps" 2 / "Verify version": is the version in the allowed list?
  const allowList = policy.allowList;
  if (allowList && !allowList.admits(ref.policyId, ref.version)) {
    const rejection = allowList.rejection(ref.policyId, ref.version);
    const hint = isApxError(rejection) ? rejection.hint : undefined;
    throw new VerificationError(CoreErrorCode.VERSION_NOT_ALLOWED, rejection.message, {
      ...(hint ? { hint } : {}),
      cause: rejection,
    });
  }

  // 3. Runbook "Verification Steps" 4, file size; checked before hashing so an oversized
  //    download costs nothing more (TUF 5.7.3 likewise bounds length before hashing).
  const max = policy.maxBytes ?? MAX_ARTIFACT_BYTES;
  if (artifact.byteLength > max) {
    throw new VerificationError(
      CoreErrorCode.ARTIFACT_TOO_LARGE,
      `artifact too large: ${artifact.byteLength} bytes (max: ${max})`,
      {
        hint: 'policy artifacts are capped at 10 MiB; split the policy or check that the right file was published',
      },
    );
  }

  // 4. Runbook "Compute hash of artifact": SHA-256 of artifact.wasm. The one hash pass over the
  //    bytes: every later check that compares a digest (blocked pair, TUF target, the bundle's
  //    statement subject, the binding, attestation subjects) is handed this one. Only a
  //    signature over the bytes themselves (the .sig; a message-signature bundle) hashes them
  //    again, inside node:crypto's verify, which cannot start from a digest.
  const artifactSha256: ArtifactDigest = { algorithm: 'sha256', digest: digestOf('sha256', artifact) };
  const sha256 = artifactSha256.digest.toString('hex');
  const digest = `sha256:${sha256}`;

  // 5. A (bytes, signature material) pair that failed signature verification before is
  //    refused on sight rather than verified again: tampering is reported once, loudly.
  if (material.signature !== undefined || material.bundle !== undefined) {
    if (state.blocked?.(digest, signatureMaterialDigest(material.signature, material.bundle))) {
      throw new VerificationError(
        CoreErrorCode.DIGEST_BLOCKED,
        `digest ${digest} is blocked: it failed signature verification before with the same signature`,
        { hint: 'publish a correctly signed artifact; this artifact and signature stay blocked until the worker restarts' },
      );
    }
  }

  // 6. TUF 5.7.3 (via the environment's targets role, 5.6): the target must be approved,
  //    and the artifact must have the target's length and hashes.
  if (trust.kind === 'tuf') checkTarget(trust, policy.environment, refText, artifact.byteLength, sha256);

  // 7. Rollback: never below the highest version verified for this policy. Only the
  //    environment's signed targets naming the version, or the operator naming this exact
  //    reference, lets it through; an allow-list entry never does (it admits, it does not roll back).
  if (state.floor !== undefined && compareSemver(ref.version, state.floor) < 0) {
    const named = trust.kind === 'tuf' && trust.namedVersions.has(ref.version);
    if (!named && state.allowRollback !== true) {
      throw new VerificationError(
        CoreErrorCode.ROLLBACK_REFUSED,
        `rollback refused: ${refText} is older than ${state.floor}, the highest version verified for ${ref.policyId}`,
        { hint: `to roll back on purpose, name ${refText} in APX_ALLOW_ROLLBACK` },
      );
    }
  }

  // The bundle is read once: its key hint narrows the candidates of step 9, its verified
  //    statement gives step 10 the binding. A bundle with a Fulcio certificate is keyless:
  //    it is the signature (the .sig, when present, must verify with the certificate's key).
  const parsed = material.bundle === undefined ? undefined : attempt(() => parseBundleOf(material, file));
  const keyless = parsed?.ok === true && isKeylessBundle(parsed.value);

  // 8. Runbook "Verification Steps" 1 / "Verify sig file": does the .sig exist? Without
  //    strict mode (development only) an unsigned artifact goes on, with keyId null.
  if (material.signature === undefined && policy.strict && !keyless) {
    throw new VerificationError(CoreErrorCode.SIGNATURE_MISSING, `signature file not found: ${file}.sig (strict mode enabled)`, {
      hint: 'sign the artifact (apx sign) and publish the .sig beside it',
    });
  }

  const hint = parsed?.ok && parsed.value.format === 'sigstore' ? parsed.value.keyHint : undefined;
  const candidates = candidatesOf(trust, hint);

  // 9. Runbook "Verification Steps" 3 / "Verify ECDSA signature": Verify(hash, signature, pubkey)
  //    with a key the trust in force names (the runbook's key, or a signer of the targets role);
  //    keyless: the certificate chains to the trusted root and names an identity the trust in
  //    force names. A key's validity window is judged at the bundle's trusted time.
  let signer: Candidate | undefined;
  let identity: string | null = null;
  let certificateIdentity: CertificateIdentity | null = null;
  let bundle: Outcome<BundleVerification> | undefined;
  if (keyless && parsed?.ok === true) {
    const verified = verifyKeyless(trust, policy, parsed.value, artifact, artifactSha256, material.signature);
    signer = verified.signer;
    identity = verified.identity;
    certificateIdentity = verified.certificateIdentity;
    bundle = { ok: true, value: verified.bundle };
  } else {
    signer = material.signature === undefined ? undefined : verifySignature(trust, artifact, material.signature, candidates);
    bundle =
      parsed?.ok === true
        ? attempt(() =>
            verifyBundleWith(
              parsed.value,
              bundleSubject(parsed.value, artifact, artifactSha256),
              signer,
              candidates,
              policy,
              now(),
            ),
          )
        : parsed;
    if (signer?.validity && bundle === undefined) checkKeyValidity(signer.keyId, signer.validity, [], now());
  }

  // 10. Signed binding (docs/security-model.md): required when the caller requires it,
  //     checked whenever present; the DSSE statement, signed by the same key as the .sig,
  //     names exactly this artifact: one subject, this digest, this reference, size, environment.
  let binding: ArtifactBinding | null = null;
  if (bundle === undefined) {
    if (policy.requireBinding) {
      throw new VerificationError(
        CoreErrorCode.BINDING_MISSING,
        `signed binding not found: ${file}.sigstore.json (required in ${policy.environment})`,
        { hint: `sign the artifact with apx sign --env ${policy.environment} and publish its bundle` },
      );
    }
  } else {
    if (!bundle.ok) throw bundle.error;
    const statement = bundle.value.statement;
    if (statement) {
      binding = bindingFromStatement(statement, {
        ref,
        sha256,
        size: artifact.byteLength,
        environment: policy.requireBinding ? policy.environment : undefined,
      });
    } else if (policy.requireBinding) {
      throw new VerificationError(
        CoreErrorCode.BINDING_MISSING,
        `signed binding not found: the bundle of ${file} has no statement`,
        {
          hint: `sign the artifact with apx sign --env ${policy.environment}, which writes a binding statement`,
        },
      );
    }
  }

  // 10b. Attestations the environment requires (docs/security-model.md, "Attestations"): each
  //      present, signed by a signer the environment trusts, about these bytes, and within the
  //      environment's conditions (builders, source repositories, compiler floor, denied components).
  const attestations =
    trust.kind === 'tuf' && !requiresNothing(trust.attestations)
      ? checkAttestations(trust, policy, material, file, artifactSha256, binding, now())
      : undefined;

  // 11. Runbook "Verification Steps" 4, magic bytes: `\0asm` version 1.
  if (artifact.byteLength < WASM_HEADER.length || !WASM_HEADER.equals(artifact.subarray(0, WASM_HEADER.length))) {
    throw new VerificationError(CoreErrorCode.ARTIFACT_NOT_WASM, 'invalid artifact: not a WASM file', {
      hint: 'the artifact must be a WebAssembly module compiled by apx compile',
    });
  }

  // 12. Compiling validates fully; a Module is immutable, so what runs is what verified.
  //     `artifact` is the very object hashed in step 4 (no copy in between, see the top).
  //     What is compiled is the verified bytes metered (wasm/meter.ts): the same code with a
  //     fuel charge at every function entry and loop head, so that no decision runs forever.
  const metered = meterModule(artifact);
  let module: WebAssembly.Module;
  try {
    module = new WebAssembly.Module(metered);
  } catch (err) {
    throw new VerificationError(
      CoreErrorCode.ARTIFACT_INVALID_WASM,
      `invalid artifact: WebAssembly validation failed: ${(err as Error).message}`,
      { hint: 'recompile the policy with apx compile', cause: err },
    );
  }

  // 13. A start function would run code at instantiation, outside any decision; APX
  //     modules have none, so a module that has one is refused.
  if (wasmSectionIds(artifact).includes(START_SECTION)) {
    throw new VerificationError(CoreErrorCode.ARTIFACT_INVALID_WASM, 'invalid artifact: the module has a start function', {
      hint: 'policy modules must not run code on instantiation; recompile the policy with apx compile',
    });
  }

  // 14. DESIGN.md §1 "ABI": one memory import, one decide export, metadata and tables of this ABI.
  const { meta, tables } = checkAbi(module);

  // 15. The module's own `apx.meta` must name the reference, in every environment: a signed
  //     module renamed to another policy id or version is refused even where no binding is required.
  if (meta.policy !== ref.policyId || meta.version !== ref.version) {
    throw new VerificationError(
      CoreErrorCode.EMBEDDED_NAME_MISMATCH,
      `embedded name mismatch: the module says ${meta.policy}@${meta.version}, loaded as ${refText}`,
      { hint: 'the artifact was renamed after compiling; publish it under the name it was compiled as, or recompile it' },
    );
  }

  // Every check passed: only now does a VerifiedArtifact exist.
  const trustKind: ArtifactTrust = signer === undefined ? 'unsigned' : trust.kind;
  return issueVerifiedArtifact({
    ref,
    module,
    digest,
    size: artifact.byteLength,
    keyId: signer?.keyId ?? null,
    identity,
    certificateIdentity,
    meta,
    tables,
    binding,
    ...(attestations ? { attestations } : {}),
    trust: trustKind,
    verifiedAt: now(),
  });
}

/** Step 10b: every attestation the environment requires, verified, then its conditions. */
function checkAttestations(
  trust: Extract<TrustInForce, { kind: 'tuf' }>,
  policy: VerificationPolicy,
  material: VerificationMaterial,
  file: string,
  artifact: ArtifactDigest,
  binding: ArtifactBinding | null,
  now: Date,
): VerifiedAttestations | undefined {
  const r = trust.attestations;
  if (!r) return undefined;
  const env = trust.environment;
  const verified: VerifiedAttestations = {};
  for (const kind of requiredKinds(r)) {
    const name = attestationFileName(file, kind);
    const bytes = material.attestations?.[kind];
    if (bytes === undefined) {
      throw new VerificationError(
        CoreErrorCode.ATTESTATION_MISSING,
        `attestation missing: ${name} (${ATTESTATION_KINDS[kind].what} required in ${env})`,
        { hint: `build the artifact with apx compile (it writes ${name}) and publish it with the artifact` },
      );
    }
    const statement = verifyAttestation(trust, policy, bytes, name, kind, artifact, now);
    const digest = `sha256:${sha256Hex(bytes)}`;
    if (kind === 'provenance') {
      checkProvenance(statement, r, env);
      const id = (statement.predicate as { runDetails?: { builder?: { id?: unknown } } }).runDetails?.builder?.id;
      verified.provenance = { digest, builderId: typeof id === 'string' ? id : null };
    } else {
      verified.sbom = { digest, components: checkSbom(statement, r, env) };
    }
  }
  if (r.compilerMin) checkCompilerFloor(binding?.compilerVersion ?? null, r, env);
  return verified;
}

/**
 * An attestation bundle verified like the artifact's: a trusted key (by hint) or a trusted
 * identity. Attestations are DSSE statements: their subject is checked against the artifact's
 * digest (step 4), never by hashing the artifact again.
 */
function verifyAttestation(
  trust: TrustInForce,
  policy: VerificationPolicy,
  bytes: Uint8Array,
  name: string,
  kind: AttestationKind,
  artifact: ArtifactDigest,
  now: Date,
): Record<string, unknown> {
  try {
    const parsed = parseBundle(utf8(bytes), name);
    if (parsed.format !== 'sigstore' || parsed.content.kind !== 'dsse') {
      throw new VerificationError(CoreErrorCode.ATTESTATION_INVALID, 'it is a signature, not an in-toto attestation');
    }
    let statement: Record<string, unknown> | undefined;
    if (isKeylessBundle(parsed)) {
      const identities = trust.identities ?? [];
      if (identities.length === 0)
        throw new VerificationError(CoreErrorCode.NOT_APPROVED, 'signed keylessly, and no identity is trusted');
      statement = verifyKeylessBundle(parsed, artifact, {
        trustedRoot: policy.trustedRoot ?? publicGoodTrustedRoot(),
        identities,
      }).statement;
    } else {
      statement = verifyBundleWith(parsed, artifact, undefined, candidatesOf(trust, parsed.keyHint), policy, now).statement;
    }
    if (!statement) throw new VerificationError(CoreErrorCode.ATTESTATION_INVALID, 'it carries no in-toto statement');
    // The predicate type is the one this file name promises.
    return { ...statement, predicate: predicateOf(statement, ATTESTATION_KINDS[kind].predicateType) };
  } catch (err) {
    if (!isApxError(err)) throw err;
    throw new VerificationError(CoreErrorCode.ATTESTATION_INVALID, `attestation invalid: ${name}: ${err.message}`, {
      hint: 'publish the attestation apx compile wrote beside this artifact, signed by a signer this environment trusts',
      cause: err,
    });
  }
}

function parseBundleOf(material: VerificationMaterial, file: string): ParsedBundle {
  return parseBundle(utf8(material.bundle as Uint8Array), `${file}.sigstore.json`);
}

/** Decodes bytes as UTF-8 through a view (Buffer.from of a Uint8Array would copy them first). */
function utf8(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8');
}

/**
 * What a bundle is checked against: a DSSE statement names the artifact by digest, so it gets
 * the digest of step 4; a message signature (cosign's bundle, the legacy format) covers the
 * bytes themselves, which node:crypto's verify hashes.
 */
function bundleSubject(parsed: ParsedBundle, artifact: Uint8Array, sha256: ArtifactDigest): ArtifactInput {
  return parsed.format === 'sigstore' && parsed.content.kind === 'dsse' ? sha256 : artifact;
}

function checkTarget(
  trust: Extract<TrustInForce, { kind: 'tuf' }>,
  environment: string,
  refText: string,
  length: number,
  sha256: string,
): void {
  const refuse = (why: string) =>
    new VerificationError(CoreErrorCode.NOT_APPROVED, `not approved for ${environment}: ${why}`, {
      hint: `have the ${environment} targets role approve the artifact, or load a version it approves`,
    });
  if (trust.environment !== environment) {
    throw refuse(`the trust in force is the targets role of ${trust.environment}`);
  }
  const target = trust.target;
  if (target === undefined) throw refuse(`${refText} is not a target of the ${environment} targets role`);
  const approved = target.sha256.replace(/^sha256:/, '').toLowerCase();
  if (target.length !== length || approved !== sha256) {
    throw new VerificationError(
      CoreErrorCode.TARGET_MISMATCH,
      `target mismatch: ${refText} is approved with ${target.length} bytes and sha256:${approved}, got ${length} bytes and sha256:${sha256}`,
      { hint: 'the artifact in the store is not the one the environment approved; publish the approved artifact' },
    );
  }
}

/** A key hint as a hex key id (bundles carry hex, cosign's form is base64). */
function hintKeyId(hint: string | undefined): string | undefined {
  if (!hint) return undefined;
  return /^[0-9a-f]{64}$/.test(hint) ? hint : Buffer.from(hint, 'base64').toString('hex');
}

function candidatesOf(trust: TrustInForce, hint: string | undefined): Candidate[] {
  const all = trust.signers.map((s) => ({ keyId: s.keyId, verifier: s.verifier, validity: s.validity }));
  const named = all.filter((s) => s.keyId === hintKeyId(hint));
  return named.length > 0 ? named : all;
}

/** The candidate whose key verifies the detached signature; else the first failure. */
function verifySignature(trust: TrustInForce, artifact: Uint8Array, signature: Uint8Array, candidates: Candidate[]): Candidate {
  if (candidates.length === 0) {
    throw new VerificationError(CoreErrorCode.NOT_APPROVED, `not approved: the trust in force names no signer`, {
      hint: trust.kind === 'tuf' ? 'the targets role must delegate to at least one signing key' : 'configure a public key',
    });
  }
  let firstFailure: unknown;
  for (const candidate of candidates) {
    try {
      candidate.verifier.verify(artifact, signature);
      return candidate;
    } catch (err) {
      // A malformed signature is malformed for every key: no point trying the others.
      if (!(isApxError(err) && err.code === CoreErrorCode.SIGNATURE_INVALID)) throw err;
      firstFailure ??= err;
    }
  }
  throw firstFailure;
}

/**
 * Bundle options for a candidate key: with a validity window, the bundle's timestamps and
 * log entries (when it has any and a trusted root is configured) are verified to date the
 * signature; the window is judged at those times, or at now without them.
 */
function bundleOptions(parsed: ParsedBundle, candidate: Candidate, policy: VerificationPolicy, now: Date): BundleVerifyOptions {
  if (!candidate.validity) return {};
  const evidence = parsed.format === 'sigstore' && parsed.timestamps + parsed.tlogEntries > 0;
  return {
    keyValidity: candidate.validity,
    now,
    ...(evidence && policy.trustedRoot ? { trustedRoot: policy.trustedRoot, requireTlog: false } : {}),
  };
}

/**
 * Verifies the bundle with the key whose .sig verified. An unsigned artifact (strict mode
 * off) has no such key: its bundle must then verify with one of the trusted keys.
 */
function verifyBundleWith(
  parsed: ParsedBundle,
  artifact: ArtifactInput,
  signer: Candidate | undefined,
  candidates: Candidate[],
  policy: VerificationPolicy,
  now: Date,
): BundleVerification {
  if (signer) return verifyBundle(parsed, artifact, signer.verifier, bundleOptions(parsed, signer, policy, now));
  let firstFailure: unknown = new VerificationError(
    CoreErrorCode.NOT_APPROVED,
    'not approved: the trust in force names no signer',
  );
  for (const [i, candidate] of candidates.entries()) {
    try {
      return verifyBundle(parsed, artifact, candidate.verifier, bundleOptions(parsed, candidate, policy, now));
    } catch (err) {
      if (i === 0) firstFailure = err;
    }
  }
  throw firstFailure;
}

/**
 * A keyless bundle: verified against the trusted root (the caller's, else the public-good
 * root embedded in @sigstore/tuf) and the identities the trust in force names. A .sig beside
 * it must verify with the certificate's key.
 */
function verifyKeyless(
  trust: TrustInForce,
  policy: VerificationPolicy,
  parsed: ParsedBundle,
  artifact: Uint8Array,
  sha256: ArtifactDigest,
  signature: Uint8Array | undefined,
): { signer: Candidate; identity: string; certificateIdentity: CertificateIdentity; bundle: BundleVerification } {
  const identities = trust.identities ?? [];
  if (identities.length === 0) {
    throw new VerificationError(
      CoreErrorCode.NOT_APPROVED,
      'not approved: the artifact is signed keylessly and the trust in force names no trusted identity',
      {
        hint:
          trust.kind === 'tuf'
            ? `have the ${trust.environment} role trust the signing identity, or sign with a trusted key`
            : 'sign with the configured key, or trust the signing identity',
      },
    );
  }
  const result = verifyKeylessBundle(parsed, bundleSubject(parsed, artifact, sha256), {
    trustedRoot: policy.trustedRoot ?? publicGoodTrustedRoot(),
    identities,
  });
  const verifier = new SignatureVerifier(PublicKey.fromKeyObject(result.publicKey));
  if (signature !== undefined) verifier.verify(artifact, signature);
  const bundle: BundleVerification = {
    format: 'sigstore',
    tlogEntriesVerified: result.tlogEntriesVerified,
    tlogEntriesUnchecked: 0,
    trustedTimes: result.trustedTimes,
  };
  if (result.statement) bundle.statement = result.statement;
  return {
    signer: { keyId: verifier.publicKey.keyId, verifier },
    identity: `${result.identity.subject ?? '(no subject)'} from ${result.identity.issuer ?? '(no issuer)'}`,
    certificateIdentity: result.identity,
    bundle,
  };
}
