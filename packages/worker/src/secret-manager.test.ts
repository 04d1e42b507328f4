// The trusted key read from GCP Secret Manager through the official client
// (@google-cloud/secret-manager v6) against a local gRPC server speaking the real protocol
// (test-support/secret-manager-server.ts). Nothing leaves 127.0.0.1; time is injected.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { generateKeyPairSync, sign } from 'node:crypto';
import { after, before, beforeEach, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { CoreErrorCode, isApxError } from '@apx/core';
import { policyModule } from '@apx/core/testing';
import { resolveConfig } from './config.js';
import { WorkerError, WorkerErrorCode } from './error.js';
import { keyProviderFromRef } from './keys.js';
import type { TrustedKeyInfo } from './refreshing-key.js';
import { crc32c, type SecretManagerKeyOptions, SecretManagerKeyProvider } from './secret-manager.js';
import { type ArtifactSource, listingOf } from './source.js';
import { FakeSecretManager, grpc, permissionDenied } from './test-support/secret-manager-server.js';
import { startWorker } from './worker.js';

const SECRET = 'projects/apx-prod/secrets/apx-artifact-pubkey';
const LATEST = `${SECRET}/versions/latest`;
const MESSAGE = Buffer.from('pb-pay-v1@1.0.0.wasm bytes');

const first = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const second = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const pem = (pair: typeof first) => pair.publicKey.export({ type: 'spki', format: 'pem' }) as string;
const sigFile = (key = first.privateKey) => Buffer.from(sign('sha256', MESSAGE, key).toString('base64'));

/** Asserts `fn` rejects with a WorkerError of `code` whose message is exactly `message`. */
async function rejectsWith(fn: () => Promise<unknown>, code: string, message: string): Promise<WorkerError> {
  let caught: unknown;
  await fn().then(
    () => assert.fail('expected a rejection'),
    (err: unknown) => {
      caught = err;
    },
  );
  assert.ok(caught instanceof WorkerError, `not a WorkerError: ${String(caught)}`);
  assert.equal(caught.code, code);
  assert.equal(caught.message, message);
  return caught;
}

describe('trusted key from GCP Secret Manager (official client, local gRPC server)', () => {
  let server: FakeSecretManager;
  let clock: number;
  const providers: SecretManagerKeyProvider[] = [];

  const provider = (ref: string, options: SecretManagerKeyOptions = {}) => {
    const p = new SecretManagerKeyProvider(ref, {
      clientOptions: server.clientOptions(),
      now: () => clock,
      ...options,
    });
    providers.push(p);
    return p;
  };

  before(async () => {
    server = await FakeSecretManager.start();
  });
  after(async () => {
    await Promise.all(providers.map((p) => p.close()));
    await server.stop();
  });
  beforeEach(() => {
    clock = 1_000_000;
    server.secrets.clear();
    server.failures.clear();
    server.requests.length = 0;
    server.corruptChecksum = false;
    server.hang = false;
  });

  it('reads the PEM key from the secret and verifies signatures made with its private key', async () => {
    server.addVersion(SECRET, pem(first));
    const loaded: TrustedKeyInfo[] = [];
    const keys = keyProviderFromRef(LATEST, {
      env: {},
      cwd: '/nonexistent',
      secretManager: { clientOptions: server.clientOptions(), onKeyLoaded: (k) => loaded.push(k) },
    });
    assert.ok(keys instanceof SecretManagerKeyProvider, 'projects/P/secrets/S/versions/V dispatches to Secret Manager');
    providers.push(keys);
    assert.equal(keys.description, LATEST);
    const verifier = await keys.verifier();
    verifier.verify(MESSAGE, sigFile());
    assert.throws(
      () => verifier.verify(MESSAGE, sigFile(second.privateKey)),
      (err: unknown) => isApxError(err) && err.code === CoreErrorCode.SIGNATURE_INVALID,
    );
    assert.deepEqual(server.requests, [LATEST]);
    assert.equal(loaded.length, 1);
    assert.equal(loaded[0]?.version, `${SECRET}/versions/1`, 'latest is resolved to the version read');
    assert.equal(loaded[0]?.keyId, verifier.publicKey.keyId);
    assert.equal(keys.key?.keyId, verifier.publicKey.keyId);
  });

  it('reads a pinned version', async () => {
    server.addVersion(SECRET, pem(first));
    server.addVersion(SECRET, pem(second));
    const verifier = await provider(`${SECRET}/versions/1`).verifier();
    verifier.verify(MESSAGE, sigFile(first.privateKey));
  });

  it('caches the key: one read for many loads, concurrent callers share it', async () => {
    server.addVersion(SECRET, pem(first));
    const keys = provider(LATEST);
    const all = await Promise.all([keys.verifier(), keys.verifier(), keys.verifier()]);
    clock += 60_000;
    all.push(await keys.verifier());
    assert.equal(new Set(all).size, 1);
    assert.equal(server.requests.length, 1);
  });

  it('says PermissionDenied in the runbook words, with the IAM fix as hint', async () => {
    server.addVersion(SECRET, pem(first));
    server.failures.set(SECRET, permissionDenied(SECRET));
    const err = await rejectsWith(
      () => provider(LATEST).verifier(),
      WorkerErrorCode.PUBLIC_KEY_UNAVAILABLE,
      `failed to access secret: rpc error: code = PermissionDenied desc = Permission 'secretmanager.versions.access' denied for resource '${LATEST}' (or it may not exist).`,
    );
    assert.match(err.message, /^failed to access secret: rpc error: code = PermissionDenied/);
    assert.match(err.hint ?? '', /roles\/secretmanager\.secretAccessor/);
    assert.match(err.hint ?? '', /gcloud secrets add-iam-policy-binding apx-artifact-pubkey --project=apx-prod/);
  });

  it('says NotFound for a missing secret or version, with a hint to check the name', async () => {
    const missing = 'projects/apx-prod/secrets/apx-artifact-pubky';
    const err = await rejectsWith(
      () => provider(`${missing}/versions/latest`).verifier(),
      WorkerErrorCode.PUBLIC_KEY_UNAVAILABLE,
      `failed to access secret: rpc error: code = NotFound desc = Secret [${missing}] not found or has no versions.`,
    );
    assert.match(
      err.hint ?? '',
      /check the secret name in APX_PUBLIC_KEY \(projects\/apx-prod\/secrets\/apx-artifact-pubky\/versions\/latest\)/,
    );
    server.addVersion(SECRET, pem(first));
    await rejectsWith(
      () => provider(`${SECRET}/versions/7`).verifier(),
      WorkerErrorCode.PUBLIC_KEY_UNAVAILABLE,
      `failed to access secret: rpc error: code = NotFound desc = Secret Version [${SECRET}/versions/7] not found.`,
    );
  });

  it('names other gRPC codes the same way (InvalidArgument)', async () => {
    server.failures.set(SECRET, { code: grpc.status.INVALID_ARGUMENT, details: 'bad name' });
    await rejectsWith(
      () => provider(LATEST).verifier(),
      WorkerErrorCode.PUBLIC_KEY_UNAVAILABLE,
      'failed to access secret: rpc error: code = InvalidArgument desc = bad name',
    );
  });

  it('refuses a payload that is not a PEM public key, naming the secret and never echoing the payload', async () => {
    server.addVersion(SECRET, 'hunter2-this-is-not-a-key');
    const err = await rejectsWith(
      () => provider(LATEST).verifier(),
      WorkerErrorCode.PUBLIC_KEY_UNAVAILABLE,
      `public key not available: ${LATEST} (invalid public key in secret ${SECRET}/versions/1: no PEM block found)`,
    );
    assert.doesNotMatch(`${err.message} ${err.hint}`, /hunter2/);
    assert.match(err.hint ?? '', /gcloud secrets versions add apx-artifact-pubkey --project=apx-prod --data-file=cosign\.pub/);

    // A private key stored by mistake: refused by its PEM type, its bytes never shown.
    server.addVersion(SECRET, first.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string);
    const priv = await rejectsWith(
      () => provider(LATEST).verifier(),
      WorkerErrorCode.PUBLIC_KEY_UNAVAILABLE,
      `public key not available: ${LATEST} (invalid public key in secret ${SECRET}/versions/2: PEM type "PRIVATE KEY" is not a public key)`,
    );
    const body = (first.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string).split('\n')[1] ?? 'x';
    assert.ok(!`${priv.message} ${priv.hint}`.includes(body));
  });

  it('refuses a payload whose CRC32C does not match', async () => {
    server.addVersion(SECRET, pem(first));
    server.corruptChecksum = true;
    await rejectsWith(
      () => provider(LATEST).verifier(),
      WorkerErrorCode.PUBLIC_KEY_UNAVAILABLE,
      `public key not available: ${LATEST} (the payload of ${SECRET}/versions/1 does not match its CRC32C checksum)`,
    );
  });

  it('rotation: after the refresh interval the new version is read and its key used, without a restart', async () => {
    server.addVersion(SECRET, pem(first));
    const loaded: [string, string | undefined][] = [];
    const keys = provider(LATEST, {
      refreshIntervalMs: 300_000,
      onKeyLoaded: (k, prev) => loaded.push([k.version, prev?.version]),
    });
    (await keys.verifier()).verify(MESSAGE, sigFile(first.privateKey));

    server.addVersion(SECRET, pem(second)); // gcloud secrets versions add apx-artifact-pubkey --data-file=new.pub
    clock += 299_999;
    (await keys.verifier()).verify(MESSAGE, sigFile(first.privateKey));
    assert.equal(server.requests.length, 1, 'not re-read before the interval');

    clock += 1;
    const rotated = await keys.verifier();
    rotated.verify(MESSAGE, sigFile(second.privateKey));
    assert.throws(() => rotated.verify(MESSAGE, sigFile(first.privateKey)));
    assert.equal(server.requests.length, 2);
    assert.deepEqual(loaded, [
      [`${SECRET}/versions/1`, undefined],
      [`${SECRET}/versions/2`, `${SECRET}/versions/1`],
    ]);
  });

  it('defaults to a 5 minute refresh interval', async () => {
    server.addVersion(SECRET, pem(first));
    const keys = provider(LATEST);
    await keys.verifier();
    clock += 5 * 60_000 - 1;
    await keys.verifier();
    assert.equal(server.requests.length, 1);
    clock += 1;
    await keys.verifier();
    assert.equal(server.requests.length, 2);
  });

  it('a failed refresh keeps the last good key, reports the failure, and retries later', async () => {
    server.addVersion(SECRET, pem(first));
    const failures: [string, string][] = [];
    const keys = provider(LATEST, {
      refreshIntervalMs: 60_000,
      retryIntervalMs: 10_000,
      onRefreshError: (err, kept) => failures.push([err.message, kept.version]),
    });
    const good = await keys.verifier();

    server.failures.set(SECRET, permissionDenied(SECRET)); // the IAM binding was removed
    clock += 60_000;
    assert.equal(await keys.verifier(), good, 'the last good key stays in use');
    assert.deepEqual(failures, [
      [
        `failed to access secret: rpc error: code = PermissionDenied desc = Permission 'secretmanager.versions.access' denied for resource '${LATEST}' (or it may not exist).`,
        `${SECRET}/versions/1`,
      ],
    ]);

    // A payload that stops being a key is a failed refresh too: the good key is kept.
    server.failures.clear();
    server.addVersion(SECRET, 'garbage');
    clock += 9_999;
    assert.equal(await keys.verifier(), good);
    assert.equal(server.requests.length, 2, 'no retry before the retry interval');
    clock += 1;
    assert.equal(await keys.verifier(), good);
    assert.equal(failures.length, 2);
    assert.match(
      failures[1]?.[0] ?? '',
      /^public key not available: .* \(invalid public key in secret .*\/versions\/2: no PEM block found\)$/,
    );

    // Fixed: the next retry picks up the new key.
    server.addVersion(SECRET, pem(second));
    clock += 10_000;
    (await keys.verifier()).verify(MESSAGE, sigFile(second.privateKey));
    assert.equal(server.requests.length, 4);
  });

  it('a hook that throws does not take the key away', async () => {
    server.addVersion(SECRET, pem(first));
    const keys = provider(LATEST, {
      refreshIntervalMs: 1000,
      onKeyLoaded: () => {
        throw new Error('logger broke');
      },
      onRefreshError: () => {
        throw new Error('logger broke');
      },
    });
    const good = await keys.verifier();
    server.failures.set(SECRET, permissionDenied(SECRET));
    clock += 1000;
    assert.equal(await keys.verifier(), good);
  });

  it('gives up after the timeout with DeadlineExceeded', async () => {
    server.addVersion(SECRET, pem(first));
    server.hang = true;
    const err = await provider(LATEST, { timeoutMs: 300 })
      .verifier()
      .then(
        () => assert.fail('expected a rejection'),
        (e: unknown) => e,
      );
    assert.ok(err instanceof WorkerError);
    assert.equal(err.code, WorkerErrorCode.PUBLIC_KEY_UNAVAILABLE);
    assert.match(err.message, /^failed to access secret: rpc error: code = DeadlineExceeded desc = Deadline exceeded/);
    assert.match(err.hint ?? '', /did not answer in time/);
  });

  it('refuses a reference that is not a secret version', () => {
    assert.throws(
      () => new SecretManagerKeyProvider('projects/p/secrets/s'),
      (err: unknown) => err instanceof WorkerError && err.code === WorkerErrorCode.CONFIG_INVALID,
    );
    const file = keyProviderFromRef('projects/p/secrets/s', { env: {}, cwd: '/tmp' });
    assert.ok(!(file instanceof SecretManagerKeyProvider), 'anything else is still a file path');
  });

  it('computes CRC32C as Secret Manager does', () => {
    assert.equal(crc32c(Buffer.from('123456789')), 0xe3069283);
    assert.equal(crc32c(Buffer.alloc(0)), 0);
  });

  it('imports the SDK only when a secret reference is used', () => {
    const index = fileURLToPath(new URL('./index.js', import.meta.url));
    const script = `
      import { createRequire } from 'node:module';
      const require = createRequire(import.meta.url);
      const loaded = () => Object.keys(require.cache).some((p) => p.includes('@google-cloud/secret-manager'));
      const w = await import(${JSON.stringify(index)});
      const before = loaded();
      w.keyProviderFromRef('keys/cosign.pub', { env: {}, cwd: '/' });
      const afterFile = loaded();
      const p = w.keyProviderFromRef('projects/p/secrets/s/versions/1', { env: {}, cwd: '/', secretManager: {
        clientOptions: { apiEndpoint: '127.0.0.1', port: 1, universeDomain: 'googleapis.com',
          sslCreds: (await import('@grpc/grpc-js')).credentials.createInsecure() }, timeoutMs: 200 } });
      const afterCreate = loaded();
      await p.verifier().catch(() => {});
      const afterUse = loaded();
      await p.close();
      console.log(JSON.stringify([before, afterFile, afterCreate, afterUse]));
    `;
    const run = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
      cwd: fileURLToPath(new URL('.', import.meta.url)),
      encoding: 'utf8',
      timeout: 30_000,
    });
    assert.equal(run.status, 0, run.stderr);
    assert.deepEqual(JSON.parse(run.stdout.trim().split('\n').pop() ?? ''), [false, false, false, true]);
  });

  describe('in the worker (APX_PUBLIC_KEY=projects/.../versions/latest)', () => {
    const WASM = policyModule('pb-test', '1.0.0');
    const source = (signer = first.privateKey): ArtifactSource => ({
      url: 'memory://secret-test',
      getObject: async () => undefined,
      fetch: async () => ({
        artifact: WASM,
        signature: Buffer.from(sign('sha256', WASM, signer).toString('base64')),
        bundle: undefined,
      }),
      versions: async () => ['1.0.0'],
      listing: async () => listingOf([{ policyId: 'pb-test', version: '1.0.0' }]),
    });

    async function run(signer = first.privateKey) {
      const logs: Array<Record<string, unknown>> = [];
      const { config, warnings } = resolveConfig({
        APX_PORT: '0',
        APX_RELOAD_INTERVAL: '0',
        APX_POLICIES: 'pb-test@1.0.0',
        APX_PUBLIC_KEY: LATEST,
      });
      const worker = await startWorker(config, warnings, {
        openSource: async () => source(signer),
        runtimeFactory: () => ({
          decide: () => ({
            allow: true,
            status: 200,
            reason: 'ok',
            rateLimits: [],
            json: '{"allow":true,"status":200,"reason":"ok"}',
          }),
        }),
        env: {},
        cwd: '/nonexistent',
        retryMinMs: 60_000,
        secretManager: { clientOptions: server.clientOptions(), now: () => clock },
        logDestination: { write: (line: string) => logs.push(JSON.parse(line)) },
      });
      return { worker, logs };
    }

    it('verifies policies with the key from the secret and logs which key it trusts', async () => {
      server.addVersion(SECRET, pem(first));
      const { worker, logs } = await run();
      try {
        assert.ok(worker.policies.get('pb-test'), 'the signed policy is serving');
        const line = logs.find((l) => String(l.message).startsWith('trusted public key loaded'));
        assert.equal(line?.message, `trusted public key loaded from ${SECRET}/versions/1`);
        assert.equal(line?.severity, 'INFO');
        assert.match(String(line?.key_id), /^[0-9a-f]{64}$/);
        assert.ok(!JSON.stringify(logs).includes('BEGIN PUBLIC KEY'), 'the key itself is not logged');
      } finally {
        await worker.stop();
      }
    });

    it('refuses to load anything when the secret is denied, with the runbook message in the log', async () => {
      server.addVersion(SECRET, pem(first));
      server.failures.set(SECRET, permissionDenied(SECRET));
      const { worker, logs } = await run();
      try {
        assert.equal(worker.policies.get('pb-test'), undefined);
        const messages = logs.map((l) => String(l.message));
        assert.ok(
          messages.some((m) =>
            m.includes(
              'artifact verification failed for pb-test@1.0.0: failed to access secret: rpc error: code = PermissionDenied desc = ',
            ),
          ),
          messages.join('\n'),
        );
      } finally {
        await worker.stop();
      }
    });
  });
});
