import type { PublishResult } from '@apx/storage';
import { type CommandSpec, flagString, UsageError } from '../command.js';
import { type CliContext, info } from '../context.js';

export interface PublishOptions {
  /** Store URL; default APX_STORE, then ./artifacts. */
  store?: string | undefined;
  /** Timeout of each network call, in ms. */
  timeoutMs?: number;
}

/**
 * Publishes ARTIFACT with ARTIFACT.sig (required) and ARTIFACT.sigstore.json (if present)
 * to a store. `apx publish` and `apx compile --publish URL` both call this.
 */
export async function publishToStore(
  ctx: CliContext,
  artifactPath: string,
  options: PublishOptions = {},
): Promise<PublishResult> {
  // Storage loads only when something is published (compile without --publish never needs it).
  const { DEFAULT_STORE_URL, openStore, publishArtifactFiles } = await import('@apx/storage');
  const url = options.store ?? ctx.env.APX_STORE ?? DEFAULT_STORE_URL;
  const store = await openStore(url, {
    cwd: ctx.cwd,
    env: ctx.env,
    ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
  });
  try {
    const result = await publishArtifactFiles(store, artifactPath, { cwd: ctx.cwd });
    info(
      ctx,
      result.outcome === 'created'
        ? `✓ Published: ${result.ref} to ${store.url} (${result.names.join(', ')})`
        : `✓ Already published, identical: ${result.ref} in ${store.url}`,
    );
    return result;
  } finally {
    await store.close?.();
  }
}

export const publishCommand: CommandSpec = {
  name: 'publish',
  summary: 'Publish a signed artifact, its signature and its bundle to an artifact store.',
  usage: '[--store URL] [--timeout SECONDS] ARTIFACT',
  details: `Reads ARTIFACT (<policy-id>@<semver>.wasm), ARTIFACT.sig (required: an unsigned artifact
is refused, as workers in strict mode refuse it) and ARTIFACT.sigstore.json (optional).
Stores: a directory (default ./artifacts, or file:///dir), gs://bucket/prefix,
s3://bucket/prefix[?endpoint=URL&region=R], oci://host/repo or oci+http://host:port/repo.
The signature and bundle are stored before the artifact (OCI: one manifest), so workers
never see a half-published version. Versions are immutable: publishing other bytes under a
published version fails; publishing the same artifact again is a no-op. See docs/storage.md.`,
  flags: [
    {
      name: 'store',
      type: 'string',
      value: 'URL',
      description: `Where to publish (default: $APX_STORE, else ./artifacts).`,
    },
    { name: 'timeout', type: 'string', value: 'SECONDS', description: 'Timeout of each network call (default: 10).' },
  ],
  positionals: { min: 1, max: 1, names: 'ARTIFACT (the .wasm to publish)' },
  async run(ctx, args) {
    const timeout = flagString(args, 'timeout');
    let timeoutMs: number | undefined;
    if (timeout !== undefined) {
      const seconds = Number(timeout);
      if (!Number.isFinite(seconds) || seconds <= 0)
        throw new UsageError(`--timeout must be a positive number of seconds, got ${timeout}`);
      timeoutMs = Math.round(seconds * 1000);
    }
    await publishToStore(ctx, args.positionals[0] as string, {
      store: flagString(args, 'store'),
      ...(timeoutMs === undefined ? {} : { timeoutMs }),
    });
    return 0;
  },
};
