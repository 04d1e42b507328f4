import { readFile } from 'node:fs/promises';
import { basename, resolve } from 'node:path';
import { StorageError, StorageErrorCode } from './error.js';
import { ARTIFACT_SUFFIX, formatArtifactRef, parseArtifactRef, versionObjectNames } from './names.js';
import type { ArtifactStore, PutOutcome, VersionObjects } from './store.js';
import { type AttestationRequest, DEFAULT_MAX_BYTES, requestedAttestations } from './store.js';

/** Signatures are ~100 bytes of base64; bundles a few KiB (certificate chains included). */
export const MAX_SIGNATURE_BYTES = 64 * 1024;
export const MAX_BUNDLE_BYTES = 1024 * 1024;

export interface PublishRequest extends VersionObjects {
  /** `<policy-id>@<semver>`, e.g. `pb-pay-v1@1.0.0`. */
  ref: string;
  /**
   * Stops the publish only before its first object is stored: once the signature is stored
   * the rest is written to its end, so an abort (Ctrl-C) never leaves a half-published version.
   */
  signal?: AbortSignal;
  /** Called after each object is stored (or found identical), with its name. */
  progress?: (name: string) => void | Promise<void>;
}

export interface PublishResult {
  ref: string;
  /** Object names as stored, e.g. `pb-pay-v1@1.0.0.wasm`. */
  names: string[];
  /** `unchanged`: the very same version was already published (an idempotent re-run). */
  outcome: PutOutcome;
}

/**
 * Publishes one version so that no reader ever sees it half-published: a reader looks for
 * the artifact first, so the signature and bundle are written (create-only) before the
 * artifact, which is written last (create-only). A version is immutable: different bytes
 * under a published name are a CONFLICT; publishing identical bytes again is a no-op.
 * Stores with an atomic multi-object write (OCI) do it in one step.
 */
export async function publishArtifact(store: ArtifactStore, request: PublishRequest): Promise<PublishResult> {
  const ref = parseArtifactRef(request.ref);
  const refText = formatArtifactRef(ref);
  const names = versionObjectNames(ref);
  if (request.signature.byteLength === 0) {
    throw new StorageError(StorageErrorCode.UNSIGNED, `signature file is empty: ${names.signature}`, {
      hint: 'sign the artifact with apx sign-blob (or cosign sign-blob) before publishing',
    });
  }
  const attestations = (['sbom', 'provenance'] as const).filter((k) => request[k] !== undefined);
  const written = [
    names.artifact,
    names.signature,
    ...(request.bundle ? [names.bundle] : []),
    ...attestations.map((k) => names[k]),
  ];
  const signal = request.signal;
  const progress = request.progress ?? (() => undefined);
  signal?.throwIfAborted();
  if (store.putVersion) {
    const { progress: _progress, signal: _signal, ...objects } = request;
    const outcome = await store.putVersion(refText, objects, signal ? { signal } : {});
    for (const name of written) await progress(name);
    return { ref: refText, names: written, outcome };
  }
  const first = signal ? { ifAbsent: true, signal } : { ifAbsent: true };
  // After the first object, no abort: the version is completed (each call still has its timeout).
  const rest = { ifAbsent: true };
  let outcome: PutOutcome = 'unchanged';
  try {
    if ((await store.put(names.signature, request.signature, first)) === 'created') outcome = 'created';
    await progress(names.signature);
    if (request.bundle) {
      if ((await store.put(names.bundle, request.bundle, rest)) === 'created') outcome = 'created';
      await progress(names.bundle);
    }
    // Attestations before the artifact too: a reader that finds the artifact finds them.
    for (const kind of attestations) {
      if ((await store.put(names[kind], request[kind] as Uint8Array, rest)) === 'created') outcome = 'created';
      await progress(names[kind]);
    }
  } catch (err) {
    // ECDSA signatures are randomized: re-signing the same artifact gives other bytes. If
    // this exact artifact is already published, the re-run is a no-op (the stored
    // signature stays); otherwise the version belongs to someone else.
    if (err instanceof StorageError && err.code === StorageErrorCode.CONFLICT) {
      let existing: Buffer | undefined;
      try {
        existing = await store.get(names.artifact, { maxBytes: request.artifact.byteLength });
      } catch (e) {
        if (!(e instanceof StorageError && e.code === StorageErrorCode.TOO_LARGE)) throw e;
        throw err;
      }
      if (existing?.equals(request.artifact)) return { ref: refText, names: written, outcome: 'unchanged' };
      if (!existing) {
        // Signature stored, artifact not: another publish is in flight, or one was interrupted.
        throw new StorageError(
          StorageErrorCode.CONFLICT,
          `${err.message}, and ${names.artifact} is not published yet: another publish of ${refText} is in progress or was interrupted`,
          {
            hint: `if no publish is running, delete the leftover ${names.signature} and ${names.bundle} from ${store.url} and publish again`,
            cause: err,
          },
        );
      }
    }
    throw err;
  }
  if ((await store.put(names.artifact, request.artifact, rest)) === 'created') outcome = 'created';
  await progress(names.artifact);
  return { ref: refText, names: written, outcome };
}

export interface FetchOptions {
  /** Artifact cap; default the runbook's 10 MiB. */
  maxBytes?: number;
  signal?: AbortSignal;
  /**
   * The attestations to read too: those the reader's environment requires (a list), or both
   * (`true`). None by default: a reader that requires none never asks the store for them.
   */
  attestations?: AttestationRequest;
}

export interface FetchedArtifact {
  ref: string;
  artifact: Buffer;
  /** Undefined when the store holds no signature: the worker decides (strict refuses). */
  signature: Buffer | undefined;
  bundle: Buffer | undefined;
  sbom?: Buffer | undefined;
  provenance?: Buffer | undefined;
}

/**
 * What the worker calls: downloads one version's artifact (capped), its signature and bundle,
 * and the attestations asked for. Returns undefined when the artifact does not exist. The
 * bytes are unverified: the caller must pass them to verifyArtifact before use.
 */
export async function fetchArtifact(
  store: ArtifactStore,
  ref: string,
  options: FetchOptions = {},
): Promise<FetchedArtifact | undefined> {
  const parsed = parseArtifactRef(ref);
  const refText = formatArtifactRef(parsed);
  const names = versionObjectNames(parsed);
  const signal = options.signal ? { signal: options.signal } : {};
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
  if (store.getVersion) {
    const limits = { artifact: maxBytes, signature: MAX_SIGNATURE_BYTES, bundle: MAX_BUNDLE_BYTES };
    const version = await store.getVersion(refText, limits, {
      ...signal,
      ...(options.attestations ? { attestations: options.attestations } : {}),
    });
    return version && { ref: refText, ...version };
  }
  const kinds = requestedAttestations(options.attestations);
  const beside = [
    { name: names.signature, maxBytes: MAX_SIGNATURE_BYTES },
    { name: names.bundle, maxBytes: MAX_BUNDLE_BYTES },
    ...kinds.map((kind) => ({ name: names[kind], maxBytes: MAX_BUNDLE_BYTES })),
  ];
  const read = (name: string, max: number) => store.get(name, { maxBytes: max, ...signal });
  // Every object at once: one round of reads instead of one after another. Settled, so that
  // the artifact's own answer (absent, too large, unreachable) is the one reported.
  const [artifact, ...found] = await Promise.allSettled([
    read(names.artifact, maxBytes),
    ...beside.map((b) => read(b.name, b.maxBytes)),
  ]);
  if (artifact.status === 'rejected') throw artifact.reason;
  if (!artifact.value) return undefined;
  // A publish writes the signature, bundle and attestations before the artifact: a read that
  // ran before the artifact appeared may have missed them. Those missing are read again, now
  // that the artifact is known to exist, so a version being published is never seen unsigned.
  const objects = await Promise.all(
    found.map((f, i) => {
      if (f.status === 'rejected') throw f.reason;
      const b = beside[i] as { name: string; maxBytes: number };
      return f.value ?? read(b.name, b.maxBytes);
    }),
  );
  const fetched: FetchedArtifact = { ref: refText, artifact: artifact.value, signature: objects[0], bundle: objects[1] };
  kinds.forEach((kind, i) => {
    fetched[kind] = objects[2 + i];
  });
  return fetched;
}

export interface ArtifactFiles extends VersionObjects {
  ref: string;
}

/**
 * Reads `<dir>/<ref>.wasm`, its `.sig` (required: strict, like the worker) and its
 * `.sigstore.json` (optional). The reference comes from the file name.
 */
export async function readArtifactFiles(
  artifactPath: string,
  options: { cwd?: string; ref?: string } = {},
): Promise<ArtifactFiles> {
  const file = basename(artifactPath);
  const onDisk = resolve(options.cwd ?? process.cwd(), artifactPath);
  if (options.ref === undefined && !file.endsWith(ARTIFACT_SUFFIX)) {
    throw new StorageError(StorageErrorCode.INVALID_NAME, `not an artifact file name: ${file}`, {
      hint: 'publish the compiled <policy-id>@<semver>.wasm, e.g. pb-pay-v1@1.0.0.wasm',
    });
  }
  // The reference is the file name's, unless the caller knows it otherwise (the artifact's metadata).
  const ref = formatArtifactRef(parseArtifactRef(options.ref ?? file.slice(0, -ARTIFACT_SUFFIX.length)));
  const artifact = await readOptional(onDisk);
  if (!artifact) {
    throw new StorageError(StorageErrorCode.NOT_FOUND, `artifact file not found: ${artifactPath}`, {
      hint: 'pass the path of the compiled .wasm (apx compile writes <policy-id>@<semver>.wasm)',
    });
  }
  if (artifact.byteLength > DEFAULT_MAX_BYTES) {
    throw new StorageError(
      StorageErrorCode.TOO_LARGE,
      `artifact too large: ${artifact.byteLength} bytes (max: ${DEFAULT_MAX_BYTES})`,
      {
        hint: 'workers refuse artifacts over 10 MiB; split the policy',
      },
    );
  }
  const signature = await readOptional(`${onDisk}.sig`);
  if (!signature) {
    throw new StorageError(StorageErrorCode.UNSIGNED, `signature file not found: ${file}.sig (strict mode enabled)`, {
      hint: `sign it first: apx sign-blob --key keys/cosign.key --output-signature ${artifactPath}.sig ${artifactPath}`,
    });
  }
  const bundle = await readOptional(`${onDisk}.sigstore.json`);
  const sbom = await readOptional(`${onDisk}.sbom.sigstore.json`);
  const provenance = await readOptional(`${onDisk}.provenance.sigstore.json`);
  return {
    ref,
    artifact,
    signature,
    ...(bundle ? { bundle } : {}),
    ...(sbom ? { sbom } : {}),
    ...(provenance ? { provenance } : {}),
  };
}

/**
 * `apx publish` and `apx compile --publish`: read the files beside each other, publish them.
 * Relative paths resolve against `cwd`; messages show the path as given.
 */
export async function publishArtifactFiles(
  store: ArtifactStore,
  artifactPath: string,
  options: Pick<PublishRequest, 'signal' | 'progress'> & { cwd?: string; ref?: string } = {},
): Promise<PublishResult> {
  const { signal, progress, ...read } = options;
  const files = await readArtifactFiles(artifactPath, read);
  return publishArtifact(store, { ...files, ...(signal ? { signal } : {}), ...(progress ? { progress } : {}) });
}

async function readOptional(path: string): Promise<Buffer | undefined> {
  try {
    return await readFile(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    throw new StorageError(StorageErrorCode.REQUEST_FAILED, `cannot read ${path}: ${(err as Error).message}`, {
      hint: 'check the path and its permissions',
      cause: err,
    });
  }
}
