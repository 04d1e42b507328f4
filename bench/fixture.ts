// The benches' shared setup: a scratch directory with the payments sample compiled and signed
// with a fresh key (artifacts/ and keys/cosign.pub), as a worker in dev loads it. Not a bench.
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { compilePolicy } from '@apx/policy';
import { FileSigner, signArtifact } from '@apx/sign';

export const REPO = resolve(import.meta.dirname ?? '.', '..', '..');

export interface SignedSample {
  dir: string;
  /** Path of the signed artifact (pb-pay-v1@1.0.0.wasm) in `dir`/artifacts. */
  artifact: string;
  fileName: string;
  wasm: Uint8Array;
  publicKey: KeyObject;
  /** The .sig file's content (base64 of the DER signature). */
  signatureFileContent: string;
}

export async function signedSample(prefix: string): Promise<SignedSample> {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  mkdirSync(join(dir, 'artifacts'));
  mkdirSync(join(dir, 'keys'));
  const keys = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  writeFileSync(join(dir, 'keys/cosign.pub'), keys.publicKey.export({ type: 'spki', format: 'pem' }));
  const path = 'configs/samples/payments-api.yaml';
  const compiled = await compilePolicy(readFileSync(join(REPO, path), 'utf8'), path);
  const signed = await signArtifact(new FileSigner('bench', keys.privateKey), compiled.wasm, {
    policyId: 'pb-pay-v1',
    version: '1.0.0',
    environment: 'dev',
    abiVersion: null,
    compilerVersion: null,
    sourceDigest: null,
  });
  const artifact = join(dir, 'artifacts', compiled.fileName);
  writeFileSync(artifact, compiled.wasm);
  writeFileSync(`${artifact}.sig`, signed.signatureFileContent);
  writeFileSync(`${artifact}.sigstore.json`, signed.bundleJson);
  return {
    dir,
    artifact,
    fileName: compiled.fileName,
    wasm: compiled.wasm,
    publicKey: keys.publicKey,
    signatureFileContent: signed.signatureFileContent,
  };
}
