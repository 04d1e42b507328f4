import { existsSync } from 'node:fs';
import { describeIdentityPolicy, identityPolicyJson } from '@apx/core';
import { type CommandSpec, UsageError } from '../../command.js';
import type { CliContext } from '../../context.js';
import { IDENTITY_FLAG_SPECS, identityFlagValues, identityFromFlags } from '../../identity-flags.js';
import { resolvePath } from '../../io.js';
import { loadPublicKey } from '../../keyref.js';
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

/** A key id (or a prefix of 8+ hex digits) rather than a key reference, unless a file has that name. */
export function isKeyId(ctx: CliContext, text: string): boolean {
  return /^[0-9a-f]{8,64}$/.test(text) && !existsSync(resolvePath(ctx, text));
}

export const trustSignerCommand: CommandSpec = {
  name: 'trust signer',
  summary: 'Trust (add) or stop trusting (remove) a key, or a keyless identity, that signs artifacts for an environment.',
  usage:
    '(add | remove) --env ENV (PUBKEY-REF | KEYID | --certificate-identity[-regexp] ID --certificate-oidc-issuer[-regexp] ISSUER [--certificate-github-...]) --key REF... [--store URL] [--json]',
  details: `add PUBKEY-REF: ENV's workers accept artifacts whose signature verifies with this key (a
public key file, env://VAR, a KMS or HSM reference, or a private key file whose public half is
used). remove PUBKEY-REF or KEYID (the APX key id, hex SHA-256 of the public key; 8 or more
leading digits suffice): artifacts signed only by that key stop verifying for ENV.
Keyless: instead of a key, cosign's identity flags name an identity (issuer and subject, exactly or
by a pattern anchored with ^...$, and optionally GitHub workflow facts; prefer
--certificate-github-repository-id to the repository name): ENV's workers accept artifacts whose
Fulcio certificate names it (verified against APX_SIGSTORE_TRUSTED_ROOT, or the public-good root).
The change is a new version of ENV's role: --key needs ENV's approver keys (a threshold publishes,
fewer stage it) and the snapshot and timestamp keys. A concurrent change is applied again on top,
up to 3 times, when your keys publish by themselves.`,
  flags: [ENV_FLAG, KEY_FLAG, STORE_FLAG, JSON_FLAG, ...IDENTITY_FLAG_SPECS],
  positionals: { min: 1, max: 2, names: 'add or remove, and the key (PUBKEY-REF or KEYID) unless identity flags are given' },
  async run(ctx, args) {
    const [action, keyText] = args.positionals as [string, string | undefined];
    if (action !== 'add' && action !== 'remove') {
      throw new UsageError(`unknown action trust signer ${action}; use: apx trust signer add|remove`);
    }
    const env = environmentFlag(args);
    const identitySpec = identityFlagValues(args);
    if (Object.keys(identitySpec).length > 0) {
      if (keyText !== undefined) throw new UsageError('name a key or an identity (--certificate-... flags), not both');
      const identity = identityFromFlags(identitySpec);
      const described = describeIdentityPolicy(identity);
      const signers = await openSigners(ctx, args);
      return withTrustStore(ctx, args, async (store) => {
        const { result } = await commitChange(ctx, store, {
          signers,
          retry: { role: env },
          apply: (repo) => repo.setSigner(env, action === 'add' ? { addIdentity: identity } : { removeIdentity: identity }),
        });
        await auditChange(ctx, signers, result, {
          operation: `trust signer ${action}`,
          environment: env,
          reference: `identity ${described}`,
        });
        const line =
          action === 'add'
            ? `${env} trusts keyless identity ${described}`
            : `${env} no longer trusts keyless identity ${described}`;
        report(ctx, args, line, result, { environment: env, action, identity: identityPolicyJson(identity) });
        return 0;
      });
    }
    if (keyText === undefined) {
      throw new UsageError(
        'name the key (PUBKEY-REF or KEYID), or an identity with --certificate-identity and --certificate-oidc-issuer',
      );
    }
    const key = action === 'remove' && isKeyId(ctx, keyText) ? undefined : await loadPublicKey(ctx, keyText);
    const keyId = key?.keyId ?? keyText;
    const signers = await openSigners(ctx, args);
    return withTrustStore(ctx, args, async (store) => {
      const { result } = await commitChange(ctx, store, {
        signers,
        retry: { role: env },
        apply: (repo) => repo.setSigner(env, key && action === 'add' ? { add: key } : { removeKeyId: keyId }),
      });
      await auditChange(ctx, signers, result, {
        operation: `trust signer ${action}`,
        environment: env,
        reference: `key ${keyId}`,
      });
      const line =
        action === 'add'
          ? `${env} trusts artifact signing key ${keyId}`
          : `${env} no longer trusts artifact signing key ${keyId}`;
      report(ctx, args, line, result, { environment: env, action, keyId });
      return 0;
    });
  },
};
