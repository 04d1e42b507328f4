// Attestations are read only when the environment's trust requires them (issue 17): a worker
// whose environment requires nothing never asks its store for the .sbom/.provenance bundles
// that sit beside an artifact; one that requires provenance reads it (and nothing else) and
// still refuses an artifact published without it; a VEX gate reads the SBOM it judges.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import {
  type AttestationRequirements,
  PublicKey,
  parseAttestationRequirements,
  SignatureVerifier,
  sha256Hex,
  type TufTrust,
} from '@apx/core';
import { bindingBundle, policyModule, signatureFile } from '@apx/core/testing';
import { tempDir } from '@apx/core/testing/hygiene';
import { type ArtifactStore, LocalStore, publishArtifact } from '@apx/storage';
import { resolveConfig } from './config.js';
import { LoadError } from './load-error.js';
import { type LoadObserver, PolicyLoader } from './loader.js';
import { artifactSourceOf } from './store-source.js';
import { startWorker } from './worker.js';

const signer = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const verifier = new SignatureVerifier(PublicKey.fromKeyObject(signer.publicKey));
const REF = { policyId: 'pb-test', version: '1.0.0' };
const ARTIFACT = policyModule(REF.policyId, REF.version);
const ATTESTATION = /\.(sbom|provenance)\.sigstore\.json$/;

/** A local store holding the artifact, signed and bound for production, with both attestation files beside it. */
async function storeWithAttestations(): Promise<{ dir: string; local: LocalStore }> {
  const dir = tempDir('apx-attestation-fetch-');
  const local = new LocalStore({ root: join(dir, 'store') });
  await publishArtifact(local, {
    ref: `${REF.policyId}@${REF.version}`,
    artifact: ARTIFACT,
    signature: signatureFile(ARTIFACT, signer.privateKey),
    bundle: bindingBundle(ARTIFACT, { ...REF, environment: 'production' }, signer.privateKey),
    // Never verified by a worker that does not require them: any bytes tell whether they were read.
    sbom: Buffer.from('{"sbom": "not read"}'),
    provenance: Buffer.from('{"provenance": "not read"}'),
  });
  return { dir, local };
}

/** The store with every object name it was asked for recorded. */
function recording(store: LocalStore): { store: ArtifactStore; read: string[] } {
  const read: string[] = [];
  const wrapped: ArtifactStore = {
    url: store.url,
    get: (name, options) => {
      read.push(name);
      return store.get(name, options);
    },
    getVersioned: (name, options) => {
      read.push(name);
      return store.getVersioned(name, options);
    },
    put: (name, bytes, options) => store.put(name, bytes, options),
    swap: (name, bytes, expected, options) => store.swap(name, bytes, expected, options),
    list: (prefix, options) => store.list(prefix, options),
  };
  return { store: wrapped, read };
}

/** Production's targets role approving the artifact, with these attestation requirements. */
function production(requirements: Record<string, unknown>): TufTrust {
  const attestations: AttestationRequirements = parseAttestationRequirements(requirements, 'in the test');
  return {
    kind: 'tuf',
    environment: 'production',
    target: { length: ARTIFACT.length, sha256: sha256Hex(ARTIFACT) },
    signers: [{ keyId: verifier.publicKey.keyId, verifier }],
    namedVersions: new Set(),
    attestations,
  };
}

const quiet: LoadObserver = { loaded() {}, rejected() {}, unsignedAccepted() {}, diskEntryRejected() {} };

function loader(store: ArtifactStore, trust: TufTrust): PolicyLoader {
  return new PolicyLoader({
    source: artifactSourceOf(store),
    trust: { kind: 'tuf', trustFor: () => trust, refusal: () => undefined },
    strict: true,
    allowList: undefined,
    runtimeFactory: () => ({ decide: () => ({ allow: true, status: 200, reason: '', rateLimits: [], json: '{}' }) }),
    observer: quiet,
    memoryCacheEntries: 4,
    binding: { environment: 'production', required: true },
  });
}

describe('attestations are read only when the trust in force requires them', () => {
  it('a worker whose environment requires nothing (runbook mode) never reads the attestation files', async () => {
    const { dir, local } = await storeWithAttestations();
    const keyFile = join(dir, 'cosign.pub');
    await writeFile(keyFile, signer.publicKey.export({ type: 'spki', format: 'pem' }));
    const recorded = recording(local);
    const { config, warnings } = resolveConfig({
      APX_ENV: 'production',
      APX_STORE: join(dir, 'store'),
      APX_PUBLIC_KEY: keyFile,
      APX_POLICIES: `${REF.policyId}@${REF.version}`,
      ALLOWED_POLICY_VERSIONS: REF.version,
      APX_STATE_DIR: join(dir, 'state'),
      APX_PORT: '0',
      APX_RELOAD_INTERVAL: '0',
    });
    const worker = await startWorker(config, warnings, {
      openSource: async () => artifactSourceOf(recorded.store),
      env: {},
      cwd: dir,
      logDestination: { write: () => undefined },
    });
    try {
      assert.equal(worker.policies.get(REF.policyId)?.refText, 'pb-test@1.0.0');
      assert.ok(recorded.read.includes('pb-test@1.0.0.wasm.sig'), `read: ${recorded.read.join(', ')}`);
      assert.deepEqual(
        recorded.read.filter((name) => ATTESTATION.test(name)),
        [],
      );
    } finally {
      await worker.stop();
    }
  });

  it('a trust repository environment that requires nothing reads none either', async () => {
    const { local } = await storeWithAttestations();
    const recorded = recording(local);
    const loaded = await loader(recorded.store, production({})).load(REF);
    assert.equal(loaded.artifact.attestations, undefined);
    assert.deepEqual(
      recorded.read.filter((name) => ATTESTATION.test(name)),
      [],
    );
  });

  it('one that requires provenance reads the provenance only, and refuses an artifact published without it', async () => {
    const { local } = await storeWithAttestations();
    const recorded = recording(local);
    // The provenance beside it is junk: read, then refused as invalid.
    await assert.rejects(loader(recorded.store, production({ provenance: true })).load(REF), (e: unknown) => {
      assert.ok(e instanceof LoadError);
      assert.equal(e.code, 'ATTESTATION_INVALID', e.message);
      return true;
    });
    assert.deepEqual(
      recorded.read.filter((name) => ATTESTATION.test(name)),
      ['pb-test@1.0.0.wasm.provenance.sigstore.json'],
    );
    // Without it: ATTESTATION_MISSING, as before.
    const bare = recording(new LocalStore({ root: join(tempDir('apx-attestation-fetch-'), 'store') }));
    await publishArtifact(bare.store, {
      ref: 'pb-test@1.0.0',
      artifact: ARTIFACT,
      signature: signatureFile(ARTIFACT, signer.privateKey),
      bundle: bindingBundle(ARTIFACT, { ...REF, environment: 'production' }, signer.privateKey),
    });
    await assert.rejects(loader(bare.store, production({ provenance: true })).load(REF), (e: unknown) => {
      assert.ok(e instanceof LoadError);
      assert.equal(e.code, 'ATTESTATION_MISSING', e.message);
      assert.match(e.message, /attestation missing: pb-test@1\.0\.0\.wasm\.provenance\.sigstore\.json/);
      return true;
    });
  });

  it('a VEX gate reads the SBOM it judges (and only the SBOM)', async () => {
    const { local } = await storeWithAttestations();
    const recorded = recording(local);
    const vex = { vulnerabilities: [{ id: 'CVE-2026-0001', purl: 'pkg:npm/wabt@1.0.38', state: 'exploitable' }] };
    await assert.rejects(loader(recorded.store, production(vex)).load(REF), (e: unknown) => {
      assert.ok(e instanceof LoadError);
      assert.equal(e.code, 'ATTESTATION_INVALID', e.message);
      return true;
    });
    assert.deepEqual(
      recorded.read.filter((name) => ATTESTATION.test(name)),
      ['pb-test@1.0.0.wasm.sbom.sigstore.json'],
    );
  });
});
