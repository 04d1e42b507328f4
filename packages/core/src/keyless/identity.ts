import { createRequire } from 'node:module';
import { CoreErrorCode, VerificationError } from '../error.js';

const lazyRequire = createRequire(import.meta.url);
type SigstoreCore = typeof import('@sigstore/core');

/** A value a certificate field must have: exactly this text, or the whole of an anchored pattern. */
export type IdentityMatcher = { kind: 'exact'; value: string } | { kind: 'regexp'; pattern: string; regexp: RegExp };

/**
 * Who may sign keylessly: the OIDC issuer and the subject (the certificate's SAN: an e-mail,
 * a workflow URI...) Fulcio certified, and optionally the GitHub Actions facts Fulcio writes
 * into its certificate extensions. Every field given must match; a field not given is not
 * checked. `githubRepositoryId` (the numeric id, which survives renames and cannot be taken
 * over by re-creating a deleted repository) is the preferred way to name a repository.
 */
export interface IdentityPolicy {
  issuer: IdentityMatcher;
  subject: IdentityMatcher;
  githubWorkflowRepository?: string;
  githubRepositoryId?: string;
  githubWorkflowRef?: string;
  githubWorkflowSha?: string;
  githubWorkflowTrigger?: string;
  githubWorkflowName?: string;
}

/** An identity policy as JSON (the trust repository's signer records, configuration files). */
export interface IdentityPolicyJson {
  issuer?: string;
  issuerRegExp?: string;
  subject?: string;
  subjectRegExp?: string;
  githubWorkflowRepository?: string;
  githubRepositoryId?: string;
  githubWorkflowRef?: string;
  githubWorkflowSha?: string;
  githubWorkflowTrigger?: string;
  githubWorkflowName?: string;
}

const GITHUB_FIELDS = [
  'githubWorkflowRepository',
  'githubRepositoryId',
  'githubWorkflowRef',
  'githubWorkflowSha',
  'githubWorkflowTrigger',
  'githubWorkflowName',
] as const;
type GithubField = (typeof GITHUB_FIELDS)[number];

const KNOWN_FIELDS = new Set<string>(['issuer', 'issuerRegExp', 'subject', 'subjectRegExp', ...GITHUB_FIELDS]);

function policyError(source: string, why: string): VerificationError {
  return new VerificationError(CoreErrorCode.IDENTITY_POLICY_INVALID, `invalid identity policy ${source}: ${why}`, {
    hint: 'name the OIDC issuer and the subject exactly, or with a pattern anchored at both ends (^...$), e.g. ^https://github\\.com/acme/policies/\\.github/workflows/release\\.yml@refs/tags/v.*$',
  });
}

/**
 * A pattern is accepted only when it starts with ^ and ends with an unescaped $: an
 * unanchored pattern matches any identity that merely contains it (cosign's Go regexps
 * are unanchored, a classic way to trust `evil.example/acme` for `acme`). It is then also
 * compiled as ^(?:pattern)$, so an alternation like `^a|b$` cannot escape the anchors.
 */
export function compileAnchoredPattern(pattern: string, what: string, source = ''): RegExp {
  const where = source ? `${source}` : '';
  if (pattern.length === 0) throw policyError(where, `the ${what} pattern is empty`);
  const endsAnchored = pattern.endsWith('$') && !/(^|[^\\])(\\\\)*\\\$$/.test(pattern);
  if (!pattern.startsWith('^') || !endsAnchored) {
    throw policyError(
      where,
      `the ${what} pattern ${JSON.stringify(pattern)} is not anchored: it must start with ^ and end with $ (an unanchored pattern matches any identity containing it)`,
    );
  }
  try {
    return new RegExp(`^(?:${pattern})$`);
  } catch (err) {
    throw policyError(
      where,
      `the ${what} pattern ${JSON.stringify(pattern)} is not a valid regular expression: ${(err as Error).message}`,
    );
  }
}

function matcher(exact: unknown, pattern: unknown, what: string, names: [string, string], source: string): IdentityMatcher {
  if (exact !== undefined && pattern !== undefined) {
    throw policyError(source, `give ${names[0]} or ${names[1]}, not both`);
  }
  if (exact === undefined && pattern === undefined) {
    throw policyError(source, `the ${what} is required (${names[0]} or ${names[1]})`);
  }
  if (exact !== undefined) {
    if (typeof exact !== 'string' || exact.length === 0) throw policyError(source, `${names[0]} must be a non-empty string`);
    return { kind: 'exact', value: exact };
  }
  if (typeof pattern !== 'string') throw policyError(source, `${names[1]} must be a string`);
  return { kind: 'regexp', pattern, regexp: compileAnchoredPattern(pattern, what, source) };
}

/**
 * Reads and checks an identity policy. Refused on load, with the reason: a missing issuer
 * or subject, both the exact and the pattern form of one, an unanchored or invalid pattern,
 * an unknown field (a typo would otherwise silently widen the policy).
 */
export function parseIdentityPolicy(json: unknown, source = ''): IdentityPolicy {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw policyError(source, 'not an object');
  const o = json as Record<string, unknown>;
  for (const key of Object.keys(o)) {
    if (!KNOWN_FIELDS.has(key)) throw policyError(source, `unknown field ${key}`);
  }
  const policy: IdentityPolicy = {
    issuer: matcher(o.issuer, o.issuerRegExp, 'issuer', ['issuer', 'issuerRegExp'], source),
    subject: matcher(o.subject, o.subjectRegExp, 'subject', ['subject', 'subjectRegExp'], source),
  };
  for (const field of GITHUB_FIELDS) {
    const v = o[field];
    if (v === undefined) continue;
    if (typeof v !== 'string' || v.length === 0) throw policyError(source, `${field} must be a non-empty string`);
    if (field === 'githubRepositoryId' && !/^[0-9]+$/.test(v)) throw policyError(source, 'githubRepositoryId must be a number');
    policy[field] = v;
  }
  return policy;
}

/** The policy as JSON, the inverse of parseIdentityPolicy. */
export function identityPolicyJson(policy: IdentityPolicy): IdentityPolicyJson {
  const out: IdentityPolicyJson = {};
  if (policy.issuer.kind === 'exact') out.issuer = policy.issuer.value;
  else out.issuerRegExp = policy.issuer.pattern;
  if (policy.subject.kind === 'exact') out.subject = policy.subject.value;
  else out.subjectRegExp = policy.subject.pattern;
  for (const field of GITHUB_FIELDS) {
    const v = policy[field];
    if (v !== undefined) out[field] = v;
  }
  return out;
}

const showMatcher = (m: IdentityMatcher) => (m.kind === 'exact' ? m.value : `/${m.pattern}/`);

/** One line naming the identity, for messages and logs: `subject from issuer (github ...)`. */
export function describeIdentityPolicy(policy: IdentityPolicy): string {
  const extras = GITHUB_FIELDS.filter((f) => policy[f] !== undefined).map((f) => `${f}=${policy[f]}`);
  return `${showMatcher(policy.subject)} from ${showMatcher(policy.issuer)}${extras.length ? ` (${extras.join(', ')})` : ''}`;
}

/** What a verified Fulcio certificate says about its holder. */
export interface CertificateIdentity {
  issuer: string | undefined;
  subject: string | undefined;
  githubWorkflowRepository: string | undefined;
  githubRepositoryId: string | undefined;
  githubWorkflowRef: string | undefined;
  githubWorkflowSha: string | undefined;
  githubWorkflowTrigger: string | undefined;
  githubWorkflowName: string | undefined;
}

/** Fulcio's extension OIDs (fulcio docs/oid-info.md): 1.1-1.6 raw strings, 1.8 onwards DER UTF8String. */
const FULCIO = '1.3.6.1.4.1.57264.1.';
const LEGACY: Partial<Record<GithubField, string>> = {
  githubWorkflowTrigger: `${FULCIO}2`,
  githubWorkflowSha: `${FULCIO}3`,
  githubWorkflowName: `${FULCIO}4`,
  githubWorkflowRepository: `${FULCIO}5`,
  githubWorkflowRef: `${FULCIO}6`,
};
const V2: Partial<Record<GithubField, string>> = {
  githubWorkflowSha: `${FULCIO}13`, // Source Repository Digest
  githubWorkflowRef: `${FULCIO}14`, // Source Repository Ref
  githubRepositoryId: `${FULCIO}15`, // Source Repository Identifier
  githubWorkflowTrigger: `${FULCIO}20`, // Build Trigger
};
const V2_SOURCE_REPOSITORY_URI = `${FULCIO}12`;

/** The identity part of @sigstore/verify's Signer, as it returns it. */
export interface SignerIdentityLike {
  subjectAlternativeName?: string | undefined;
  extensions?: { issuer?: string | undefined } | undefined;
  oids?: Array<{ oid?: { id: number[] } | undefined; value: Uint8Array }> | undefined;
}

/** Reads the identity from what @sigstore/verify extracted from a verified certificate. */
export function certificateIdentity(signer: SignerIdentityLike): CertificateIdentity {
  const { ASN1Obj } = lazyRequire('@sigstore/core') as SigstoreCore;
  const values = new Map<string, Buffer>();
  for (const { oid, value } of signer.oids ?? []) {
    if (oid) values.set(oid.id.join('.'), Buffer.from(value));
  }
  const raw = (oid: string | undefined) => (oid ? values.get(oid)?.toString('utf8') : undefined);
  const utf8 = (oid: string | undefined): string | undefined => {
    const v = oid ? values.get(oid) : undefined;
    if (!v) return undefined;
    try {
      return ASN1Obj.parseBuffer(Buffer.from(v)).value.toString('utf8');
    } catch {
      return undefined;
    }
  };
  const fromUri = (uri: string | undefined) => {
    if (!uri) return undefined;
    try {
      return new URL(uri).pathname.replace(/^\/+/, '') || undefined;
    } catch {
      return undefined;
    }
  };
  return {
    issuer: signer.extensions?.issuer,
    subject: signer.subjectAlternativeName,
    githubWorkflowRepository: raw(LEGACY.githubWorkflowRepository) ?? fromUri(utf8(V2_SOURCE_REPOSITORY_URI)),
    githubRepositoryId: utf8(V2.githubRepositoryId),
    githubWorkflowRef: raw(LEGACY.githubWorkflowRef) ?? utf8(V2.githubWorkflowRef),
    githubWorkflowSha: raw(LEGACY.githubWorkflowSha) ?? utf8(V2.githubWorkflowSha),
    githubWorkflowTrigger: raw(LEGACY.githubWorkflowTrigger) ?? utf8(V2.githubWorkflowTrigger),
    githubWorkflowName: raw(LEGACY.githubWorkflowName),
  };
}

const matches = (m: IdentityMatcher, v: string | undefined) =>
  v !== undefined && (m.kind === 'exact' ? m.value === v : m.regexp.test(v));

/** Why `identity` does not satisfy `policy`, or undefined when it does. Issuer first, then subject, then extensions. */
export function identityMismatch(policy: IdentityPolicy, identity: CertificateIdentity): string | undefined {
  if (!matches(policy.issuer, identity.issuer)) {
    return `certificate issuer mismatch: the certificate was issued for OIDC issuer ${identity.issuer ?? '(none)'}, expected ${showMatcher(policy.issuer)}`;
  }
  if (!matches(policy.subject, identity.subject)) {
    return `certificate identity mismatch: the certificate's subject (SAN) is ${identity.subject ?? '(none)'}, expected ${showMatcher(policy.subject)}`;
  }
  for (const field of GITHUB_FIELDS) {
    const want = policy[field];
    if (want === undefined) continue;
    const got = identity[field];
    if (got !== want) {
      return `certificate extension mismatch: ${field} is ${got ?? '(absent)'}, expected ${want}`;
    }
  }
  return undefined;
}

/**
 * The first policy the identity satisfies; otherwise an IDENTITY_MISMATCH naming why the
 * (first) policy refused it: wrong issuer, wrong subject, or a wrong extension, each in its
 * own words.
 */
export function matchIdentity(policies: readonly IdentityPolicy[], identity: CertificateIdentity): IdentityPolicy {
  let first: string | undefined;
  for (const policy of policies) {
    const why = identityMismatch(policy, identity);
    if (why === undefined) return policy;
    first ??= why;
  }
  throw new VerificationError(CoreErrorCode.IDENTITY_MISMATCH, first ?? 'no identity is trusted to sign keylessly', {
    hint:
      policies.length === 0
        ? 'name the trusted signer with --certificate-identity and --certificate-oidc-issuer (or their -regexp forms)'
        : 'the bundle was signed by another identity than the one trusted; check the signing workflow, or the identity you trust',
  });
}
