import { createHash, createPublicKey } from 'node:crypto';
import { createRequire } from 'node:module';
import { crc32c, defaultDigestFor, PublicKey } from '@apx/core';
import { SignError, SignErrorCode } from '../error.js';
import type { SignatureResult, Signer } from '../signer/signer.js';

/** Options for the official client (tests and emulators point it at a local endpoint). */
export type GcpKmsClientOptions = Record<string, unknown>;

type KmsClient = InstanceType<typeof import('@google-cloud/kms')['KeyManagementServiceClient']>;

// gRPC status names, for the runbook-style "rpc error: code = PermissionDenied".
const CODES: Record<number, string> = {
  3: 'InvalidArgument',
  4: 'DeadlineExceeded',
  5: 'NotFound',
  7: 'PermissionDenied',
  9: 'FailedPrecondition',
  14: 'Unavailable',
  16: 'Unauthenticated',
};

function failed(keyRef: string, err: unknown): SignError {
  const e = err as { code?: number; details?: string; message?: string };
  const code = typeof e.code === 'number' ? (CODES[e.code] ?? `code ${e.code}`) : undefined;
  const detail = e.details || e.message || String(err);
  return new SignError(SignErrorCode.KMS_FAILED, `${keyRef}: ${code ? `rpc error: code = ${code} desc = ${detail}` : detail}`, {
    hint:
      code === 'PermissionDenied'
        ? 'grant roles/cloudkms.signerVerifier on the key to the signing identity'
        : 'check the key name and the credentials',
    cause: err,
  });
}

/**
 * A key in Google Cloud KMS: the private key never leaves KMS; APX sends the digest with its
 * CRC-32C and checks the returned signature's CRC-32C (Google's integrity protocol). Without a
 * version in the reference, the highest enabled version signs (as cosign). The SDK loads only
 * when such a key is used.
 */
export class GcpKmsSigner implements Signer {
  readonly keyRef: string;
  private readonly client: KmsClient;
  private readonly versionName: string;
  private readonly pub: PublicKey;

  private constructor(keyRef: string, client: KmsClient, versionName: string, pub: PublicKey) {
    this.keyRef = keyRef;
    this.client = client;
    this.versionName = versionName;
    this.pub = pub;
  }

  static async open(keyRef: string, name: string, clientOptions: GcpKmsClientOptions = {}): Promise<GcpKmsSigner> {
    const { KeyManagementServiceClient } = await import('@google-cloud/kms');
    const client = new KeyManagementServiceClient(clientOptions as ConstructorParameters<typeof KeyManagementServiceClient>[0]);
    try {
      let versionName = name.replace('/versions/', '/cryptoKeyVersions/');
      if (!versionName.includes('/cryptoKeyVersions/')) {
        const [versions] = await client.listCryptoKeyVersions({
          parent: versionName,
          filter: 'state=ENABLED',
          orderBy: 'name desc',
        });
        const newest = versions
          .map((v) => v.name ?? '')
          .sort((a, b) => Number(b.split('/').pop()) - Number(a.split('/').pop()))[0];
        if (!newest) throw new Error(`no enabled version of ${versionName}`);
        versionName = newest;
      }
      const [key] = await client.getPublicKey({ name: versionName });
      if (!key.pem) throw new Error('no public key returned');
      if (key.pemCrc32c != null && String(key.pemCrc32c.value ?? key.pemCrc32c) !== String(crc32c(Buffer.from(key.pem)))) {
        throw new Error('the public key was corrupted in transit (CRC-32C mismatch)');
      }
      const pub = PublicKey.fromKeyObject(createPublicKey(key.pem));
      return new GcpKmsSigner(keyRef, client, versionName, pub);
    } catch (err) {
      await client.close().catch(() => undefined);
      throw err instanceof SignError ? err : failed(keyRef, err);
    }
  }

  /**
   * Client options for a KMS emulator or test server at `host:port` on loopback: plain gRPC,
   * no Google auth. (grpc-js is the client's own dependency, loaded from beside it.)
   */
  static emulatorOptions(endpoint: string): GcpKmsClientOptions {
    const m = /^(localhost|127\.\d+\.\d+\.\d+):(\d+)$/.exec(endpoint);
    if (!m) {
      throw new SignError(SignErrorCode.KEY_REF_INVALID, `APX_GCPKMS_ENDPOINT=${endpoint}: expected a loopback host:port`, {
        hint: 'this setting is for local emulators; real Cloud KMS needs no endpoint',
      });
    }
    const kmsRequire = createRequire(createRequire(import.meta.url).resolve('@google-cloud/kms'));
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

  async sign(message: Uint8Array): Promise<SignatureResult> {
    const digestAlgorithm = defaultDigestFor(this.pub.algorithm);
    if (!digestAlgorithm)
      throw new SignError(SignErrorCode.SIGNING_FAILED, `${this.keyRef}: Ed25519 keys are not supported in Cloud KMS signing`);
    const digest = createHash(digestAlgorithm).update(message).digest();
    try {
      const [out] = await this.client.asymmetricSign({
        name: this.versionName,
        digest: { [digestAlgorithm]: digest },
        digestCrc32c: { value: crc32c(digest) },
      });
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
