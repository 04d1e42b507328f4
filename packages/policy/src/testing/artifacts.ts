import { generateKeyPairSync, sign } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  type ArtifactRef,
  keysTrust,
  PublicKey,
  readPolicyMeta,
  SignatureVerifier,
  type VerifiedArtifact,
  verifyPolicyArtifact,
} from '@apx/core';
import { type CompiledPolicy, compilePolicy } from '../compiler.js';

/** The repository root (tests run from packages/policy/dist/...). */
export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..');
export const SAMPLES_DIR = join(REPO_ROOT, 'configs', 'samples');
export const SAMPLES = ['payments-api.yaml', 'admin-api.yaml', 'public-catalog-api.yaml'];

/** A throwaway P-256 key: tests go through the real verifier, never around it. */
const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const trust = keysTrust(
  new SignatureVerifier(PublicKey.fromPem(publicKey.export({ type: 'spki', format: 'pem' }).toString(), 'test key')),
);

/** The reference a module names in its `apx.meta` (t@1.0.0 when it has none readable). */
function embeddedRef(wasm: Uint8Array): ArtifactRef {
  try {
    const meta = readPolicyMeta(new WebAssembly.Module(wasm));
    return { policyId: meta.policy, version: meta.version };
  } catch {
    return { policyId: 't', version: '1.0.0' };
  }
}

/** Signs the module and runs core's verifier on it as a development worker would (strict). */
export function signAndVerify(wasm: Uint8Array, ref: ArtifactRef = embeddedRef(wasm)): VerifiedArtifact {
  const sig = sign('sha256', wasm, privateKey).toString('base64');
  return verifyPolicyArtifact({
    material: { ref, artifact: wasm, signature: Buffer.from(sig) },
    trust,
    policy: { environment: 'dev', strict: true, requireBinding: false },
  });
}

export async function compileSample(name: string): Promise<CompiledPolicy> {
  const path = join(SAMPLES_DIR, name);
  return compilePolicy(readFileSync(path, 'utf8'), `configs/samples/${name}`);
}
