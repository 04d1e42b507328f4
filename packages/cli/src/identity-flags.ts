// cosign's certificate identity flags (verify-blob, trust signer): one identity policy.
import {
  type IdentityPolicy,
  type IdentityPolicyJson,
  loadTrustedRoot,
  parseIdentityPolicy,
  type SigstoreTrustedRoot,
} from '@apx/core';
import { type FlagSpec, flagString, type ParsedArgs } from './command.js';
import type { CliContext } from './context.js';
import { CliError, CliErrorCode } from './error.js';
import { readInput } from './io.js';

/** Each flag and the identity-policy field it sets. */
export const IDENTITY_FLAGS: ReadonlyArray<[flag: string, field: keyof IdentityPolicyJson, description: string]> = [
  ['certificate-identity', 'subject', "The signer's identity, exactly: the certificate's SAN (an e-mail, a workflow URI...)."],
  [
    'certificate-identity-regexp',
    'subjectRegExp',
    'The identity as a regular expression anchored at both ends (^...$); an unanchored pattern is refused.',
  ],
  [
    'certificate-oidc-issuer',
    'issuer',
    'The OIDC issuer Fulcio certified, exactly (e.g. https://token.actions.githubusercontent.com).',
  ],
  ['certificate-oidc-issuer-regexp', 'issuerRegExp', 'The OIDC issuer as a regular expression anchored at both ends (^...$).'],
  [
    'certificate-github-workflow-repository',
    'githubWorkflowRepository',
    'The GitHub repository (owner/name) of the signing workflow, from the certificate.',
  ],
  ['certificate-github-workflow-ref', 'githubWorkflowRef', 'The git ref of the signing workflow run (e.g. refs/tags/v1.0.0).'],
  ['certificate-github-workflow-sha', 'githubWorkflowSha', 'The commit SHA of the signing workflow run.'],
  ['certificate-github-workflow-trigger', 'githubWorkflowTrigger', 'The event that triggered the workflow (e.g. push).'],
  ['certificate-github-workflow-name', 'githubWorkflowName', 'The name of the signing workflow.'],
  [
    'certificate-github-repository-id',
    'githubRepositoryId',
    "(APX) The repository's numeric id from the certificate: unlike a name, it survives renames and cannot be re-registered.",
  ],
];

export const IDENTITY_FLAG_SPECS: FlagSpec[] = IDENTITY_FLAGS.map(([name, , description]) => ({
  name,
  type: 'string',
  value: 'VALUE',
  description,
}));

/** The identity flags given, as identity-policy JSON (empty when none is given). */
export function identityFlagValues(args: ParsedArgs): Record<string, string> {
  const spec: Record<string, string> = {};
  for (const [flag, field] of IDENTITY_FLAGS) {
    const v = flagString(args, flag);
    if (v !== undefined) spec[field] = v;
  }
  return spec;
}

/** The identity policy the flags name; refused (with the reason) when a pattern is unanchored. */
export function identityFromFlags(spec: Record<string, string>): IdentityPolicy {
  return parseIdentityPolicy(spec, 'from the command line');
}

/** A Sigstore trusted_root.json named on the command line (--trusted-root), checked by core. */
export async function readTrustedRoot(ctx: CliContext, path: string): Promise<SigstoreTrustedRoot> {
  const text = (await readInput(ctx, path, 'trusted root file', 'pass a Sigstore trusted_root.json')).toString('utf8');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new CliError(CliErrorCode.INPUT_UNREADABLE, `trusted root file ${path} is not JSON`, {
      hint: 'pass a Sigstore trusted_root.json',
    });
  }
  return loadTrustedRoot(json, path);
}
