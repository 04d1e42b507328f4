import { appendFile, mkdir } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname } from 'node:path';
import { redactKeyRef } from '@apx/kms/key-ref';

/** One signing operation, as the audit trail records it (the runbook: "audit logs for all signing operations"). */
export interface SigningRecord {
  operation: string;
  keyId: string;
  /** Where the key lives; secrets in it (PINs, tokens) are removed before writing. */
  keyRef: string;
  /** `sha256:<hex>` of what was signed. */
  digest: string;
  reference?: string;
  environment?: string;
}

/**
 * An append-only JSON-lines audit log. Each record is one write of one line with O_APPEND,
 * so concurrent signers never interleave records; a failure to audit fails the operation
 * (a signature without its audit record is what an attacker would want).
 */
export class AuditLog {
  readonly path: string;

  constructor(path: string) {
    this.path = path;
  }

  async record(entry: SigningRecord, now = new Date()): Promise<void> {
    const line = JSON.stringify({
      time: now.toISOString(),
      host: hostname(),
      operation: entry.operation,
      key_id: entry.keyId,
      key_ref: redactKeyRef(entry.keyRef), // signers' keyRefs are redacted already; a second guard
      digest: entry.digest,
      reference: entry.reference ?? null,
      environment: entry.environment ?? null,
    });
    await mkdir(dirname(this.path), { recursive: true });
    await appendFile(this.path, `${line}\n`, { mode: 0o600 });
  }
}
