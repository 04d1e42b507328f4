import { type ArtifactRef, formatArtifactRef } from '../artifact/ref.js';
import { type ArtifactBinding, checkBinding, readBinding } from '../binding/statement.js';
import { CoreErrorCode, VerificationError } from '../error.js';

const HINT =
  'the artifact was renamed, substituted or promoted without re-signing; sign it for this name and environment with apx sign';

export interface StatementExpectation {
  ref: ArtifactRef;
  /** Lowercase hex SHA-256 of the artifact. */
  sha256: string;
  size: number;
  /** The caller's environment when the binding must name it; undefined skips that check. */
  environment: string | undefined;
}

/**
 * The binding a verified DSSE statement makes for the artifact being loaded. The statement
 * must have exactly one subject: in-toto matches subjects by digest and treats names as
 * informational, so a statement listing the artifact's digest under one name and this
 * reference's name under another would otherwise let the bytes serve as a version they were
 * never signed as. One subject, whose digest is the artifact's and whose name is the
 * reference, then a predicate naming the same policy, version, environment and size.
 */
export function bindingFromStatement(statement: Record<string, unknown>, expected: StatementExpectation): ArtifactBinding {
  const loaded = formatArtifactRef(expected.ref);
  const subjects = statement.subject;
  if (!Array.isArray(subjects) || subjects.length !== 1) {
    const count = Array.isArray(subjects) ? subjects.length : 0;
    throw new VerificationError(
      CoreErrorCode.BINDING_MISMATCH,
      `signed binding mismatch: the statement names ${count} subjects; an APX binding names exactly one`,
      { hint: HINT },
    );
  }
  const subject = subjects[0] as { name?: unknown; digest?: Record<string, unknown> } | null;
  const sha256 = subject?.digest?.sha256;
  if (sha256 !== expected.sha256) {
    throw new VerificationError(
      CoreErrorCode.BUNDLE_DIGEST_MISMATCH,
      `bundle statement does not match the artifact: its subject has sha256:${String(sha256)}, the artifact is sha256:${expected.sha256}`,
      { hint: 'this bundle belongs to another artifact or version; use the bundle written beside this artifact' },
    );
  }
  if (subject?.name !== loaded) {
    throw new VerificationError(
      CoreErrorCode.BINDING_MISMATCH,
      `signed binding mismatch: artifact is signed as ${String(subject?.name)}, loaded as ${loaded}`,
      { hint: HINT },
    );
  }
  const binding = readBinding(statement);
  checkBinding(binding, {
    policyId: expected.ref.policyId,
    version: expected.ref.version,
    environment: expected.environment,
    size: expected.size,
  });
  return binding;
}
