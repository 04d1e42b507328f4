import { IN_TOTO_STATEMENT_V1 } from '../bundle/verify.js';
import { sha256Hex } from '../digest.js';
import { CoreErrorCode, VerificationError } from '../error.js';

/** The in-toto predicate type of APX's artifact binding. */
export const POLICY_PREDICATE_TYPE = 'https://apx.dev/attestations/policy-artifact/v1';

/**
 * What a signature binds besides the bytes: which policy and version the artifact is, for
 * which environment, and how it was built. A signature over bytes alone lets anyone who can
 * write to the store rename an old, a staging or another policy's artifact into the
 * reference production asks for; a signed binding makes the name part of what is signed.
 */
export interface ArtifactBinding {
  policyId: string;
  version: string;
  environment: string;
  size: number;
  abiVersion: number | null;
  compilerVersion: string | null;
  /** `sha256:<hex>` of the canonical policy source, when the artifact was compiled by APX. */
  sourceDigest: string | null;
  /** RFC 3339 time of signing, as claimed by the signer. */
  signedAt: string;
}

/** The in-toto Statement v1 that carries a binding; its subject is the artifact by digest. */
export function bindingStatement(artifact: Uint8Array, binding: ArtifactBinding): Record<string, unknown> {
  return {
    _type: IN_TOTO_STATEMENT_V1,
    subject: [{ name: `${binding.policyId}@${binding.version}`, digest: { sha256: sha256Hex(artifact) } }],
    predicateType: POLICY_PREDICATE_TYPE,
    predicate: {
      policyId: binding.policyId,
      version: binding.version,
      environment: binding.environment,
      size: binding.size,
      abiVersion: binding.abiVersion,
      compilerVersion: binding.compilerVersion,
      sourceDigest: binding.sourceDigest,
      signedAt: binding.signedAt,
    },
  };
}

function bad(why: string): VerificationError {
  return new VerificationError(CoreErrorCode.BUNDLE_INVALID, `invalid bundle: the statement ${why}`, {
    hint: 'sign the artifact with apx sign (or apx compile), which writes an APX binding statement',
  });
}

const str = (v: unknown): v is string => typeof v === 'string' && v.length > 0;
const strOrNull = (v: unknown): v is string | null => v === null || str(v);

/**
 * Reads the binding out of a statement whose signature and subject digest were already
 * verified (verifyBundle). The subject name must agree with the predicate: a statement
 * cannot name one artifact in its subject and another in its predicate.
 */
export function readBinding(statement: Record<string, unknown>): ArtifactBinding {
  if (statement.predicateType !== POLICY_PREDICATE_TYPE)
    throw bad(`has predicate type ${String(statement.predicateType)}, not ${POLICY_PREDICATE_TYPE}`);
  const p = statement.predicate as Record<string, unknown> | undefined;
  if (typeof p !== 'object' || p === null) throw bad('has no predicate');
  const { policyId, version, environment, size, abiVersion, compilerVersion, sourceDigest, signedAt } = p;
  if (!str(policyId) || !str(version) || !str(environment) || !str(signedAt))
    throw bad('lacks policyId, version, environment or signedAt');
  if (typeof size !== 'number' || !Number.isInteger(size) || size < 0) throw bad('has no valid size');
  if (!(abiVersion === null || (typeof abiVersion === 'number' && Number.isInteger(abiVersion))))
    throw bad('has an invalid abiVersion');
  if (!strOrNull(compilerVersion) || !strOrNull(sourceDigest)) throw bad('has an invalid compilerVersion or sourceDigest');
  if (Number.isNaN(Date.parse(signedAt))) throw bad('has an invalid signedAt time');
  // Exactly one subject, named as the predicate: in-toto treats names as informational and
  // matches by digest, so a second subject could lend this binding to other bytes.
  const subjects = statement.subject;
  if (!Array.isArray(subjects) || subjects.length !== 1) throw bad('must have exactly one subject');
  if ((subjects[0] as { name?: unknown } | null)?.name !== `${policyId}@${version}`)
    throw bad(`names ${policyId}@${version} in its predicate but not in its subject`);
  return { policyId, version, environment, size, abiVersion, compilerVersion, sourceDigest, signedAt };
}

export interface BindingExpectation {
  policyId: string;
  version: string;
  /** The environment the worker runs in; undefined skips the check (development). */
  environment: string | undefined;
  size: number;
}

/**
 * The binding must name exactly what is being loaded: same policy, same version, same
 * environment, same size. Each mismatch is a rename, substitution or promotion attack.
 */
export function checkBinding(binding: ArtifactBinding, expected: BindingExpectation): void {
  const loaded = `${expected.policyId}@${expected.version}`;
  const bound = `${binding.policyId}@${binding.version}`;
  const mismatch = (why: string) =>
    new VerificationError(CoreErrorCode.BINDING_MISMATCH, `signed binding mismatch: ${why}`, {
      hint: 'the artifact was renamed, substituted or promoted without re-signing; sign it for this name and environment with apx sign',
    });
  if (bound !== loaded) throw mismatch(`artifact is signed as ${bound}, loaded as ${loaded}`);
  if (expected.environment !== undefined && binding.environment !== expected.environment) {
    throw mismatch(`artifact is signed for environment ${binding.environment}, this worker runs ${expected.environment}`);
  }
  if (binding.size !== expected.size) throw mismatch(`artifact is signed with size ${binding.size}, got ${expected.size} bytes`);
}
