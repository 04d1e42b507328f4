import { existsSync } from 'node:fs';
import { describeIdentityPolicy, identityPolicyJson } from '@apx/core';
import { type CommandSpec, flagString, UsageError } from '../../command.js';
import type { CliContext } from '../../context.js';
import { IDENTITY_FLAG_SPECS, identityFlagValues, identityFromFlags } from '../../identity-flags.js';
import { resolvePath } from '../../io.js';
import { loadPublicKey } from '../../keyref.js';
import { recordRotation } from '../../retired-keys.js';
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
    '(add | remove) --env ENV (PUBKEY-REF | KEYID | --certificate-identity[-regexp] ID --certificate-oidc-issuer[-regexp] ISSUER [--certificate-github-...]) --key REF... [--store URL] [--json]  |  retire --env ENV (PUBKEY-REF | KEYID) [--at TIME] --key REF...',
  details: `add PUBKEY-REF: ENV's workers accept artifacts whose signature verifies with this key (a
public key file, env://VAR, a KMS or HSM reference, or a private key file whose public half is
used). remove PUBKEY-REF or KEYID (the APX key id, hex SHA-256 of the public key; 8 or more
leading digits suffice): artifacts signed only by that key stop verifying for ENV.
Keyless: instead of a key, cosign's identity flags name an identity (issuer and subject, exactly or
by a pattern anchored with ^...$, and optionally GitHub workflow facts; prefer
--certificate-github-repository-id to the repository name): ENV's workers accept artifacts whose
Fulcio certificate names it (verified against APX_SIGSTORE_TRUSTED_ROOT, or the public-good root).
retire PUBKEY-REF or KEYID [--at TIME]: the key's validity ends at TIME (RFC 3339, default now).
Workers then accept its signatures only when a trusted time proves them made before: an RFC 3161
timestamp or a Rekor integrated time in the bundle, verified against APX_SIGSTORE_TRUSTED_ROOT;
never the signing time the signer wrote itself.
The change is a new version of ENV's role: --key needs ENV's approver keys (a threshold publishes,
fewer stage it) and the snapshot and timestamp keys. A concurrent change is applied again on top,
up to 3 times, when your keys publish by themselves.`,
  flags: [
    ENV_FLAG,
    KEY_FLAG,
    STORE_FLAG,
    JSON_FLAG,
    ...IDENTITY_FLAG_SPECS,
    { name: 'at', type: 'string', value: 'TIME', description: 'retire: when the key stops being valid (RFC 3339; default now).' },
  ],
  positionals: { min: 1, max: 2, names: 'add or remove, and the key (PUBKEY-REF or KEYID) unless identity flags are given' },
  async run(ctx, args) {
    const [action, keyText] = args.positionals as [string, string | undefined];
    if (action !== 'add' && action !== 'remove' && action !== 'retire') {
      throw new UsageError(`unknown action trust signer ${action}; use: apx trust signer add|remove|retire`);
    }
    const env = environmentFlag(args);
    const identitySpec = identityFlagValues(args);
    if (action !== 'retire' && flagString(args, 'at') !== undefined) throw new UsageError('--at goes with trust signer retire');
    if (Object.keys(identitySpec).length > 0) {
      if (action === 'retire') throw new UsageError('retire takes a key: an identity is removed with trust signer remove');
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
    const key = action !== 'add' && isKeyId(ctx, keyText) ? undefined : await loadPublicKey(ctx, keyText);
    const keyId = key?.keyId ?? keyText;
    const at = action === 'retire' ? retireTime(flagString(args, 'at')) : undefined;
    const signers = await openSigners(ctx, args);
    return withTrustStore(ctx, args, async (store) => {
      const { result } = await commitChange(ctx, store, {
        signers,
        retry: { role: env },
        apply: (repo) =>
          repo.setSigner(
            env,
            at !== undefined ? { retire: { keyId, at } } : key && action === 'add' ? { add: key } : { removeKeyId: keyId },
          ),
      });
      await auditChange(ctx, signers, result, {
        operation: `trust signer ${action}`,
        environment: env,
        reference: `key ${keyId}`,
      });
      // Signing for ENV with that key is refused from then on (apx sign, apx compile).
      if (action === 'retire' && result.kind === 'published') {
        await recordRotation(ctx, 'keys', { keyId, environment: env, retiredAt: at ?? new Date().toISOString() });
      }
      const line =
        action === 'add'
          ? `${env} trusts artifact signing key ${keyId}`
          : action === 'retire'
            ? `${env} trusts artifact signing key ${keyId} for signatures made until ${at} (proved by a trusted timestamp)`
            : `${env} no longer trusts artifact signing key ${keyId}`;
      report(ctx, args, line, result, { environment: env, action, keyId, ...(at ? { notAfter: at } : {}) });
      return 0;
    });
  },
};

/** --at as an RFC 3339 time (default now). */
function retireTime(text: string | undefined): string {
  if (text === undefined) return new Date().toISOString();
  const ms = Date.parse(text);
  if (Number.isNaN(ms) || !/^\d{4}-\d{2}-\d{2}T/.test(text)) {
    throw new UsageError(`--at ${text} is not an RFC 3339 time (e.g. 2026-12-01T00:00:00Z)`);
  }
  return new Date(ms).toISOString();
}
