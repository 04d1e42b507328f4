import { homedir, hostname } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { sha256Hex } from '@apx/core';
import { redactKeyRef } from '@apx/kms/key-ref';
import { AuditLog, appendAuditLine, isKeyless, type Signer } from '@apx/sign';
import type { CliContext } from './context.js';
import { resolvePath } from './io.js';

/**
 * Where signing operations are recorded unless APX_AUDIT_LOG says otherwise: under the user's
 * configuration directory, `$XDG_CONFIG_HOME/apx/audit.log`, else `~/.config/apx/audit.log`;
 * never relative to the current directory (earlier releases wrote `./keys/audit.log` wherever
 * they ran).
 */
export function defaultAuditLog(env: NodeJS.ProcessEnv): string {
  const xdg = env.XDG_CONFIG_HOME;
  // The XDG spec: a relative XDG_CONFIG_HOME is invalid and ignored.
  const configHome = xdg && isAbsolute(xdg) ? xdg : join(env.HOME || homedir(), '.config');
  return join(configHome, 'apx', 'audit.log');
}

/** Appends one audit record for a signature just made over `signed`. */
export async function auditSigning(
  ctx: CliContext,
  signer: Signer,
  operation: string,
  signed: Uint8Array,
  context: { reference?: string; environment?: string } = {},
): Promise<void> {
  const { path, named } = auditLogPath(ctx);
  const log = new AuditLog(path, named);
  const digest = `sha256:${sha256Hex(signed)}`;
  // Keyless: the identity the certificate names; the ephemeral key means nothing afterwards.
  if (isKeyless(signer)) {
    await log.record({ operation, identity: await signer.identity(), digest, ...context });
    return;
  }
  const key = await signer.publicKey();
  await log.record({ operation, keyId: key.keyId, keyRef: signer.keyRef, digest, ...context });
}

/** One change to the trust repository (apx trust), as the audit trail records it. */
export interface TrustAuditEntry {
  /** `trust approve`, `trust revoke`, `trust rotate`... */
  operation: string;
  /** `published`, `staged` (waiting for signatures) or `created` (trust init). */
  outcome: string;
  /** Each role version the command published or staged (root, production, snapshot...). */
  roles: Record<string, number>;
  /** The keys that signed (TUF key ids, as root and targets list them) and where they live. */
  keys: Array<{ keyId: string; keyRef: string }>;
  reference?: string;
  environment?: string;
  /** `sha256:<hex>` of the artifact approved or revoked. */
  digest?: string;
  reason?: string;
}

/**
 * Appends one JSON line for a trust change to the same trail as signing operations (one
 * append of one line, mode 0600). A failure to audit fails the command, as for signing.
 */
export async function auditTrust(ctx: CliContext, entry: TrustAuditEntry, now = new Date()): Promise<void> {
  const { path, named } = auditLogPath(ctx);
  const line = JSON.stringify({
    time: now.toISOString(),
    host: hostname(),
    operation: entry.operation,
    outcome: entry.outcome,
    roles: entry.roles,
    key_ids: entry.keys.map((k) => k.keyId),
    key_refs: entry.keys.map((k) => redactKeyRef(k.keyRef)),
    digest: entry.digest ?? null,
    reference: entry.reference ?? null,
    environment: entry.environment ?? null,
    ...(entry.reason === undefined ? {} : { reason: entry.reason }),
  });
  await appendAuditLine(path, line, named);
}

/** The audit log's path, and how messages name it: as written, chosen by APX_AUDIT_LOG. */
function auditLogPath(ctx: CliContext): { path: string; named: { path: string; cwd: string; setting: string } } {
  const written = ctx.env.APX_AUDIT_LOG || defaultAuditLog(ctx.env);
  return { path: resolvePath(ctx, written), named: { path: written, cwd: ctx.cwd, setting: 'APX_AUDIT_LOG' } };
}
