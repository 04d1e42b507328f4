import { isPolicyId, isSemver } from '../artifact/ref.js';
import { CoreErrorCode, VerificationError } from '../error.js';
import type { Keyring } from './keyring.js';
import { documentSigner } from './signed-document.js';

function invalid(source: string, why: string): VerificationError {
  return new VerificationError(CoreErrorCode.POLICY_INDEX_INVALID, `invalid policy index ${source}: ${why}`, {
    hint: 'publish an index written by apx index, signed by an active key of the keyring',
  });
}

/**
 * A signed statement of the current version of each policy, valid until `expires`. It is
 * the defence against an indefinite freeze: whoever controls the store can keep serving
 * yesterday's (validly signed) artifacts forever, but cannot produce a fresh index, so a
 * worker whose index has expired stops taking new versions and reports it.
 */
export class PolicyIndex {
  readonly version: number;
  readonly issuedAt: Date;
  readonly expires: Date;
  readonly policies: Readonly<Record<string, string>>;

  constructor(version: number, issuedAt: Date, expires: Date, policies: Record<string, string>) {
    this.version = version;
    this.issuedAt = issuedAt;
    this.expires = expires;
    this.policies = policies;
  }

  static parse(text: string, source = 'index.json'): PolicyIndex {
    let doc: Record<string, unknown>;
    try {
      doc = JSON.parse(text) as Record<string, unknown>;
    } catch {
      throw invalid(source, 'not JSON');
    }
    if (typeof doc !== 'object' || doc === null || doc.apiVersion !== 'apx/v1' || doc.kind !== 'PolicyIndex') {
      throw invalid(source, 'expected apiVersion "apx/v1" and kind "PolicyIndex"');
    }
    const { version, issuedAt, expires, policies } = doc;
    if (typeof version !== 'number' || !Number.isInteger(version) || version < 1)
      throw invalid(source, 'version must be a positive integer');
    for (const [name, v] of [
      ['issuedAt', issuedAt],
      ['expires', expires],
    ] as const) {
      if (typeof v !== 'string' || Number.isNaN(Date.parse(v))) throw invalid(source, `${name} must be an RFC 3339 time`);
    }
    if (typeof policies !== 'object' || policies === null || Array.isArray(policies))
      throw invalid(source, 'policies must map policy ids to versions');
    for (const [id, v] of Object.entries(policies)) {
      if (!isPolicyId(id) || typeof v !== 'string' || !isSemver(v))
        throw invalid(source, `policies.${id} must be a semantic version`);
    }
    return new PolicyIndex(
      version,
      new Date(issuedAt as string),
      new Date(expires as string),
      policies as Record<string, string>,
    );
  }

  toJSON(): Record<string, unknown> {
    return {
      apiVersion: 'apx/v1',
      kind: 'PolicyIndex',
      version: this.version,
      issuedAt: this.issuedAt.toISOString(),
      expires: this.expires.toISOString(),
      policies: this.policies,
    };
  }

  expired(now: Date): boolean {
    return now.getTime() > this.expires.getTime();
  }

  /** Signature by an active keyring key, and never older than the index held. */
  static verify(text: Buffer, signature: Buffer, keyring: Keyring, held: PolicyIndex | undefined, source: string): PolicyIndex {
    if (!documentSigner(text, signature, keyring))
      throw invalid(source, 'its signature does not verify with an active key of the keyring');
    const index = PolicyIndex.parse(text.toString('utf8'), source);
    if (held && index.version < held.version) {
      throw invalid(source, `version ${index.version} is older than the index held (version ${held.version})`);
    }
    return index;
  }
}
