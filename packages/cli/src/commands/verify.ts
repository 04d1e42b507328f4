import type { TrustInForce, VersionAllowList } from '@apx/core';
import { refFromFileName, trustFromKey, trustFromRepository, verifyLocalArtifact } from '../artifact-verification.js';
import { type CommandSpec, flagString, type ParsedArgs, UsageError } from '../command.js';
import type { CliContext } from '../context.js';
import { environmentFlag } from '../environment.js';
import { IDENTITY_FLAG_SPECS, identityFlagValues, identityFromFlags, readTrustedRoot } from '../identity-flags.js';
import { DEFAULT_PUBLIC_KEY } from '../keyref.js';

/**
 * The trust a worker in the environment would hold. With --trust-repository, what the
 * environment's signed targets role says (a worker's APX_TRUST_REPOSITORY); otherwise runbook
 * mode, the public key a worker's APX_PUBLIC_KEY names (--key). A trust source is chosen here
 * and nowhere else.
 */
async function trustInForce(ctx: CliContext, args: ParsedArgs, artifactPath: string): Promise<TrustInForce> {
  const storeUrl = flagString(args, 'trust-repository');
  const identity = identityFlagValues(args);
  if (storeUrl === undefined) {
    if (flagString(args, 'trust-root') !== undefined) throw new UsageError('--trust-root goes with --trust-repository');
    const keyRef = flagString(args, 'key');
    if (Object.keys(identity).length === 0) return trustFromKey(ctx, keyRef ?? DEFAULT_PUBLIC_KEY);
    // Keyless: the identity the signer's Fulcio certificate must name (and the key, when given).
    const identities = [identityFromFlags(identity)];
    return keyRef === undefined
      ? { kind: 'keys', signers: [], identities }
      : { ...(await trustFromKey(ctx, keyRef)), identities };
  }
  if (flagString(args, 'key') !== undefined || Object.keys(identity).length > 0) {
    throw new UsageError(
      '--key (or an identity) and --trust-repository cannot be used together: the repository names the signers',
    );
  }
  return trustFromRepository(ctx, {
    storeUrl,
    rootPath: flagString(args, 'trust-root'),
    environment: environmentFlag(args),
    ref: refFromFileName(artifactPath),
  });
}

export const verifyCommand: CommandSpec = {
  name: 'verify',
  summary: 'Would a worker in ENV load this artifact? Runs the workers’ own verifier on it.',
  usage:
    '[--env ENV] [--key PUB [--certificate-identity[-regexp] ID --certificate-oidc-issuer[-regexp] ISSUER] | --trust-repository URL [--trust-root ROOT]] [--sigstore-trusted-root FILE] [--allowed-versions LIST] ARTIFACT',
  details: `ARTIFACT is <policy-id>@<version>.wasm; ARTIFACT.sig and ARTIFACT.sigstore.json are read
beside it. The checks are core's, in the workers' order, with a worker's defaults for ENV:
strict mode, a signed binding naming the policy, version and ENV outside dev, the allow-list
(--allowed-versions, as ALLOWED_POLICY_VERSIONS; required for production, as it is for a
production worker), size, magic bytes, validation, ABI and the module's embedded name. Prints
"✓ <ref> would load in ENV (key <key id>, sha256:…)" and exits 0, or the reason and exits 1.
With --trust-repository (a store URL, as a worker's APX_TRUST_REPOSITORY), the trust is the
environment's signed targets role, read and verified as a worker reads it: the artifact must be
approved there (length and SHA-256) and signed by a key the role trusts. --trust-root pins the
root to start from (a worker's APX_TRUST_ROOT); without it the store's tuf/1.root.json is trusted.
No rollback floor applies: a worker's floors are its own state (APX_STATE_DIR).
A keyless artifact (its bundle carries a Fulcio certificate) loads when the certificate names a
trusted identity: the repository's, or the one named with cosign's --certificate-identity and
--certificate-oidc-issuer flags; it is verified against --sigstore-trusted-root (a worker's
APX_SIGSTORE_TRUSTED_ROOT) or the public-good root embedded in APX.`,
  flags: [
    { name: 'env', type: 'string', value: 'ENV', description: 'dev, staging or production (default: dev).' },
    { name: 'key', type: 'string', value: 'PUB', description: `The public key workers trust (default: ${DEFAULT_PUBLIC_KEY}).` },
    {
      name: 'trust-repository',
      type: 'string',
      value: 'URL',
      description: 'Judge by the trust repository in this store (directory, gs://, s3://, oci://) instead of --key.',
    },
    {
      name: 'trust-root',
      type: 'string',
      value: 'ROOT',
      description: 'The root.json to trust first (default: the store’s tuf/1.root.json).',
    },
    {
      name: 'sigstore-trusted-root',
      type: 'string',
      value: 'FILE',
      description:
        "A Sigstore trusted_root.json, as a worker's APX_SIGSTORE_TRUSTED_ROOT (keyless default: the public-good root).",
    },
    ...IDENTITY_FLAG_SPECS,
    {
      name: 'allowed-versions',
      type: 'string',
      value: 'LIST',
      description: 'The workers’ ALLOWED_POLICY_VERSIONS, e.g. 1.0.0,1.1.0 (required with --env production).',
    },
  ],
  positionals: { min: 1, max: 1, names: 'ARTIFACT (a .wasm policy artifact)' },
  async run(ctx, args) {
    const artifactPath = args.positionals[0] as string;
    const environment = environmentFlag(args);
    const allowed = flagString(args, 'allowed-versions');
    if (environment === 'production' && allowed === undefined) {
      throw new UsageError(
        '--allowed-versions is required with --env production (production workers refuse to start without ALLOWED_POLICY_VERSIONS)',
      );
    }
    // The workers' own parser, from its small module: apx start-up never loads the worker.
    let allowList: VersionAllowList | undefined;
    if (allowed !== undefined)
      allowList = (await import('@apx/worker/allow-list')).AllowList.parse(allowed, '--allowed-versions', {
        production: environment === 'production',
      });
    const trust = await trustInForce(ctx, args, artifactPath);
    const rootPath = flagString(args, 'sigstore-trusted-root');
    const trustedRoot = rootPath ? await readTrustedRoot(ctx, rootPath) : undefined;
    const verified = await verifyLocalArtifact(ctx, { artifactPath, environment, trust, allowList, trustedRoot });
    const ref = `${verified.ref.policyId}@${verified.ref.version}`;
    const by = verified.identity ? `identity ${verified.identity}` : `key ${verified.keyId}`;
    ctx.stdout.write(`✓ ${ref} would load in ${environment} (${by}, ${verified.digest})\n`);
    return 0;
  },
};
