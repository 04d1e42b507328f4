import { stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { type Environment, readPolicyMeta, sha256Hex } from '@apx/core';
import type { ArtifactStore, PublishResult } from '@apx/storage';
import { type CommandSpec, flagString, UsageError } from '../command.js';
import { type CliContext, info } from '../context.js';
import { environmentFlag } from '../environment.js';
import { CliError, CliErrorCode } from '../error.js';
import { armInterrupts, completeBeforeExit, interruptSignal, testPause } from '../interrupt.js';
import { readOptional } from '../io.js';
import { humanContext, JSON_OUTPUT_FLAG, writeJsonResult } from '../json-output.js';

export interface PublishOptions {
  /** Environment the artifact is published for: from --env; else the one its bundle binds; else dev. */
  environment?: Environment | undefined;
  /** Timeout of each network call, in ms. */
  timeoutMs?: number;
}

/** What `--json` reports of one publish. */
export interface PublishReport {
  reference: string;
  store: string;
  outcome: PublishResult['outcome'];
  objects: string[];
  environment: string;
  artifact: { path: string; sha256: string };
}

/**
 * Opens (and so validates) the store a URL names, before anything is compiled or signed: the
 * URL is parsed by the store's own parser (scheme, bucket, parameters, no credentials), and
 * what is cheap to check is checked: a local store must not be a file, and `gs:/bucket` (a
 * scheme without `//`, which would otherwise become a local directory of that name) is refused.
 */
export async function openPublishStore(ctx: CliContext, url: string, timeoutMs?: number): Promise<ArtifactStore> {
  // Storage loads only when something is published (compile without --publish never needs it).
  const { LocalStore, openStore, StorageError, StorageErrorCode } = await import('@apx/storage');
  const scheme = /^([a-z][a-z0-9+.-]+):(?!\/\/)/i.exec(url)?.[1];
  if (scheme !== undefined) {
    throw new StorageError(StorageErrorCode.INVALID_URL, `invalid store URL ${url}: ${scheme}: is not followed by //`, {
      hint: `write ${scheme}://${url.slice(scheme.length + 1).replace(/^\/+/, '')} (or ./${url} for a local directory)`,
    });
  }
  const store = await openStore(url, {
    cwd: ctx.cwd,
    env: ctx.env,
    ...(timeoutMs === undefined ? {} : { timeoutMs }),
  });
  if (store instanceof LocalStore) {
    const found = await stat(store.root).catch(() => undefined);
    if (found && !found.isDirectory()) {
      throw new StorageError(StorageErrorCode.INVALID_URL, `invalid store URL ${url}: ${url} is a file, not a directory`, {
        hint: 'publish to a directory (it is created if missing), gs://, s3:// or oci://',
      });
    }
  }
  return store;
}

/** The reference, environment and bundle status of an artifact about to be published. */
interface PublishPlan {
  ref: string | undefined;
  environment: Environment;
  /** Printed once the publish succeeded (a refusal stays one line). */
  warnings: string[];
}

/**
 * Decides what is published, and refuses what a staging or production worker would refuse:
 * an artifact without its `.sigstore.json` bundle (BINDING_MISSING), or with a bundle that binds
 * another environment. A file not named `<policy-id>@<semver>.wasm` (the runbook's
 * `artifact.wasm`) is published under the name apx compile embedded in it, with a warning:
 * workers never load other names.
 */
async function planPublish(ctx: CliContext, artifactPath: string, envFlag: Environment | undefined): Promise<PublishPlan> {
  const file = basename(artifactPath);
  const warnings: string[] = [];
  let ref: string | undefined;
  const named = /^([a-z0-9][a-z0-9._-]*)@(\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.+-]*)?)\.wasm$/.exec(file);
  if (!named) {
    const bytes = await readOptional(ctx, artifactPath, 'artifact', 'pass the path of the compiled .wasm');
    if (!bytes) {
      throw new CliError(CliErrorCode.INPUT_NOT_FOUND, `artifact file not found: ${artifactPath}`, {
        hint: 'pass the path of the compiled .wasm (apx compile writes <policy-id>@<semver>.wasm)',
      });
    }
    const meta = embeddedMeta(bytes);
    if (meta) {
      ref = `${meta.policy}@${meta.version}`;
      warnings.push(
        `WARNING: ${file} is not named <policy-id>@<semver>.wasm and workers never load it under that name: published it as ${ref}.wasm`,
      );
    } else {
      throw new CliError(
        CliErrorCode.INPUT_UNREADABLE,
        `${file} is not named <policy-id>@<semver>.wasm and carries no embedded id and version: workers would never load it`,
        {
          hint: 'rename it <policy-id>@<semver>.wasm (e.g. pb-pay-v1@1.0.0.wasm) with its .sig and .sigstore.json, then publish',
        },
      );
    }
  }
  const bundleText = await readOptional(ctx, `${artifactPath}.sigstore.json`, 'bundle file', 'sign the artifact with apx sign');
  const bound = bundleText ? boundEnvironment(bundleText) : undefined;
  if (bound && envFlag && bound !== envFlag) {
    throw new CliError(
      CliErrorCode.INPUT_UNREADABLE,
      `refusing to publish ${file} for ${envFlag}: its bundle ${file}.sigstore.json binds it to ${bound}`,
      { hint: `sign it for ${envFlag}: apx sign ${artifactPath} --env ${envFlag}, then publish again` },
    );
  }
  const environment = envFlag ?? (bound as Environment | undefined) ?? 'dev';
  if (!bundleText || !bound) {
    const what = bundleText
      ? `its bundle ${file}.sigstore.json binds no environment (a sign-blob bundle)`
      : `${file}.sigstore.json (its bundle) is missing`;
    const fix = `apx sign ${artifactPath} --env ${environment} (writes ${file}.sig and ${file}.sigstore.json)`;
    if (environment !== 'dev') {
      throw new CliError(
        CliErrorCode.INPUT_NOT_FOUND,
        `refusing to publish ${file} for ${environment}: ${what}, and ${environment} workers refuse it (BINDING_MISSING)`,
        { hint: `sign it for ${environment} first: ${fix}, then publish again` },
      );
    }
    warnings.push(
      `WARNING: ${what}: dev workers load it, staging and production workers refuse it (BINDING_MISSING); sign with ${fix}`,
    );
  }
  return { ref, environment, warnings };
}

function embeddedMeta(bytes: Buffer) {
  try {
    return readPolicyMeta(new WebAssembly.Module(bytes));
  } catch {
    return undefined;
  }
}

/** The environment an APX bundle's DSSE statement binds; undefined for a bundle without one. */
function boundEnvironment(bundle: Buffer): string | undefined {
  try {
    const parsed = JSON.parse(bundle.toString('utf8')) as { dsseEnvelope?: { payload?: string } };
    const payload = parsed.dsseEnvelope?.payload;
    if (typeof payload !== 'string') return undefined;
    const statement = JSON.parse(Buffer.from(payload, 'base64').toString('utf8')) as { predicate?: { environment?: unknown } };
    const env = statement.predicate?.environment;
    return typeof env === 'string' ? env : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Publishes ARTIFACT with ARTIFACT.sig (required) and ARTIFACT.sigstore.json (required for
 * staging and production) to a store. `apx publish` and `apx compile --publish URL` both call
 * this. Ctrl-C stops it only before the first object is stored; after that the version is
 * completed first, so the store never holds a `.sig` without its `.wasm` (interrupt.ts).
 */
export async function publishToStore(
  ctx: CliContext,
  store: ArtifactStore,
  artifactPath: string,
  options: PublishOptions = {},
): Promise<PublishReport> {
  const { publishArtifactFiles } = await import('@apx/storage');
  const plan = await planPublish(ctx, artifactPath, options.environment);
  armInterrupts();
  const result = await completeBeforeExit(async () => {
    await testPause(ctx, 'publish:start');
    return publishArtifactFiles(store, artifactPath, {
      cwd: ctx.cwd,
      signal: interruptSignal(),
      progress: (name) => testPause(ctx, `publish:stored:${name.replace(/^.*?(\.wasm.*)$/, 'artifact$1')}`),
      ...(plan.ref ? { ref: plan.ref } : {}),
    });
  });
  info(
    ctx,
    result.outcome === 'created'
      ? `✓ Published: ${result.ref} to ${store.url} (${result.names.join(', ')})`
      : `✓ Already published, identical: ${result.ref} in ${store.url}`,
  );
  for (const warning of plan.warnings) info(ctx, warning);
  const bytes = await readOptional(ctx, artifactPath, 'artifact', 'pass the path of the compiled .wasm');
  return {
    reference: result.ref,
    store: store.url,
    outcome: result.outcome,
    objects: result.names,
    environment: plan.environment,
    artifact: { path: artifactPath, sha256: bytes ? sha256Hex(bytes) : '' },
  };
}

export const publishCommand: CommandSpec = {
  name: 'publish',
  summary: 'Publish a signed artifact, its signature and its bundle to an artifact store.',
  usage: '[--store URL] [--env ENV] [--timeout SECONDS] [--json] ARTIFACT',
  details: `Reads ARTIFACT (<policy-id>@<semver>.wasm), ARTIFACT.sig (required: an unsigned artifact
is refused, as workers in strict mode refuse it) and ARTIFACT.sigstore.json (the bundle binding
id, version and environment: required for staging and production, whose workers refuse an
artifact without it; a warning for dev). The environment is --env, else the one the bundle
binds, else dev; a bundle binding another environment than --env is refused. An artifact not
named <policy-id>@<semver>.wasm (e.g. artifact.wasm) is published under the id and version
apx compile embedded in it, with a warning: workers load no other name.
Stores: a directory (default ./artifacts, or file:///dir), gs://bucket/prefix,
s3://bucket/prefix[?endpoint=URL&region=R], oci://host/repo or oci+http://host:port/repo.
The signature and bundle are stored before the artifact (OCI: one manifest), so workers
never see a half-published version; Ctrl-C stops a publish only before its first object is
stored. Versions are immutable: publishing other bytes under a published version fails;
publishing the same artifact again is a no-op. See docs/storage.md.`,
  flags: [
    {
      name: 'store',
      type: 'string',
      value: 'URL',
      description: `Where to publish (default: $APX_STORE, else ./artifacts).`,
    },
    {
      name: 'env',
      type: 'string',
      value: 'ENV',
      description:
        'The environment it is published for: dev, staging or production (default: the one its bundle binds, else dev).',
    },
    { name: 'timeout', type: 'string', value: 'SECONDS', description: 'Timeout of each network call (default: 10).' },
    JSON_OUTPUT_FLAG,
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
    const environment = args.flags.env === undefined ? undefined : environmentFlag(args);
    const human = humanContext(ctx, args);
    const { DEFAULT_STORE_URL } = await import('@apx/storage');
    const store = await openPublishStore(ctx, flagString(args, 'store') ?? ctx.env.APX_STORE ?? DEFAULT_STORE_URL, timeoutMs);
    try {
      const report = await publishToStore(human, store, args.positionals[0] as string, { environment });
      writeJsonResult(ctx, args, report);
    } finally {
      await store.close?.();
    }
    return 0;
  },
};
