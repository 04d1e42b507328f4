import { appendFile, mkdir } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname } from 'node:path';
import { type FileOperation, fileError } from '@apx/core/os-error';
import { redactKeyRef } from '@apx/kms/key-ref';

/** One signing operation, as the audit trail records it (the runbook: "audit logs for all signing operations"). */
export interface SigningRecord {
  operation: string;
  /** The key that signed (keyed signing). */
  keyId?: string;
  /** Where the key lives; secrets in it (PINs, tokens) are removed before writing. */
  keyRef?: string;
  /** Keyless signing: the identity the Fulcio certificate names, instead of a key. */
  identity?: { subject: string; issuer: string };
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
  private readonly named: Pick<FileOperation, 'path' | 'cwd' | 'setting'>;

  /** `named`: how messages name the log (the path as written, the setting that chose it). */
  constructor(path: string, named: Pick<FileOperation, 'path' | 'cwd' | 'setting'> = { path }) {
    this.path = path;
    this.named = named;
  }

  async record(entry: SigningRecord, now = new Date()): Promise<void> {
    const line = JSON.stringify({
      time: now.toISOString(),
      host: hostname(),
      operation: entry.operation,
      ...(entry.identity
        ? { identity: { subject: entry.identity.subject, issuer: entry.identity.issuer } }
        : {
            key_id: entry.keyId ?? null,
            key_ref: entry.keyRef === undefined ? null : redactKeyRef(entry.keyRef), // signers' keyRefs are redacted already; a second guard
          }),
      digest: entry.digest,
      reference: entry.reference ?? null,
      environment: entry.environment ?? null,
    });
    await appendAuditLine(this.path, line, this.named);
  }
}

/**
 * Appends one line to the audit log (creating its directory, mode 0600). A log that cannot
 * be written (a directory in its place, a file on its path, no permission, a read-only or
 * full disk) is one clear error naming the log and its setting.
 */
export async function appendAuditLine(
  path: string,
  line: string,
  named: Pick<FileOperation, 'path' | 'cwd' | 'setting'> = { path },
): Promise<void> {
  try {
    await mkdir(dirname(path), { recursive: true });
    await appendFile(path, `${line}\n`, { mode: 0o600 });
  } catch (err) {
    throw fileError(err, { what: 'audit log', ...named, expect: 'file', access: 'write' }) ?? err;
  }
}
