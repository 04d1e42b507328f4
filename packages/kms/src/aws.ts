import { createHash, createPublicKey } from 'node:crypto';
import { defaultDigestFor, PublicKey } from '@apx/core';
import { KmsError, KmsErrorCode } from './error.js';
import { importClient, type KmsKey, type KmsSignature } from './kms-key.js';

const ALGORITHM: Record<string, string> = {
  'ecdsa-p256': 'ECDSA_SHA_256',
  'ecdsa-p384': 'ECDSA_SHA_384',
  'ecdsa-p521': 'ECDSA_SHA_512',
  rsa: 'RSASSA_PKCS1_V1_5_SHA_256',
};

type Kms = typeof import('@aws-sdk/client-kms');
type Client = InstanceType<Kms['KMSClient']>;

export interface AwsKmsOptions {
  /** awskms://ENDPOINT/...: a KMS-compatible service; loopback speaks plain HTTP. */
  endpoint?: string | undefined;
  /** AWS_REGION / AWS_DEFAULT_REGION; the SDK's own lookup otherwise. */
  region?: string | undefined;
}

/** Loopback endpoints speak plain HTTP (local test servers); every other endpoint HTTPS, as cosign. */
function endpointUrl(endpoint: string): string {
  return /^(localhost|127\.\d+\.\d+\.\d+|\[::1\])(:\d+)?$/.test(endpoint) ? `http://${endpoint}` : `https://${endpoint}`;
}

function failed(keyRef: string, err: unknown): KmsError {
  if (err instanceof KmsError) return err;
  const name = (err as { name?: string }).name ?? 'Error';
  // The SDK found no credentials: nothing was asked of AWS KMS, so nothing was refused.
  if (name === 'CredentialsProviderError') {
    return new KmsError(
      KmsErrorCode.KMS_FAILED,
      `${keyRef}: no AWS credentials found; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or run with an instance or task role`,
      { hint: 'the AWS SDK looks in the environment, ~/.aws (AWS_PROFILE), then the instance or task role', cause: err },
    );
  }
  if (/region is missing/i.test((err as Error).message ?? '')) {
    return new KmsError(KmsErrorCode.KMS_FAILED, `${keyRef}: no AWS region; set AWS_REGION to the key's region`, {
      hint: 'AWS_REGION or AWS_DEFAULT_REGION, or a region in the AWS_PROFILE profile',
      cause: err,
    });
  }
  return new KmsError(KmsErrorCode.KMS_FAILED, `${keyRef}: AWS KMS refused: ${name}: ${(err as Error).message}`, {
    hint:
      name === 'AccessDeniedException'
        ? 'grant kms:Sign and kms:GetPublicKey on the key'
        : 'check the key id, region and credentials',
    cause: err,
  });
}

async function connect(options: AwsKmsOptions): Promise<{ kms: Kms; client: Client }> {
  const kms = await importClient<Kms>('@aws-sdk/client-kms', 'awskms://');
  const client = new kms.KMSClient({
    ...(options.endpoint ? { endpoint: endpointUrl(options.endpoint) } : {}),
    ...(options.region ? { region: options.region } : {}),
    maxAttempts: 3,
  });
  return { kms, client };
}

/**
 * A key in AWS KMS (or a KMS-compatible service at ENDPOINT): the private key never leaves
 * KMS; APX sends the digest (MessageType DIGEST) and gets a DER signature back. The AWS SDK
 * loads only when such a key is used.
 */
export class AwsKmsKey implements KmsKey {
  readonly keyRef: string;
  private readonly client: Client;
  private readonly kms: Kms;
  private readonly keyId: string;
  private readonly pub: PublicKey;

  private constructor(keyRef: string, kms: Kms, client: Client, keyId: string, pub: PublicKey) {
    this.keyRef = keyRef;
    this.kms = kms;
    this.client = client;
    this.keyId = keyId;
    this.pub = pub;
  }

  static async open(keyRef: string, keyId: string, options: AwsKmsOptions = {}): Promise<AwsKmsKey> {
    const { kms, client } = await connect(options);
    try {
      const out = await client.send(new kms.GetPublicKeyCommand({ KeyId: keyId }));
      if (!out.PublicKey) throw new Error('no public key returned');
      if (out.KeyUsage && out.KeyUsage !== 'SIGN_VERIFY') {
        throw new KmsError(KmsErrorCode.KEY_UNSUPPORTED, `${keyRef}: the key's usage is ${out.KeyUsage}, not SIGN_VERIFY`, {
          hint: 'create an asymmetric signing key (KeyUsage SIGN_VERIFY, KeySpec ECC_NIST_P256)',
        });
      }
      const pub = PublicKey.fromKeyObject(createPublicKey({ key: Buffer.from(out.PublicKey), format: 'der', type: 'spki' }));
      return new AwsKmsKey(keyRef, kms, client, keyId, pub);
    } catch (err) {
      client.destroy();
      throw failed(keyRef, err);
    }
  }

  /**
   * `apx generate-key-pair --kms awskms://[ENDPOINT]/alias/NAME`: creates an ECC_NIST_P256
   * signing key and points the alias at it (AWS chooses key ids, so only an alias names a key
   * that does not exist yet). An alias already in use is refused.
   */
  static async create(keyRef: string, alias: string, options: AwsKmsOptions = {}): Promise<AwsKmsKey> {
    const { kms, client } = await connect(options);
    try {
      const exists = await client.send(new kms.DescribeKeyCommand({ KeyId: alias })).then(
        () => true,
        (err: unknown) => {
          if ((err as { name?: string }).name === 'NotFoundException') return false;
          throw err;
        },
      );
      if (exists) {
        throw new KmsError(KmsErrorCode.KEY_EXISTS, `${keyRef}: ${alias} already names a key in AWS KMS`, {
          hint: `sign with it (--key ${keyRef}), or choose another alias`,
        });
      }
      const created = await client.send(
        new kms.CreateKeyCommand({
          KeySpec: 'ECC_NIST_P256',
          KeyUsage: 'SIGN_VERIFY',
          Description: 'APX policy artifact signing key',
        }),
      );
      const keyId = created.KeyMetadata?.KeyId;
      if (!keyId) throw new Error('CreateKey returned no key id');
      await client.send(new kms.CreateAliasCommand({ AliasName: alias, TargetKeyId: keyId }));
    } catch (err) {
      throw failed(keyRef, err);
    } finally {
      client.destroy();
    }
    return AwsKmsKey.open(keyRef, alias, options);
  }

  async publicKey(): Promise<PublicKey> {
    return this.pub;
  }

  async sign(message: Uint8Array): Promise<KmsSignature> {
    const digestAlgorithm = defaultDigestFor(this.pub.algorithm);
    const algorithm = ALGORITHM[this.pub.algorithm];
    if (!digestAlgorithm || !algorithm) {
      throw new KmsError(
        KmsErrorCode.KEY_UNSUPPORTED,
        `${this.keyRef}: AWS KMS keys of type ${this.pub.algorithm} are not supported`,
      );
    }
    try {
      const out = await this.client.send(
        new this.kms.SignCommand({
          KeyId: this.keyId,
          Message: createHash(digestAlgorithm).update(message).digest(),
          MessageType: 'DIGEST',
          SigningAlgorithm: algorithm as never,
        }),
      );
      if (!out.Signature) throw new Error('no signature returned');
      return { signature: Buffer.from(out.Signature), digestAlgorithm, publicKey: this.pub };
    } catch (err) {
      throw failed(this.keyRef, err);
    }
  }

  async close(): Promise<void> {
    this.client.destroy();
  }
}
