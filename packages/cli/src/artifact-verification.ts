import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import {
  type ArtifactRef,
  CoreErrorCode,
  type Environment,
  keysTrust,
  parseArtifactRef,
  SignatureVerifier,
  type SigstoreTrustedRoot,
  type TrustInForce,
  VerificationError,
  type VerifiedArtifact,
  type VersionAllowList,
  verifyPolicyArtifact,
} from '@apx/core';
import { type CliContext, info } from './context.js';
import { readInput, readOptional } from './io.js';
import { loadPublicKey } from './keyref.js';

/** The reference an artifact's file name gives: `pb-pay-v1@1.0.0.wasm` → pb-pay-v1@1.0.0. */
export function refFromFileName(path: string): ArtifactRef {
  const name = basename(path);
  try {
    if (!name.endsWith('.wasm')) throw new Error('not .wasm');
    return parseArtifactRef(name.slice(0, -'.wasm'.length));
  } catch {
    throw new VerificationError(CoreErrorCode.REF_INVALID, `cannot tell the policy reference from the file name ${name}`, {
      hint: 'name the artifact <policy-id>@<version>.wasm, as apx compile writes it (e.g. pb-pay-v1@1.0.0.wasm)',
    });
  }
}

/** Runbook trust from `--key`: one public key, trusted for every environment (APX_PUBLIC_KEY's meaning). */
export async function trustFromKey(ctx: CliContext, keyRef: string): Promise<TrustInForce> {
  return keysTrust(new SignatureVerifier(await loadPublicKey(ctx, keyRef)));
}

/**
 * Trust-repository trust: what the environment's signed targets role says of the reference,
 * read and verified exactly as a worker does (tuf-js client workflow), from a throwaway state
 * directory. `rootPath` pins the root to start from (a worker's APX_TRUST_ROOT); without it the
 * store's own tuf/1.root.json is trusted on first use, which the command says.
 */
export async function trustFromRepository(
  ctx: CliContext,
  options: { storeUrl: string; rootPath: string | undefined; environment: Environment; ref: ArtifactRef },
): Promise<TrustInForce> {
  const [{ openStore }, { maxBytesOf, metadataObjectName, ROOT, TrustClient, tufTrustFor }] = await Promise.all([
    import('@apx/storage'),
    import('@apx/trust'),
  ]);
  const store = await openStore(options.storeUrl, { env: ctx.env, cwd: ctx.cwd });
  const stateDir = await mkdtemp(join(tmpdir(), 'apx-verify-'));
  try {
    const bootstrapRoot = options.rootPath
      ? await readInput(ctx, options.rootPath, 'trust root', "pass a copy of the repository's tuf/1.root.json")
      : await store.get(metadataObjectName(ROOT, 1), { maxBytes: maxBytesOf(ROOT) });
    if (!options.rootPath) info(ctx, `note: trusting ${store.url}/tuf/1.root.json on first use (pin it with --trust-root)`);
    const client = new TrustClient({
      store,
      stateDir,
      environment: options.environment,
      ...(bootstrapRoot ? { bootstrapRoot } : {}),
    });
    return tufTrustFor(await client.refresh(), options.ref);
  } finally {
    await rm(stateDir, { recursive: true, force: true });
    await store.close?.();
  }
}

export interface LocalVerification {
  /** ARTIFACT: `<policy-id>@<version>.wasm`; ARTIFACT.sig and ARTIFACT.sigstore.json are read beside it. */
  artifactPath: string;
  environment: Environment;
  trust: TrustInForce;
  allowList?: VersionAllowList | undefined;
  /** A worker's APX_SIGSTORE_TRUSTED_ROOT: keyless bundles and timestamps are verified against it. */
  trustedRoot?: SigstoreTrustedRoot | undefined;
}

/**
 * Runs core's verifier on a local artifact exactly as a worker in `environment` with its
 * defaults would: strict (every worker default; production cannot turn it off), a signed
 * binding required outside dev, the allow-list when given. No rollback floor: a fresh
 * worker has none.
 */
export async function verifyLocalArtifact(ctx: CliContext, options: LocalVerification): Promise<VerifiedArtifact> {
  const { artifactPath, environment } = options;
  const ref = refFromFileName(artifactPath);
  const artifact = await readInput(ctx, artifactPath, 'artifact', 'pass a .wasm file written by apx compile');
  const hint = 'a signature and bundle sit beside the artifact as written by apx compile or apx sign';
  const signature = await readOptional(ctx, `${artifactPath}.sig`, 'signature file', hint);
  const bundle = await readOptional(ctx, `${artifactPath}.sigstore.json`, 'bundle file', hint);
  // The attestations apx compile writes beside it: the environment's trust policy may require them.
  const sbom = await readOptional(ctx, `${artifactPath}.sbom.sigstore.json`, 'SBOM attestation', hint);
  const provenance = await readOptional(ctx, `${artifactPath}.provenance.sigstore.json`, 'provenance attestation', hint);
  return verifyPolicyArtifact({
    material: { ref, artifact, signature, bundle, attestations: { sbom, provenance } },
    trust: options.trust,
    policy: {
      environment,
      strict: true,
      requireBinding: environment !== 'dev',
      allowList: options.allowList,
      trustedRoot: options.trustedRoot,
    },
  });
}
