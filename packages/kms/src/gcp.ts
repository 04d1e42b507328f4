import { createHash, createPublicKey } from 'node:crypto';
import { createRequire } from 'node:module';
import { crc32c, defaultDigestFor, PublicKey } from '@apx/core';
import { KmsError, KmsErrorCode } from './error.js';
import { importClient, type KmsKey, type KmsSignature } from './kms-key.js';

/** Options for the official client (tests and emulators point it at a local endpoint). */
export type GcpKmsClientOptions = Record<string, unknown>;

type Sdk = typeof import('@google-cloud/kms');
type KmsClient = InstanceType<Sdk['KeyManagementServiceClient']>;

/**
 * Each call's deadline, retries included: the client's own default is 60 s, too long for a
 * command or a worker refresh to wait on an unreachable endpoint (Vault and Secret Manager
 * use 10 s too).
 */
const CALL = { timeout: 10_000 };

// gRPC status names, for the runbook-style "rpc error: code = PermissionDenied".
const CODES: Record<number, string> = {
  3: 'InvalidArgument',
  4: 'DeadlineExceeded',
  5: 'NotFound',
  6: 'AlreadyExists',
  7: 'PermissionDenied',
  9: 'FailedPrecondition',
  14: 'Unavailable',
  16: 'Unauthenticated',
};

function failed(keyRef: string, err: unknown): KmsError {
  if (err instanceof KmsError) return err;
  const e = err as { code?: number; details?: string; message?: string };
  const code = typeof e.code === 'number' ? (CODES[e.code] ?? `code ${e.code}`) : undefined;
  const detail = e.details || e.message || String(err);
  return new KmsError(
    code === 'AlreadyExists' ? KmsErrorCode.KEY_EXISTS : KmsErrorCode.KMS_FAILED,
    `${keyRef}: ${code ? `rpc error: code = ${code} desc = ${detail}` : detail}`,
    {
      hint:
        code === 'PermissionDenied'
          ? 'grant roles/cloudkms.signerVerifier on the key to the signing identity'
          : code === 'AlreadyExists'
            ? `sign with it (--key ${keyRef}), or choose another name`
            : code === 'Unavailable' || code === 'DeadlineExceeded'
              ? 'Cloud KMS did not answer: check the network path to cloudkms.googleapis.com (or APX_GCPKMS_ENDPOINT)'
              : 'check the key name and the credentials',
      cause: err,
    },
  );
}

const NO_CREDENTIALS = /could not load the default credentials/i;

/** The client could not set up its connection (Google credentials, before any call). */
function credentialsFailed(keyRef: string, err: unknown): KmsError {
  const message = err instanceof Error ? err.message : String(err);
  const none = NO_CREDENTIALS.test(message);
  return new KmsError(
    KmsErrorCode.KMS_FAILED,
    none
      ? `${keyRef}: no Google credentials found; set GOOGLE_APPLICATION_CREDENTIALS or run with a service account (workload identity)`
      : `${keyRef}: cannot get Google credentials: ${message}`,
    {
      hint: none
        ? 'on a workstation: gcloud auth application-default login'
        : 'GOOGLE_APPLICATION_CREDENTIALS must name a readable service account key file (or be unset, to use the attached service account)',
      cause: err,
    },
  );
}

/**
 * A connected client. The generated client connects (Google credentials included) lazily,
 * inside each method, where a failure escapes as an unhandled rejection or an exception
 * thrown from a callback (listCryptoKeyVersions): without credentials it would end the
 * process. So the connection is made here, first and awaited, and a failure is this call's
 * error; the failed client is closed and never called.
 */
async function connect(keyRef: string, clientOptions: GcpKmsClientOptions): Promise<KmsClient> {
  const { KeyManagementServiceClient } = await importClient<Sdk>('@google-cloud/kms', 'gcpkms://');
  const client = new KeyManagementServiceClient(clientOptions as ConstructorParameters<Sdk['KeyManagementServiceClient']>[0]);
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      client.initialize(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no Google credentials within ${CALL.timeout} ms`)), CALL.timeout);
      }),
    ]);
  } catch (err) {
    await client.close().catch(() => undefined);
    throw credentialsFailed(keyRef, err);
  } finally {
    clearTimeout(timer);
  }
  return client;
}

/** A version's public key, checked against its CRC-32C (Google's integrity protocol). */
async function versionPublicKey(client: KmsClient, versionName: string): Promise<PublicKey> {
  const [key] = await client.getPublicKey({ name: versionName }, CALL);
  if (!key.pem) throw new Error('no public key returned');
  if (key.pemCrc32c != null && String(key.pemCrc32c.value ?? key.pemCrc32c) !== String(crc32c(Buffer.from(key.pem)))) {
    throw new Error('the public key was corrupted in transit (CRC-32C mismatch)');
  }
  return PublicKey.fromKeyObject(createPublicKey(key.pem));
}

/**
 * A key in Google Cloud KMS: the private key never leaves KMS; APX sends the digest with its
 * CRC-32C and checks the returned signature's CRC-32C. Without a version in the reference,
 * the highest enabled version signs (as cosign). The SDK loads only when such a key is used.
 */
export class GcpKmsKey implements KmsKey {
  readonly keyRef: string;
  /** The version that signs: projects/.../cryptoKeyVersions/N. */
  readonly version: string;
  private readonly client: KmsClient;
  private readonly pub: PublicKey;

  private constructor(keyRef: string, client: KmsClient, version: string, pub: PublicKey) {
    this.keyRef = keyRef;
    this.client = client;
    this.version = version;
    this.pub = pub;
  }

  static async open(keyRef: string, name: string, clientOptions: GcpKmsClientOptions = {}): Promise<GcpKmsKey> {
    const client = await connect(keyRef, clientOptions);
    try {
      let versionName = name.replace('/versions/', '/cryptoKeyVersions/');
      if (!versionName.includes('/cryptoKeyVersions/')) {
        const [versions] = await client.listCryptoKeyVersions({ parent: versionName, filter: 'state=ENABLED' }, CALL);
        const newest = versions
          .map((v) => v.name ?? '')
          .sort((a, b) => Number(b.split('/').pop()) - Number(a.split('/').pop()))[0];
        if (!newest) throw new Error(`no enabled version of ${versionName}`);
        versionName = newest;
      }
      return new GcpKmsKey(keyRef, client, versionName, await versionPublicKey(client, versionName));
    } catch (err) {
      await client.close().catch(() => undefined);
      throw failed(keyRef, err);
    }
  }

  /**
   * `apx generate-key-pair --kms gcpkms://.../cryptoKeys/K`: creates the key ring if needed,
   * then an EC_SIGN_P256_SHA256 signing key (as cosign). An existing key is refused.
   */
  static async create(keyRef: string, name: string, clientOptions: GcpKmsClientOptions = {}): Promise<GcpKmsKey> {
    const m = /^(projects\/[^/]+\/locations\/[^/]+)\/keyRings\/([^/]+)\/cryptoKeys\/([^/]+)$/.exec(name);
    if (!m) {
      throw new KmsError(KmsErrorCode.KEY_REF_INVALID, `${keyRef}: name a crypto key without a version to create it`, {
        hint: 'use gcpkms://projects/P/locations/L/keyRings/R/cryptoKeys/K',
      });
    }
    const [, location, ringId, keyId] = m as unknown as [string, string, string, string];
    const ring = `${location}/keyRings/${ringId}`;
    const client = await connect(keyRef, clientOptions);
    try {
      await client.getKeyRing({ name: ring }, CALL).catch(async (err: { code?: number }) => {
        if (err.code !== 5) throw err;
        await client.createKeyRing({ parent: location, keyRingId: ringId, keyRing: {} }, CALL);
      });
      await client.createCryptoKey(
        {
          parent: ring,
          cryptoKeyId: keyId,
          cryptoKey: { purpose: 'ASYMMETRIC_SIGN', versionTemplate: { algorithm: 'EC_SIGN_P256_SHA256' } },
        },
        CALL,
      );
    } catch (err) {
      throw failed(keyRef, err);
    } finally {
      await client.close().catch(() => undefined);
    }
    return GcpKmsKey.open(keyRef, name, clientOptions);
  }

  /**
   * Client options for a KMS emulator or test server at `host:port` on loopback: plain gRPC,
   * no Google auth. (grpc-js is the client's own dependency, loaded from beside it.)
   */
  static emulatorOptions(endpoint: string): GcpKmsClientOptions {
    const m = /^(localhost|127\.\d+\.\d+\.\d+):(\d+)$/.exec(endpoint);
    if (!m) {
      throw new KmsError(KmsErrorCode.KEY_REF_INVALID, `APX_GCPKMS_ENDPOINT=${endpoint}: expected a loopback host:port`, {
        hint: 'this setting is for local emulators; real Cloud KMS needs no endpoint',
      });
    }
    let sdkEntry: string;
    try {
      sdkEntry = createRequire(import.meta.url).resolve('@google-cloud/kms');
    } catch (err) {
      // An optional peer dependency: the same message as when a key is opened without it.
      throw new KmsError(
        KmsErrorCode.CLIENT_MISSING,
        'gcpkms:// keys need the @google-cloud/kms package, which is not installed',
        {
          hint: 'npm install @google-cloud/kms',
          cause: err,
        },
      );
    }
    const kmsRequire = createRequire(sdkEntry);
    const grpc = kmsRequire('@grpc/grpc-js') as { credentials: { createInsecure(): unknown } };
    return {
      apiEndpoint: m[1],
      port: Number(m[2]),
      sslCreds: grpc.credentials.createInsecure(),
      universeDomain: 'googleapis.com',
    };
  }

  async publicKey(): Promise<PublicKey> {
    return this.pub;
  }

  async sign(message: Uint8Array): Promise<KmsSignature> {
    const digestAlgorithm = defaultDigestFor(this.pub.algorithm);
    if (!digestAlgorithm) {
      throw new KmsError(KmsErrorCode.KEY_UNSUPPORTED, `${this.keyRef}: Ed25519 keys are not supported in Cloud KMS signing`);
    }
    const digest = createHash(digestAlgorithm).update(message).digest();
    try {
      const [out] = await this.client.asymmetricSign(
        {
          name: this.version,
          digest: { [digestAlgorithm]: digest },
          digestCrc32c: { value: crc32c(digest) },
        },
        CALL,
      );
      const signature = Buffer.from(out.signature as Uint8Array);
      if (out.verifiedDigestCrc32c === false) throw new Error('KMS did not receive the digest intact');
      if (out.signatureCrc32c != null && String(out.signatureCrc32c.value ?? out.signatureCrc32c) !== String(crc32c(signature))) {
        throw new Error('the signature was corrupted in transit (CRC-32C mismatch)');
      }
      return { signature, digestAlgorithm, publicKey: this.pub };
    } catch (err) {
      throw failed(this.keyRef, err);
    }
  }

  async close(): Promise<void> {
    await this.client.close();
  }
}
