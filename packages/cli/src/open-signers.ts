import type { Signer } from '@apx/sign';
import type { CliContext } from './context.js';

// Signers holding a connection or a session (KMS clients, HSM sessions), closed when the
// command ends, whichever way it ends (runCli calls closeSigners). Its own module, free of
// the signing libraries, because runCli imports it for every command.
const opened = new WeakMap<CliContext, Signer[]>();

/** Records a signer to close when the command that opened it ends. */
export function keepOpen(ctx: CliContext, signer: Signer): void {
  opened.set(ctx, [...(opened.get(ctx) ?? []), signer]);
}

/** Releases the connections and sessions of the signers a command opened. */
export async function closeSigners(ctx: CliContext): Promise<void> {
  const signers = opened.get(ctx) ?? [];
  opened.delete(ctx);
  await Promise.all(signers.map((s) => s.close?.().catch(() => undefined)));
}
