import { sha256Hex } from '../digest.js';
import { CoreErrorCode, VerificationError } from '../error.js';
import type { SignatureVerifier } from '../signature/verifier.js';
import { START_SECTION, wasmSectionIds } from './wasm-sections.js';

/** The runbook's cap: artifacts larger than 10 MiB are rejected. */
export const MAX_ARTIFACT_BYTES = 10 * 1024 * 1024;

/** `\0asm` then version 1: every WebAssembly binary module starts with these 8 bytes. */
const WASM_HEADER = Buffer.from([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]);

const verifiedBrand: unique symbol = Symbol('VerifiedArtifact');

/**
 * An artifact that passed verification. Only `verifyArtifact` can make one (the brand is a
 * module-private symbol), and it carries the compiled WebAssembly.Module rather than bytes:
 * the module was compiled from the very bytes whose signature verified, and a Module cannot
 * be changed afterwards, so "run unverified bytes" cannot be written.
 */
export interface VerifiedArtifact {
  readonly [verifiedBrand]: true;
  readonly module: WebAssembly.Module;
  /** `sha256:<hex>` of the verified bytes. */
  readonly digest: string;
  readonly size: number;
  /**
   * Key id (hex SHA-256 of SPKI DER) of the key whose signature verified; null only for an
   * unsigned artifact accepted by `acceptUnsignedArtifact` (strict mode off, never production).
   */
  readonly keyId: string | null;
  readonly verifiedAt: Date;
}

export interface VerifyArtifactOptions {
  /** Size cap in bytes; defaults to the runbook's 10 MiB. */
  maxBytes?: number;
  /** Clock, for tests. */
  now?: () => Date;
}

/**
 * The runbook's verification of one artifact, in DESIGN.md §1's order once the signature
 * is present: size cap (checked first so an oversized download costs no hashing),
 * SHA-256, signature with the trusted key, magic bytes, full validation and compilation.
 * Throws a VerificationError naming the first check that failed.
 */
export function verifyArtifact(
  bytes: Uint8Array,
  signatureFile: Uint8Array,
  verifier: SignatureVerifier,
  options: VerifyArtifactOptions = {},
): VerifiedArtifact {
  checkSize(bytes, options);
  const digest = `sha256:${sha256Hex(bytes)}`;
  verifier.verify(bytes, signatureFile);
  return compileChecked(bytes, digest, verifier.publicKey.keyId, options);
}

/**
 * The explicit, greppable door for strict mode off (development only; the worker refuses
 * it in production): the same size, magic and validation checks, no signature. The
 * result says `keyId: null`, so every consumer can see and report that it was unsigned.
 */
export function acceptUnsignedArtifact(bytes: Uint8Array, options: VerifyArtifactOptions = {}): VerifiedArtifact {
  checkSize(bytes, options);
  return compileChecked(bytes, `sha256:${sha256Hex(bytes)}`, null, options);
}

function checkSize(bytes: Uint8Array, options: VerifyArtifactOptions): void {
  const max = options.maxBytes ?? MAX_ARTIFACT_BYTES;
  if (bytes.byteLength > max) {
    throw new VerificationError(CoreErrorCode.ARTIFACT_TOO_LARGE, `artifact too large: ${bytes.byteLength} bytes (max: ${max})`, {
      hint: 'policy artifacts are capped at 10 MiB; split the policy or check that the right file was published',
    });
  }
}

function compileChecked(
  bytes: Uint8Array,
  digest: string,
  keyId: string | null,
  options: VerifyArtifactOptions,
): VerifiedArtifact {
  if (bytes.byteLength < WASM_HEADER.length || !WASM_HEADER.equals(bytes.subarray(0, WASM_HEADER.length))) {
    throw new VerificationError(CoreErrorCode.ARTIFACT_NOT_WASM, 'invalid artifact: not a WASM file', {
      hint: 'the artifact must be a WebAssembly module compiled by apx compile',
    });
  }
  let module: WebAssembly.Module;
  try {
    // Compiling validates fully; a Module is immutable, so what runs is what verified.
    module = new WebAssembly.Module(bytes);
  } catch (err) {
    throw new VerificationError(
      CoreErrorCode.ARTIFACT_INVALID_WASM,
      `invalid artifact: WebAssembly validation failed: ${(err as Error).message}`,
      {
        hint: 'recompile the policy with apx compile',
        cause: err,
      },
    );
  }
  // A start function would run code at instantiation, before the host's ABI checks and
  // outside any decision; APX modules have none, so a module that has one is refused.
  if (wasmSectionIds(bytes).includes(START_SECTION)) {
    throw new VerificationError(CoreErrorCode.ARTIFACT_INVALID_WASM, 'invalid artifact: the module has a start function', {
      hint: 'policy modules must not run code on instantiation; recompile the policy with apx compile',
    });
  }
  return {
    [verifiedBrand]: true,
    module,
    digest,
    size: bytes.byteLength,
    keyId,
    verifiedAt: (options.now ?? (() => new Date()))(),
  };
}
