import { generateKeyPairSync, sign } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PublicKey, SignatureVerifier, type VerifiedArtifact, verifyArtifact } from '@apx/core';
import { type CompiledPolicy, compilePolicy } from '../compiler.js';

/** The repository root (tests run from packages/policy/dist/...). */
export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..');
export const SAMPLES_DIR = join(REPO_ROOT, 'configs', 'samples');
export const SAMPLES = ['payments-api.yaml', 'admin-api.yaml', 'public-catalog-api.yaml'];

/** A throwaway P-256 key: tests go through the real verifier, never around it. */
const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const verifier = new SignatureVerifier(
  PublicKey.fromPem(publicKey.export({ type: 'spki', format: 'pem' }).toString(), 'test key'),
);

export function signAndVerify(wasm: Uint8Array): VerifiedArtifact {
  const sig = sign('sha256', wasm, privateKey).toString('base64');
  return verifyArtifact(wasm, Buffer.from(sig), verifier);
}

export async function compileSample(name: string): Promise<CompiledPolicy> {
  const path = join(SAMPLES_DIR, name);
  return compilePolicy(readFileSync(path, 'utf8'), `configs/samples/${name}`);
}
