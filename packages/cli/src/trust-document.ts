import { type Signer, writeFileAtomic } from '@apx/sign';
import type { ArtifactStore } from '@apx/storage';
import { auditSigning } from './audit.js';
import type { CliContext } from './context.js';
import { resolvePath } from './io.js';

/** A trust document (keyring, revocation list, policy index) ready to be written. */
export interface SignedDocument {
  text: Buffer;
  /** Base64 detached signature, as in a `.sig` file. */
  signature: Buffer;
}

/** Signs a trust document and records it in the audit trail. */
export async function signDocument(
  ctx: CliContext,
  signer: Signer,
  operation: string,
  document: Record<string, unknown>,
  reference?: string,
): Promise<SignedDocument> {
  const text = Buffer.from(`${JSON.stringify(document, null, 2)}\n`);
  const signature = Buffer.from((await signer.sign(text)).signature.toString('base64'));
  await auditSigning(ctx, signer, operation, text, reference === undefined ? {} : { reference });
  return { text, signature };
}

/**
 * Writes `FILE.sig`, then `FILE`. Signature first: a reader that sees the new document with
 * the old signature refuses it and keeps the one it holds, which is the safe side.
 */
export async function writeDocumentFile(ctx: CliContext, path: string, doc: SignedDocument): Promise<void> {
  await writeFileAtomic(resolvePath(ctx, `${path}.sig`), doc.signature, { overwrite: true });
  await writeFileAtomic(resolvePath(ctx, path), doc.text, { overwrite: true });
}

/** Stores `NAME.sig`, then `NAME`, in an open store (same order, same reason). */
export async function putDocument(store: ArtifactStore, name: string, doc: SignedDocument): Promise<void> {
  await store.put(`${name}.sig`, doc.signature);
  await store.put(name, doc.text);
}

/** Opens a store by URL with the CLI's environment, runs `work`, and closes it. */
export async function withStore<T>(ctx: CliContext, url: string, work: (store: ArtifactStore) => Promise<T>): Promise<T> {
  // Storage (and its SDK loaders) loads only when a command actually publishes.
  const { openStore } = await import('@apx/storage');
  const store = await openStore(url, { cwd: ctx.cwd, env: ctx.env });
  try {
    return await work(store);
  } finally {
    await store.close?.();
  }
}
