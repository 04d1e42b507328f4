import {
  artifactFileName,
  formatArtifactRef,
  type IdentityPolicy,
  type KeyValidity,
  PublicKey,
  parseIdentityPolicy,
} from '@apx/core';
import type { Drafts, TrustRepository } from '@apx/trust';
import { type CommandSpec, flagString } from '../../command.js';
import { readTrustedRoot } from '../../identity-flags.js';
import { checkWouldVerify, readArtifactToApprove, type TrustedKey } from './artifact-check.js';
import {
  auditChange,
  commitChange,
  ENV_FLAG,
  environmentFlag,
  JSON_FLAG,
  KEY_FLAG,
  openSigners,
  report,
  STORE_FLAG,
  withTrustStore,
} from './shared.js';

type Json = Record<string, unknown>;

/** The artifact signers an environment role's draft trusts (its `apx.signers`): keys, and keyless identities. */
export function draftSigners(draft: Json | undefined, env: string): { keys: TrustedKey[]; identities: IdentityPolicy[] } {
  const signers = ((draft?.apx as Json | undefined)?.signers ?? []) as Array<{
    publicKey?: unknown;
    identity?: unknown;
    notBefore?: unknown;
    notAfter?: unknown;
  }>;
  const keys: TrustedKey[] = [];
  const identities: IdentityPolicy[] = [];
  signers.forEach((s, i) => {
    if (s.identity !== undefined) {
      identities.push(parseIdentityPolicy(s.identity, `in ${env} apx.signers[${i}]`));
      return;
    }
    const publicKey = PublicKey.fromPem(String(s.publicKey ?? ''), `${env} apx.signers[${i}]`);
    // A retired key's window is judged at the bundle's trusted time, as workers judge it.
    const validity: KeyValidity = {};
    if (typeof s.notBefore === 'string') validity.notBefore = new Date(s.notBefore);
    if (typeof s.notAfter === 'string') validity.notAfter = new Date(s.notAfter);
    keys.push(validity.notBefore || validity.notAfter ? { publicKey, validity } : { publicKey });
  });
  return { keys, identities };
}

/**
 * The staged draft of `env` when it already approves exactly this artifact and is still ahead
 * of what is published: a second approver running the same approve command adds a signature
 * to it instead of starting over (a new draft would drop the signatures collected so far).
 */
export function stagedSameApproval(
  repo: TrustRepository,
  env: string,
  path: string,
  length: number,
  sha256: string,
): Json | undefined {
  const staged = repo.state.staged.get(env)?.metadata;
  if (!staged) return undefined;
  const published = repo.state.environments.get(env)?.signed.version ?? 0;
  if (staged.signed.version <= published) return undefined;
  const target = (staged.signed as { targets?: Record<string, { length: number; hashes: Record<string, string> }> }).targets?.[
    path
  ];
  if (target?.length !== length || target.hashes.sha256 !== sha256) return undefined;
  return staged.signed.toJSON() as Json;
}

export const trustApproveCommand: CommandSpec = {
  name: 'trust approve',
  summary: "Approve an artifact for an environment (its length and SHA-256 in the environment's signed targets).",
  usage: '(ARTIFACT | REF) --env ENV --key REF... [--sigstore-trusted-root FILE] [--store URL] [--json]',
  details: `ARTIFACT is a local .wasm (its .sig and .sigstore.json beside it); REF (pb-pay-v1@1.1.0)
reads the artifact from the store. Before signing, the artifact is checked as a worker of ENV
would check it once approved: its signature must verify with an artifact signing key ENV trusts
(apx trust signer add), or, signed keylessly, its certificate must name an identity ENV trusts
(verified against --sigstore-trusted-root, the workers' APX_SIGSTORE_TRUSTED_ROOT, default the
public-good root); with the signed binding outside dev, and the WebAssembly must pass.
--key: the approver keys of ENV you hold, plus the snapshot and timestamp keys to publish. With
fewer approver signatures than ENV's threshold, the approval is staged: other approvers run the
same command (or apx trust sign) with their keys. A concurrent change by another command is
applied again on top of it, up to 3 times, when your keys publish by themselves.`,
  flags: [
    ENV_FLAG,
    KEY_FLAG,
    STORE_FLAG,
    JSON_FLAG,
    {
      name: 'sigstore-trusted-root',
      type: 'string',
      value: 'FILE',
      description:
        "Keyless artifacts: the Sigstore trusted_root.json ENV's workers use (APX_SIGSTORE_TRUSTED_ROOT; default: the public-good root).",
    },
  ],
  positionals: { min: 1, max: 1, names: 'ARTIFACT (a .wasm path) or REF (pb-pay-v1@1.1.0 in the store)' },
  async run(ctx, args) {
    const env = environmentFlag(args);
    const rootPath = flagString(args, 'sigstore-trusted-root');
    const trustedRoot = rootPath === undefined ? undefined : await readTrustedRoot(ctx, rootPath);
    const signers = await openSigners(ctx, args);
    return withTrustStore(ctx, args, async (store) => {
      const input = await readArtifactToApprove(ctx, store, args.positionals[0] as string);
      const ref = formatArtifactRef(input.ref);
      const path = artifactFileName(input.ref);
      const { result } = await commitChange(ctx, store, {
        signers,
        retry: { role: env },
        apply: async (repo): Promise<Drafts> => {
          const same = stagedSameApproval(repo, env, path, input.length, input.sha256);
          const drafts = same
            ? new Map([[env, same]])
            : repo.approve(env, { ref: input.ref, length: input.length, sha256: input.sha256 });
          await checkWouldVerify(env, input, draftSigners(drafts.get(env), env), trustedRoot);
          return drafts;
        },
      });
      await auditChange(ctx, signers, result, {
        operation: 'trust approve',
        reference: ref,
        environment: env,
        digest: `sha256:${input.sha256}`,
      });
      report(ctx, args, `approved ${ref} for ${env}`, result, {
        reference: ref,
        environment: env,
        length: input.length,
        sha256: input.sha256,
      });
      return 0;
    });
  },
};
