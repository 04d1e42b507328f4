import { sha256Hex } from '@apx/core';
import { AuditLog, type Signer } from '@apx/sign';
import type { CliContext } from './context.js';
import { resolvePath } from './io.js';

/** Where signing operations are recorded unless APX_AUDIT_LOG says otherwise. */
export const DEFAULT_AUDIT_LOG = 'keys/audit.log';

/** Appends one audit record for a signature just made over `signed`. */
export async function auditSigning(
  ctx: CliContext,
  signer: Signer,
  operation: string,
  signed: Uint8Array,
  context: { reference?: string; environment?: string } = {},
): Promise<void> {
  const log = new AuditLog(resolvePath(ctx, ctx.env.APX_AUDIT_LOG || DEFAULT_AUDIT_LOG));
  const key = await signer.publicKey();
  await log.record({ operation, keyId: key.keyId, keyRef: signer.keyRef, digest: `sha256:${sha256Hex(signed)}`, ...context });
}
